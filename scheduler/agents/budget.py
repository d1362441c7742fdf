"""Budgets for agents whose CLI reports tokens, not cost (issue 13): Codex CLI and Gemini CLI.

Their `[agents.<name>]` tables take the model's prices (`Prices`: USD per million input, cached input and output
tokens). With them the adapter estimates a run's cost from the tokens the CLI reports (`AgentResult.cost_usd`,
marked `cost_estimated`), so `[limits]` budgets and the report's cost per agent count it; and `Meter` enforces
`max_budget_usd` during the run: it follows the usage the CLI itself writes after each model request (Codex: the
`token_count` events of its session rollout; Gemini: the `tokens` of each model message in its chat recording;
their stdout streams give usage only at the end of the run), and ends the run once the estimate reaches the budget.

Trust. Those files sit in the run's home, which the agent can write. The meter reads every file that matches and
only ever counts up (the highest cumulative total of a file, the highest count of a message), so a forged line can
end a run early but never lower its count; a file the agent deletes is still read through the meter's own handle.
An agent that keeps the CLI from writing its usage at all escapes the meter, not the wall clock, and its run's
cost is then taken from the CLI's final usage, as for any run. The meter is a first line: the scheduler verifies
the work of a run it ended as of any other.

A budget with no prices cannot be enforced. An agent's own `max_budget_usd` without them is a problem (its run is
refused: a person asked for that cap); one inherited from `[scheduler] max_budget_usd` (Claude Code's cap per
task, from before there were other agents) is a warning only, so it does not stop every night of another agent.
"""

from __future__ import annotations

import json
import os
import stat
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Annotated, Any, Protocol

from pydantic import BaseModel, Field

_PRICE = Annotated[float, Field(ge=0)] | None
POLL_S = 0.25
MAX_READ = 1 << 20  # bytes read from a file per look (a file that grows without end cannot hold the meter)


class Prices(BaseModel):
    """The prices an adapter's `[agents.<name>]` table takes (its settings model subclasses this one)."""

    input_usd_per_mtok: _PRICE = Field(default=None, description="USD per million input tokens (with "
                                       "output_usd_per_mtok: runs get an estimated cost, and max_budget_usd is "
                                       "enforced)")  # fmt: skip
    cached_input_usd_per_mtok: _PRICE = Field(default=None, description="USD per million cached input tokens "
                                              "(empty: the input price)")  # fmt: skip
    output_usd_per_mtok: _PRICE = Field(default=None, description="USD per million output tokens")

    def priced(self) -> bool:
        return self.input_usd_per_mtok is not None and self.output_usd_per_mtok is not None


@dataclass(frozen=True)
class Usage:
    """Tokens of a run: `input` counts the cached ones too (`cached` of them were cached), as both CLIs count."""

    input: int = 0
    cached: int = 0
    output: int = 0

    def cost(self, prices: Prices) -> float | None:
        """The estimated cost in USD; None without prices."""
        if not prices.priced():
            return None
        given = prices.input_usd_per_mtok or 0.0
        cached = prices.cached_input_usd_per_mtok if prices.cached_input_usd_per_mtok is not None else given
        cached_tokens = min(self.cached, self.input)
        usd = (self.input - cached_tokens) * given + cached_tokens * cached + self.output * (prices.output_usd_per_mtok
                                                                                              or 0.0)  # fmt: skip
        return round(usd / 1_000_000, 6)

    def __add__(self, other: Usage) -> Usage:
        return Usage(self.input + other.input, self.cached + other.cached, self.output + other.output)

    def highest(self, other: Usage) -> Usage:
        """Each count at its highest of the two (what two reports of the same run agree on at least)."""
        return Usage(max(self.input, other.input), max(self.cached, other.cached), max(self.output, other.output))


def budget(own: BaseModel, scheduler: Any) -> tuple[float, bool]:
    """The budget per task of an agent (USD; 0: none), and whether it is its own (`[agents.<name>] max_budget_usd`,
    where 0 says: no cap) rather than `[scheduler] max_budget_usd`'s."""
    mine = float(getattr(own, "max_budget_usd", 0.0) or 0.0)
    if mine > 0 or "max_budget_usd" in own.model_fields_set:
        return mine, True
    return float(getattr(scheduler, "max_budget_usd", 0.0) or 0.0), False


