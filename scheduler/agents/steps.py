"""An agent's log read back after its run (issue 13): what every adapter's reader returns, and the bounded reading
of a JSON-lines log they share. Each adapter reads its own agent's lines (`Adapter.steps`, `Adapter.costs`):
Claude Code's and the replay agent's in `claude_stream`, Codex's in `codex_events`, Gemini's in `gemini_stream`.

A log is the agent's own account and proves nothing: it is shown to a person (`scheduler.activity`), never
trusted; the costs read from it can only raise what a run is counted as (`scheduler.limits.highest_cost`).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MAX_LOG_BYTES = 20 * 1024 * 1024  # a log past this is read from its end


@dataclass
class Steps:
    """What an agent's log says it did: its turns (None: the log does not say), each tool call as one short line
    in order, the files its write calls named, and the folder it worked in when the log names it (to show those
    files relative)."""

    turns: int | None = None
    calls: list[str] = field(default_factory=list)
    written: list[str] = field(default_factory=list)
    root: str = ""


def lines(log: Path | str) -> Iterator[dict[str, Any]]:
    """Each JSON object of a JSON-lines log (the last MAX_LOG_BYTES of a larger one); nothing for a missing file,
    a symlink or a line that is not an object."""
    path = Path(log) if str(log) else None
    if path is None or not path.is_file() or path.is_symlink():
        return
    try:
        with path.open("rb") as handle:
            size = handle.seek(0, 2)
            handle.seek(max(0, size - MAX_LOG_BYTES))
            if size > MAX_LOG_BYTES:
                handle.readline()  # a partial line
            for raw in handle:
                try:
                    item = json.loads(raw)
                except (json.JSONDecodeError, UnicodeDecodeError):
                    continue
                if isinstance(item, dict):
                    yield item
    except OSError:
        return


def no_steps(log: Path | str) -> Steps:
    """The reader of an agent whose log holds no steps (the command agent: its output is its own)."""
    return Steps()


def no_costs(log: Path | str) -> list[float]:
    """The costs of an agent whose log reports none (Codex, Gemini: their CLIs say no cost)."""
    return []
