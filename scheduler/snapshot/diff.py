"""Comparing two snapshots: each difference on the person's side is an Event, named in plain words."""

from __future__ import annotations

from collections.abc import Mapping

from .model import Checkout, Event, FileState, Kind, Snapshot


def compare(before: Snapshot, after: Snapshot) -> list[Event]:
    """What changed between `before` and `after` (the session's own worktree and branch are in neither)."""
    gone = [c for root, c in before.checkouts.items() if root not in after.checkouts]
    # a worktree that is gone takes its admin files with it (one event says so)
    hidden = tuple(f"{c.git_dir}/" for c in gone) + tuple(f"{c.root}/.git" for c in gone)
    events = [e for e in file_events(before, after.files) if not e.where.startswith(hidden)]
    events += _values("ref", before.refs, after.refs)
    for root in sorted(set(before.checkouts) | set(after.checkouts)):
        events += _checkout(root, before.checkouts.get(root), after.checkouts.get(root))
    for remote, refs in sorted(before.remotes.items()):
        now = after.remotes.get(remote)
        if refs is not None and now is not None:  # a remote that could not be reached is unknown, not changed
            events += _values("remote-ref", refs, now, root=remote)
    if not events:  # git sees a difference nothing above explains (a last resort)
        events = [Event(kind="status", where=root, root=root, before=_entries(c.status),
                        after=_entries(after.checkouts[root].status))
                  for root, c in before.checkouts.items()
                  if root in after.checkouts and c.status != after.checkouts[root].status]  # fmt: skip
    return events


def file_events(before: Snapshot, files: Mapping[str, FileState]) -> list[Event]:
    """Changes to git's own files and the home's files."""
    found = []
    for path in sorted(set(before.files) | set(files)):
        kind: Kind = "git-file" if _is_git(before, path) else "home-file"
        event = _file(kind, path, before.files.get(path), files.get(path))
        if event is not None:
            found.append(event)
    return found


def _is_git(before: Snapshot, path: str) -> bool:
    return path.startswith(before.common_dir.rstrip("/") + "/") or path.endswith("/.git")


def _file(kind: Kind, where: str, old: FileState | None, new: FileState | None, root: str = "") -> Event | None:
    if old is not None and new is not None and old.same(new):
        return None
    if old is None and new is None:
        return None
    return Event(kind=kind, where=where, root=root, before=old.describe() if old else None,
                 after=new.describe() if new else None)  # fmt: skip


def _values(kind: Kind, old: Mapping[str, str], new: Mapping[str, str], root: str = "") -> list[Event]:
    return [Event(kind=kind, where=name, root=root, before=old.get(name), after=new.get(name))
            for name in sorted(set(old) | set(new)) if old.get(name) != new.get(name)]  # fmt: skip


def _checkout(root: str, old: Checkout | None, new: Checkout | None) -> list[Event]:
    if old is None or new is None:
        return [Event(kind="worktree", where=root, before=f"HEAD {old.head}" if old else None,
                      after=f"HEAD {new.head}" if new else None)]  # fmt: skip
    found = []
    if old.head != new.head:
        found.append(Event(kind="head", where="HEAD", root=root, before=old.head, after=new.head))
    if old.index != new.index:
        found.append(Event(kind="index", where="index", root=root, before=old.index[:12], after=new.index[:12]))
    for rel in sorted(set(old.files) | set(new.files)):
        event = _file("file", rel, old.files.get(rel), new.files.get(rel), root)
        if event is not None:
            found.append(event)
    return found


def _entries(status: bytes) -> str:
    count = sum(1 for record in status.split(b"\0") if record[:2] in (b"1 ", b"u ", b"? "))
    return f"{count} changed or untracked paths"
