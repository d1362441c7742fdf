"""PROJECT_PLAN.md: read strictly, written line by line, never re-rendered.

The format people already write: a `Task Queue` heading with three sections (*Ready for Autonomous Execution*,
*Pending Approval*, *Not Ready*; recognised with or without emoji, at any heading level below the queue's),
each task a bold `[id]` line followed by `- Key: value` fields.

Reading never raises on content: every problem (a duplicate id, a missing dependency, a cycle: errors; a value
that cannot be read: a warning saying how it was read) is collected with its line number, and a plan with errors
is never written. Writing changes only the lines it means to change and keeps every other byte: prose, emoji,
blank lines, CRLF, a BOM, unknown fields.

The package, by concept: `model` (sections, field names, Task, Plan), `lines` (where a task's fields are on its
lines), `fields` (reading each field's value), `reader` (one pass over the file), `graph` (missing dependencies
and cycles), `editor` (line edits). Everything callers use is re-exported here.
"""

from __future__ import annotations

from .editor import append_task, field_value, move_task, one_line, render, set_field
from .graph import check_graph, find_cycles
from .model import (
    ID_PATTERN,
    PRIORITY_WORDS,
    SECTION_TITLES,
    STATUSES,
    Heading,
    Plan,
    Problem,
    Section,
    Task,
    ids,
    split_lines,
)
from .reader import parse

__all__ = [
    "ID_PATTERN",
    "PRIORITY_WORDS",
    "SECTION_TITLES",
    "STATUSES",
    "Heading",
    "Plan",
    "Problem",
    "Section",
    "Task",
    "append_task",
    "check_graph",
    "field_value",
    "find_cycles",
    "ids",
    "move_task",
    "one_line",
    "parse",
    "render",
    "set_field",
    "split_lines",
]
