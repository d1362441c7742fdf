"""The run lock: one session at a time per repository; a dead session's lock is taken over (and recovered).

The lock file holds the running session's pid, session id, worktree, branch, and the task and agent pid in hand,
for `overnight status` and for the recovery of a session that died.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import signal
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from mcp_servers.core.workspace import Workspace

LOCK_FILE = "run.lock"


def alive(pid: int) -> bool:
    """Whether `pid` is a live scheduler (a reused pid of another program does not count)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a pid can be reused: a live process that is not ours does not hold the lock
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return True
    return b"scheduler" in cmdline or b"overnight" in cmdline


def works_in(pid: int, path: Path) -> bool:
    """Whether process `pid` is still running inside `path` (so it is the agent, not a reused pid)."""
    if not str(path) or not path.name:
        return False
    try:
        cwd = Path(os.readlink(f"/proc/{pid}/cwd"))
    except OSError:
        return False
    return cwd == path or path in cwd.parents


def read_lock(ws: Workspace) -> dict[str, Any] | None:
    """What the lock file says, or None when there is none (or it cannot be read)."""
    try:
        data = json.loads((ws.state_dir / LOCK_FILE).read_text())
    except (OSError, json.JSONDecodeError):
        return None
    return data if isinstance(data, dict) else None


@contextlib.contextmanager
def run_lock(ws: Workspace, info: dict[str, Any]) -> Iterator[tuple[bool, dict[str, Any] | None]]:
    """(taken, stale): taken is False when a live session holds the lock; stale is a dead session's lock info."""
    path = ws.state_dir / LOCK_FILE
    stale = None
    for _ in range(2):
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            held = read_lock(ws)
            if held is not None and isinstance(held.get("pid"), int) and alive(held["pid"]):
                yield False, held
                return
            stale = held
            if stale is not None:  # when it last changed: the dead session's last sign of life (postmortem)
                with contextlib.suppress(OSError):
                    stale["lock_mtime"] = path.stat().st_mtime
            path.unlink(missing_ok=True)
            continue
        with os.fdopen(fd, "w") as handle:
            json.dump(info, handle)
        try:
            yield True, stale
        finally:
            path.unlink(missing_ok=True)
        return
    yield False, read_lock(ws)


def update_lock(ws: Workspace, **changes: Any) -> None:
    """Change some of what the lock says (the task and agent pid in hand), atomically."""
    path = ws.state_dir / LOCK_FILE
    data = read_lock(ws) or {}
    data.update(changes)
    tmp = path.with_name(f".{LOCK_FILE}.tmp")
    tmp.write_text(json.dumps(data))
    tmp.replace(path)


@contextlib.contextmanager
def stopped_by_signals(stop: threading.Event) -> Iterator[None]:
    """While inside: SIGTERM (`overnight stop`, systemd) and SIGINT set `stop` instead of killing the process,
    so the work in hand ends cleanly; the old handlers come back after. Off the main thread, nothing changes."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}
    for sig in old:
        signal.signal(sig, lambda *_: stop.set())
    try:
        yield
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)


def held(path: Path) -> bool:
    """Whether some process holds a lock (`flock`) on the file now; a missing file or a link is not held."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return True
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)
