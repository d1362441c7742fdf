"""The morning: the session branches not merged yet (`overnight review`), finding one by id, branch or prefix, and
`overnight discard`. Merging is in `merge.py`.

A session branch is `<branch_prefix><date>-<id>`; its report (`report.py`) says which tasks were kept and which
rolled back. What a person did with a branch is written into its report (`reviewed`), so it is never listed again.
"""

from __future__ import annotations

import re
from pathlib import Path

from pydantic import BaseModel, Field

from mcp_servers.core.errors import OvernightError, UsageError
from mcp_servers.core.workspace import Workspace

from . import report, worktree
from .lock import alive, read_lock

_SESSION_ID = re.compile(r"^\d{4}-\d{2}-\d{2}-[0-9a-f]{6,32}$")  # as the runner names them: <date>-<hex>


class Refused(OvernightError):
    """A person's command that was refused for reasons a person can act on (exit 1, nothing changed)."""

    def __init__(self, message: str, reasons: list[str]) -> None:
        super().__init__(message + "".join(f"\n  - {r}" for r in reasons))
        self.reasons = reasons


class SessionBranch(BaseModel):
    session: str
    branch: str
    tip: str
    base_branch: str = Field(description="the branch the session started from (its report's), else the default")
    merged: bool = Field(description="the branch's commits are all in the base branch already")
    commits: int = Field(description="commits on the branch that the base branch does not have")
    kept: list[str] = Field(default_factory=list, description="tasks kept on the branch")
    rolled_back: list[str] = Field(default_factory=list, description="tasks tried and rolled back")
    files_changed: int = 0
    insertions: int = 0
    deletions: int = 0
    cost_usd: float = 0.0
    outcome: str = ""
    started: str = ""
    ended: str | None = None
    report: str = Field(default="", description="the session's Markdown report (empty: none was found)")
    note: str = ""


class Review(BaseModel):
    sessions: list[SessionBranch]
    running: str | None = Field(default=None, description="the branch of the session running now (not listed)")


def record_for(ws: Workspace, session: str) -> report.SessionRecord | None:
    """The session's report, or None when there is none (or it cannot be read)."""
    if not _SESSION_ID.match(session):
        return None
    path = report.reports_dir(ws.state_dir) / f"{session}.json"
    try:
        return report.SessionRecord.model_validate_json(path.read_text())
    except (OSError, ValueError):
        return None


def running_branch(ws: Workspace) -> str | None:
    """The branch of the session running now (a person's command leaves it alone)."""
    held = read_lock(ws)
    if held and isinstance(held.get("pid"), int) and alive(held["pid"]):
        return str(held.get("branch") or "") or None
    return None


def session_branches(ws: Workspace) -> list[SessionBranch]:
    """Every branch under the session prefix, newest first, with its report's summary."""
    prefix = ws.settings.scheduler.branch_prefix
    refs = ws.repo.out("for-each-ref", "--format=%(refname)%00%(objectname)", "refs/heads/")
    found = []
    for line in refs.splitlines():
        ref, _, tip = line.partition("\0")
        branch = ref.removeprefix("refs/heads/")
        if branch.startswith(prefix) and _SESSION_ID.match(branch[len(prefix) :]):  # no other branch, ever
            found.append(_describe(ws, branch, tip, branch[len(prefix) :]))
    return sorted(found, key=lambda s: (s.started, s.session), reverse=True)


def branch_of(ws: Workspace, record: report.SessionRecord) -> SessionBranch | None:
    """The session's branch as `overnight review` describes it, or None when it has none now (issue 14)."""
    prefix, branch = ws.settings.scheduler.branch_prefix, record.branch
    if not branch.startswith(prefix) or not _SESSION_ID.match(branch[len(prefix) :]):
        return None
    tip = ws.repo.run("rev-parse", "--verify", "-q", f"refs/heads/{branch}^{{commit}}", check=False).text().strip()
    return _describe(ws, branch, tip, branch[len(prefix) :]) if tip else None


def _default_base(ws: Workspace) -> str:
    return ws.settings.scheduler.base_branch or ws.repo.branch() or "main"


