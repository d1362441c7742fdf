"""Putting back what changed: refs re-pointed, git's files and the person's files rewritten from the saved bytes
(or from git's objects), new files moved aside. Nothing is deleted: whatever is replaced or removed is kept in a
folder of the state directory, for the person to look at."""

from __future__ import annotations

import os
import re
import secrets
import shutil
import stat
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from mcp_servers.core.errors import OvernightError
from mcp_servers.core.git import Repo
from mcp_servers.core.workspace import Workspace

from .capture import REMOTE_TIMEOUT_S, admin_dirs
from .model import Event, FileState, Snapshot

_BLOB = re.compile(r"[0-9a-f]{40}([0-9a-f]{24})?")
# git's files first, so that git is then run under the person's own configuration; reflogs after the refs
# (re-pointing a ref writes its reflog); .gitattributes before the files it decides how to write.
_ORDER = ("git-file", "home-file", "worktree", "ref", "head", "log", "index", "attributes", "file", "remote-ref",
          "status")  # fmt: skip


def quarantine(ws: Workspace) -> Path:
    """A new folder for what restoring replaces or removes."""
    return ws.state_dir / "quarantine" / f"{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(2)}"


def restore(ws: Workspace, before: Snapshot, events: list[Event], *, keep: Path | None = None) -> list[str]:
    """Put back what each event says changed, as `before` had it; for each event, in order, what was done."""
    undo = _Undo(ws, before, keep or quarantine(ws))
    done = [""] * len(events)
    for n in sorted(range(len(events)), key=lambda n: _ORDER.index(_step(events[n]))):
        try:
            done[n] = undo.fix(events[n])
        except (OSError, OvernightError) as e:
            done[n] = f"not put back: {e}"
    return done


def _step(event: Event) -> str:
    if event.kind == "git-file" and "/logs/" in event.where:
        return "log"
    if event.kind == "file" and os.path.basename(event.where) == ".gitattributes":
        return "attributes"
    return event.kind


_GIT_FOLDERS = {"hooks", "info", "branches", "remotes", "refs", "objects", "logs", "worktrees", "modules"}


def _folders(paths: Iterable[str]) -> set[str]:
    """Every folder that held one of `paths` (their parents, and theirs)."""
    found: set[str] = set()
    for path in paths:
        parent = os.path.dirname(path)
        while parent and parent not in found:
            found.add(parent)
            parent = os.path.dirname(parent)
    return found


def _linked_folder(path: Path, top: Path) -> Path | None:
    """A folder between `top` and `path` that is a symbolic link, if any."""
    for folder in path.parents:
        if folder == top or top not in folder.parents:
            return None
        if folder.is_symlink():
            return folder
    return None


def _drop_new_folders(folder: Path, top: Path, known: set[str]) -> None:
    """Remove the folders a removed file was put in, when they are empty and held nothing before (a planted
    `.git/rebase-merge/` alone would make git say a rebase is in progress)."""
    while folder != top and top in folder.parents and str(folder) not in known and folder.name not in _GIT_FOLDERS:
        try:
            folder.rmdir()
        except OSError:  # not empty, or gone
            return
        folder = folder.parent


