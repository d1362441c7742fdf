"""The person's controls over sessions: the kill switch (`overnight stop`, `overnight resume`) and what
`overnight status` shows."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mcp_servers.core import breakers, limitstore, refusals
from mcp_servers.core.workspace import Workspace

from . import report
from .lock import alive, read_lock

STOP_FILE = "STOP"


def stop_file(ws: Workspace) -> Path:
    """The kill switch: while it exists, no session starts and a running one stops."""
    return ws.state_dir / STOP_FILE


def status(ws: Workspace, clock: Callable[[], float] = time.time) -> dict[str, Any]:
    """The running session (if any), the last sessions and each rate limit or budget of `[limits]` against its
    count, for `overnight status`."""
    held = read_lock(ws)
    running = None
    if held and isinstance(held.get("pid"), int) and alive(held["pid"]):
        running = dict(held)
        if held.get("task_started"):
            import datetime as dt

            started = dt.datetime.fromisoformat(str(held["task_started"]))
            running["task_elapsed_s"] = round((dt.datetime.now(dt.UTC) - started).total_seconds())
    last = [{"id": r.id, "outcome": r.outcome, "stop_reason": r.stop_reason, "started": r.started,
             "ended": r.ended, "branch": r.branch, "tasks_done": sum(t.outcome == "passed" for t in r.tasks),
             "tasks_failed": sum(t.outcome != "passed" for t in r.tasks), "cost_usd": r.cost_usd,
             "sandbox": r.sandbox, "security_events": r.all_security_events(),
             "agents": r.agents or [r.agent], "cost_by_agent": r.cost_by_agent()}
            for r in report.recent(ws.state_dir)]  # fmt: skip
    from .daemon_state import status as daemon

    with ws.db() as conn:  # every agent's circuit breaker that has tripped at least once since it closed
        tripped = [b.model_dump() for b in breakers.every(conn, time.time())]
    return {"sandbox": ws.settings.scheduler.sandbox, "running": running, "kill_switch": stop_file(ws).exists(),
            "sessions": last, "last_refusal": _last_refusal(ws, last), "breakers": tripped, "daemon": daemon(ws),
            "limits": limits(ws, clock())}


def limits(ws: Workspace, now: float) -> list[dict[str, Any]]:
    """Each limit of `[limits]` that is set, with its count now, when it frees up if reached, and its line."""
    with ws.db() as conn:
        found = limitstore.usage(conn, ws.settings.limits, now)
    return [{**u.model_dump(), "line": u.line()} for u in found]


def _last_refusal(ws: Workspace, sessions: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The last run refused at preflight, when it came after the last session that started (issue 11)."""
    with ws.db() as conn:
        found = refusals.recent(conn, 1)
    if not found:
        return None
    newest = max((str(s["started"]) for s in sessions), default="")
    return found[0].model_dump() if found[0].at >= newest else None


def request_stop(ws: Workspace) -> str:
    """Set the kill switch and signal the running session."""
    stop_file(ws).write_text(report.now_iso() + "\n")
    from .daemon_state import read_status

    daemon = read_status(ws)  # a daemon between cycles: woken at once (in a cycle, it holds the run lock too)
    if daemon and isinstance(daemon.get("pid"), int) and alive(daemon["pid"]) and daemon["pid"] != os.getpid():
        os.kill(int(daemon["pid"]), signal.SIGTERM)
    held = read_lock(ws)
    if held and isinstance(held.get("pid"), int) and alive(held["pid"]):
        os.kill(int(held["pid"]), signal.SIGTERM)
        return f"kill switch set; session {held.get('session')} (pid {held['pid']}) signalled to stop"
    return "kill switch set; no session is running (`overnight resume` clears it)"


def resume(ws: Workspace) -> str:
    """Clear the kill switch."""
    path = stop_file(ws)
    if path.exists():
        path.unlink()
        return "kill switch cleared: sessions may run again"
    return "the kill switch was not set"
