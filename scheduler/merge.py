"""`overnight merge SESSION`: bring a session branch into its base branch, or refuse with the reason.

Before anything moves, the branch is checked again, trusting nothing (a branch can be changed after its session):
it still ends where the session left it, it still starts from the session's base, it has no merge commit, and each
of its commits is either one the `commit` tool recorded for that session under a receipt that still verifies, or
the scheduler's own plan update (the plan file alone, for a task the session kept).

Then: a fast-forward when the base has not moved, else a merge commit when the two merge without conflicts
(`git merge-tree`, which touches no checkout), else a refusal naming the conflicting files. Where the base branch is
checked out (the person's checkout, or another worktree), that checkout is moved with `git merge --ff-only` to the
result, and only when none of the files the merge changes has uncommitted changes there: git then updates exactly
those files, or refuses before touching any. Where it is not checked out, only the ref moves (`git update-ref` with
the expected old value): no checkout is touched.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field

from mcp_servers.core.git import Repo
from mcp_servers.core.workspace import Workspace

from . import report, worktree
from .morning import Refused, SessionBranch, find, mark, record_for, running_branch
from .verify import outside_commit

PLAN_UPDATE = "Overnight-Plan-Update"


class Merged(BaseModel):
    session: str
    branch: str
    base_branch: str
    how: Literal["fast-forward", "merge commit"]
    before: str = Field(description="the base branch's commit before")
    after: str = Field(description="the base branch's commit now")
    commits: int = Field(description="the session's commits brought in")
    tasks: list[str] = Field(description="the tasks the session kept")
    checkout: str | None = Field(description="the checkout of the base branch that was updated (None: only the ref)")
    message: str


def merge(ws: Workspace, spec: str) -> Merged:
    """Merge the session `spec` names into its base branch, after verifying every commit on it."""
    found = find(ws, spec)
    if found.branch == running_branch(ws):
        raise Refused(f"session {found.session} is still running", ["wait for it to end, or `overnight stop` it"])
    record = record_for(ws, found.session)
    if record is None or not record.base_commit:
        raise Refused(f"{found.branch} cannot be verified", [found.note or "its report has no base commit; merge it "
                      "by hand with `git merge` only if you trust every commit on it"])  # fmt: skip
    repo, base_name, tip = ws.repo, record.base_branch, found.tip
    base = repo.run("rev-parse", "--verify", "-q", f"refs/heads/{base_name}^{{commit}}", check=False).text().strip()
    if not base:
        raise Refused(f"the base branch {base_name} does not exist", [f"create it, or merge {found.branch} by hand"])
    if repo.is_ancestor(tip, base):
        raise Refused(f"{found.branch} is already in {base_name}", ["nothing to merge; `overnight discard` deletes it"])
    problems = unverified(ws, record, tip)
    if problems:
        raise Refused(f"{found.branch} was not merged: it does not verify", problems)
    how: Literal["fast-forward", "merge commit"] = "fast-forward"
    new = tip
    if not repo.is_ancestor(base, tip):
        how, new = "merge commit", _merge_commit(repo, found, record, base)
    checkout = _checkout_of(repo, base_name)
    if checkout is None:
        repo.run("update-ref", "-m", f"overnight merge {found.session}", f"refs/heads/{base_name}", new, base)
    else:
        _move_checkout(checkout, base_name, base, new)
    commits = int(repo.out("rev-list", "--count", "--no-merges", f"{base}..{tip}") or 0)
    what = f"merged into {base_name} as {new[:12]} ({how})"
    mark(ws, found.session, what)
    where = f"{checkout} was updated" if checkout else f"{base_name} is not checked out: only its ref moved"
    kept = found.kept or []
    message = (
        f"session {found.session} ({found.branch}, tasks kept: {', '.join(kept) or 'none'}) {what}: "
        f"{commits} commit(s); {where}. The branch stays (`overnight discard {found.session}` deletes it)."
    )
    return Merged(session=found.session, branch=found.branch, base_branch=base_name, how=how, before=base, after=new,
                  commits=commits, tasks=kept, checkout=str(checkout) if checkout else None,
                  message=message)  # fmt: skip


def unverified(ws: Workspace, record: report.SessionRecord, tip: str) -> list[str]:
    """Why the branch at `tip` is not the one the session left, made of commits it verified (empty: it is)."""
    repo, start = ws.repo, record.base_commit
    problems = []
    if record.final_commit and record.final_commit != tip:
        problems.append(f"the branch moved since the session ended: the session left it at {record.final_commit[:12]}, "
                        f"it is now at {tip[:12]}; commits made since are not verified")  # fmt: skip
    if not repo.is_ancestor(start, tip):
        return [
            *problems,
            f"the branch no longer starts from the session's base {start[:12]}: its history was rewritten",
        ]
    if repo.out("rev-list", "--merges", f"{start}..{tip}"):
        problems.append("the branch has a merge commit, which no session makes")
    # the session's own settings: those committed at its base (agents cannot change overnight.toml)
    settings = Workspace.open(repo.root, environ={**ws.environ, "OVERNIGHT_CHECKPOINT": start}).settings
    policy_hash, plan_path = settings.policy_hash(), settings.plan.path
    kept = {t.task_id for t in record.tasks if t.outcome == "passed"}
    with ws.db() as conn:
        key = ws.key()
        for commit in repo.out("rev-list", "--reverse", f"{start}..{tip}").split():
            why = outside_commit(conn, key, repo, commit, session=record.id, policy_hash=policy_hash)
            if why and _plan_update(repo, commit, plan_path, kept):
                continue
            if why:
                subject = repo.out("log", "-1", "--format=%s", commit)[:80]
                problems.append(f"commit {commit[:12]} ({subject}) is not one the session verified: {why}")
    return problems


def _plan_update(repo: Repo, commit: str, plan_path: str, kept: set[str]) -> bool:
    """Whether `commit` is the scheduler's own "Mark TASK done": the plan file alone, for a task the session kept."""
    trailers = repo.out("log", "-1", f"--format=%(trailers:key={PLAN_UPDATE},valueonly)%x00"
                        "%(trailers:key=Overnight-Task,valueonly)", commit)  # fmt: skip
    marker, _, task = trailers.partition("\0")
    if not marker.strip() or task.strip() not in kept:
        return False
    changed = repo.run("diff-tree", "--no-commit-id", "--name-only", "-r", "-z", f"{commit}^", commit).text()
    return [p for p in changed.split("\0") if p] == [plan_path]


