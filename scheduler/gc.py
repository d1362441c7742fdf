"""`overnight gc`: the state directory kept bounded over weeks of sessions.

What it removes, all under the state directory (`.git/overnight/`) and nothing else:
- `runs/<session>/`, the agent-run logs of a session, once nothing in it changed for `[state] keep_days`;
- `reports/daemon/` (the daemon's progress, status and final reports) as old;
- `reports/<session>.json|.md` as old, except the report of a session whose branch is still waiting for review
  (not merged: `overnight review` lists it and shows its report), and never a running session's;
- `locks/<name>-<digest>.lock` of a worktree that no longer exists (and that nobody holds);
- empty folders left in `runs/` (an hour old), temporary files a save that died left in `reports/` (after an
  hour), and work folders under `tmp/` as old as the logs (a check's, whose process died before removing it);
- the oldest part of a log in `logs/` (cron's, which every night appends to) past `LOG_MAX_BYTES`: it keeps its
  newest `LOG_KEEP_BYTES`, from the start of a line, cut in place (a writer appending to it goes on appending).
Kept: `quarantine/` (what undoing a security event moved aside: evidence, for a person) and the rest of `logs/`.
Never the state database, the key, the lock of the running session, nor anything of the running session.

Every path is checked before it is removed: its folder, resolved, must be inside the state directory, resolved;
a symbolic link is removed as a link and never followed (a link to a folder is not walked into), so a link
planted in `runs/` cannot make it delete anything outside.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field

from mcp_servers.core import limitstore
from mcp_servers.core.errors import OvernightError, UsageError
from mcp_servers.core.workspace import LOCKS, Workspace, lock_digest

from .lock import held, read_lock

Clock = Callable[[], float]
DAY = 86400.0
TEMPORARY_S = 3600.0  # a temporary file of a save this old was left by a process that died
LOG_MAX_BYTES = 10 * 1024 * 1024  # a log in logs/ longer than this is cut to its newest LOG_KEEP_BYTES
LOG_KEEP_BYTES = 2 * 1024 * 1024
_LOCK_NAME = re.compile(r"^[A-Za-z0-9_.]+-([0-9a-f]{16})\.lock$")

Kind = Literal["run-logs", "report", "lock", "empty-folder", "temporary", "link", "log-head"]


class Removed(BaseModel):
    path: str = Field(description="relative to the state directory")
    kind: Kind
    bytes: int = Field(description="what removing it frees (file sizes, links not followed)")
    why: str


class Collected(BaseModel):
    state_dir: str
    dry_run: bool = Field(description="nothing was removed: this is what would be")
    older_than_days: float
    removed: list[Removed] = Field(default_factory=list)
    kept: list[str] = Field(default_factory=list, description="what was left that one might expect gone, and why")
    freed_bytes: int = 0


def collect(ws: Workspace, older_than_s: float | None = None, clock: Clock = time.time, *,
            dry_run: bool = False) -> Collected:  # fmt: skip
    """Prune the state directory of what is older than `older_than_s` (default: `[state] keep_days`), as the
    module says; `dry_run`: only say what would go. The daemon calls it once a day."""
    age = ws.settings.state.keep_days * DAY if older_than_s is None else older_than_s
    if not age >= 0:  # (NaN too)
        raise UsageError(f"the age to prune from must be 0 or more seconds, not {age!r}.")
    root = ws.state_dir.resolve()
    done = Collected(state_dir=str(root), dry_run=dry_run, older_than_days=round(age / DAY, 4))
    now = clock()
    gc = _Pruner(root, now - age, now - TEMPORARY_S, dry_run, done)
    running = _running(ws)
    if running:
        done.kept.append(f"session {running} is running: its logs and report are left alone")
    gc.runs(running)
    gc.runs(running, "tmp", "temporary", "a work folder a check left (its process died)")
    gc.reports(running, _waiting(ws))
    gc.daemon_reports()
    gc.locks(_worktree_digests(ws))
    gc.logs()
    if not dry_run:  # what no rate limit's window counts any more (a week and older): rows, not files
        with ws.db() as conn:
            limitstore.prune(conn, now - max(age, limitstore.WEEK))
    done.freed_bytes = sum(r.bytes for r in done.removed)
    return done


class _Pruner:
    def __init__(self, root: Path, cutoff: float, fresh: float, dry_run: bool, done: Collected) -> None:
        self.root, self.cutoff, self.fresh, self.dry_run, self.done = root, cutoff, fresh, dry_run, done

    # -- the three folders --------------------------------------------------------------------------------

    def runs(self, running: str, name: str = "runs", kind: Kind = "run-logs", what: str = "agent-run logs") -> None:
        folder = self._folder(name)
        if folder is None:
            return
        for entry in _entries(folder):
            if entry.name == running and name == "runs":
                continue
            if entry.is_symlink() or not entry.is_dir():
                if _mtime(entry) < self.cutoff:
                    self._remove(entry, "link" if entry.is_symlink() else kind, "not a folder of ours, "
                                 "and older than the age kept")  # fmt: skip
                continue
            files = [p for p in _walk(entry) if p.is_symlink() or not p.is_dir()]  # (a folder's own time moves)
            if not files:  # (given an hour: a folder just made is about to be filled)
                if _mtime(entry) < self.fresh:
                    self._remove(entry, "empty-folder", "a folder with no file in it")
            elif (newest := max(_mtime(p) for p in files)) < self.cutoff:
                self._remove(entry, kind, f"{what}, last written {_days(self.cutoff, newest)}")

    def reports(self, running: str, waiting: set[str]) -> None:
        folder = self._folder("reports")
        if folder is None:
            return
        kept = 0
        for entry in _entries(folder):
            if entry.is_symlink():
                if _mtime(entry) < self.cutoff:
                    self._remove(entry, "link", "a link, not a report")
                continue
            if entry.name.startswith(".") and entry.name.endswith(".tmp"):
                if _mtime(entry) < self.fresh:
                    self._remove(entry, "temporary", "left by a save that did not finish")
                continue
            session, suffix = entry.stem, entry.suffix
            if suffix not in {".json", ".md"} or not entry.is_file() or _mtime(entry) >= self.cutoff:
                continue
            if session == running or _still_running(folder / f"{session}.json"):
                continue
            if session in waiting:
                kept += suffix == ".json"
                continue
            self._remove(entry, "report", f"a session report, last written {_days(self.cutoff, _mtime(entry))}")
        if kept:
            self.done.kept.append(f"{kept} old report(s) of sessions whose branches wait for review (`overnight "
                                  "review`): kept until the branch is merged or discarded")  # fmt: skip

    def daemon_reports(self) -> None:
        """`reports/daemon/`: the daemon's progress, status and final reports, as old as the logs."""
        folder = self._folder("reports/daemon")
        if folder is None:
            return
        for entry in _entries(folder):
            if _mtime(entry) >= self.cutoff:
                continue
            if entry.is_symlink():
                self._remove(entry, "link", "a link, not a report")
            elif entry.is_file() and entry.suffix in {".json", ".md"}:
                self._remove(entry, "report", f"a daemon report, written {_days(self.cutoff, _mtime(entry))}")

    def locks(self, digests: set[str]) -> None:
        folder = self._folder(LOCKS)
        if folder is None:
            return
        for entry in _entries(folder):
            if entry.is_symlink():
                self._remove(entry, "link", "a link, not a lock file")
                continue
            found = _LOCK_NAME.match(entry.name)
            if found is None or not entry.is_file() or found.group(1) in digests:
                continue
            if held(entry):
                self.done.kept.append(f"{LOCKS}/{entry.name}: held by a running process")
                continue
            self._remove(entry, "lock", "the lock file of a worktree that no longer exists")

    def logs(self) -> None:
        folder = self._folder("logs")
        if folder is None:
            return
        for entry in _entries(folder):
            if entry.is_symlink() or not entry.is_file() or (size := _size(entry)) <= LOG_MAX_BYTES:
                continue
            if not _inside(self.root, entry):
                self.done.kept.append(f"{entry}: not inside the state directory, left alone")
                continue
            if entry.lstat().st_nlink > 1:  # the same file is somewhere else too: not ours alone to cut
                self.done.kept.append(f"{entry.relative_to(self.root)}: a hard link to another file, left alone")
                continue
            freed = size - LOG_KEEP_BYTES
            if not self.dry_run:
                try:
                    freed = _cut(entry, LOG_KEEP_BYTES)
                except OSError as e:
                    self.done.kept.append(f"{entry.relative_to(self.root)}: could not be cut ({e.strerror or e})")
                    continue
            self.done.removed.append(Removed(
                path=str(entry.relative_to(self.root)), kind="log-head", bytes=freed,
                why=f"the oldest part of a log past {LOG_MAX_BYTES // 2**20} MB (its newest "
                    f"{LOG_KEEP_BYTES // 2**20} MB are kept)"))  # fmt: skip

    # -- removing, strictly inside the state directory ----------------------------------------------------

    def _folder(self, name: str) -> Path | None:
        folder = self.root / name
        if folder.is_symlink():
            self.done.kept.append(f"{name}/ is a symbolic link: left alone (gc never follows one)")
            return None
        return folder if folder.is_dir() else None

    def _remove(self, path: Path, kind: Kind, why: str) -> None:
        if not _inside(self.root, path):
            self.done.kept.append(f"{path}: not inside the state directory, left alone")
            return
        size = _size(path)
        if not self.dry_run:
            try:
                _delete(self.root, path)
            except OSError as e:
                self.done.kept.append(f"{path.relative_to(self.root)}: could not be removed ({e.strerror or e})")
                return
        self.done.removed.append(Removed(path=str(path.relative_to(self.root)), kind=kind, bytes=size, why=why))


