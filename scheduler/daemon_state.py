"""What `overnight daemon` keeps: its work cycles and its pause in `state.db`, the daemon lock (one daemon per
repository) and the status file `overnight status` reads.

The cycles are in the state database so the limits per hour and per day, and the error cycles in a row, hold
across restarts (a SIGKILL, a reboot, systemd starting it again). The pause is a row there too: set by the daemon
after too many error cycles in a row, cleared by `overnight resume`.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from mcp_servers.core import db
from mcp_servers.core.workspace import Workspace

from .lock import held

LOCK_FILE = "daemon.lock"  # held with flock while a daemon runs; never replaced (its inode is the lock)
STATUS_FILE = "daemon.json"  # what the daemon is doing, for `overnight status`; replaced atomically
ERROR_OUTCOMES = frozenset({"failed", "error", "preflight-failed", "crashed"})


@dataclass(frozen=True)
class Cycle:
    id: int
    daemon: str
    started: float
    ended: float | None
    session: str | None
    outcome: str
    stop_reason: str
    error: bool
    tasks_done: int
    tasks_failed: int
    cost_usd: float


def _cycle(row: sqlite3.Row) -> Cycle:
    return Cycle(id=row["id"], daemon=row["daemon"], started=row["started"], ended=row["ended"],
                 session=row["session"], outcome=row["outcome"], stop_reason=row["stop_reason"],
                 error=bool(row["error"]), tasks_done=row["tasks_done"], tasks_failed=row["tasks_failed"],
                 cost_usd=row["cost_usd"])  # fmt: skip


# -- cycles ---------------------------------------------------------------------------------------------------


def begin_cycle(conn: sqlite3.Connection, daemon: str, now: float) -> int:
    with db.transaction(conn):
        cursor = conn.execute("INSERT INTO daemon_cycles (daemon, started) VALUES (?, ?)", (daemon, now))
    return int(cursor.lastrowid or 0)


def end_cycle(conn: sqlite3.Connection, cycle: int, now: float, *, session: str | None, outcome: str,
              stop_reason: str, tasks_done: int, tasks_failed: int, cost_usd: float) -> None:  # fmt: skip
    with db.transaction(conn):
        conn.execute(
            "UPDATE daemon_cycles SET ended = ?, session = ?, outcome = ?, stop_reason = ?, error = ?, tasks_done = ?,"
            " tasks_failed = ?, cost_usd = ? WHERE id = ?",
            (now, session, outcome, stop_reason[:500], int(outcome in ERROR_OUTCOMES), tasks_done, tasks_failed,
             cost_usd, cycle),
        )  # fmt: skip


def close_dead_cycles(conn: sqlite3.Connection, now: float) -> int:
    """Cycles a dead daemon left open (SIGKILL, reboot): closed as crashed, which counts as an error cycle. The
    caller holds the daemon lock, so no open cycle is live."""
    with db.transaction(conn):
        cursor = conn.execute(
            "UPDATE daemon_cycles SET ended = ?, outcome = 'crashed', error = 1, stop_reason = 'the daemon died "
            "during the cycle' WHERE ended IS NULL",
            (now,),
        )
    return cursor.rowcount


def cycles(conn: sqlite3.Connection, *, daemon: str | None = None, since: float | None = None) -> list[Cycle]:
    """Cycles in the order they started: of one daemon run, and/or started at `since` or later."""
    sql = "SELECT * FROM daemon_cycles WHERE 1 = 1"
    args: list[object] = []
    if daemon is not None:
        sql, args = sql + " AND daemon = ?", [*args, daemon]
    if since is not None:
        sql, args = sql + " AND started >= ?", [*args, since]
    return [_cycle(r) for r in conn.execute(sql + " ORDER BY id", args)]


def started_since(conn: sqlite3.Connection, since: float) -> list[float]:
    return [r[0] for r in conn.execute("SELECT started FROM daemon_cycles WHERE started > ? ORDER BY started",
                                       (since,))]  # fmt: skip


def errors_in_row(conn: sqlite3.Connection) -> int:
    """Error cycles in a row, newest first, since the last `overnight resume` (a resume starts the count anew)."""
    resumed = conn.execute("SELECT resumed_at FROM daemon_pause WHERE id = 1").fetchone()
    since = resumed[0] if resumed and resumed[0] is not None else float("-inf")
    count = 0
    for row in conn.execute("SELECT error, started FROM daemon_cycles WHERE ended IS NOT NULL ORDER BY id DESC"):
        if not row[0] or row[1] < since:
            break
        count += 1
    return count


def next_start(conn: sqlite3.Connection, now: float, per_hour: int, per_day: int) -> float:
    """When the next cycle may start under the limits per hour and per day (`now` when it may start now)."""
    soonest = now
    for window, limit in ((3600.0, per_hour), (86400.0, per_day)):
        recent = started_since(conn, now - window)
        if len(recent) >= limit:  # wait until enough of them are older than the window
            soonest = max(soonest, recent[len(recent) - limit] + window)
    return soonest


# -- the pause ------------------------------------------------------------------------------------------------


def pause(conn: sqlite3.Connection, now: float, reason: str) -> None:
    with db.transaction(conn):
        conn.execute(
            "INSERT INTO daemon_pause (id, paused_at, reason) VALUES (1, ?, ?) ON CONFLICT (id) DO UPDATE SET "
            "paused_at = excluded.paused_at, reason = excluded.reason",
            (now, reason),
        )


def paused(conn: sqlite3.Connection) -> tuple[float, str] | None:
    """(when, why) while the daemon is paused; None otherwise."""
    row = conn.execute("SELECT paused_at, reason FROM daemon_pause WHERE id = 1").fetchone()
    return (row[0], row[1]) if row and row[0] is not None else None


def resume(ws: Workspace, now: float | None = None) -> str | None:
    """Clear the daemon's pause (`overnight resume`): what was cleared, or None when it was not paused."""
    now = time.time() if now is None else now
    with ws.db() as conn:
        found = paused(conn)
        with db.transaction(conn):
            conn.execute(
                "INSERT INTO daemon_pause (id, resumed_at) VALUES (1, ?) ON CONFLICT (id) DO UPDATE SET "
                "paused_at = NULL, reason = '', resumed_at = excluded.resumed_at",
                (now,),
            )
    if found is None:
        return None
    return f"the daemon's pause ({found[1]}) cleared: it starts the next cycle"