def _merge_commit(repo: Repo, found: SessionBranch, record: report.SessionRecord, base: str) -> str:
    """The merge commit of `base` and the branch, made without touching any checkout; refused on a conflict."""
    merged = repo.run("merge-tree", "--write-tree", "--name-only", "--no-messages", base, found.tip, check=False)
    lines = merged.text().splitlines()
    if merged.returncode == 1:
        files = sorted({line for line in lines[1:] if line})
        raise Refused(f"{found.branch} conflicts with {record.base_branch}; nothing was changed",
                      [f"conflicting: {', '.join(files) or '(see `git merge-tree`)'}",
                       f"merge it by hand (`git merge {found.branch}`) and resolve them, or discard it"])  # fmt: skip
    if not merged.ok or not lines:
        raise Refused(f"git could not merge {found.branch}", [merged.describe(tail_lines=5)])
    kept = ", ".join(t.task_id for t in record.tasks if t.outcome == "passed") or "none"
    message = (
        f"Merge overnight session {found.session} ({found.branch})\n\nTasks kept: {kept}\n"
        f"Verified by `overnight merge`: every commit carries a receipt of session {found.session}.\n"
    )
    return repo.run("commit-tree", lines[0], "-p", base, "-p", found.tip, "-F", "-",
                    input=message.encode()).text().strip()  # fmt: skip


def _checkout_of(repo: Repo, branch: str) -> Path | None:
    """The worktree (the person's checkout or another) that has `branch` checked out, if one has."""
    path = None
    for line in repo.out("worktree", "list", "--porcelain").splitlines():
        if line.startswith("worktree "):
            path = Path(line.removeprefix("worktree "))
        elif line == f"branch refs/heads/{branch}" and path is not None:
            return path
    return None


def _move_checkout(checkout: Path, base_name: str, base: str, new: str) -> None:
    """Fast-forward the checkout of the base branch to `new`, or refuse before touching it."""
    there = Repo.discover(checkout)
    busy = there.operation_in_progress()
    if busy:
        raise Refused(f"{checkout} is in the middle of a {busy}", ["finish or abort it, then merge again"])
    touched = set(there.out("diff", "--no-renames", "--name-only", "-z", base, new).split("\0")) - {""}
    dirty = sorted(touched.intersection(worktree.pending(checkout)))
    if dirty:
        raise Refused(f"your checkout {checkout} has uncommitted changes in files the merge changes; nothing was "
                      "changed", [f"changed: {', '.join(dirty[:20])}",
                                  "commit or stash them (`git stash`), then merge again"])  # fmt: skip
    moved = there.run("merge", "--ff-only", "--quiet", new, check=False)
    if not moved.ok:
        raise Refused(f"git refused to update {checkout}; nothing was changed", [moved.describe(tail_lines=5)])
    if there.out("rev-parse", f"refs/heads/{base_name}") != new:  # pragma: no cover (a race with the person)
        raise Refused(f"{base_name} moved while merging", ["look at `git log` and merge again"])
