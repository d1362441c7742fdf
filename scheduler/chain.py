"""Fallback chains (issue 13): `[scheduler] agents = ["claude", "codex", "gemini"]`.

A task an infrastructure stop took from one agent (a usage limit, an overload, a server or network error: read from
the agent's own structured output, `scheduler.agents.stops`) goes to the next agent of the chain that may run, once
the run's work was dropped and its claim released as for any stop (`infra.release`): no wait, no attempt counted.
An agent may run when it was not passed over and its circuit breaker is not open; each agent has its own breaker
and its own count of waits and retries (`infra.Guard`). Only when every agent of the chain is stopped does the
session do what it does for one agent (wait for the reset, retry after a delay, or end), by the guard of the agent
stopped last; after that wait the chain starts again from its head, passing over those still stopped.

Each agent of the chain gets one run of a task, then the session waits (so two agents whose limits reset soon do
not take turns without end). An agent is passed over until its usage limit resets (with no reset time: until the
first probe delay), for `base_delay_s` after an overload, a server or a network error (which its breaker counts),
for the whole session after a disabled allowance. The head of the chain is taken again as soon as it may run.

Whatever the agent, the scheduler's own verification decides; a chain only changes who does the work.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field

from mcp_servers.core import breakers
from mcp_servers.core.config import Infra as Settings
from mcp_servers.core.config import Scheduler
from mcp_servers.core.errors import OvernightError
from mcp_servers.core.workspace import Workspace

from . import infra, report
from .agents import Agent, budget, make
from .agents.stops import InfraStop
from .events import RunEvent

_BREAKER_KINDS = ("overloaded", "server-error", "network")


def names(scheduler: Scheduler) -> list[str]:
    """The agents a session may use, in order: `agents`, else `agent` alone."""
    return list(scheduler.agents) or [scheduler.agent]


def after(ws: Workspace, primary: Agent) -> list[str]:
    """The names of the agents after `primary` in the configured chain (none when the chain does not name it:
    `--agent X`)."""
    chain = names(ws.settings.scheduler)
    return chain[chain.index(primary.name) + 1 :] if primary.name in chain else []


def fallbacks(ws: Workspace, primary: Agent, script: Path | None = None) -> list[Agent]:
    """The agents after `primary` in the configured chain; an OvernightError when one cannot be built (its
    settings are wrong: the session is refused, as for the first agent)."""
    return [make(name, ws.settings.scheduler, ws.repo.root, script, ws.settings.agents) for name in after(ws, primary)]


class MemberCheck(BaseModel):
    """Whether one agent of the chain can run, as preflight, `overnight run --dry-run` and the report say it."""

    agent: str
    role: Literal["first", "fallback"]
    can_run: bool
    problems: list[str] = Field(default_factory=list, description="what stops it (each says what to do)")
    warnings: list[str] = Field(default_factory=list, description="what runs, but not as configured (a budget "
                                "its prices cannot enforce)")  # fmt: skip
    refuses: bool = Field(default=False, description="its settings are wrong: the session would be refused")

    def line(self) -> str:
        """For people: `agent codex (fallback): can run`, or why not and what follows."""
        who = f"agent {self.agent} ({'the first of the chain' if self.role == 'first' else 'fallback'})"
        if self.can_run:
            return f"{who}: can run"
        follows = "the session would not start" if self.role == "first" or self.refuses else \
            "it would be left out of the chain, the session goes on without it"  # fmt: skip
        return f"{who}: cannot run ({follows}): {'; '.join(self.problems)}"


def check(ws: Workspace, primary: Agent, task_ids: Sequence[str], given: Sequence[Agent] | None = None
          ) -> list[MemberCheck]:  # fmt: skip
    """Each agent of the session's chain in order (`primary`, then `given` or the configured fallbacks): whether it
    can run these tasks (a fallback whose settings are wrong: `refuses`, as the session would be)."""
    found = [_member(ws, primary, "first", task_ids)]
    if given is not None:
        return found + [_member(ws, agent, "fallback", task_ids) for agent in given]
    for name in after(ws, primary):
        try:
            agent = make(name, ws.settings.scheduler, ws.repo.root, None, ws.settings.agents)
        except OvernightError as e:
            found.append(MemberCheck(agent=name, role="fallback", can_run=False, problems=[str(e)], refuses=True))
            continue
        found.append(_member(ws, agent, "fallback", task_ids))
    return found


def _member(ws: Workspace, agent: Agent, role: Literal["first", "fallback"], task_ids: Sequence[str]) -> MemberCheck:
    problems = agent.problems(ws.environ) + (agent.task_problems(task_ids) if task_ids else [])
    warned = budget.warning(agent)
    return MemberCheck(agent=agent.name, role=role, can_run=not problems, problems=problems,
                       warnings=[warned] if warned else [])  # fmt: skip


def usable(ws: Workspace, agents: Sequence[Agent], task_ids: Sequence[str]) -> tuple[list[Agent], list[str]]:
    """The fallbacks that can run these tasks, and a warning for each one left out of the chain (and why)."""
    kept, warnings = [], []
    for agent in agents:
        member = _member(ws, agent, "fallback", task_ids)
        if member.problems:
            warnings.append(f"agent {agent.name} was left out of the fallback chain: {'; '.join(member.problems)}")
        else:
            kept.append(agent)
            warnings += member.warnings
    return kept, warnings


def prepare(ws: Workspace, primary: Agent, given: Sequence[Agent] | None, task_ids: Sequence[str],
            record: report.SessionRecord) -> list[Agent]:  # fmt: skip
    """The fallbacks a session uses (`given`, else the configured ones) that can take its tasks: each one left out
    is a warning of the session (which goes on without it), and the chain is recorded; so is a budget an agent's
    prices cannot enforce (the first agent's too)."""
    backups, left_out = usable(ws, fallbacks(ws, primary) if given is None else given, task_ids)
    own = budget.warning(primary)
    record.warnings += ([own] if own else []) + left_out
    record.agents = [primary.name, *(a.name for a in backups)] if backups else []
    return backups


@dataclass
class Member:
    agent: Agent
    guard: infra.Guard
    out_until: float = 0.0  # passed over until then (epoch seconds; inf: for the rest of the session)


@dataclass
class Chain:
    """The session's agents in order, and which one runs the next task."""

    ws: Workspace
    members: list[Member]
    clock: infra.Clock
    tell: Callable[[RunEvent], None]
    session: str
    current: int = 0
    stopped: dict[str, list[report.AgentRun]] = field(default_factory=dict)  # the stopped runs of each task
    tried: set[int] = field(default_factory=set)  # the agents stopped on the task in hand since the last wait

    @classmethod
    def of(cls, ws: Workspace, agents: Sequence[Agent], session: str, clock: infra.Clock, sleep: infra.Sleep,
           tell: Callable[[RunEvent], None], settings: Settings) -> Chain:  # fmt: skip
        members = [Member(a, infra.Guard(ws, a.name, session, clock, sleep, tell, settings)) for a in agents]
        return cls(ws, members, clock, tell, session)

    @property
    def agent(self) -> Agent:
        return self.members[self.current].agent

    @property
    def guard(self) -> infra.Guard:
        return self.members[self.current].guard

    def pick(self) -> Agent:
        """The first agent of the chain that may run now. When none may, the one whose breaker closes first (its
        guard then waits for it), else the current one."""
        now = self.clock()
        with self.ws.db() as conn:
            states = [breakers.get(conn, m.agent.name, now) for m in self.members]
        free = [i for i, m in enumerate(self.members)
                if m.out_until <= now and states[i].state != "open" and i not in self.tried]  # fmt: skip
        if free:
            self.current = free[0]
        elif len(self.members) > 1:
            closing = [(s.open_until_s or math.inf, i) for i, s in enumerate(states) if s.state == "open"
                       and self.members[i].out_until <= now]  # fmt: skip
            self.current = min(closing)[1] if closing else self.current
        return self.agent

    def after_stop(self, record: report.SessionRecord, task: report.TaskRecord, deadline: float
                   ) -> infra.Stop | None:  # fmt: skip
        """The API stopped the current agent's run of `task`: hand the task to the next agent that may run (None:
        run it again), or, when none may, what the guard of this agent does (wait, retry, or the session's end)."""
        stop = task.infra
        assert stop is not None  # noqa: S101 (called for a stopped run only)
        member, now = self.members[self.current], self.clock()
        ran = task.agent
        self.stopped.setdefault(task.task_id, []).append(report.AgentRun(
            agent=member.agent.name, outcome="infra-stop", infra=stop, cost_usd=(ran.cost_usd or 0.0) if ran else 0.0,
            turns=(ran.turns or 0) if ran else 0))  # fmt: skip
        member.out_until = self._out_until(stop, now, member.guard.settings)
        self.tried.add(self.current)  # each agent gets one run of the task, then the session waits as for one
        following = self._next(now)
        if following is None:  # every agent is stopped: as for one agent, then the chain starts from its head
            end = member.guard.after_stop(record, task, deadline)
            self.tried.clear()
            if member.out_until != math.inf:  # its guard waited for it: it may run (and those whose reset passed)
                member.out_until = 0.0
            return end
        if stop.kind in _BREAKER_KINDS:  # (the guard counts them itself when it handles the stop)
            s = member.guard.settings
            with self.ws.db() as conn:
                breakers.failed(conn, member.agent.name, now, kind=stop.kind, detail=stop.describe(),
                                threshold=s.breaker_failures, cooldown_s=s.breaker_cooldown_s)  # fmt: skip
        name = self.members[following].agent.name
        action = f"handed the task to agent {name}, the next in the fallback chain"
        record.infra.append(report.InfraRecord(task_id=task.task_id, title=task.title, at=_iso(now), stop=stop,
                                               action=action, agent=member.agent.name,
                                               cost_usd=self.stopped[task.task_id][-1].cost_usd,
                                               turns=self.stopped[task.task_id][-1].turns))  # fmt: skip
        self.tell(RunEvent("task", f"overnight: task {task.task_id}: agent {member.agent.name} was stopped by the "
                           f"API ({stop.describe()}); agent {name} takes it over", session=self.session,
                           task_id=task.task_id, title=task.title, reason=stop.describe()))  # fmt: skip
        return None

    def runs(self, task: report.TaskRecord) -> list[report.AgentRun]:
        """Every run of `task` in this session when the API stopped earlier ones, the finishing one last."""
        self.tried.clear()
        earlier = self.stopped.pop(task.task_id, [])
        if not earlier or task.agent is None:
            return earlier
        done = task.agent
        return [*earlier, report.AgentRun(agent=done.agent, outcome=task.outcome, cost_usd=done.cost_usd or 0.0,
                                          turns=done.turns or 0)]  # fmt: skip

    def _next(self, now: float) -> int | None:
        """The first other agent of the chain that may run now."""
        with self.ws.db() as conn:
            for i, m in enumerate(self.members):
                if i in self.tried or m.out_until > now:
                    continue
                if breakers.get(conn, m.agent.name, now).state != "open":
                    return i
        return None

    @staticmethod
    def _out_until(stop: InfraStop, now: float, settings: Settings) -> float:
        if stop.kind == "limit-disabled":
            return math.inf
        if stop.kind == "usage-limit":
            return stop.resets_at if stop.resets_at and stop.resets_at > now else now + settings.probe_delays_s[0]
        return now + max(settings.base_delay_s, 1.0)


def _iso(when: float) -> str:
    return dt.datetime.fromtimestamp(when, dt.UTC).isoformat(timespec="seconds")
