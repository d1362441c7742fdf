"""Infrastructure stops are not task failures (issue 12): what the session does when the model's API stops a run.

The run's work is rolled back and its claim released without counting an attempt (`taskstore.INFRA`); memory
gets a note that the API stopped, never a failure or a lesson about the code; the session's count of failures in
a row is left alone. Then, by the kind of stop (`scheduler.agents.stops`):

- a usage limit with a reset: wait until it, clamped to [now + `wait_min_s`, now + `wait_max_s`] and never past
  the session's time limit (past it: the session ends, outcome `usage-limit`), then resume the same task;
- a usage limit with no reset time (an API key): probe again after `probe_delays_s` (the last repeats);
- a disabled allowance (it does not reset): the session ends, outcome `limit-disabled`;
- an overload, a server or a network error: retry with exponential backoff and jitter, `tries` runs of a task at
  most (then the session ends, outcome `infra-failed`), counted by the agent's circuit breaker
  (`mcp_servers.core.breakers`), which starts no run while it is open.

Every wait is told (a `wait` RunEvent), written in the lock (`overnight status` shows it) and in the report, and
ends at once on the kill switch or a signal (`sleep` is the stop event's `wait`; tests pass their own clock and
sleep). An agent that forges these lines gains nothing but a wait: the waits are bounded by `max_waits`, the
retries by `tries`, all by the session's time limit, and the work of the run is dropped either way.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from mcp_servers.core import breakers, memory, taskstore
from mcp_servers.core.config import Infra as Settings
from mcp_servers.core.errors import OvernightError
from mcp_servers.core.queue_models import TaskDetail
from mcp_servers.core.workspace import Workspace

from . import report, worktree
from .agents.stops import InfraStop
from .events import RunEvent
from .lock import update_lock

Clock = Callable[[], float]
Sleep = Callable[[float], bool]  # waits up to N seconds; True when the session was told to stop meanwhile
Stop = tuple[str, str]  # the session's outcome and why
OUTCOMES = ("usage-limit", "limit-disabled", "infra-failed")  # session outcomes that are not task failures
_BREAKER_KINDS = ("overloaded", "server-error", "network")  # what a circuit breaker counts


def hhmm(when: float) -> str:
    """A time of day as the person reads it in a status line: 16:05 (UTC)."""
    return dt.datetime.fromtimestamp(when, dt.UTC).strftime("%H:%M") + " (UTC)"


def _iso(when: float) -> str:
    return dt.datetime.fromtimestamp(when, dt.UTC).isoformat(timespec="seconds")


def release(wt: Workspace, root: Path, session: str, task: TaskDetail, checkpoint: str, record: report.TaskRecord,
            stop: InfraStop, clock: Clock) -> None:  # fmt: skip
    """Drop what the stopped run did and release its claim, not counted; note in memory that the API stopped."""
    worktree.rollback(root, checkpoint)
    now = clock()
    why = f"infrastructure stop: {stop.describe()}"
    record.reasons = [f"{why}; the run's work was dropped and the task released (not counted as an attempt)"]
    with wt.db() as conn:
        taskstore.retract(conn, task.id, session, now, "the model's API stopped the run")
        taskstore.settle(conn, task.id, session, now, taskstore.INFRA, why)
    with contextlib.suppress(OvernightError):  # (a note only: nothing about the code, so no lesson)
        by = f" (agent {record.agent.agent})" if record.agent else ""
        memory.log_event(wt, "note", f"The model's API stopped the run of task {task.id}{by}: {stop.describe()}. The "
                         "task was released, not counted; this says nothing about the code.", task_id=task.id,
                         source="scheduler", clock=clock)  # fmt: skip


def outcome_event(session: str, record: report.TaskRecord, cost: float) -> RunEvent:
    """The `outcome` event of a run the API stopped (outcome "infra-stop", not a rolled-back task)."""
    stop = record.infra
    what = stop.describe() if stop else "the API stopped the run"
    return RunEvent("outcome", f"overnight: task {record.task_id}: stopped by the API ({what}); released, not "
                    f"counted ({record.duration_s:.0f}s, ${cost:.2f} so far)", session=session,
                    task_id=record.task_id, title=record.title, outcome="infra-stop", reason=what,
                    seconds=record.duration_s, cost_usd=cost)  # fmt: skip


@dataclass
class Guard:
    """The session's handling of infrastructure stops: `before_run` ahead of each task (an open breaker),
    `after_stop` when a run was stopped, `succeeded` when one got through."""

    ws: Workspace
    agent: str
    session: str
    clock: Clock
    sleep: Sleep
    tell: Callable[[RunEvent], None]
    settings: Settings = field(default_factory=Settings)
    rng: random.Random = field(default_factory=random.Random)
    tries: dict[str, int] = field(default_factory=dict)  # retried stops per task in this session
    waits: int = 0  # usage-limit waits in this session
    probes: int = 0  # probes in a row of a limit with no reset time

    def before_run(self, record: report.SessionRecord, deadline: float) -> tuple[Stop | None, bool]:
        """Wait while the agent's circuit breaker is open (then one probe run goes): (the session's end when it
        stays open past the time limit or the wait is interrupted, whether it waited)."""
        now = self.clock()
        with self.ws.db() as conn:
            breaker = breakers.get(conn, self.agent, now)
        if breaker.state != "open" or breaker.open_until_s is None:
            return None, False
        why = (f"the circuit breaker of agent {self.agent} is open until {hhmm(breaker.open_until_s)} after "
               f"{breaker.failures} infrastructure stops in a row (last: {breaker.last_kind})")  # fmt: skip
        if breaker.open_until_s > deadline:
            return ("infra-failed", f"{why}, past the session's time limit"), False
        return self._wait(record, "breaker", breaker.open_until_s, None, why), True

    def succeeded(self) -> None:
        """A run got through to the model: the breaker closes, the probe schedule starts again."""
        self.probes = 0
        with self.ws.db() as conn:
            breakers.succeeded(conn, self.agent, self.clock())

    def after_stop(self, record: report.SessionRecord, task: report.TaskRecord, deadline: float) -> Stop | None:
        """Record the stop apart from the tasks; wait and return None to run the same task again, or the session's
        end."""
        stop = task.infra
        assert stop is not None  # noqa: S101 (called for a stopped run only)
        now = self.clock()
        agent = task.agent
        item = report.InfraRecord(task_id=task.task_id, title=task.title, at=_iso(now), stop=stop, action="",
                                  cost_usd=(agent.cost_usd or 0.0) if agent else 0.0,
                                  turns=(agent.turns or 0) if agent else 0, agent=self.agent)  # fmt: skip
        record.infra.append(item)
        end = self._decide(record, item, now, deadline)
        released = f"task {task.task_id} released, not counted"
        if end is not None and not item.action:
            item.action = f"ended the session ({end[1]}); {released}"
        return None if end is None else (end[0], f"{end[1]}; {released}")

    def _decide(self, record: report.SessionRecord, item: report.InfraRecord, now: float, deadline: float
                ) -> Stop | None:  # fmt: skip
        stop, s = item.stop, self.settings
        if stop.kind == "limit-disabled":
            return "limit-disabled", f"{stop.describe()}: it does not reset; re-enable it, then run again"
        if stop.kind == "usage-limit":
            return self._limit(record, item, now, deadline)
        with self.ws.db() as conn:
            breakers.failed(conn, self.agent, now, kind=stop.kind, detail=stop.describe(),
                            threshold=s.breaker_failures, cooldown_s=s.breaker_cooldown_s)  # fmt: skip
        tried = self.tries[item.task_id] = self.tries.get(item.task_id, 0) + 1
        if tried >= s.tries:
            return "infra-failed", f"{stop.describe()}; retried {tried - 1} times, {tried} runs stopped"
        delay = min(s.max_delay_s, s.base_delay_s * 2 ** (tried - 1)) * (1 + self.rng.uniform(0, 0.5))
        until = now + min(delay, s.max_delay_s)
        if until > deadline:
            return "infra-failed", f"{stop.describe()}; the next retry would start after the session's time limit"
        item.action = f"retry {tried} of {s.tries - 1} after {until - now:.0f}s"
        return self._wait(record, "retry", until, item.task_id, f"{stop.describe()}: retrying at {hhmm(until)}")

    def _limit(self, record: report.SessionRecord, item: report.InfraRecord, now: float, deadline: float
               ) -> Stop | None:  # fmt: skip
        """A usage limit: wait for its reset (or probe again later, when it gave none), then the same task."""
        stop, s = item.stop, self.settings
        self.waits += 1
        if self.waits > s.max_waits:
            return "usage-limit", f"{stop.describe()}; {s.max_waits} waits for it in this session already"
        kind: report.WaitKind = "usage-limit"
        if stop.resets_at is not None:
            until = min(max(stop.resets_at, now + s.wait_min_s), now + s.wait_max_s)
            why = f"waiting for the usage limit to reset at {hhmm(until)}"
        else:
            until, kind = now + s.probe_delays_s[min(self.probes, len(s.probe_delays_s) - 1)], "probe"
            self.probes += 1
            why = f"the usage limit gave no reset time: probing again at {hhmm(until)}"
        if until > deadline:
            return "usage-limit", f"{stop.describe()}; it resets at {hhmm(until)}, after the session's time limit"
        item.action = f"waited until {hhmm(until)}, then resumed the same task"
        return self._wait(record, kind, until, item.task_id, why)

    def _wait(self, record: report.SessionRecord, kind: report.WaitKind, until: float, task_id: str | None, why: str
              ) -> Stop | None:  # fmt: skip
        """Wait until `until` (told, in the lock and the report); the session's end when the kill switch or a
        signal comes first."""
        item = report.WaitRecord(kind=kind, started=_iso(self.clock()), until=_iso(until), task_id=task_id,
                                 reason=why)  # fmt: skip
        record.waits.append(item)
        report.save(self.ws.state_dir, record)
        update_lock(self.ws, waiting={"kind": kind, "until": item.until, "task": task_id, "line": why})
        self.tell(RunEvent("wait", f"overnight: {why}", session=self.session, task_id=task_id, reason=why,
                           seconds=round(max(0.0, until - self.clock()), 1), until=item.until,
                           wait_kind=kind))  # fmt: skip
        try:
            while (left := until - self.clock()) > 0:
                if self.sleep(min(left, 60.0)):
                    item.interrupted = True
                    return "stopped", "the kill switch (`overnight stop`)"
        finally:
            update_lock(self.ws, waiting=None)
            report.save(self.ws.state_dir, record)
        return None


def fresh(run_dir: Path) -> Path:
    """`run_dir`, or `<run_dir>-r2`, `-r3`, ... when a run the API stopped (not counted) already used it."""
    found, n = run_dir, 1
    while found.exists():
        n += 1
        found = run_dir.with_name(f"{run_dir.name}-r{n}")
    return found
