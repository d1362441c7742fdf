"""What a session tells while it runs (`RunEvent`), and what `overnight run --json` prints when it ends.

The runner emits events; the CLI's reporter (`scheduler.live.RunView`) shows them. Each event carries the plain
line it reads as, so a runner with no reporter says exactly that line, and a log reads the same.
"""

from __future__ import annotations

import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, Field

from mcp_servers.core.gate.progress import GateEvent, Progress

from .agents import AgentEvent
from .report import SessionRecord

Kind = Literal["session", "task", "agent", "verify", "outcome", "wait", "limit-paused", "limit-reached", "end"]


@dataclass(frozen=True)
class RunEvent:
    """`session` (started on its branch), `task` (started), `agent` (what the agent did), `verify` (the
    scheduler's own gate run on the agent's work, check by check), `outcome` (the task kept or rolled back, and
    why), `wait` (the session waits: for a usage limit's reset, before a retry, while a circuit breaker is open;
    `reason` says which, `until` until when, `wait_kind` the kind: usage-limit, probe, retry, breaker),
    `limit-paused` (a rate limit or budget of `[limits]` pauses the session `until` it frees up), `limit-reached`
    (one ends the session: it frees up after the deadline), `end` (the session's outcome). An `outcome` of
    "infra-stop" is a run the model's API stopped: released, not failed."""

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
    security: tuple[str, ...] = ()  # the task's (outcome) or the session's own (end) security events
    until: str | None = None  # a `wait`'s end, or when a limit frees up (limit-paused, -reached): ISO 8601 (UTC)
    wait_kind: str | None = None  # a `wait`'s kind: usage-limit, probe, retry, breaker
    limit: str | None = None  # limit-paused, limit-reached: the key in `[limits]`


@dataclass(frozen=True)
class Teller:
    """How the runner tells what happens: to `events` (a reporter) when there is one, never failing the session
    for it; else by `say`ing each event's line (but the agent's and the verification's steps, which only a live
    view shows)."""

    say: Callable[[str], None]
    events: Callable[[RunEvent], None] | None

    def __call__(self, event: RunEvent) -> None:
        if self.events is None:
            if event.kind not in {"agent", "verify"}:
                self.say(event.line)
            return
        try:
            self.events(event)
        except Exception:  # the night goes on whatever the screen does
            traceback.print_exc(file=sys.stderr)

    def agent(self, session: str, task_id: str, title: str, started: float, cost_before: float
              ) -> Callable[[AgentEvent], None] | None:  # fmt: skip
        """What the agent does, as events of the task (None when nobody watches)."""
        if self.events is None:
            return None

        def tell(event: AgentEvent) -> None:
            cost = cost_before + event.cost_usd if event.cost_usd is not None else None
            self(RunEvent("agent", f"overnight: task {task_id}: {event.kind}: {event.text}".rstrip(": "),
                          session=session, task_id=task_id, title=title, agent=event,
                          seconds=round(time.monotonic() - started, 1), cost_usd=cost))  # fmt: skip

        return tell

    def verification(self, session: str, task_id: str, title: str) -> Progress | None:
        """The scheduler's own gate run on the agent's work, check by check (None when nobody watches)."""
        if self.events is None:
            return None

        def tell(event: GateEvent) -> None:
            if event.kind == "tests":
                text = f"tests {event.done} done"
            elif event.kind == "start":
                text = f"{event.check} started"
            else:
                text = f"{event.check} {event.status}" + (f" in {event.seconds:.1f}s" if event.seconds else "")
            self(RunEvent("verify", f"overnight: task {task_id}: verification: {text}", session=session,
                          task_id=task_id, title=title, gate=event))  # fmt: skip

        return tell


def kept(outcome: str | None) -> str:
    return "kept" if outcome == "passed" else f"rolled back ({outcome})"


class TaskResult(BaseModel):
    task_id: str
    title: str
    outcome: str = Field(description="passed (kept on the branch), failed, timed-out, stopped or interrupted (its "
                         "session died): rolled back")  # fmt: skip
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
    limits: list[str] = Field(default_factory=list, description="when a rate limit or budget paused or ended it")
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
            limits=record.limits,
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
