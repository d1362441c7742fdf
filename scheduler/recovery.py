"""Recovery: what a session that died (SIGKILL, a reboot) left behind, cleaned up by the next run."""

from __future__ import annotations

import contextlib
import signal
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from mcp_servers.core import memory, taskstore
from mcp_servers.core.errors import OvernightError
from mcp_servers.core.proc import kill_group
from mcp_servers.core.workspace import Workspace

from . import report, worktree
from .lock import works_in

Clock = Callable[[], float]


def recover(ws: Workspace, stale: Mapping[str, Any], clock: Clock = time.time) -> list[str]:
    """Clean up after a session that died (SIGKILL, reboot): what was done, in words."""
    done: list[str] = []
    session = str(stale.get("session") or "")
    path = Path(str(stale.get("worktree") or ""))
    agent = stale.get("agent_pid")
    if isinstance(agent, int) and works_in(agent, path):  # an agent of an unsandboxed night could outlive it
        kill_group(agent, signal.SIGKILL)
        done.append(f"ended the agent the dead session left running (pid {agent})")
    if session and path.name == session and path.exists():
        with contextlib.suppress(OvernightError):
            worktree.rollback(path, "HEAD")
        worktree.remove(ws, path)
        done.append(f"removed the worktree of session {session}")
    if session:
        with ws.db() as conn:
            for task_id, state in taskstore.states(conn, clock()).items():
                if state.claim and state.claim.session == session:
                    taskstore.settle(conn, task_id, session, clock(), "interrupted",
                                     "the session died (killed, or the machine restarted)")  # fmt: skip
                    done.append(f"released {task_id} (attempt recorded as interrupted)")
        with contextlib.suppress(OvernightError):
            memory.end_session(ws, session=session, outcome="crashed", source="scheduler", clock=clock,
                               stop_reason="the process died; the next run cleaned up after it")  # fmt: skip
            done.append(f"closed memory session {session} as crashed")
        with contextlib.suppress(OvernightError, ValueError):
            record = report.load(ws.state_dir, session)
            record.outcome, record.stop_reason, record.ended = "crashed", "the process died", report.now_iso()
            report.save(ws.state_dir, record)
    return done