def _inside(root: Path, path: Path) -> bool:
    """Whether `path` (not followed: it may be a link) lies in `root`: its folder, resolved, is `root` or under it."""
    if path.name in {"", ".", ".."}:
        return False
    try:
        parent = path.parent.resolve(strict=True)
    except OSError:
        return False
    return parent == root or root in parent.parents


def _delete(root: Path, path: Path) -> None:
    """Remove `path`: a file or link by unlinking it, a folder bottom-up, never following a link."""
    if path.is_symlink() or not path.is_dir():
        path.unlink(missing_ok=True)
        return
    for folder, dirs, files in os.walk(path, topdown=False):  # a link to a folder is listed, never walked into
        for name in [*files, *dirs]:
            item = Path(folder) / name
            if not _inside(root, item):  # a folder swapped for a link while we walked
                raise OSError(f"{item} is not inside {root}")
            if item.is_symlink() or not item.is_dir():
                item.unlink(missing_ok=True)
            else:
                item.rmdir()
    path.rmdir()


def _cut(path: Path, keep: int) -> int:
    """Keep the last `keep` bytes of the log at `path` (from the first line starting in them, after a line that
    says what was cut), rewritten in place and never through a link; the bytes freed."""
    fd = os.open(path, os.O_RDWR | getattr(os, "O_NOFOLLOW", 0))
    with os.fdopen(fd, "r+b") as f:
        size = os.fstat(f.fileno()).st_size
        f.seek(max(0, size - keep))
        tail = f.read()
        start = tail.find(b"\n") + 1 if size > keep else 0
        note = f"overnight gc: the {size - len(tail) + start} oldest bytes of this log were cut here\n".encode()
        kept = note + tail[start:]
        f.seek(0)
        f.write(kept)
        f.truncate()
    return size - len(kept)


