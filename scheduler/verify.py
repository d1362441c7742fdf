"""Verification after the agent exits, trusting nothing it said.

1. The task's checkpoint is still in the branch's history (no rewrite), and at least one commit was made.
2. Every new commit's tree has a passing gate receipt under the current policy (nothing went around the gate).
3. The whole change since the checkpoint passes the safety policy and the task's scope (and the plan file
   changed only through the project tools).
4. The gate, re-run by the scheduler itself with no receipt reused, passes on the final tree.

Uncommitted leftovers are listed and dropped first: only commits count.
"""

from __future__ import annotations

from pydantic import BaseModel, Field

from mcp_servers.core import queue, receipts
from mcp_servers.core.gate import describe_failures, run_gate
from mcp_servers.core.models import CheckResult
from mcp_servers.core.policy import check_changes
from mcp_servers.core.workspace import Workspace

from . import worktree


class Verification(BaseModel):
    passed: bool
    reasons: list[str] = Field(default_factory=list)
    commits: list[str] = Field(default_factory=list)
    leftovers: list[str] = Field(default_factory=list, description="uncommitted files the agent left (dropped)")
    checks: list[CheckResult] = Field(default_factory=list, description="the scheduler's own gate run")
    coverage: float | None = None
    coverage_base: float | None = None


def verify(wt: Workspace, task_files: list[str], checkpoint: str) -> Verification:
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
            if receipts.find(conn, key, tree=repo.tree_of(commit), policy_hash=policy_hash) is None:
                reasons.append(f"commit {commit[:12]} has no passing gate receipt: it was made outside the gate")
    changes = check_changes(repo, wt.settings, base=checkpoint, tree=repo.tree_of(head), task_files=task_files,
                            plan=queue.plan_guard(wt))  # fmt: skip
    reasons += [f"[{v.rule}] {v.path + ': ' if v.path else ''}{v.message}" for v in changes.violations]
    result = Verification(passed=False, reasons=reasons, commits=commits, leftovers=leftovers)
    if changes.violations:
        return result
    gate = run_gate(wt, task_files=task_files, base=checkpoint, fresh=True)
    result.checks = gate.checks
    coverage = next((c for c in gate.checks if c.name == "coverage"), None)
    if coverage is not None:
        result.coverage = _number(coverage.data.get("percent"))
        result.coverage_base = _number(coverage.data.get("base"))
    if not gate.passed:
        result.reasons.append("the scheduler's own gate run failed:\n" + describe_failures(gate))
    result.passed = not result.reasons
    return result


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
