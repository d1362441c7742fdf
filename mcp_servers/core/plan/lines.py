"""Where a task's fields are on its lines: field keys, HTML comments, and the field lines found again."""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from .model import _FIELD_NAMES, _KNOWN, Task

_KEY = re.compile(r"^[A-Za-z][A-Za-z0-9 _'/-]{0,39}$")


_KEYS: dict[str, str | None] = {}  # a field key as written -> its name (None: not a field key)


def _name(key: str) -> str | None:
    """The normalised name of a field key as written, or None when it cannot be one; remembered."""
    found = _KEYS.get(key, "")
    if found != "":
        return found
    plain = key.strip()
    name: str | None = None
    if _KEY.match(plain):
        words = " ".join(plain.lower().replace("_", " ").split())
        name = _FIELD_NAMES.get(words, words)
    if len(_KEYS) < 10_000:
        _KEYS[key] = name
    return name


def _comments(line: str, *, in_comment: bool) -> tuple[str, bool]:
    """A line's visible text, and whether an HTML comment is open at its end (given whether one was at its start).

    What comes before the line's first `<!--` is visible (nothing, when the line starts inside a comment; nor what
    follows a `-->` on it). A `<!--` opens a comment and the next `-->` after it closes it; comments do not nest.
    """
    visible = ""
    pos = 0
    if not in_comment:
        start = line.find("<!--")
        if start < 0:
            return line, False
        visible, pos = line[:start], start + 4
    while True:
        end = line.find("-->", pos)
        if end < 0:
            return visible, True
        start = line.find("<!--", end + 3)
        if start < 0:
            return visible, False
        pos = start + 4


def _field_line(lines: Sequence[str], task: Task, name: str) -> int:
    """The line of a task's field (for messages); the task's line when it cannot be found."""
    found = _find_field(lines, task, name)
    return found.index + 1 if found is not None else task.line


@dataclass(slots=True)
class _FieldLine:
    """Where a field's value is on its line: `line[start:end]` is the value as the reader reads it (stripped)."""

    index: int
    start: int
    end: int
    prefix: str  # the indentation and bullet, e.g. `  - `


_BULLETS = ("-", "*", "+", "•")


def _field_lines(lines: Sequence[str], task: Task) -> Iterator[tuple[str, _FieldLine]]:
    """(name, where) for each line of a task's block that the reader reads as a field, in order.

    The same rules as the reader: text inside an HTML comment is not there, an indented bullet `Key: value` is a
    field, and one at the left margin only when its key is a field this module knows.
    """
    in_comment = False
    for index in range(task.index, task.end):
        line = lines[index]
        if line.endswith("\n"):
            line = line[:-1]
        if line.endswith("\r"):
            line = line[:-1]
        if in_comment or "<!--" in line:
            if in_comment and "-->" not in line:
                continue
            line, in_comment = _comments(line, in_comment=in_comment)
        if index == task.index or not line:
            continue
        indented = line[0] in (" ", "\t")
        body = line.lstrip(" \t")
        if body[:1] not in _BULLETS or body[1:2] not in (" ", "\t"):
            continue
        key, sep, value = body[2:].partition(":")
        name = _name(key) if sep else None
        if name is None or not (indented or name in _KNOWN):
            continue
        colon = len(line) - len(value)
        start = colon + len(value) - len(value.lstrip())
        yield name, _FieldLine(index, start, start + len(value.strip()), line[: len(line) - len(body) + 2])


def _find_field(lines: Sequence[str], task: Task, name: str) -> _FieldLine | None:
    """The line holding a task's field `name` (the first, which is the one that counts), found again in the text."""
    return next((where for found, where in _field_lines(lines, task) if found == name), None)


def _block_end(lines: Sequence[str], task: Task) -> int:
    """One past the task's block, and past the rest of a comment its block leaves open (which belongs to it)."""
    in_comment = False
    for index in range(task.index, task.end):
        if in_comment or "<!--" in lines[index]:
            _, in_comment = _comments(lines[index], in_comment=in_comment)
    end = task.end
    while in_comment and end < len(lines):
        _, in_comment = _comments(lines[end], in_comment=True)
        end += 1
    return end
