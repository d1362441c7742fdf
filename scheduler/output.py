"""All terminal output of the CLI goes through here, so tests can capture it and `--json` stays clean."""

from __future__ import annotations

import json
import sys
from typing import Any

from pydantic import BaseModel
from rich.console import Console
from rich.markup import escape
from rich.table import Table

# Exit codes: 0 yes, 1 no (the check failed), 2 usage or environment error, 3 a bug, 130 interrupted.
OK, NO, USAGE, BUG, INTERRUPTED = 0, 1, 2, 3, 130


def console() -> Console:
    return Console(file=sys.stdout, highlight=False, soft_wrap=True)


def err_console() -> Console:
    return Console(file=sys.stderr, highlight=False, soft_wrap=True)


def emit_json(data: BaseModel | dict[str, Any] | list[Any]) -> None:
    """One JSON document on stdout."""
    text = data.model_dump_json(indent=2) if isinstance(data, BaseModel) else json.dumps(data, indent=2)
    sys.stdout.write(text + "\n")


def error(message: str) -> None:
    err_console().print(f"[bold red]error:[/] {escape(message)}")


def table(*columns: str) -> Table:
    t = Table(show_header=True, header_style="bold", box=None, pad_edge=False)
    for column in columns:
        t.add_column(column, overflow="fold")
    return t
