"""All terminal output of the CLI goes through here, so tests can capture it and `--json` stays clean."""

from __future__ import annotations

import json
import re
import sys
from typing import Any

from pydantic import BaseModel
from rich.console import Console
from rich.markup import escape
from rich.table import Table

# Exit codes: 0 yes, 1 no (the check failed), 2 usage or environment error, 3 a bug, 130 interrupted.
OK, NO, USAGE, BUG, INTERRUPTED = 0, 1, 2, 3, 130

# Piped (to a file, grep, a log), lines are as long as they need to be: a path or an id cut over two lines cannot
# be found or copied. rich would wrap at 80 columns there.
PIPED_WIDTH = 100_000


def console() -> Console:
    """stdout. Colour only on a terminal and never under NO_COLOR (rich reads it); no wrapping when piped."""
    return _console(sys.stdout)


def err_console() -> Console:
    return _console(sys.stderr)


def _console(stream: Any) -> Console:
    made = Console(file=stream, highlight=False, soft_wrap=True)
    if not made.is_terminal:
        made.width = PIPED_WIDTH
    return made


# C0 and C1 control characters but newline and tab: ESC starts sequences that move the cursor, set the title,
# write the clipboard (OSC 52). Test output and an agent's tool calls are the agent's words: shown, never obeyed.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def shown(text: str) -> str:
    """`text` safe to print on a terminal: control characters (escape sequences) made visible as `?`."""
    return _CONTROL.sub("?", text)


def emit_json(data: BaseModel | dict[str, Any] | list[Any]) -> None:
    """One JSON document on stdout."""
    text = data.model_dump_json(indent=2) if isinstance(data, BaseModel) else json.dumps(data, indent=2)
    sys.stdout.write(text + "\n")


def error(message: str) -> None:
    err_console().print(f"[bold red]error:[/] {escape(message)}")


def table(*columns: str) -> Table:
    """A table whose cells fold on a terminal too narrow for them; piped, `console()` is wide enough that no
    cell folds."""
    t = Table(show_header=True, header_style="bold", box=None, pad_edge=False)
    for column in columns:
        t.add_column(column, overflow="fold")
    return t
