"""What the gate tells an observer while it runs: each check as it starts and ends, and the tests done so far.

The CLI passes an observer to show a live view on a terminal; the MCP servers pass none (they never print). The
observer is called from the gate's worker threads, so it must be thread-safe, and it only ever shows: nothing the
gate decides depends on it. The test count is read from the test runner's own output (pytest's progress dots and
`[ 42%]` marks), never from a plugin loaded out of the judged tree.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

Kind = Literal["start", "end", "tests"]


@dataclass(frozen=True)
class GateEvent:
    """`start` and `end` of a check (with its status, seconds and summary at the end), or `tests`: the tests
    done so far (and pytest's percentage, when it prints one) while the test run goes on."""

    kind: Kind
    check: str
    status: str | None = None  # passed, failed or skipped (at the end)
    seconds: float | None = None
    summary: str = ""
    done: int | None = None
    percent: int | None = None


Progress = Callable[[GateEvent], None]

# one line of pytest's progress: `..F.sx   [ 42%]` (-q), or `tests/test_x.py ..F   [ 42%]` (the default), or
# `tests/test_x.py::test_a PASSED   [ 42%]` (-v)
_MARKS = re.compile(r"^(?:(?P<file>\S+\.py) )?(?P<dots>[.FEsxX]+)\s*(?:\[\s*(?P<pct>\d{1,3})%\])?\s*$")
_VERBOSE = re.compile(r"^\S+::\S.*\b(PASSED|FAILED|ERROR|SKIPPED|XFAIL|XPASS)\b.*?(?:\[\s*(?P<pct>\d{1,3})%\])?\s*$")
_MAX_LINE = 4096  # a longer line is no progress line: it is not kept


class TestCounter:
    """Counts the tests done from pytest's output as it arrives, piece by piece (a line may be split anywhere;
    the dots of a line come one by one, before its `[ 42%]`). Output that is not progress (a header, the
    failures' report after the run) is ignored."""

    __test__ = False  # not a test class, whatever pytest collecting this module thinks

    def __init__(self, tell: Callable[[int, int | None], None]) -> None:
        self._tell = tell
        self._lock = threading.Lock()
        self._done_lines = 0  # tests counted in finished lines
        self._partial = ""
        self._percent: int | None = None
        self._shown: tuple[int, int | None] = (0, None)
        self._over = False  # progress was seen, then something else: the run's report, never counted

    def feed(self, chunk: bytes) -> None:
        with self._lock:
            if self._over:
                return
            text = self._partial + chunk.decode("utf-8", "replace")
            *lines, self._partial = text.split("\n")
            for line in lines:
                counted = self._count(line.rstrip("\r"), final=True)
                if not counted and self._done_lines and line.strip():
                    self._over = True
                    return
                self._done_lines += counted
            if len(self._partial) > _MAX_LINE:
                self._partial = ""
            now = (self._done_lines + self._count(self._partial, final=False), self._percent)
            if now != self._shown and now[0] > 0:
                self._shown = now
                self._tell(*now)

    def _count(self, line: str, *, final: bool) -> int:
        found = _MARKS.match(line)
        if found:
            if final and found.group("pct"):
                self._percent = min(100, int(found.group("pct")))
            return len(found.group("dots"))
        verbose = _VERBOSE.match(line) if final else None
        if verbose:
            if verbose.group("pct"):
                self._percent = min(100, int(verbose.group("pct")))
            return 1
        return 0