class _Undo:
    def __init__(self, ws: Workspace, before: Snapshot, keep: Path) -> None:
        self.ws, self.repo, self.before, self.keep = ws, ws.repo, before, keep

    def fix(self, event: Event) -> str:
        handlers: dict[str, Callable[[Event], str]] = {
            "git-file": self._steering, "home-file": self._steering, "file": self._checkout_file, "ref": self._ref,
            "head": self._head, "index": self._index, "worktree": self._worktree, "remote-ref": self._remote_ref,
        }  # fmt: skip
        handler = handlers.get(event.kind)
        return handler(event) if handler else "nothing to put back by itself: it follows from what else changed"

    def _steering(self, event: Event) -> str:
        path = Path(event.where)
        top = Path(self.before.home) if event.kind == "home-file" else self.repo.common_dir
        return self._file(path, self.before.files.get(event.where), area=(top, _folders(self.before.files)))

    def _head(self, event: Event) -> str:
        checkout = self.before.checkouts[event.root]
        self._write_locked(Path(checkout.git_dir) / "HEAD", checkout.head.encode() + b"\n")
        return f"put back: HEAD is {checkout.head} again"

    def _index(self, event: Event) -> str:
        checkout = self.before.checkouts[event.root]
        if checkout.index_data is None:
            return "not put back: the index was too large to keep; `git reset` rebuilds it from HEAD"
        self._write_locked(Path(checkout.git_dir) / "index", checkout.index_data)
        return "put back from the saved copy"

    # -- files ------------------------------------------------------------------------------------------------

    def _file(self, path: Path, old: FileState | None, source: Callable[[FileState], bytes | None] | None = None,
              area: tuple[Path, set[str]] | None = None) -> str:  # fmt: skip
        link = _linked_folder(path, area[0]) if area is not None else None
        if link is not None:  # writing through it would write wherever it points
            return f"not put back: the folder {link} on its way is now a link; remove the link, then look again"
        if old is None:
            kept = self._aside(path)
            if area is not None:
                _drop_new_folders(path.parent, *area)
            return f"removed (kept as {kept})"
        if old.digest.startswith("link:"):
            self._aside(path)
            os.symlink(old.digest[5:], path)
            return "put back (the link)"
        content, origin = old.data, "the saved copy"
        if content is None and source is not None:
            content, origin = source(old), "git's copy"
        if content is None:
            why = "only its stat was kept" if not old.digest else f"its {old.size} bytes were too many to keep"
            return f"not put back: {why}; restore it from a backup"
        aside = self._aside(path) if os.path.lexists(path) else None
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.overnight-restore")
        tmp.write_bytes(content)
        os.chmod(tmp, stat.S_IMODE(old.mode))
        os.replace(tmp, path)
        os.utime(path, ns=(old.mtime_ns, old.mtime_ns))
        return f"put back from {origin}" + (f" (the changed one is kept as {aside})" if aside else "")

    def _checkout_file(self, event: Event) -> str:
        checkout = self.before.checkouts[event.root]
        there = Repo(root=Path(checkout.root), git_dir=Path(checkout.git_dir), common_dir=self.repo.common_dir)

        def from_git(old: FileState) -> bytes | None:  # a tracked file: git has its content
            if not _BLOB.fullmatch(old.digest):
                return None
            found = there.run("--git-dir", checkout.git_dir, "--work-tree", checkout.root, "cat-file", "--filters",
                              f"--path={event.where}", old.digest, check=False)  # fmt: skip
            return found.stdout if found.ok else None

        root = Path(checkout.root)
        folders = {str(root / f) for f in _folders(checkout.files)}
        return self._file(root / event.where, checkout.files.get(event.where), from_git, (root, folders))

    def _aside(self, path: Path) -> Path:
        dest = self.keep / str(path).lstrip("/")
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(path, dest)
        return dest

    def _write_locked(self, path: Path, content: bytes) -> None:
        """As git writes its files: PATH.lock created exclusively, then renamed over PATH."""
        lock = path.with_name(path.name + ".lock")
        fd = os.open(lock, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            os.write(fd, content)
        finally:
            os.close(fd)
        os.replace(lock, path)

    # -- refs, worktrees, remotes -----------------------------------------------------------------------------

    def _ref(self, event: Event) -> str:
        name, old = event.where, self.before.refs.get(event.where)
        if old is None:
            self.repo.run("update-ref", "--no-deref", "-d", name)
            return "deleted again"
        if old.startswith("ref: "):
            self.repo.run("symbolic-ref", name, old.removeprefix("ref: "))
        else:
            self.repo.run("update-ref", "--no-deref", name, old)
        return "put back"

    def _worktree(self, event: Event) -> str:
        if event.before is not None:
            return "not put back: the worktree is gone; `git worktree list` and `git worktree prune` tell more"
        for admin, root in admin_dirs(self.repo.common_dir).items():
            if str(root) == event.where:
                return (f"git no longer lists it (its admin folder is kept as {self._aside(admin)}); its files at "
                        f"{event.where} stay")  # fmt: skip
        return "not put back: its admin folder was not found"

    def _remote_ref(self, event: Event) -> str:
        remote, ref, old, new = event.root, event.where, event.before, event.after
        hint = f"check it with `git ls-remote {remote}`"
        if new is not None and self.repo.object_id(new) is None:
            return f"not put back: {new[:12]} is not in this repository, so it may be someone else's push; {hint}"
        if old is not None and self.repo.object_id(old) is None:
            return f"not put back: {old[:12]} is not in this repository to push back; {hint}"
        pushed = self.repo.run("push", "--quiet", "--no-verify", f"--force-with-lease={ref}:{new or ''}", remote,
                               f"{old}:{ref}" if old else f":{ref}", check=False, timeout=REMOTE_TIMEOUT_S)  # fmt: skip
        if not pushed.ok:
            return f"not put back: {pushed.describe(tail_lines=3)}; {hint}"
        return "put back on the remote" if old else "deleted from the remote"
