"""What a session tells while it runs (`RunEvent`), and what `overnight run --json` prints when it ends.

The runner emits events; the CLI's reporter (`scheduler.live.RunView`) shows them. Each event carries the plain
line it reads as, so a runner with no reporter says exactly that line, and a log reads the same.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, Field

from mcp_servers.core.gate.progress import GateEvent

from .agents import AgentEvent
from .report import SessionRecord

Kind = Literal["session", "task", "agent", "verify", "outcome", "end"]


@dataclass(frozen=True)
class RunEvent:
    """`session` (started on its branch), `task` (started), `agent` (what the agent did), `verify` (the
    scheduler's own gate run on the agent's work, check by check), `outcome` (the task kept or rolled back, and
    why), `end` (the session's outcome)."""

    kind: Kind
    line: str
    session: str = ""
    task_id: str | None = None
    title: str = ""
    agent: AgentEvent | None = None
    gate: GateEvent | None = None
    outcome: str | None = None
    reason: str | None = None
    seconds: float | None = None
    cost_usd: float | None = None  # the session's, so far


def kept(outcome: str | None) -> str:
    return "kept" if outcome == "passed" else f"rolled back ({outcome})"


class TaskResult(BaseModel):
    task_id: str
    title: str
    outcome: str = Field(description="passed (kept on the branch), failed, timed-out or stopped (rolled back)")
    kept: bool
    reasons: list[str] = Field(default_factory=list, description="why it was rolled back, one reason each")
    commits: list[str] = Field(default_factory=list)
    cost_usd: float = 0.0
    seconds: float | None = None


class RunResult(BaseModel):
    """`overnight run --json`: the session's result."""

    id: str | None = Field(description="the session's id (none when another session was running)")
    outcome: str
    stop_reason: str = ""
    branch: str | None = None
    base_branch: str | None = None
    final_commit: str | None = None
    cost_usd: float = 0.0
    turns: int = 0
    tasks: list[TaskResult] = Field(default_factory=list)
    problems: list[str] = Field(default_factory=list)
    report: str | None = Field(default=None, description="the report's Markdown file")

    @classmethod
    def of(cls, record: SessionRecord, path: str) -> RunResult:
        return cls(
            id=record.id,
            outcome=record.outcome,
            stop_reason=record.stop_reason or "",
            branch=record.branch or None,
            base_branch=record.base_branch or None,
            final_commit=record.final_commit or None,
            cost_usd=record.cost_usd,
            turns=record.turns,
            problems=record.problems,
            report=path,
            tasks=[
                TaskResult(
                    task_id=t.task_id,
                    title=t.title,
                    outcome=t.outcome,
                    kept=t.outcome == "passed",
                    reasons=t.reasons,
                    commits=t.commits if t.outcome == "passed" else [],
                    cost_usd=(t.agent.cost_usd or 0.0) if t.agent else 0.0,
                    seconds=t.duration_s,
                )
                for t in record.tasks
            ],
        )