# -- one daemon per repository, and what it is doing ----------------------------------------------------------


@contextlib.contextmanager
def daemon_lock(ws: Workspace) -> Iterator[bool]:
    """Whether this process is the repository's only daemon: an flock on a file in the state directory, which
    the kernel releases when the process dies however it dies (so a restart after SIGKILL takes it at once)."""
    path = ws.state_dir / LOCK_FILE
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        for attempt in range(3):  # `overnight status` probes it with a shared lock for an instant
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if attempt == 2:
                    yield False
                    return
                time.sleep(0.05)
        try:
            yield True
        finally:
            (ws.state_dir / STATUS_FILE).unlink(missing_ok=True)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def running(ws: Workspace) -> bool:
    """Whether a daemon holds this repository's daemon lock."""
    return held(ws.state_dir / LOCK_FILE)


def write_status(ws: Workspace, data: dict[str, Any]) -> None:
    path = ws.state_dir / STATUS_FILE
    tmp = path.with_name(f".{STATUS_FILE}.tmp")
    tmp.write_text(json.dumps(data))
    tmp.replace(path)


def read_status(ws: Workspace) -> dict[str, Any] | None:
    """What the running daemon says it is doing; None when no daemon runs (a dead one's file is ignored)."""
    if not running(ws):
        return None
    try:
        data = json.loads((ws.state_dir / STATUS_FILE).read_text())
    except (OSError, json.JSONDecodeError):
        data = {}
    return data if isinstance(data, dict) else {}


def status(ws: Workspace) -> dict[str, Any]:
    """The daemon for `overnight status`: running or not, its state, cycles, next cycle; the pause."""
    live = read_status(ws)
    with ws.db() as conn:
        held = paused(conn)
        total = conn.execute("SELECT COUNT(*) FROM daemon_cycles").fetchone()[0]
        in_row = errors_in_row(conn)
    data: dict[str, Any] = {"running": live is not None, "cycles_recorded": total, "error_cycles_in_row": in_row,
                            "paused": {"at": held[0], "reason": held[1]} if held else None}  # fmt: skip
    if live is not None:
        data.update({k: live.get(k) for k in ("pid", "daemon", "state", "detail", "cycles", "next_cycle_at",
                                              "started")})  # fmt: skip
    return data
