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

from . import activity, postmortem, report, worktree
from .lock import works_in

Clock = Callable[[], float]


def recover(ws: Workspace, stale: Mapping[str, Any], clock: Clock = time.time) -> list[str]:
    """Clean up after a session that died (SIGKILL, reboot): what was done, in words. Its report and memory record
    then say the task it had in hand, what its branch kept and when it died (`postmortem`)."""
    done: list[str] = []
    session = str(stale.get("session") or "")
    path = Path(str(stale.get("worktree") or ""))
    agent = stale.get("agent_pid")
    if isinstance(agent, int) and works_in(agent, path):  # an agent of an unsandboxed night could outlive it
        kill_group(agent, signal.SIGKILL)
        done.append(f"ended the agent the dead session left running (pid {agent})")
    record = _report(ws, session)
    ours = bool(session) and path.name == session and path.exists()
    changed = postmortem.changed_in(path, str(stale.get(postmortem.KEPT) or "")) if ours and stale.get("task") else []
    if ours:
        with contextlib.suppress(OvernightError):
            worktree.rollback(path, "HEAD")
        worktree.remove(ws, path)
        done.append(f"removed the worktree of session {session}")
    crash = None
    if record is not None:
        crash = postmortem.crash(ws, session, record.branch, record.base_commit, stale)
        if crash.dropped:
            done.append(f"took {len(crash.dropped)} unverified commit(s) off {record.branch} (back to "
                        f"{crash.final_commit[:12]}, its last verified commit)")  # fmt: skip
    if session:
        with ws.db() as conn:
            for task_id, state in taskstore.states(conn, clock()).items():
                if state.claim and state.claim.session == session:
                    taskstore.settle(conn, task_id, session, clock(), "interrupted",
                                     "the session died (killed, or the machine restarted)")  # fmt: skip
                    done.append(f"released {task_id} (attempt recorded as interrupted)")
        why = crash.text() if crash else "the process died; the next run cleaned up after it"
        path_md = str(ws.state_dir / "reports" / f"{session}.md")
        run = _run_record(record, crash, path_md) if record is not None and crash is not None else None
        with contextlib.suppress(OvernightError):
            if not _finished(ws, session):  # (it wrote its report and closed its memory session: they stand)
                memory.end_session(ws, session=session, outcome="crashed", source="scheduler", clock=clock,
                                   stop_reason=why, record=run)  # fmt: skip
                done.append(f"closed memory session {session} as crashed")
    if record is not None and crash is not None:
        record.outcome, record.stop_reason, record.crash = "crashed", crash.text(), crash
        record.ended = crash.died_at if crash.died_at != "unknown" else report.now_iso()
        record.final_commit = crash.final_commit
        if crash.task and all(t.task_id != crash.task for t in record.tasks):
            record.tasks.append(_in_hand(ws, record, stale, changed))
        with contextlib.suppress(OSError):
            report.save(ws.state_dir, record)
            done.append(f"wrote what session {session} died doing into its report ({crash.text()})")
    return done


def _finished(ws: Workspace, session: str) -> bool:
    """Whether the session wrote its final report before it died (the lock was all it left)."""
    try:
        return report.load(ws.state_dir, session).outcome != "running"
    except (OvernightError, ValueError, OSError):
        return False


def _report(ws: Workspace, session: str) -> report.SessionRecord | None:
    """The dead session's report while it still says "running" (one that ended said all, and stays as it is)."""
    if not session:
        return None
    try:
        record = report.load(ws.state_dir, session)
    except (OvernightError, ValueError, OSError):
        return None
    return record if record.outcome == "running" else None


def _in_hand(ws: Workspace, record: report.SessionRecord, stale: Mapping[str, Any], changed: list[str]
             ) -> report.TaskRecord:  # fmt: skip
    """The task the dead session had in hand, as its report lists it: interrupted, with what its agent did (its
    log read by the adapter of the agent the lock names; Claude Code's for a lock written before agents were)."""
    task = str(stale.get("task"))
    runs = ws.state_dir / "runs" / record.id
    attempt = postmortem.last_attempt(runs, task)
    log = runs / f"{task}-{attempt}" / "agent.jsonl"
    return report.TaskRecord(task_id=task, title=str(stale.get("title") or ""), outcome="interrupted",
                             attempt=attempt or 1, started=str(stale.get("task_started") or record.started),
                             reasons=["the session died while the agent worked on it: its work was rolled back"],
                             activity=activity.read(log if attempt else "", changed, str(stale.get("agent") or ""),
                                                    str(stale.get("worktree") or "")))  # fmt: skip


def _run_record(record: report.SessionRecord, crash: postmortem.Crash, report_path: str) -> dict[str, Any]:
    """The memory session's run record of a session that died (as `Runner._finish` writes one for a live end)."""
    done = [t.task_id for t in record.tasks if t.outcome == "passed"]
    return {"branch": record.branch, "base_commit": record.base_commit, "final_commit": crash.final_commit,
            "commits": [c for t in record.tasks for c in t.commits if t.outcome == "passed"],
            "tasks_done": done, "task_in_hand": crash.task, "died_at": crash.died_at,
            "died_evidence": crash.evidence, "dropped_commits": crash.dropped, "report": report_path}  # fmt: skip