def _entries(folder: Path) -> list[Path]:
    try:
        return sorted(folder.iterdir())
    except OSError:
        return []


def _walk(folder: Path) -> Iterator[Path]:
    """Everything under `folder`, links listed but not followed."""
    for parent, dirs, files in os.walk(folder):
        for name in [*dirs, *files]:
            yield Path(parent) / name


def _mtime(path: Path) -> float:
    try:
        return path.lstat().st_mtime
    except OSError:
        return 0.0


def _size(path: Path) -> int:
    items = [path] if path.is_symlink() or not path.is_dir() else _walk(path)
    total = 0
    for item in items:
        try:
            info = item.lstat()
        except OSError:
            continue
        total += info.st_size if not item.is_dir() or item.is_symlink() else 0
    return total


def _days(cutoff: float, at: float) -> str:
    return f"{(cutoff - at) / DAY:.1f} days past the age kept"


def _running(ws: Workspace) -> str:
    """The session the run lock names (alive or not: a dead one's files are the next run's to recover)."""
    held = read_lock(ws) or {}
    session = held.get("session")
    return session if isinstance(session, str) else ""


def _still_running(report_json: Path) -> bool:
    try:
        return '"outcome": "running"' in report_json.read_text(errors="replace")[:20000]
    except OSError:
        return False


def _waiting(ws: Workspace) -> set[str]:
    """The sessions whose branches still exist and are not merged: `overnight review` lists them."""
    from .morning import session_branches

    try:
        return {s.session for s in session_branches(ws) if not s.merged}
    except OvernightError:  # the branches cannot be read: keep every report
        return {p.stem for p in (ws.state_dir / "reports").glob("*.json")}


def _worktree_digests(ws: Workspace) -> set[str]:
    """The lock-file digests of every worktree the repository has (as listed, and resolved)."""
    found = {lock_digest(ws.repo.root)}
    for line in ws.repo.out("worktree", "list", "--porcelain").splitlines():
        if line.startswith("worktree "):
            path = Path(line.removeprefix("worktree "))
            found |= {lock_digest(path), lock_digest(path.resolve())}
    return found
