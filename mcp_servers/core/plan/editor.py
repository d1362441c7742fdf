"""Writing a plan: line edits on the original text, every other byte kept."""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

from ..errors import UsageError
from .lines import _block_end, _field_lines, _find_field, _name
from .model import _KNOWN, SECTION_TITLES, Heading, Plan

# -- writing: line edits on the original text --------------------------------------------------------------


def render(plan: Plan, lines: Sequence[str]) -> bytes:
    """The bytes of a plan whose lines are `lines` (the BOM, if there was one, kept)."""
    return ("\ufeff" if plan.bom else "").encode() + "".join(lines).encode("utf-8")


def _ending(line: str) -> str:
    """A line's own ending: `\r\n`, `\n`, or none (the file's last line may have none)."""
    return line[len(line.rstrip("\r\n")) :]


def set_field(plan: Plan, task_id: str, key: str, value: str) -> bytes:
    """The plan with one field of one task set: its value rewritten in place (the rest of its line kept, byte for
    byte), or a new line after the task's block. A value the field already has leaves the plan as it is."""
    task = plan.task(task_id)
    name = _name(key)
    if name is None:
        raise UsageError(f"`{key}` cannot be a field name: letters, digits, spaces, `_`, `'`, `/` or `-`.")
    lines = plan.lines
    found = _find_field(lines, task, name)
    if found is not None:
        old = lines[found.index]
        current = old[found.start : found.end]
        value = field_value(value)
        if current == value:
            return plan.raw
        before, after = old[: found.start], old[found.end :]
        if found.start == found.end:  # an empty value: `Key:` becomes `Key: value`
            before = before.rstrip(" \t") + " "
            rest = after.rstrip("\r\n")
            after = (" " + after.lstrip(" \t")) if rest.strip() and not rest[:1].isspace() else after
        lines[found.index] = before + value + after
        return render(plan, lines)
    value = field_value(value)
    at = _block_end(lines, task)
    prefix = next((where.prefix for _, where in _field_lines(lines, task)), "  - ")
    if name not in _KNOWN and prefix[:1] not in (" ", "\t"):
        prefix = "  " + prefix  # at the left margin, the reader takes only the fields it knows
    ending = _ending(lines[at - 1]) or plan.newline
    if not lines[at - 1].endswith("\n"):
        lines[at - 1] += plan.newline
    lines.insert(at, f"{prefix}{key.strip()}: {value}{ending if at < len(lines) else ''}")
    return render(plan, lines)


def move_task(plan: Plan, task_id: str, section: str) -> bytes:
    """The plan with a task's block (its line, fields and prose) moved to the end of another section."""
    task = plan.task(task_id)
    if task.section == section:
        return plan.raw
    lines = plan.lines
    end = _block_end(lines, task)
    block = lines[task.index : end]
    if not block[-1].endswith("\n"):
        block[-1] += plan.newline
    rest = lines[: task.index] + lines[end:]
    shift = end - task.index
    headings = [
        Heading(h.index - shift if h.index > task.index else h.index, h.level, h.section) for h in plan.headings
    ]
    where = _Layout(headings, plan.queue, plan.queue_end - shift, plan.newline)
    return render(plan, _insert_in_section(rest, where, section, block))


def append_task(plan: Plan, section: str, block: Sequence[str]) -> bytes:
    """The plan with new task lines (already formatted, no line endings) at the end of a section."""
    where = _Layout(plan.headings, plan.queue, plan.queue_end, plan.newline)
    return render(plan, _insert_in_section(plan.lines, where, section, [line + plan.newline for line in block]))


@dataclass
class _Layout:
    headings: list[Heading]
    queue: Heading | None
    queue_end: int
    newline: str


def _insert_in_section(lines: list[str], where: _Layout, section: str, block: list[str]) -> list[str]:
    """Insert `block` after the last non-blank line of `section` (creating the section when it is missing)."""
    lines = list(lines)
    nl = where.newline
    heading = next((h for h in reversed(where.headings) if h.section == section), None)
    if heading is None:
        if where.queue is None:
            raise UsageError("the plan has no `## Task Queue` heading to add a section to; add one first.")
        level = "#" * (where.queue.level + 1)
        at = _last_content(lines, where.queue.index, where.queue_end) + 1
        if lines and not lines[-1].endswith("\n") and at == len(lines):
            lines[-1] += nl
        lines[at:at] = [nl, f"{level} {SECTION_TITLES[section]}{nl}", nl, *block]
        return lines
    # the section ends at the next heading of its level or above, or at the next queue section's heading, however deep
    after = (h for h in where.headings if h.index > heading.index and (h.level <= heading.level or h.section))
    end = next((h.index for h in after), len(lines))
    end = min(end, where.queue_end) if where.queue_end > heading.index else end
    at = _last_content(lines, heading.index, end) + 1
    if at == heading.index + 1:
        block = [nl, *block]  # a blank line between a heading and its first task
    if at > 0 and not lines[at - 1].endswith("\n"):
        lines[at - 1] += nl
    lines[at:at] = block
    return lines


def _last_content(lines: Sequence[str], start: int, end: int) -> int:
    """The index of the last non-blank line in [start, end), or `start` when there is none."""
    for i in range(min(end, len(lines)) - 1, start, -1):
        if lines[i].strip():
            return i
    return start


def field_value(text: str) -> str:
    """A field's value made safe for its line: line breaks and control characters become spaces, the ends are
    trimmed, the spacing inside is kept (setting a field back to its old value gives the file back)."""
    return "".join(" " if unicodedata.category(ch) in {"Cc", "Zl", "Zp"} else ch for ch in text).strip()


def one_line(text: str) -> str:
    """Text made safe for one line of the plan: no line breaks, no control characters, single spaces."""
    return " ".join(field_value(text).split())