def unenforced(name: str, own: BaseModel, scheduler: Any) -> tuple[str | None, str | None]:
    """(a problem, a warning) when agent `name` has a budget its prices cannot enforce; (None, None) otherwise."""
    if not isinstance(own, Prices) or own.priced():
        return None, None
    usd, mine = budget(own, scheduler)
    if usd <= 0:
        return None, None
    fix = (f"give its prices under [agents.{name}] (`input_usd_per_mtok`, `output_usd_per_mtok`, and "
           "`cached_input_usd_per_mtok` if cached input costs less), or")  # fmt: skip
    if mine:
        return (f"`max_budget_usd = {usd:g}` under [agents.{name}] cannot be enforced: its CLI reports tokens, not "
                f"cost, and no prices are set: {fix} set it to 0"), None  # fmt: skip
    return None, (f"agent {name}: the budget per task (`max_budget_usd = {usd:g}` under [scheduler]) is not "
                  f"enforced for it and its runs count no cost: its CLI reports tokens, not cost, and no prices "
                  f"are set: {fix} set `max_budget_usd = 0` under [agents.{name}] to say it runs uncapped")  # fmt: skip


def warning(agent: object) -> str | None:
    """The warning of `unenforced` for a built agent (its `settings` and `config`), if any."""
    own = getattr(agent, "settings", None)
    if not isinstance(own, BaseModel):
        return None
    return unenforced(str(getattr(agent, "name", "?")), own, getattr(agent, "config", None))[1]


class Tally(Protocol):
    """One usage file of a run, read line by line; `usage` never goes down (see the module's docstring)."""

    def add(self, line: dict[str, Any]) -> None: ...

    def usage(self) -> Usage: ...


class Meter:
    """Follows the usage files of one run (`find` lists them; each gets a `tally`) and sets `stop` once the run's
    estimated cost reaches `limit_usd`. `start` it before the agent, `finish` it after (a last read)."""

    def __init__(self, limit_usd: float, prices: Prices, find: Callable[[], list[Path]], tally: Callable[[], Tally],
                 stop: threading.Event, marker: bytes = b"") -> None:  # fmt: skip
        self.limit_usd, self.prices, self.find, self.tally, self.stop = limit_usd, prices, find, tally, stop
        self.marker = marker  # only lines holding it are parsed
        self.files: dict[Path, tuple[IO[bytes], bytearray, Tally]] = {}
        self.over = False
        self.done = threading.Event()
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self._watch, daemon=True)

    def start(self) -> Meter:
        if self.limit_usd > 0 and self.prices.priced():
            self.thread.start()
        return self

    def finish(self) -> Usage:
        self.done.set()
        if self.thread.is_alive():
            self.thread.join(timeout=10)
        self.read()
        for handle, _, _ in self.files.values():
            handle.close()
        return self.usage()

    def usage(self) -> Usage:
        total = Usage()
        for _, _, tally in self.files.values():
            total = total + tally.usage()
        return total

    def spent(self) -> float:
        return self.usage().cost(self.prices) or 0.0

    def read(self) -> None:
        with self.lock:
            try:
                for path in self.find():
                    if path not in self.files and (handle := _open(path)) is not None:
                        self.files[path] = (handle, bytearray(), self.tally())
            except OSError:
                pass  # (a file gone between listing and opening: the next read finds the rest)
            for handle, pending, tally in self.files.values():
                pending.extend(handle.read(MAX_READ))
                *whole, rest = bytes(pending).split(b"\n")
                pending[:] = rest if len(rest) < MAX_READ else b""  # (no line is that long: not one of the CLI's)
                for raw in whole:
                    if self.marker in raw:
                        try:
                            line = json.loads(raw)
                        except ValueError:
                            continue
                        if isinstance(line, dict):
                            tally.add(line)

    def _watch(self) -> None:
        while not self.done.wait(POLL_S):
            self.read()
            if self.limit_usd > 0 and self.spent() >= self.limit_usd:
                self.over = True
                self.stop.set()
                return

    def reason(self) -> str:
        return f"budget (an estimated ${self.spent():.2f} reached max_budget_usd ${self.limit_usd:.2f})"


def _open(path: Path) -> IO[bytes] | None:
    """`path` opened for reading when it is a regular file itself (the agent can write where the CLI writes its
    usage: a link to a FIFO, a device or a file of the person's is not followed, and nothing blocks); else None."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        return None
    return os.fdopen(fd, "rb")
