"""Verification after the agent exits, trusting nothing it said.

1. The task's checkpoint is still in the branch's history (no rewrite), and at least one commit was made.
2. Every new commit was made by the `commit` tool in this session (its signed record says so), its
   `Overnight-Receipt:` trailer names the receipt recorded with it, and that receipt vouches for the commit's
   tree under the current policy. A commit made any other way is refused, whatever receipts exist for its tree.
3. The whole change since the checkpoint passes the safety policy and the task's scope (and the plan file
   changed only through the project tools).
4. The gate, re-run by the scheduler itself with no receipt reused, passes on the final tree. That run is
   recorded as a `verification`, a verdict that is never a receipt (issue 10).

Uncommitted leftovers are listed and dropped first: only commits count.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import BaseModel, Field

from mcp_servers.core import queue, receipts
from mcp_servers.core.gate import describe_failures, run_gate
from mcp_servers.core.gate.progress import Progress
from mcp_servers.core.git import Repo
from mcp_servers.core.models import CheckResult
from mcp_servers.core.policy import check_changes
from mcp_servers.core.workspace import Workspace

from . import worktree

if TYPE_CHECKING:  # only the type: SQL stays in core's store modules
    import sqlite3


class Verification(BaseModel):
    passed: bool
    reasons: list[str] = Field(default_factory=list)
    commits: list[str] = Field(default_factory=list)
    leftovers: list[str] = Field(default_factory=list, description="uncommitted files the agent left (dropped)")
    checks: list[CheckResult] = Field(default_factory=list, description="the scheduler's own gate run")
    coverage: float | None = None
    coverage_base: float | None = None


def verify(wt: Workspace, task_files: list[str], checkpoint: str, progress: Progress | None = None) -> Verification:
    repo = wt.repo
    head = repo.require_commits()
    # the plan's Status line that `complete_task` wrote is not the agent's work: the scheduler writes its own
    leftovers = [p for p in worktree.pending(repo.root) if p != wt.settings.plan.path]
    worktree.clean(repo.root)
    if not repo.is_ancestor(checkpoint, head):
        return Verification(passed=False, leftovers=leftovers,
                            reasons=[f"the branch no longer holds the task's checkpoint {checkpoint[:12]}: the "
                                     "agent rewrote history"])  # fmt: skip
    commits = repo.out("rev-list", "--reverse", f"{checkpoint}..{head}").split()
    if not commits:
        return Verification(passed=False, leftovers=leftovers, reasons=["no commit was made", *_last_gate(wt)])
    reasons = []
    policy_hash = wt.settings.policy_hash()
    with wt.db() as conn:
        key = wt.key()
        for commit in commits:
            why = outside_commit(conn, key, repo, commit, session=wt.session_id, policy_hash=policy_hash)
            if why:
                reasons.append(f"commit {commit[:12]} was made outside the gated `commit` tool: {why}")
    changes = check_changes(repo, wt.settings, base=checkpoint, tree=repo.tree_of(head), task_files=task_files,
                            plan=queue.plan_guard(wt))  # fmt: skip
    reasons += [f"[{v.rule}] {v.path + ': ' if v.path else ''}{v.message}" for v in changes.violations]
    result = Verification(passed=False, reasons=reasons, commits=commits, leftovers=leftovers)
    if changes.violations:
        return result
    gate = run_gate(wt, task_files=task_files, base=checkpoint, fresh=True, kind="verification", progress=progress)
    result.checks = gate.checks
    coverage = next((c for c in gate.checks if c.name == "coverage"), None)
    if coverage is not None:
        result.coverage = _number(coverage.data.get("percent"))
        result.coverage_base = _number(coverage.data.get("base"))
    if not gate.passed:
        result.reasons.append("the scheduler's own gate run failed:\n" + describe_failures(gate))
    result.passed = not result.reasons
    return result


def outside_commit(
    conn: sqlite3.Connection, key: bytes, repo: Repo, commit: str, *, session: str | None, policy_hash: str
) -> str | None:
    """Why `commit` is not one the `commit` tool made in `session` under a receipt for its tree (None: it is)."""
    record = receipts.recorded_commit(conn, key, commit)
    if record is None:
        return "the `commit` tool has no record of it"
    if record.session != session:
        return f"the `commit` tool made it for session {record.session}, not this one"
    tree = repo.tree_of(commit)
    if record.tree != tree:
        return f"the `commit` tool recorded tree {record.tree[:12]}, the commit has {tree[:12]}"
    named = repo.out("log", "-1", "--format=%(trailers:key=Overnight-Receipt,valueonly,separator=%x2C)", commit)
    if named.strip() != record.receipt_id:
        return f"its `Overnight-Receipt:` trailer says {named.strip()!r}, the `commit` tool used {record.receipt_id}"
    found = receipts.problems(receipts.get(conn, key, record.receipt_id), tree=tree, policy_hash=policy_hash)
    return "; ".join(found) or None


def _last_gate(wt: Workspace) -> list[str]:
    """Why the agent could not commit, as its own last gate run says (the report's explanation, not a verdict)."""
    if not (wt.session_id and wt.task_id):
        return []
    with wt.db() as conn:
        last = receipts.last_run_for(conn, wt.session_id, wt.task_id)
    if last is None:
        return ["the agent never ran the quality gate"]
    if last.passed:
        return []
    return ["the agent's last gate run failed:\n" + describe_failures(last)]


def _number(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) else None