def _describe(ws: Workspace, branch: str, tip: str, session: str) -> SessionBranch:
    record = record_for(ws, session)
    base = (record.base_branch if record else "") or _default_base(ws)
    base_tip = ws.repo.run("rev-parse", "--verify", "-q", f"refs/heads/{base}^{{commit}}", check=False).text().strip()
    item = SessionBranch(session=session, branch=branch, tip=tip, base_branch=base, merged=False, commits=0)
    if not base_tip:
        item.note = f"its base branch {base} does not exist any more"
    else:
        item.merged = ws.repo.is_ancestor(tip, base_tip)
        item.commits = int(ws.repo.out("rev-list", "--count", f"{base_tip}..{tip}") or 0)
        item.files_changed, item.insertions, item.deletions = _diffstat(ws, base_tip, tip)
    if record is None:
        item.note = item.note or "no report: the scheduler did not make this branch, or its report is gone"
        return item
    item.kept = [t.task_id for t in record.tasks if t.outcome == "passed"]
    item.rolled_back = [t.task_id for t in record.tasks if t.outcome != "passed"]
    item.cost_usd, item.outcome = record.cost_usd, record.outcome
    item.started, item.ended = record.started, record.ended
    item.report = str(report.reports_dir(ws.state_dir) / f"{record.id}.md")
    if record.final_commit and record.final_commit != tip:
        item.note = f"the branch moved since the session ended (it left it at {record.final_commit[:12]})"
    return item


def _diffstat(ws: Workspace, base: str, tip: str) -> tuple[int, int, int]:
    """(files, lines added, lines removed) the branch changes since it left the base (binary files count 0)."""
    text = ws.repo.out("diff", "--no-ext-diff", "--no-textconv", "--numstat", f"{base}...{tip}")
    files = added = removed = 0
    for line in text.splitlines():
        plus, minus, _ = line.split("\t", 2)
        files += 1
        added += int(plus) if plus.isdigit() else 0
        removed += int(minus) if minus.isdigit() else 0
    return files, added, removed


def review(ws: Workspace) -> Review:
    """The session branches not merged into their base yet, and not the running session's."""
    live = running_branch(ws)
    return Review(sessions=[s for s in session_branches(ws) if not s.merged and s.branch != live], running=live)


def find(ws: Workspace, spec: str) -> SessionBranch:
    """The session branch `spec` names: a session id, a branch name, or a prefix of either that only one has."""
    if not spec or spec.startswith("-") or any(c.isspace() or c == "\0" for c in spec) or len(spec) > 256:
        raise UsageError(f"{spec!r} is not a session: give its id or branch (`overnight review` lists them).")
    spec = spec.removeprefix("refs/heads/")
    branches = session_branches(ws)
    exact = [s for s in branches if spec in (s.session, s.branch)]
    matches = exact or [s for s in branches if s.session.startswith(spec) or s.branch.startswith(spec)]
    if not matches:
        raise UsageError(f"no session branch matches {spec!r}: `overnight review` lists the sessions not merged yet.")
    if len(matches) > 1:
        names = ", ".join(s.session for s in matches[:10])
        raise UsageError(f"{spec!r} matches {len(matches)} sessions ({names}): give more of the id.")
    return matches[0]


def mark(ws: Workspace, session: str, what: str) -> None:
    """Write what a person did with the session's branch into its report (when it has one)."""
    record = record_for(ws, session)
    if record is not None:
        record.reviewed = f"{what} ({report.now_iso()})"
        report.save(ws.state_dir, record)


class Discarded(BaseModel):
    session: str
    branch: str
    tip: str = Field(description="the commit the branch was at (`git branch NAME TIP` brings it back)")
    merged: bool
    worktree_removed: str | None = None
    message: str


def discard(ws: Workspace, spec: str) -> Discarded:
    """Delete a session branch (and its worktree, if one is left), and record it in the session's report."""
    found = find(ws, spec)
    if found.branch == running_branch(ws):
        raise Refused(f"session {found.session} is running", ["stop it first (`overnight stop`)"])
    removed = _worktree_of(ws, found.branch)
    if removed is not None:
        worktree.remove(ws, removed)
    # the expected old value: a branch moved meanwhile is not deleted blind
    ws.repo.run("update-ref", "-m", "overnight discard", "-d", f"refs/heads/{found.branch}", found.tip)
    mark(ws, found.session, f"discarded; the branch was at {found.tip[:12]}")
    lost = "" if found.merged else f"; its commits are kept by git for a while: `git branch {found.branch} {found.tip}`"
    message = f"deleted {found.branch} (session {found.session}, at {found.tip[:12]}){lost}"
    return Discarded(session=found.session, branch=found.branch, tip=found.tip, merged=found.merged,
                     worktree_removed=str(removed) if removed else None, message=message)  # fmt: skip


def _worktree_of(ws: Workspace, branch: str) -> Path | None:
    """The session's own worktree still holding `branch`; refused when a checkout of the person's holds it."""
    ours = worktree.location(ws, "x").parent.resolve()
    path = None
    for line in ws.repo.out("worktree", "list", "--porcelain").splitlines():
        if line.startswith("worktree "):
            path = Path(line.removeprefix("worktree "))
        elif line == f"branch refs/heads/{branch}" and path is not None:
            if path.resolve().parent != ours:
                raise Refused(f"{branch} is checked out in {path}",
                              [f"switch that checkout to another branch first (`git -C {path} switch -`)"])  # fmt: skip
            return path
    return None
