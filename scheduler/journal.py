"""The journal of a session: each `RunEvent` as one JSON line in `<state_dir>/runs/<session>/events.jsonl`, so
that another process (the command center, `overnight ui`) can follow a running session or daemon cycle.

Written by the session's own process, flushed per event, never failing the session (a full disk, a removed
folder: the journal stops, the night goes on), bounded in size. The agent's sandbox hides the state folder
(`scheduler/confine.py`), so no agent writes here; what an agent said (tool arguments, its words, task titles)
is in the lines as data, and every reader shows it escaped.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .events import RunEvent, Teller

NAME = "events.jsonl"
MAX_BYTES = 8 * 1024 * 1024  # the agent's and the gate's steps stop being written past this
HARD_BYTES = MAX_BYTES + 1024 * 1024  # and every event past this (outcomes and the end keep room of their own)
MAX_LINE = 64 * 1024  # one event's line at most (a longer text is cut)
_STEPS = frozenset({"agent", "verify"})


def path_of(state_dir: Path, session: str) -> Path | None:
    """The journal of `session`; None for a name that is no session id (a reader's input is checked here)."""
    if not session or "/" in session or "\\" in session or session.startswith(".") or len(session) > 100:
        return None
    return state_dir / "runs" / session / NAME


def as_json(event: RunEvent, at: float) -> dict[str, Any]:
    """An event as the journal writes it: its fields (nested ones as objects), and when (`at`, Unix seconds)."""
    data = {k: v for k, v in dataclasses.asdict(event).items() if v not in (None, "", ())}
    data["at"] = round(at, 3)
    return data


@dataclass
class Journal:
    """Appends a session's events to its journal; `sink` puts it between the runner and its reporter."""

    state_dir: Path
    session: str
    clock: Callable[[], float] = time.time
    written: int = 0
    broken: bool = False
    _file: Any = field(default=None, repr=False)

    @property
    def path(self) -> Path | None:
        return path_of(self.state_dir, self.session)

    def write(self, event: RunEvent) -> None:
        """Append `event`; never raises (a journal that cannot be written is given up, said once on stderr)."""
        if self.broken:
            return
        limit = MAX_BYTES if event.kind in _STEPS else HARD_BYTES
        try:
            line = json.dumps(as_json(event, self.clock()), ensure_ascii=False, default=str)
            if len(line) > MAX_LINE:
                line = json.dumps(as_json(dataclasses.replace(event, agent=None, gate=None,
                                                              line=event.line[:4096]), self.clock()),
                                  ensure_ascii=False, default=str)  # fmt: skip
            data = (line + "\n").encode("utf-8")
            if self.written + len(data) > limit:
                return
            self._open().write(data)
            self._file.flush()
            self.written += len(data)
        except (OSError, ValueError, TypeError) as e:
            self.broken = True
            print(f"overnight: the session's journal could not be written ({e}); the session goes on without it",
                  file=sys.stderr)  # fmt: skip

    def _open(self) -> Any:
        if self._file is None:
            path = self.path
            if path is None:
                raise ValueError(f"{self.session!r} is not a session id")
            path.parent.mkdir(parents=True, exist_ok=True)
            flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | getattr(os, "O_NOFOLLOW", 0)
            self._file = os.fdopen(os.open(path, flags, 0o600), "ab", buffering=0)
            self.written = os.fstat(self._file.fileno()).st_size
        return self._file

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def sink(self, say: Callable[[str], None], events: Callable[[RunEvent], None] | None
             ) -> Callable[[RunEvent], None]:  # fmt: skip
        """What a `Teller` tells: the journal first, then the reporter (or, with none, each line `say`s, as a
        Teller without a reporter would)."""

        def tell(event: RunEvent) -> None:
            self.write(event)
            if events is not None:
                events(event)
            elif event.kind not in _STEPS:
                say(event.line)

        return tell


def teller(say: Callable[[str], None], events: Callable[[RunEvent], None] | None,
           journal: Journal | None) -> Teller:  # fmt: skip
    """The runner's `Teller`, journalling every event when the session has a journal."""
    return Teller(say, events if journal is None else journal.sink(say, events))


# -- reading ---------------------------------------------------------------------------------------------------


def read(path: Path, offset: int = 0, limit: int = 1024 * 1024) -> tuple[list[dict[str, Any]], int]:
    """The whole lines written after byte `offset` (up to `limit` bytes of them), and the offset after them.
    A line being written (no newline yet) waits for the next read; a line that is no JSON object is skipped."""
    try:
        with path.open("rb") as f:
            f.seek(offset)
            chunk = f.read(limit)
    except OSError:
        return [], offset
    end = chunk.rfind(b"\n")
    if end < 0:
        return [], offset
    found: list[dict[str, Any]] = []
    for raw in chunk[: end + 1].splitlines():
        try:
            item = json.loads(raw)
        except ValueError:
            continue
        if isinstance(item, dict):
            found.append(item)
    return found, offset + end + 1


def tail(path: Path, keep: int = 200, window: int = 256 * 1024) -> tuple[list[dict[str, Any]], int]:
    """The last `keep` events of a journal, from its last `window` bytes, and the offset to follow it from (the
    Now page's first view)."""
    try:
        size = path.stat().st_size
    except OSError:
        return [], 0
    start = max(0, size - window)
    if start:  # begin after the first newline: the line it cuts is not read
        try:
            with path.open("rb") as f:
                f.seek(start)
                start += f.read(window).find(b"\n") + 1
        except OSError:
            return [], 0
    events, offset = read(path, start, window + 1)
    return events[-keep:], offset
