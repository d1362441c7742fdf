"""Rate limits and budgets in a session (issue 12): before each agent run the session asks `admit`, which records
the run when every limit of `[limits]` allows it, waits when a limit frees up before the session's deadline, and
ends the session ("limit-reached", the limit, its count and when it frees up) when it does not. The runner tells
`ran` as soon as a run ends (its cost counts, kept or rolled back: the money is spent either way) and `kept` the
commits it kept. The counts live in the state database (`limitstore`), shared by every session of the repository.

What is counted comes only from the scheduler's own facts: the runs it started, the commits it verified and kept
(counted from git, not from anything the agent said), the pull requests it opened, and the cost the agent CLI
reported on its `result` line.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from mcp_servers.core import limitstore
from mcp_servers.core.workspace import Workspace

from . import report
from .agents import registry
from .events import RunEvent
from .lock import update_lock

Clock = Callable[[], float]
Sleep = Callable[[float], object]
EXPIRY_MARGIN_S = 600.0  # past the task's wall clock, a run never ended (its session died) stops reserving


@dataclass
class Admission:
    """What `admit` decided: a stop for the session (outcome, why), or go; `waited` when it paused first (the
    queue may have changed meanwhile)."""

    stop: tuple[str, str] | None = None
    waited: bool = False


@dataclass
class SessionLimits:
    ws: Workspace
    session: str
    record: report.SessionRecord
    clock: Clock
    stop: threading.Event
    tell: Callable[[RunEvent], None]
    sleep: Sleep | None = None  # default: `stop.wait` (the kill switch ends a pause at once)
    run_id: int | None = field(default=None, init=False)

    def admit(self, deadline: float, run_timeout_s: float) -> Admission:
        """Before an agent run: record it if every limit allows it; else wait for the limit to free up when that is
        before `deadline`, or end the session. Nothing is recorded for a run already admitted and not yet used."""
        waited = False
        while self.run_id is None:
            if self.stop.is_set():
                return Admission(("stopped", "the kill switch (`overnight stop`)"), waited)
            now = self.clock()
            with self.ws.db() as conn:
                got = limitstore.admit_run(conn, self.ws.settings.limits, session=self.session, now=now,
                                           expires_at=now + run_timeout_s + EXPIRY_MARGIN_S)  # fmt: skip
            if isinstance(got, int):
                self.run_id = got
                break
            if got.frees_at >= deadline:
                why = got.reason() + ", after the session's time limit"
                self.record.limits.append(f"ended the session at {limitstore.iso(now)}: {why}")
                self.tell(RunEvent("limit-reached", f"overnight: {why}: the session ends", session=self.session,
                                   outcome="limit-reached", reason=why, limit=got.key,
                                   until=got.frees_at_iso))  # fmt: skip
                return Admission(("limit-reached", why), waited)
            waited = True
            why = got.reason()
            self.record.limits.append(f"paused at {limitstore.iso(now)} for {got.frees_at - now:.0f} s: {why}")
            report.save(self.ws.state_dir, self.record)
            update_lock(self.ws, paused_until=got.frees_at_iso, paused_for=why)
            self.tell(RunEvent("limit-paused", f"overnight: paused until {got.frees_at_iso}: {why}",
                               session=self.session, reason=why, limit=got.key, until=got.frees_at_iso))  # fmt: skip
            (self.sleep or self.stop.wait)(max(0.0, got.frees_at - now) + 0.5)
            update_lock(self.ws, paused_until=None, paused_for=None)
        return Admission(None, waited)

    def ran(self, cost_usd: float | None, task_id: str | None, log: str = "", agent: str = "") -> None:
        """An agent run has ended: close it and count its cost at once (kept or rolled back). A run that was not
        admitted first (a retry inside the task) is counted all the same; call `admit` before each run to have
        the limits checked for it. `log`: the run's stream (written by `agent`), whose highest reported cost counts."""
        cost_usd, forged = highest_cost(cost_usd, log, agent)
        if forged:
            self.record.warnings.append(f"task {task_id}: {forged}")
        cost, note = limitstore.clean_cost(cost_usd)
        if note:
            self.record.warnings.append(f"task {task_id}: {note}")
        with self.ws.db() as conn:
            if self.run_id is None:
                limitstore.add_run(conn, session=self.session, now=self.clock(), cost_usd=cost, task_id=task_id,
                                   note=note)  # fmt: skip
            else:
                limitstore.end_run(conn, self.run_id, now=self.clock(), cost_usd=cost, task_id=task_id, note=note)
        self.run_id = None

    def kept(self, repo_commits: int, task_id: str) -> None:
        """Commits the scheduler kept on the branch for a task."""
        with self.ws.db() as conn:
            limitstore.add_commits(conn, session=self.session, now=self.clock(), count=repo_commits, task_id=task_id)

    def release(self) -> None:
        """An admitted run that did not happen (no task, a task refused before any work): not counted."""
        if self.run_id is None:
            return
        with self.ws.db() as conn:
            limitstore.release(conn, self.run_id)
        self.run_id = None

    def close(self) -> None:
        """At the end of the session, whatever happened: a run admitted and never told ended (an error in the
        middle of it) is ended, with no cost known."""
        if self.run_id is not None:
            self.ran(None, None)


def highest_cost(cost_usd: float | None, log: str, agent: str = "") -> tuple[float | None, str | None]:
    """The highest of every cost the run's log reports (read by the adapter of `agent`, the one that wrote it:
    Claude Code's `result` lines' `total_cost_usd`) and `cost_usd` (the last one's), and what to say when they
    differ. The last line is what the agent adapters report; a process that could write a line of its own into
    the CLI's output must not lower the count with a cheaper one."""
    found = registry.log_reader(agent).costs(Path(log)) if log else []
    if len(set(found)) <= 1:
        return cost_usd, None
    top = max(found)
    if isinstance(cost_usd, int | float) and cost_usd > top:
        top = float(cost_usd)
    costs = ", ".join(f"${c:.2f}" for c in found[:5])
    return top, f"the run's stream has {len(found)} result lines with different costs ({costs}): the highest counted"


def blocked(ws: Workspace, now: float) -> limitstore.Blocked | None:
    """The limit that would hold back an agent run now (which, its count, when it frees up), or None; reserves
    nothing. For the daemon: no cycle started while a limit holds, and the break sized to `frees_at`."""
    with ws.db() as conn:
        return limitstore.blocking(conn, ws.settings.limits, now, limitstore.RUN_RULES, cooldown=True)


def commits_between(ws: Workspace, before: str, after: str) -> int:
    """Commits on the branch from `before` to `after` (what the scheduler kept for a task), counted by git."""
    if before == after:
        return 0
    return int(ws.repo.out("rev-list", "--count", f"{before}..{after}") or 0)
