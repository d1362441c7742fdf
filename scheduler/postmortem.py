"""A dead session's last facts, for its report and memory record: the task it had in hand, what its branch kept
(its last verified commit: unverified commits the agent made on it are taken off) and when the process died
(at the latest: the newest of the lock file's last change, the writes to its agent logs and its report's last
save; each named, so the estimate says what it rests on)."""

from __future__ import annotations

import datetime as dt
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from mcp_servers.core.errors import OvernightError
from mcp_servers.core.git import Repo
from mcp_servers.core.workspace import Workspace

from . import worktree

LOCK_MTIME = "lock_mtime"  # added to a stale lock's contents by `run_lock` before it removes the file
KEPT = "kept"  # the lock's record of the branch's last verified commit (the runner keeps it current)
_OID = re.compile(r"^[0-9a-f]{40}([0-9a-f]{24})?$")


class Crash(BaseModel):
    """What the next run found of a session that died (SIGKILL, a reboot)."""

    task: str = Field(default="", description="the task in hand when it died (empty: between tasks)")
    lock_found: bool = Field(default=True, description="false: its lock was gone, so the task in hand is unknown")
    final_commit: str = Field(default="", description="what the branch kept: its last verified commit (the base: "
                              "nothing)")  # fmt: skip
    dropped: list[str] = Field(default_factory=list, description="unverified commits taken off the branch")
    died_at: str = Field(description="when it died, at the latest: the last sign of life found")
    evidence: str = Field(description="what that time was read from")

    def text(self) -> str:
        task = (
            (f"with task {self.task} in hand" if self.task else "between tasks")
            if self.lock_found
            else ("(its lock was gone: the task in hand is not known)")
        )
        kept = f"; the branch kept {self.final_commit[:12]}" if self.final_commit else ""
        return f"the process died {task}; last sign of life {self.died_at} ({self.evidence}){kept}"


def died_at(state_dir: Path, session: str, lock_mtime: float | None = None) -> tuple[float, str]:
    """(when, what it was read from): the latest sign of life a session left; (0, ...) when none is found."""
    found: list[tuple[float, str]] = []
    if lock_mtime:
        found.append((float(lock_mtime), "the lock file's last change"))
    runs = state_dir / "runs" / session
    if session and "/" not in session and runs.is_dir() and not runs.is_symlink():
        for folder, _dirs, files in os.walk(runs):  # (os.walk follows no link to a folder)
            for name in files:
                path = Path(folder) / name
                try:
                    found.append((path.lstat().st_mtime, f"the last write to {path.relative_to(state_dir)}"))
                except OSError:
                    continue
    report = state_dir / "reports" / f"{session}.json"
    if session and report.is_file():
        found.append((report.lstat().st_mtime, "the report's last save"))
    return max(found, default=(0.0, "no sign of life was found"))


def iso(at: float) -> str:
    return dt.datetime.fromtimestamp(at, dt.UTC).isoformat(timespec="seconds") if at else "unknown"


def crash(ws: Workspace, session: str, branch: str, base: str, stale: Mapping[str, Any]) -> Crash:
    """What a dead session left (`stale`: its lock's contents), with its branch put back to the last verified
    commit. Called before its worktree is removed."""
    lock_mtime = stale.get(LOCK_MTIME)
    when, evidence = died_at(ws.state_dir, session, lock_mtime if isinstance(lock_mtime, int | float) else None)
    final, dropped = settle_branch(ws, branch or str(stale.get("branch") or ""), base, stale)
    return Crash(task=str(stale.get("task") or ""), final_commit=final, dropped=dropped, died_at=iso(when),
                 evidence=evidence)  # fmt: skip


def settle_branch(ws: Workspace, branch: str, base: str, stale: Mapping[str, Any]) -> tuple[str, list[str]]:
    """(the branch's final commit, the unverified commits taken off it). The agent can commit on the branch while
    a task is in hand and the scheduler verifies before it keeps, so what is past the lock's last verified commit
    goes. A branch that kept nothing is deleted, as at the end of a session."""
    if not branch:
        return base, []
    tip = ws.repo.out("rev-parse", "-q", "--verify", f"refs/heads/{branch}^{{commit}}", check=False)
    kept = str(stale.get(KEPT) or "")
    if not tip:
        return "", []
    if not _OID.match(kept) or (base and not ws.repo.is_ancestor(base, kept)):
        return tip, []  # a lock from before the runner recorded it, or not one of this branch's: the tip as it is
    if tip != kept and not ws.repo.is_ancestor(kept, tip):
        return tip, []  # not past it: something else moved the branch; it is left for a person to look at
    dropped = ws.repo.out("rev-list", f"{kept}..{tip}").split() if tip != kept else []
    if dropped:
        ws.repo.run("update-ref", f"refs/heads/{branch}", kept, tip)
    if kept == base:
        ws.repo.run("branch", "-D", branch, check=False)
    return kept, dropped


def changed_in(path: Path, since: str) -> list[str]:
    """The files a dead session's worktree changed since `since` (committed or not), before it is rolled back."""
    if not _OID.match(since) or not path.is_dir():
        return []
    try:
        committed = Repo.discover(path).run("diff", "--name-only", "-z", since, "HEAD").text().split("\0")
        return [p for p in dict.fromkeys(committed + worktree.pending(path)) if p][:50]
    except OvernightError:
        return []


def last_attempt(runs: Path, task: str) -> int:
    """The newest attempt of `task` with a run folder in `runs/<session>/` (0: none)."""
    found = []
    if task and runs.is_dir() and not runs.is_symlink():
        for child in runs.iterdir():
            head, _, number = child.name.rpartition("-")
            if head == task and number.isdigit():
                found.append(int(number))
    return max(found, default=0)
