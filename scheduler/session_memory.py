"""What a session writes to memory: the lesson of a task rolled back, the session's summary and its run record."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mcp_servers.core.queue_models import TaskDetail

from . import report


def outcome(session_outcome: str) -> str:
    """The session's outcome as memory records it (one of `memory.OUTCOMES`): a run refused at preflight failed,
    and a scheduler error is a failure too (an outcome memory did not know left its session open)."""
    return {"preflight-failed": "failed", "error": "failed"}.get(session_outcome, session_outcome)


def run_record(record: report.SessionRecord, path: Path) -> dict[str, Any]:
    """The session's run record: its branch and commits, each task's outcome, tokens and cost, its report."""
    return {
        "branch": record.branch, "base_commit": record.base_commit, "final_commit": record.final_commit,
        "commits": [c for t in record.tasks for c in t.commits if t.outcome == "passed"],
        "tasks_attempted": [t.task_id for t in record.tasks],
        "tasks_done": [t.task_id for t in record.tasks if t.outcome == "passed"],
        "tasks_failed": [t.task_id for t in record.tasks if t.outcome != "passed"],
        "gate": {t.task_id: t.outcome for t in record.tasks}, "turns": record.turns,
        "tokens_in": sum((t.agent.tokens_in or 0) for t in record.tasks if t.agent),
        "tokens_out": sum((t.agent.tokens_out or 0) for t in record.tasks if t.agent),
        "cost_usd": record.cost_usd, "report": str(path),
        "infra_stops": [f"{i.task_id}: {i.stop.kind}" for i in record.infra],  # not failures (issue 12)
        # which agent did each task, and what each agent cost (a fallback chain moves tasks between them: issue 13)
        "agents": {t.task_id: t.agent.agent for t in record.tasks if t.agent},
        "cost_by_agent": record.cost_by_agent(),
        "agent_runs": [r.model_dump(mode="json") for t in record.tasks for r in t.runs],
    }  # fmt: skip


def lesson(task: TaskDetail, record: report.TaskRecord) -> str:
    """What the next attempt should know: the cause that mattered, its detail, and what to do instead."""
    reasons = record.reasons or [record.outcome]
    gate = next((r for r in reasons if "gate run failed" in r), None)
    outside = next((r for r in reasons if "outside the gate" in r), None)
    policy = [r for r in reasons if r.startswith("[")]
    if gate:
        cause = report.one_line([gate], 700)
        hint = "run the tests (the quality server's `run_quality_gate`) and fix every failure before committing"
    elif outside:
        cause = outside + ("; " + "; ".join(policy)[:500] if policy else "")
        hint = "never commit with `git commit`: only the quality server's `commit`, after the gate passes, counts"
    elif policy:
        cause = "; ".join(policy)[:700]
        hint = f"stay inside the task's scope ({', '.join(task.files) or 'the allowed paths'}) and the safety policy"
    elif "no commit was made" in reasons[0]:
        cause = reasons[0]
        hint = "commit with the quality server's `commit` once the gate passes; uncommitted work is dropped"
    else:
        cause = reasons[0].splitlines()[0]
        hint = "keep the change small, test it, and pass the gate before committing"
    return f"Task {task.id} ({task.title}) was rolled back: {cause}. Next time: {hint}."


def summary(record: report.SessionRecord) -> str:
    done = [t.task_id for t in record.tasks if t.outcome == "passed"]
    failed = [f"{t.task_id} ({t.outcome})" for t in record.tasks if t.outcome != "passed"]
    return (f"Session {record.id} on {record.branch}: {record.outcome} ({record.stop_reason}). "
            f"Done: {', '.join(done) or 'nothing'}. Rolled back: {', '.join(failed) or 'nothing'}.")  # fmt: skip
