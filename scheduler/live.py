"""Progress on stderr while the gate or a session runs: a live view on a terminal, plain lines when piped.

On a terminal, finished steps are printed as lines and what is running stays in a status line under them (rich's
`Live`, which takes the line away at the end). Piped, or in a log, every event is one plain line: no colour, no
cursor movement, nothing wrapped. stdout is never written, so `--json` stays one clean document.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from types import TracebackType
from typing import Self, TextIO

from rich.console import Console
from rich.live import Live
from rich.markup import escape
from rich.text import Text

from mcp_servers.core.gate.progress import GateEvent

from .events import RunEvent
from .output import shown

SHOWN = {"tool": "[cyan]→[/]", "refused": "[yellow]![/]", "said": "[dim]»[/]"}
MARKS = {"passed": "[green]✓[/]", "failed": "[red]✗[/]", "skipped": "[dim]-[/]"}
PLAIN_EVERY_S = 5.0  # piped, the test count is a line at most this often


def progress_console(stream: TextIO | None = None) -> Console:
    """The console progress goes to: stderr, colour only on a terminal and never under NO_COLOR."""
    return Console(file=stream or sys.stderr, highlight=False, soft_wrap=True)


class _View:
    """Lines above a status line on a terminal; plain lines elsewhere. Thread-safe: the gate calls from threads."""

    def __init__(self, console: Console, clock: Callable[[], float] = time.monotonic) -> None:
        self.console = console
        self.live = console.is_terminal and not console.is_dumb_terminal
        self.clock = clock
        self.began = clock()
        self.lock = threading.RLock()
        self._live: Live | None = None

    def __enter__(self) -> Self:
        if self.live:
            self._live = Live(self._status(), console=self.console, transient=True, refresh_per_second=4,
                              get_renderable=self._status)  # fmt: skip
            self._live.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None
                 ) -> None:  # fmt: skip
        if self._live is not None:
            self._live.stop()
            self._live = None

    def line(self, markup: str, plain: str) -> None:
        """A finished step: `markup` on a terminal, `plain` (one line, as it is) elsewhere."""
        with self.lock:
            if self.live:
                self.console.print(shown(markup))
            else:
                self.console.file.write(shown(" ".join(plain.split("\n"))) + "\n")
                self.console.file.flush()

    def refresh(self) -> None:
        if self._live is not None:
            self._live.refresh()

    def elapsed(self) -> float:
        return self.clock() - self.began

    def _status(self) -> Text:  # pragma: no cover (overridden)
        return Text("")


class GateView(_View):
    """The gate's checks as they start and end, and the tests done so far."""

    def __init__(self, console: Console, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(console, clock)
        self.running: dict[str, float] = {}
        self.tests: tuple[int, int | None] | None = None
        self._last_plain = 0.0

    def __call__(self, event: GateEvent) -> None:
        with self.lock:
            if event.kind == "start":
                self.running[event.check] = self.clock()
                self.line(f"[dim]…[/] {escape(event.check)} started", f"gate: {event.check} started")
            elif event.kind == "end":
                self.running.pop(event.check, None)
                took = f" in {event.seconds:.1f}s" if event.seconds else ""
                status = event.status or "?"
                self.line(f"{MARKS.get(status, '?')} {escape(event.check)} {status}{took}: {escape(event.summary)}",
                          f"gate: {event.check} {status}{took}: {event.summary}")  # fmt: skip
            else:
                self.tests = (event.done or 0, event.percent)
                now = self.clock()
                if not self.live and now - self._last_plain >= PLAIN_EVERY_S:
                    self._last_plain = now
                    self.line("", f"gate: tests: {self._count()}, {self.elapsed():.0f}s")
            self.refresh()

    def _count(self) -> str:
        done, percent = self.tests or (0, None)
        return f"{done} done" + (f" ({percent}%)" if percent is not None else "")

    def _status(self) -> Text:
        with self.lock:
            now = self.clock()
            parts = []
            for name, began in self.running.items():
                extra = f" {self._count()}" if name == "tests" and self.tests else ""
                parts.append(f"{name}{extra} {now - began:.0f}s")
            text = "running: " + ", ".join(parts) if parts else "gate"
            return Text(f"{text} (gate {self.elapsed():.0f}s)", style="dim")


class RunView(_View):
    """A session as it happens: each task's start, the agent's tool calls, refusals and gate verdicts, the
    turns, cost and time so far, and each task's outcome. `quiet`: only the outcomes and the session's end."""

    def __init__(self, console: Console, *, quiet: bool = False, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(console, clock)
        self.quiet = quiet
        self.task: str | None = None
        self.task_began = 0.0
        self.calls = 0
        self.turns = 0
        self.cost = 0.0
        self.verifying = ""  # the verification's running checks and test count, for the status line

    def say(self, line: str) -> None:
        """The runner's own lines (recovery, another session running)."""
        if not self.quiet:
            self.line(escape(line), line)

    def __call__(self, event: RunEvent) -> None:
        with self.lock:
            if event.cost_usd is not None:
                self.cost = event.cost_usd
            if event.kind == "task":
                self.task, self.task_began, self.calls, self.turns = event.task_id, self.clock(), 0, 0
                self.verifying = ""
            if event.kind == "agent" and event.agent is not None:
                self._agent(event)
            elif event.kind == "verify" and event.gate is not None:
                self._verify(event, event.gate)
            elif event.kind == "outcome":
                self.task = None
                mark = {"passed": "[green]✓[/]", "infra-stop": "[yellow]↻[/]"}.get(event.outcome or "", "[red]✗[/]")
                self.line(f"{mark} {escape(event.line.removeprefix('overnight: '))}", event.line)
            elif event.kind in {"end", "wait", "limit-paused", "limit-reached"} or not self.quiet:  # (hours, maybe)
                self.line(escape(event.line), event.line)
            self.refresh()

    def _agent(self, event: RunEvent) -> None:
        agent = event.agent
        assert agent is not None  # noqa: S101 (checked by the caller)
        if agent.turns is not None:
            self.turns = max(self.turns, agent.turns)
        self.calls += agent.kind == "tool"
        if self.quiet or (agent.kind == "usage" and self.live):
            return
        if agent.kind == "gate":
            mark = "[green]✓[/]" if agent.passed else "[red]✗[/]"
            self.line(f"  {mark} {escape(agent.text)}", event.line)
        elif agent.kind == "usage":
            self.line("", f"{event.line.rstrip(': ')}: {self.turns} turns, ${self.cost:.2f} so far, "
                          f"{self.clock() - self.task_began:.0f}s")  # fmt: skip
        else:
            self.line(f"  {SHOWN.get(agent.kind, '-')} {escape(agent.text)}", event.line)

    def _verify(self, event: RunEvent, gate: GateEvent) -> None:
        """The scheduler's own gate run: each check's end as a line, the rest in the status line."""
        if gate.kind == "tests":
            self.verifying = f"verifying: tests {gate.done} done"
        elif gate.kind == "start":
            self.verifying = f"verifying: {gate.check}"
        if self.quiet or gate.kind == "tests" or (gate.kind == "start" and self.live):
            return
        if gate.kind == "end":
            mark = MARKS.get(gate.status or "", "?")
            took = f" in {gate.seconds:.1f}s" if gate.seconds else ""
            self.line(f"  {mark} verification: {escape(gate.check)} {gate.status}{took}", event.line)
        else:
            self.line("", event.line)

    def _status(self) -> Text:
        with self.lock:
            if self.task is None:
                return Text(f"session {self.elapsed():.0f}s, ${self.cost:.2f}", style="dim")
            return Text(
                f"task {self.task}: {self.calls} tool call(s), {self.turns} turn(s), ${self.cost:.2f} so far, "
                f"{self.clock() - self.task_began:.0f}s (session {self.elapsed():.0f}s)"
                + (f"; {self.verifying}" if self.verifying else ""),
                style="dim",
            )
