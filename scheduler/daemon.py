"""`overnight daemon`: work cycles, each a session exactly as `overnight run`, until the project is complete.

daemon lock (a second daemon exits at once) → close the cycles a dead daemon left open → loop: the kill switch or
SIGTERM ends it (the cycle in hand ends cleanly, its report written) → paused: wait for `overnight resume` → the
completion criteria hold: the final "complete" report, exit → outside the active window: sleep until it opens →
the limits per hour and per day → one cycle (a `Runner` session; its time limit `cycle_hours`, never past the
window's end) → after `pause_after_error_cycles` error cycles in a row: pause and alert → the break.
Progress and status reports are written when due, between cycles and as tasks end.

The clock and the sleep are injected (tests move the clock); every wait is cut in short steps that look at the
kill switch, the pause and the reports, and SIGTERM wakes the default sleep at once.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from mcp_servers.core.errors import OvernightError
from mcp_servers.core.workspace import Workspace

from . import daemon_report, daemon_state, gc, limits, notify
from .agents import Agent
from .completion import Completion, all_tasks, open_approved
from .control import stop_file
from .daemon_report import DaemonReport, Totals
from .events import RunEvent
from .lock import stopped_by_signals
from .report import SessionRecord
from .runner import Runner
from .window import Window

Clock = Callable[[], float]
BUSY_WAIT_S = 300.0  # the least wait after a cycle that found another session running
STEP_S = 30.0  # the longest a wait goes without looking at the kill switch, the pause and the reports
EventKind = Literal["daemon", "cycle", "cycle-end", "waiting", "paused", "resumed", "report", "end"]


@dataclass(frozen=True)
class DaemonEvent:
    """What the daemon tells (the notifier's hook): `daemon` (started), `cycle` (a cycle starts), `cycle-end`,
    `waiting` (for the window, the limits, the break), `paused` (an alert: error cycles in a row), `resumed`,
    `report` (a report was written; `path`), `end` (complete or stopped: the final report)."""

    kind: EventKind
    line: str
    daemon: str
    outcome: str | None = None
    reason: str | None = None
    path: str | None = None
    until: float | None = None


@dataclass
class DaemonResult:
    outcome: Literal["complete", "stopped", "already-running"]
    reason: str
    report: DaemonReport | None = None
    path: str | None = None


@dataclass
class Daemon:
    ws: Workspace
    make_agent: Callable[[Workspace], Agent]  # per cycle, from the settings as they are then
    clock: Clock = time.time
    sleep: Callable[[float], object] | None = None  # default: the stop event's wait (SIGTERM wakes it)
    say: Callable[[str], None] = lambda line: print(line, file=sys.stderr, flush=True)
    events: Callable[[RunEvent], None] | None = None  # each cycle's session events (the live view, notifications)
    # the daemon's own events; by default its alerts (`paused`, the final `end`) go to the `[notify]` channels
    notify: Callable[[DaemonEvent], None] | None = None
    max_cycles: int | None = None  # stop after N cycles (a bounded run; None: until complete or stopped)
    completion: Completion = field(default_factory=lambda: Completion([]))  # its criteria: `complete_when`
    stop: threading.Event = field(default_factory=threading.Event)
    id: str = ""
    _began: float = 0.0
    _progress_at: float = 0.0
    _status_at: float = 0.0
    _gc_at: float | None = None  # when the state directory was last pruned (`overnight gc`, once a day)
    _next: float | None = None
    _state: tuple[str, str] = ("starting", "")
    _reports: int = 0
    _last_report: DaemonReport | None = None

    def run(self) -> DaemonResult:
        self.id = self.id or f"{time.strftime('%Y-%m-%d', time.gmtime(self.clock()))}-d{secrets.token_hex(3)}"
        with daemon_state.daemon_lock(self.ws) as taken:
            if not taken:
                held = daemon_state.read_status(self.ws) or {}
                why = (f"another daemon (pid {held.get('pid', '?')}) runs for this repository; nothing to do "
                       "(`overnight status` shows it)")  # fmt: skip
                self.say(f"overnight: {why}")
                return DaemonResult("already-running", why)
            # SIGTERM (systemd stopping the unit, `overnight stop`) and SIGINT end the daemon; a cycle in hand
            # ends cleanly first (the Runner shares the stop event)
            with stopped_by_signals(self.stop):
                return self._run()

    def _run(self) -> DaemonResult:
        self._began = self._progress_at = self._status_at = self.clock()
        with self.ws.db() as conn:
            dead = daemon_state.close_dead_cycles(conn, self.clock())
        if dead:
            self.say(f"overnight: daemon: closed {dead} cycle(s) a dead daemon left open (counted as errors)")
        self._tell("daemon", f"overnight: daemon {self.id} started for {self.ws.repo.root} (pid {os.getpid()})")
        cycles_run = 0
        while True:
            ws = self.ws = Workspace.open(self.ws.repo.root, environ=self.ws.environ)  # overnight.toml may change
            settings = ws.settings.daemon
            self.completion.criteria = list(settings.complete_when)
            stopping = self._stopping()
            if stopping:
                return self._final("stopped", stopping)
            with ws.db() as conn:
                held = daemon_state.paused(conn)
            if held is not None:
                self._set("paused", held[1])
                self._wait(STEP_S, until_resumed=True)
                continue
            done, verdicts = self.completion.complete(ws)
            if done:
                return self._final("complete", "; ".join(v.detail for v in verdicts))
            if self.max_cycles is not None and cycles_run >= self.max_cycles:
                return self._final("stopped", f"the cycle limit of this run ({self.max_cycles})")
            window = Window(settings.active_window, settings.timezone)
            if not self._may_start(ws, window):
                continue
            self._due_reports()
            self._daily_gc(ws)
            outcome = self._cycle(ws, window)
            cycles_run += 1
            if not self._stopping():
                self._after(ws, outcome)

    def _may_start(self, ws: Workspace, window: Window) -> bool:
        """Whether a cycle may start now; else wait (for the window, or the limits) and say no."""
        settings = ws.settings.daemon
        now = self.clock()
        if not window.is_open(now):
            self._wait_until(window.opens_at(now), "waiting", f"for the active window ({window.describe()})")
            return False
        with ws.db() as conn:
            allowed = daemon_state.next_start(conn, now, settings.max_cycles_per_hour, settings.max_cycles_per_day)
        if allowed > now:
            self._wait_until(allowed, "waiting", f"the cycle limits ({settings.max_cycles_per_hour} an hour, "
                             f"{settings.max_cycles_per_day} a day)")  # fmt: skip
            return False
        held = limits.blocked(ws, now)  # a rate limit or budget of `[limits]`: no cycle that could not run a task
        if held is not None and held.frees_at > now:
            self._wait_until(held.frees_at, "waiting", f"the limit {held.key} ({held.count:g} of {held.limit:g})")
            return False
        return True

    def _after(self, ws: Workspace, outcome: str) -> None:
        """After a cycle: pause and alert after too many error cycles in a row, else the break."""
        settings = ws.settings.daemon
        with ws.db() as conn:
            in_row = daemon_state.errors_in_row(conn)
            why = f"{in_row} error cycles in a row"
            if in_row >= settings.pause_after_error_cycles:
                daemon_state.pause(conn, self.clock(), why)
        if in_row >= settings.pause_after_error_cycles:
            path = self._write("paused", f"{why}: `overnight resume` once fixed")
            self._tell("paused", f"overnight: daemon {self.id} paused: {why}; `overnight resume` resumes it",
                       reason=why, path=str(path))  # fmt: skip
            return
        pause_s = settings.break_min * 60
        if outcome == "already-running":  # a session of `overnight run` (cron, a person) has the repository
            pause_s = max(pause_s, BUSY_WAIT_S)
        self._wait_until(self.clock() + pause_s, "break", f"{pause_s / 60:g} minutes between cycles")

    # -- a cycle -----------------------------------------------------------------------------------------------

    def _cycle(self, ws: Workspace, window: Window) -> str:
        """Run one cycle, recorded in `state.db`: its session's outcome."""
        settings = ws.settings.daemon
        now = self.clock()
        hours = settings.cycle_hours
        closes = window.closes_at(now)
        if closes is not None:  # a cycle ends with the window (the task in hand finishes within its wall clock)
            hours = max(min(hours, (closes - now) / 3600), 1 / 60)
        with ws.db() as conn:
            number = daemon_state.begin_cycle(conn, self.id, now)
        self._set("running", f"cycle {number}")
        self._tell("cycle", f"overnight: daemon {self.id}: cycle {number} starts ({hours:.2g} hours at most)")
        record: SessionRecord | None = None
        outcome, why = "error", ""
        try:
            runner = Runner(ws, self.make_agent(ws), clock=self.clock, say=self.say, events=self._session_events,
                            stop=self.stop, max_hours=hours, sleep=self._session_sleep)  # fmt: skip
            record = runner.run()
        except (OvernightError, OSError) as e:  # (the Runner reports its own errors; this is around it)
            why = f"the cycle could not run: {type(e).__name__}: {e}"
            self.say(f"overnight: daemon: {why}")
        else:
            outcome, why = (
                (record.outcome, record.stop_reason)
                if record
                else ("already-running", "another session held the run lock")
            )
        done = sum(t.outcome == "passed" for t in record.tasks) if record else 0
        failed = len(record.tasks) - done if record else 0
        with ws.db() as conn:
            daemon_state.end_cycle(conn, number, self.clock(), session=record.id if record else None,
                                   outcome=outcome, stop_reason=why, tasks_done=done, tasks_failed=failed,
                                   cost_usd=record.cost_usd if record else 0.0)  # fmt: skip
        self._tell("cycle-end", f"overnight: daemon {self.id}: cycle {number} {outcome}: {why}", outcome=outcome,
                   reason=why)  # fmt: skip
        return outcome

    def _session_events(self, event: RunEvent) -> None:
        if self.events is not None:
            self.events(event)
        elif event.kind not in {"agent", "verify"}:
            self.say(event.line)
        if event.kind in {"outcome", "end"}:  # a long cycle still gets its reports when due
            self._due_reports()

    # -- waiting -----------------------------------------------------------------------------------------------

    def _stopping(self) -> str | None:
        if stop_file(self.ws).exists():
            self.stop.set()
            return "the kill switch (`overnight stop`)"
        if self.stop.is_set():
            return "a signal to stop (SIGTERM)"
        return None

    def _pause_cleared(self) -> bool:
        with self.ws.db() as conn:
            cleared = daemon_state.paused(conn) is None
        if cleared:
            self._tell("resumed", f"overnight: daemon {self.id}: resumed (`overnight resume`)")
        return cleared

    def _wait_until(self, until: float, state: str, why: str) -> None:
        self._next = until
        self._set(state, why)
        self._tell("waiting", f"overnight: daemon {self.id}: {state}: {why}; next cycle {daemon_report.iso(until)}",
                   until=until, reason=why)  # fmt: skip
        self._wait(until - self.clock())
        self._next = None

    def _wait(self, seconds: float, *, until_resumed: bool = False) -> None:
        """Sleep `seconds` in steps, each ending early for the kill switch, SIGTERM, or (paused) a resume."""
        end = self.clock() + max(0.0, seconds)
        sleep = self.sleep or self.stop.wait
        while True:
            if self._stopping() or (until_resumed and self._pause_cleared()):
                return
            left = end - self.clock()
            if left <= 0 and not until_resumed:
                return
            self._due_reports()
            sleep(STEP_S if until_resumed else min(STEP_S, left))

    # -- status and reports ------------------------------------------------------------------------------------

    def _set(self, state: str, detail: str) -> None:
        self._state = (state, detail)
        with self.ws.db() as conn:
            count = len(daemon_state.cycles(conn, daemon=self.id))
        with contextlib.suppress(OSError):
            daemon_state.write_status(self.ws, {
                "pid": os.getpid(), "daemon": self.id, "started": daemon_report.iso(self._began), "state": state,
                "detail": detail, "cycles": count,
                "next_cycle_at": daemon_report.iso(self._next) if self._next is not None else None,
            })  # fmt: skip

    def _due_reports(self) -> None:
        settings = self.ws.settings.daemon
        now = self.clock()
        if now - self._progress_at >= settings.report_every_hours * 3600:
            self._write("progress", since=self._progress_at)
            self._progress_at = now
        if now - self._status_at >= settings.status_every_hours * 3600:
            self._write("status", since=self._status_at)
            self._status_at = now

    def _write(self, kind: daemon_report.Kind, reason: str = "", since: float | None = None) -> str:
        """Write a report (never failing the daemon for it) and tell it; its Markdown's path."""
        ws = self.ws
        since = self._began if since is None else since
        try:
            with ws.db() as conn:
                mine = daemon_state.cycles(conn, daemon=self.id)
            period = [c for c in mine if c.started >= since]
            criteria: dict[str, str] = {}
            open_tasks: list[str] = []
            for verdict in self.completion.judge(ws, cheap=True):
                criteria[verdict.criterion] = ("holds: " if verdict.held else "not yet: ") + verdict.detail
            with contextlib.suppress(OvernightError):
                open_tasks = [t.id for t in open_approved(all_tasks(ws))]
            self._reports += 1
            state, detail = (kind, reason) if kind in {"complete", "stopped", "paused"} else self._state
            report = DaemonReport(
                id=f"{self.id}-{self._reports:03d}-{kind}", daemon=self.id, kind=kind, repo=str(ws.repo.root),
                at=daemon_report.iso(self.clock()), state=state, reason=detail, since=daemon_report.iso(since),
                cycles=[daemon_report.CycleLine.of(c) for c in period], period=Totals.of(period),
                totals=Totals.of(mine), open_tasks=open_tasks, criteria=criteria,
                next_cycle_at=daemon_report.iso(self._next) if self._next is not None else None,
            )  # fmt: skip
            path = daemon_report.save(ws.state_dir, report)
        except (OvernightError, OSError) as e:
            self.say(f"overnight: daemon: the {kind} report could not be written: {e}")
            return ""
        self._last_report = report
        self._tell("report", f"overnight: daemon {self.id}: {kind} report {path}", path=str(path), outcome=kind)
        return str(path)

    def _final(self, outcome: Literal["complete", "stopped"], why: str) -> DaemonResult:
        path = self._write(outcome, why)
        report = self._last_report
        self._tell("end", f"overnight: daemon {self.id} {outcome}: {why}; report {path}", outcome=outcome,
                   reason=why, path=path)  # fmt: skip
        return DaemonResult(outcome, why, report, path or None)

    def _session_sleep(self, seconds: float) -> bool:
        """How a cycle's session waits (a usage limit's reset, a retry, a rate limit's pause): as the daemon
        waits (a test's clock moves instead), and True when told to stop meanwhile."""
        if self.sleep is None:
            return self.stop.wait(seconds)
        self.sleep(seconds)
        return self.stop.is_set()

    def _daily_gc(self, ws: Workspace) -> None:
        """Once a day (and when the daemon starts), the state directory pruned as `overnight gc` does."""
        now = self.clock()
        if self._gc_at is not None and now - self._gc_at < gc.DAY:
            return
        self._gc_at = now
        try:
            done = gc.collect(ws, clock=self.clock)
        except (OvernightError, OSError) as e:  # a night never stops for its housekeeping
            self.say(f"overnight: daemon: gc failed ({type(e).__name__}: {e})")
            return
        if done.removed:
            self.say(f"overnight: daemon: gc removed {len(done.removed)} old item(s), {done.freed_bytes} bytes freed")

    def _tell(self, kind: EventKind, line: str, **data: object) -> None:
        """Say the line, and tell `notify` (by default the `[notify]` channels) the event."""
        self.say(line)
        event = DaemonEvent(kind, line, self.id, **data)  # type: ignore[arg-type]
        try:
            (self.notify or _alert(self.ws))(event)
        except Exception as e:  # the night goes on whatever a notification does
            print(f"overnight: daemon: telling {kind} failed: {type(e).__name__}: {e}", file=sys.stderr)


def _alert(ws: Workspace) -> Callable[[DaemonEvent], None]:
    """The daemon's alerts to the `[notify]` channels: `paused` (error cycles in a row) and `complete`."""

    def send(event: DaemonEvent) -> None:
        if event.kind == "paused":
            notify.send(ws, "paused", f"daemon {event.daemon} paused", event.line, session=event.daemon)
        elif event.kind == "end" and event.outcome == "complete":
            notify.send(ws, "complete", f"daemon {event.daemon}: the project is complete", event.line,
                        session=event.daemon)  # fmt: skip

    return send
