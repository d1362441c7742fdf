"""PROJECT_PLAN.md: read strictly, written line by line, never re-rendered.

The format people already write: a `Task Queue` heading with three sections (*Ready for Autonomous Execution*,
*Pending Approval*, *Not Ready*; recognised with or without emoji, at any heading level below the queue's),
each task a bold `[id]` line followed by `- Key: value` fields.

Reading never raises on content: every problem (a bad value, a duplicate id, a missing dependency, a cycle)
is collected with its line number, and a plan with errors is never written. Writing changes only the lines
it means to change and keeps every other byte: prose, emoji, blank lines, CRLF, a BOM, unknown fields.
"""

from __future__ import annotations

import gc
import hashlib
import re
import unicodedata
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from itertools import repeat
from operator import methodcaller
from typing import Literal

from .errors import UsageError
from .paths import clean_glob

Section = Literal["ready", "pending", "not-ready"]
SECTION_TITLES: dict[str, str] = {
    "ready": "Ready for Autonomous Execution ✅",
    "pending": "Pending Approval ⏳",
    "not-ready": "Not Ready ❌",
}
_SECTION_NAMES = {
    "ready for autonomous execution": "ready",
    "ready": "ready",
    "pending approval": "pending",
    "pending": "pending",
    "not ready": "not-ready",
}
STATUSES = {
    "ready": "ready", "todo": "ready", "open": "ready", "pending": "ready", "not started": "ready",
    "proposed": "proposed",
    "in progress": "in-progress", "in-progress": "in-progress", "in_progress": "in-progress", "wip": "in-progress",
    "started": "in-progress",
    "blocked": "blocked",
    "failed": "failed",
    "done": "done", "complete": "done", "completed": "done", "finished": "done",
    "cancelled": "cancelled", "canceled": "cancelled", "wontfix": "cancelled", "won't fix": "cancelled",
    "dropped": "cancelled",
}  # fmt: skip
PRIORITY_WORDS = {"critical": 0, "urgent": 0, "high": 1, "medium": 2, "normal": 2, "low": 3}
_FIELD_NAMES = {
    "priority": "priority",
    "depends on": "depends_on", "depends": "depends_on", "dependencies": "depends_on", "depends-on": "depends_on",
    "files": "files", "scope": "files",
    "alignment score": "alignment_score", "alignment": "alignment_score",
    "estimated lines": "estimated_lines", "estimate": "estimated_lines", "estimated size": "estimated_lines",
    "tests defined": "tests_defined", "tests": "tests_defined",
    "safety check": "safety_check",
    "status": "status",
    "reason": "reason",
    "description": "description",
    "proposed by": "proposed_by",
}  # fmt: skip
ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")

_HEADING = re.compile(r"^(#{1,6})[ \t]+(.*?)[ \t]*#*[ \t]*$")
_TASK = re.compile(r"^[ \t]*(?:(?:[-*+•]|→|->|\d{1,4}[.)])[ \t]+)?\*\*\[(?P<id>[^\]\n]*)\]\*\*(?P<title>.*)$")
_FENCE = re.compile(r"^[ \t]{0,3}(```|~~~)")
_KEY = re.compile(r"^[A-Za-z][A-Za-z0-9 _'/-]{0,39}$")
# Ids separated by commas, each at most 64 long (a longer one is not an id); possessive, so failing is fast too.
_ID_LIST = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}+(?:,[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}+)*+")
_ID_LIST_SPACED = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}+(?:, [A-Za-z0-9][A-Za-z0-9_.:-]{0,63}+)*+")
# A Files value that needs no cleaning: comma-separated globs, none empty, none starting with `-`, `/` or `~` or
# with a drive letter (`C:`) (one match instead of a loop over the globs), and nothing that clean_glob refuses or
# rewrites (`\\`, a backtick, `..`, `//`, `./`, NUL, a tab).
_PLAIN_GLOBS = re.compile(r"\s*+[^-/~\s,](?:[^:,][^,]*+)?+(?:,\s*+[^-/~\s,](?:[^:,][^,]*+)?+)*+")
# (the same, written `a, b`: no blank in a glob or around one but the one after each comma)
_TIGHT_GLOBS = re.compile(r"[^-/~\s,](?:[^:,\s][^,\s]*+)?+(?:, [^-/~\s,](?:[^:,\s][^,\s]*+)?+)*+")
_UNUSUAL = re.compile(r"\\|`|\.\.|//|\./|\0|\t")  # what the globs above must not hold anywhere either
_UNUSUAL_PARTS = ("\\", "`", "..", "//", "./", "\0", "\t")
# Field names whose text is kept as written (shown to people, or free text); the others are kept interpreted.
_TEXT_FIELDS = {"status", "reason", "description", "safety_check", "proposed_by", "tests_defined"}
_NONE = {"", "-", "—", "–", "none", "n/a", "na", "nothing"}  # noqa: RUF001 (dashes people type for "none")
_NONE_LEN = max(map(len, _NONE))
_CHUNK = 1000  # tasks whose pending fields are read together


@dataclass(slots=True)
class Problem:
    line: int | None
    code: str
    message: str
    severity: Literal["error", "warning"] = "error"


@dataclass(slots=True)
class Task:
    """One task as the plan has it: its interpreted fields, and the text of the others."""

    id: str
    title: str
    section: str | None
    index: int  # 0-based index of the task line
    end: int  # 0-based index one past the block's last line
    order: int = 0
    priority: int = 2
    depends_on: tuple[str, ...] = ()
    files: tuple[str, ...] = ()
    alignment_score: int | None = None
    estimated_lines: int | None = None
    tests_defined: bool | None = None
    status: str | None = None
    values: dict[str, str] | None = None  # name -> text, for text fields and fields this module does not know
    keys: dict[str, str] | None = None  # name -> key as written, for fields this module does not know
    body: list[str] | None = None  # indented prose under the task

    @property
    def line(self) -> int:
        return self.index + 1

    def get(self, name: str) -> str | None:
        return self.values.get(name) if self.values else None

    def other_fields(self) -> dict[str, str]:
        """Fields this module does not know, as written (kept, never interpreted)."""
        if not self.keys or not self.values:
            return {}
        return {key: self.values[name] for name, key in self.keys.items()}

    @property
    def text(self) -> str:
        """What the task asks for, in words: the title, the description and any prose under it."""
        parts = [self.title, self.get("description") or "", *(self.body or [])]
        return " ".join(p for p in parts if p)


@dataclass(slots=True)
class Heading:
    index: int
    level: int
    section: str | None  # for headings inside the queue


@dataclass
class Plan:
    """A parsed plan. It keeps its bytes, not its lines: writers split them again when they need to."""

    raw: bytes
    bom: bool
    newline: str
    tasks: list[Task]
    by_id: dict[str, Task]
    problems: list[Problem]
    queue: Heading | None
    queue_end: int  # 0-based index one past the queue's last line
    headings: list[Heading]

    @property
    def lines(self) -> list[str]:
        text = self.raw[3:] if self.bom else self.raw
        # A file that is not UTF-8 reads as a plan with an `encoding` problem, never an exception; its lines keep
        # the undecodable bytes as surrogate escapes (and such a plan is never written).
        return split_lines(text.decode("utf-8", "surrogateescape"))

    @property
    def digest(self) -> str:
        return hashlib.sha256(self.raw).hexdigest()

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]

    @property
    def ok(self) -> bool:
        return not self.errors

    def task(self, task_id: str) -> Task:
        found = self.by_id.get(task_id)
        if found is None:
            raise UsageError(f"there is no task `{task_id}` in the plan: `list_tasks` shows the ids.")
        return found


# -- reading ---------------------------------------------------------------------------------------------


def split_lines(text: str) -> list[str]:
    """Lines with their endings, split on LF only: joining them gives the text back, byte for byte."""
    parts = text.split("\n")
    lines = [p + "\n" for p in parts[:-1]]
    if parts[-1]:
        lines.append(parts[-1])
    return lines


def _split_in_pieces(text: str, size: int = 1 << 16) -> Iterator[str]:
    """`text.split("\n")`, one piece of the text at a time: a large plan's lines are never all held at once
    (their strings, freed in between the tasks the reader keeps, would leave the process larger for good)."""
    start = 0
    while True:
        end = text.find("\n", start + size)
        if end < 0:
            yield from text[start:].split("\n")
            return
        yield from text[start:end].split("\n")
        start = end + 1


def _normal(text: str) -> str:
    """A heading's words: no emoji, marks or punctuation, lower case, single spaces."""
    kept = []
    for ch in unicodedata.normalize("NFKD", text):
        cat = unicodedata.category(ch)
        kept.append(ch.lower() if cat[0] in "LN" else " ")
    return " ".join("".join(kept).split())


def parse(raw: bytes) -> Plan:
    """Read a plan. Problems are collected with line numbers, never raised.

    The collector is paused meanwhile: a 10,000-task plan makes a quarter of a million objects, none of them
    in a cycle, and collecting them while they are made only costs time.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        return _parse(raw)
    finally:
        if enabled:
            gc.enable()


def _parse(raw: bytes) -> Plan:
    problems: list[Problem] = []
    bom = raw.startswith(b"\xef\xbb\xbf")
    try:
        text = raw[3:].decode("utf-8") if bom else raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        problems.append(Problem(line, "encoding", f"the file is not UTF-8 (byte {e.start}); save it as UTF-8"))
        return Plan(raw, bom, "\n", [], {}, problems, None, 0, [])
    reader = _Reader(problems)
    reader.read(text)
    newline = "\r\n" if "\r\n" in text else "\n"
    plan = Plan(raw, bom, newline, reader.tasks, {}, problems, reader.queue, reader.queue_end, reader.headings)
    _index(plan)
    check_graph(plan)
    return plan


_KEYS: dict[str, str | None] = {}  # a field key as written -> its name (None: not a field key)
# A field key as written -> (its name, whether the field-run fast path interprets it: not for fields kept as text).
_HANDLERS: dict[str, tuple[str, bool] | None] = {}
_UNSEEN = ("", False, "")  # (a key _HANDLERS or _FAST has not met yet)
# A field line's text before its colon, `  - Key`, -> (name, interpreted, the key as written); None: not such a line.
_FAST: dict[str, tuple[str, bool, str] | None] = {}


def _fast_handler(head: str) -> tuple[str, bool, str] | None:
    found = None
    if head.startswith("  - "):
        handler = _handler(head[4:])
        if handler is not None:
            found = (handler[0], handler[1], head[4:])
    if len(_FAST) < 10_000:
        _FAST[head] = found
    return found


def _handler(key: str) -> tuple[str, bool] | None:
    name = _name(key)
    found = None if name is None else (name, name not in _TEXT_FIELDS and name in _READERS)
    if len(_HANDLERS) < 10_000:
        _HANDLERS[key] = found
    return found


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


class _Reader:
    """One pass over the lines, tracking comments, code fences, the queue, its sections and the open task."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        self.tasks: list[Task] = []
        self.headings: list[Heading] = []
        self.queue: Heading | None = None
        self.queue_end = 0
        self.section: str | None = None
        self.section_level = 0
        self.task: Task | None = None
        self.seen: set[str] = set()
        # interpreted fields, read in bulk once every line is read: name -> [task, value, task, value, …] (their
        # lines are found again for the rare bad value), or the long way's (task, line index, plain, value as written)
        self.pending: dict[str, list[Task | str]] = {name: [] for name in _READERS}  # (the usual way, flat)
        self.pending_else: dict[str, list[Pending]] = {name: [] for name in _READERS}  # (the long way)
        self.strings: dict[str, str] = {}  # short field texts, one string each however often they occur
        self.unsorted = False
        self.text = ""
        self._split: list[str] | None = None

    def read(self, text: str) -> None:  # noqa: C901, PLR0912, PLR0915 (the hot loop, in one piece for speed)
        in_comment = False
        comment_line = 0  # where the open comment began
        fence: str | None = None
        keys, known, fast, pending, seen, field = _KEYS, _KNOWN, _FAST, self.pending, self.seen, self._field
        strings = self.strings
        task: Task | None = None  # self.task, kept in step
        self.text = text
        self.queue_end = text.count("\n") + 1
        flush_at = _CHUNK
        marks = "<" in text or "`" in text or "~" in text  # (a plan without any: no line to look into for them)
        for i, raw in enumerate(_split_in_pieces(text)):
            if not raw:
                continue
            # The usual field line of the open task, `  - Key: value` (its key, indentation and all, known to _FAST)
            # with nothing in its value that could open or close a comment or a fence: read right away. Any other
            # line goes the long way below, which reads it the same.
            if task is not None and not in_comment:
                key, sep, value = raw.partition(":")
                if sep:
                    handler = fast.get(key, _UNSEEN)
                    if handler is _UNSEEN:
                        handler = _fast_handler(key)
                    if handler is not None and (
                        not marks or ("<" not in value and "`" not in value and "~" not in value)
                    ):
                        name, interpreted, bare = handler
                        task.end = i + 1
                        if name in seen:
                            field(i, bare, name, value.strip())  # met twice
                        elif interpreted:
                            seen.add(name)
                            later = pending[name]
                            later.append(task)
                            later.append(value)
                        else:  # kept as text (and read too when it has a reader: Status, Tests defined)
                            seen.add(name)
                            value = value.strip()
                            if task.values is None:
                                task.values = {}
                            task.values[name] = strings.setdefault(value, value) if len(value) <= 24 else value
                            if name in pending:
                                later = pending[name]
                                later.append(task)
                                later.append(value)
                            if name not in known:
                                self._other(task, bare, name)
                        continue
            line = raw[:-1] if raw and raw[-1] == "\r" else raw
            if not line:
                continue
            if in_comment:
                if "-->" in line:
                    _, in_comment = _comments(line, in_comment=True)
                    comment_line = i
                continue
            if fence is not None:
                if line.lstrip().startswith(fence):
                    fence = None
                continue
            first = line[0]
            if first == "#" and (m := _HEADING.match(line)) is not None:
                self._heading(i, len(m.group(1)), m.group(2))
                task = self.task
                continue
            if ("`" in line or "~" in line) and (fm := _FENCE.match(line)) is not None:
                fence = fm.group(1)
                self._close_task()
                task = None
                continue
            if "<!--" in line:
                line, in_comment = _comments(line, in_comment=False)
                comment_line = i
                if not line.strip():
                    continue
                first = line[0]
            if self.queue is None or i >= self.queue_end:
                continue
            indented = first == " " or first == "\t"  # noqa: PLR1714 (two compares beat a tuple in this loop)
            body = line.lstrip(" \t") if indented else line
            if not body:
                continue
            if task is not None and body[0] in _BULLETS and body[1:2] in (" ", "\t"):
                key, sep, value = body[2:].partition(":")
                if sep:
                    named = keys[key] if key in keys else _name(key)
                    if named is not None and (indented or named in known):
                        task.end = i + 1
                        if named in pending and named not in _TEXT_FIELDS and named not in seen:
                            seen.add(named)  # an interpreted field met for the first time
                            value = value.strip()
                            self.pending_else[named].append((task, i, value.strip("`"), value))
                        else:
                            field(i, key, named, value.strip())
                        continue
            if "**[" in line and (m := _TASK.match(line)) is not None:
                task_id, title = m.groups()
                self._task(i, task_id, title.strip())
                task = self.task
                if len(self.tasks) >= flush_at:  # read what is pending now and then: less memory held at once
                    self._interpret()
                    flush_at += _CHUNK
            elif task is not None:
                if indented:
                    if task.body is None:
                        task.body = []
                    task.body.append(body.strip())
                    task.end = i + 1
                else:
                    self._close_task()
                    task = None
        self._close_task()
        self._interpret()
        if self.unsorted:
            self.problems.sort(key=_in_line_order)
        if fence is not None:
            self.problems.append(Problem(None, "fence", "a code fence (``` or ~~~) is never closed"))
        if in_comment:
            self.problems.append(
                Problem(
                    comment_line + 1,
                    "comment",
                    "an HTML comment (`<!--`) is never closed: everything after it is hidden; close it with `-->`",
                )
            )
        if self.queue is None:
            self.problems.append(
                Problem(
                    None,
                    "no-queue",
                    "the plan has no `## Task Queue` heading, so it holds no tasks; add one "
                    "with the sections `### Ready for Autonomous Execution`, `### Pending Approval` and "
                    "`### Not Ready`",
                )
            )

    def _lines(self) -> list[str]:
        """The text's lines (without endings), split only when a bad value's line has to be found again."""
        if self._split is None:
            self._split = self.text.split("\n")
        return self._split

    def _interpret(self) -> None:
        """Read the interpreted fields' values, all of a kind at once; their problems go in line order."""
        bad: list[Problemish] = []
        for name, usual in self.pending.items():
            other = self.pending_else[name]
            if not usual and not other:
                continue
            tasks: list[Task] = usual[0::2]  # type: ignore[assignment]  # (the even places hold tasks)
            plains: list[str] = list(map(str.strip, usual[1::2]))  # type: ignore[arg-type]  # (no backtick there)
            shown = plains
            at: list[int] | None = None  # the line of each field: only looked up for a bad value
            if other:
                more_tasks, more_lines, more_plains, more_shown = zip(*other, strict=True)
                at = [-1] * len(tasks) + list(more_lines)
                tasks, shown, plains = [*tasks, *more_tasks], [*plains, *more_shown], [*plains, *more_plains]
            _BULK[name](name, _Column(tasks, at, plains, shown, self._lines), bad)
            usual.clear()
            other.clear()
        for task, i, name, expected, value in bad:
            self._bad(i, task, name, expected, value)
            self.unsorted = True  # (their problems come after the others found meanwhile)

    def _bad(self, i: int, task: Task, name: str, expected: str, value: str) -> None:
        code = f"bad-{name.replace('_', '-')}"
        self.problems.append(Problem(i + 1, code, f"task `{task.id}`: {expected} (got {value.strip()!r})"))

    def _heading(self, i: int, level: int, text: str) -> None:
        self._close_task()
        name = _normal(text)
        if self.queue is None or i >= self.queue_end:
            if self.queue is None and "task queue" in name:
                self.queue = Heading(i, level, None)
            self.headings.append(Heading(i, level, None))
            return
        if level <= self.queue.level:
            self.queue_end = i
            self.headings.append(Heading(i, level, None))
            return
        section = _SECTION_NAMES.get(name)
        if section is not None:
            self.section, self.section_level = section, level
        elif self.section is None or level <= self.section_level:
            self.section, self.section_level = None, level  # a heading of its own: not a queue section
        self.headings.append(Heading(i, level, self.section if section else None))

    def _task(self, i: int, task_id: str, title: str) -> None:
        if self.task is not None:
            self.tasks.append(self.task)
            self.task = None
        if not ID_PATTERN.match(task_id):
            self.problems.append(
                Problem(
                    i + 1,
                    "bad-id",
                    f"`[{task_id}]` is not a task id: use letters, digits, `_`, `-`, `.` or "
                    "`:` (at most 64), starting with a letter or digit",
                )
            )
            return
        if self.section is None:
            self.problems.append(
                Problem(
                    i + 1,
                    "no-section",
                    f"task `{task_id}` is not under one of the queue's sections (Ready for "
                    "Autonomous Execution, Pending Approval, Not Ready)",
                )
            )
        if not title:
            self.problems.append(Problem(i + 1, "no-title", f"task `{task_id}` has no title", "warning"))
        order = len(self.tasks)
        self.task = Task(task_id, title, self.section, i, i + 1, order)  # (positional: half the cost of keywords)
        self.seen.clear()

    def _field(self, i: int, key: str, name: str, value: str) -> None:
        """A field kept as text, a field met twice, or one this module does not know."""
        task = self.task
        if task is None:
            return
        if name in self.seen:
            self.problems.append(
                Problem(
                    i + 1,
                    "duplicate-field",
                    f"task `{task.id}` has `{key.strip()}` twice; the first one counts",
                    "warning",
                )
            )
            return
        self.seen.add(name)
        if name in self.pending_else:
            self.pending_else[name].append((task, i, value.strip("`"), value))
        values = task.values
        if values is None:
            values = task.values = {}
        values[name] = self.strings.setdefault(value, value) if len(value) <= 24 else value  # `DONE`: one string
        if name not in _KNOWN:
            self._other(task, key, name)

    def _other(self, task: Task, key: str, name: str) -> None:
        """Remember how a field this module does not know was written."""
        if task.keys is None:
            task.keys = {}
        task.keys[name] = key.strip()

    def _close_task(self) -> None:
        if self.task is not None:
            self.tasks.append(self.task)
            self.task = None


# -- field values: each read by a function of its text, `(value, problem)`; a value of None leaves the default -----


Read = Callable[[str], tuple[object, str | None]]
Problemish = tuple["Task", int, str, str, str]  # task, line index, field name, what is expected, the value
Pending = tuple["Task", int, str, str]  # a field to read: task, line index, its plain text, its value as written


def _read_priority(plain: str) -> tuple[int | None, str | None]:
    m = re.match(r"^P([0-3])\b", plain, re.IGNORECASE)
    word = PRIORITY_WORDS.get(plain.lower())
    if m is None and word is None:
        return None, "Priority is P0, P1, P2 or P3"
    return (int(m.group(1)) if m else int(word or 0)), None


def _read_alignment(plain: str) -> tuple[int | None, str | None]:
    m = re.match(r"^(\d{1,3})(?:\s*/\s*100|\s*%)?$", plain)
    if m is None or int(m.group(1)) > 100:
        return None, "Alignment score is a number from 0 to 100 (e.g. `95/100`)"
    return int(m.group(1)), None


def _read_estimate(plain: str) -> tuple[int | None, str | None]:
    m = re.match(r"^~?\s*(\d{1,7})\b", plain)
    return (int(m.group(1)), None) if m else (None, "Estimated lines is a number (e.g. `10`)")


def _read_depends_on(plain: str) -> tuple[tuple[str, ...] | None, str | None]:
    if len(plain) <= _NONE_LEN and plain.lower() in _NONE:
        return None, None
    compact = plain.replace(", ", ",")  # spaces only after commas: `a b` is two ids, never `ab`
    if _ID_LIST.fullmatch(compact):  # the usual form, `task_1, task_2`: one check instead of one per id
        return tuple(dict.fromkeys(compact.split(","))), None
    ids = [x.strip("[]`* ") for x in re.split(r"[,;\s]+", plain) if x.strip("[]`* ")]
    found = tuple(dict.fromkeys(x for x in ids if ID_PATTERN.match(x)))
    wrong = [x for x in ids if not ID_PATTERN.match(x)]
    return found, f"Depends on lists task ids separated by commas; {', '.join(wrong)} is not one" if wrong else None


def _read_files(plain: str) -> tuple[tuple[str, ...] | None, str | None]:
    if len(plain) <= _NONE_LEN and plain.lower() in _NONE:
        return None, None
    if _UNUSUAL.search(plain) is None and _PLAIN_GLOBS.fullmatch(plain):  # plain relative globs: nothing to clean
        return tuple(map(str.strip, plain.split(","))), None
    globs = [g.strip().strip("`") for g in plain.split(",") if g.strip()]
    try:
        return tuple(clean_glob(g) for g in globs), None
    except UsageError as e:
        return None, f"Files are globs relative to the repository root ({e})"


def _read_tests(plain: str) -> tuple[bool | None, str | None]:
    head = plain[:6].lower()
    if plain.startswith("✅") or head.startswith(("yes", "y ", "true")) or head == "y":
        return True, None
    if plain.startswith("❌") or head.startswith(("no", "n ", "false", "none")) or head == "n":
        return False, None
    words = re.sub(r"[^a-z]+", " ", plain.lower()).split()
    if "✅" in plain or (words and words[0] in {"yes", "y", "true"}):
        return True, None
    if "❌" in plain or (words and words[0] in {"no", "n", "false", "none"}):
        return False, None
    return None, "Tests defined is `Yes (path/to/test.py)` or `No`"


def _read_status(plain: str) -> tuple[str | None, str | None]:
    key = " ".join(re.sub(r"[^a-z' _-]+", " ", plain.lower()).replace("_", " ").split())
    status = STATUSES.get(key) or STATUSES.get(key.replace(" ", "-"))
    if status is None:
        return None, f"Status is one of {', '.join(sorted(set(STATUSES.values())))}"
    return status, None


# The fields this module interprets (each sets the Task attribute of its name), and how their text is read.
_READERS: dict[str, Read] = {
    "priority": _read_priority,
    "depends_on": _read_depends_on,
    "files": _read_files,
    "alignment_score": _read_alignment,
    "estimated_lines": _read_estimate,
    "tests_defined": _read_tests,
    "status": _read_status,
}
# Values read before, by field: `P1`, `95/100`, `DONE` repeat across thousands of tasks and plans.
_READ: dict[str, dict[str, tuple[object, str | None]]] = {name: {} for name in _READERS}
_MEMO_LEN = 64  # values up to this long are remembered, up to _MEMO_MAX of each field
_MEMO_MAX = 4096


@dataclass(slots=True)
class _Column:
    """One field of many tasks, to read at once: the n-th task's field says plains[n] (shown[n] as written), on
    line at[n], or found again in the plan's `lines()` when that is -1 or `at` is None."""

    tasks: Sequence[Task]
    at: list[int] | None
    plains: list[str]
    shown: list[str]
    lines: Callable[[], list[str]]

    def bad(self, n: int, name: str, error: str) -> Problemish:
        task = self.tasks[n]
        i = self.at[n] if self.at is not None else -1
        if i < 0:
            found = _find_field(self.lines(), task, name)
            i = found.index if found is not None else task.index
        return task, i, name, error, self.shown[n]


def _bulk_by_value(name: str, col: _Column, bad: list[Problemish]) -> None:
    """Read a field of many tasks: each distinct value once, then set them all (one C loop when none is bad)."""
    read, memo = _READERS[name], _READ[name]
    table: dict[str, tuple[object, str | None]] = {}
    for plain in set(col.plains):
        found = memo.get(plain)
        if found is None:
            found = read(plain)
            if len(plain) <= _MEMO_LEN and len(memo) < _MEMO_MAX:
                memo[plain] = found
        table[plain] = found
    if all(value is not None and error is None for value, error in table.values()):
        read_as = {plain: value for plain, (value, _) in table.items()}
        deque(map(setattr, col.tasks, repeat(name), map(read_as.__getitem__, col.plains)), 0)
        return
    for n, (task, plain) in enumerate(zip(col.tasks, col.plains, strict=True)):
        value, error = table[plain]
        if value is not None:
            setattr(task, name, value)
        if error:
            bad.append(col.bad(n, name, error))


def _bulk_depends_on(name: str, col: _Column, bad: list[Problemish]) -> None:
    """Dependencies, usually `id, id, …`: split for all tasks in C loops; the rest (none, other separators,
    brackets, bad ids) one by one."""
    plains = col.plains
    usual: list[re.Match[str] | None] = list(map(_ID_LIST_SPACED.fullmatch, plains))
    if all(usual):  # written `a, b`, the usual way: split as it is
        deps = list(map(tuple, map(dict.fromkeys, map(_COMMA_SPACE_SPLIT, plains))))  # (each id once, in order)
    else:
        compact = list(map(_COMMA_SPACE, plains))
        deps = list(map(tuple, map(dict.fromkeys, map(_COMMA_SPLIT, compact))))
        usual = list(map(_ID_LIST.fullmatch, compact))
    _set_column(name, col, bad, deps, usual, _read_depends_on)


def _bulk_files(name: str, col: _Column, bad: list[Problemish]) -> None:
    """Files, usually plain relative globs: split for all tasks in C loops; the rest one by one."""
    plains = col.plains
    usual: list[object] = list(map(_TIGHT_GLOBS.fullmatch, plains))
    if all(usual):  # `a, b` with no other blank: the globs need no stripping
        files = list(map(tuple, map(_COMMA_SPACE_SPLIT, plains)))
    else:
        files = list(map(tuple, map(map, repeat(str.strip), map(_COMMA_SPLIT, plains))))
        usual = list(map(_PLAIN_GLOBS.fullmatch, plains))
    joined = "\n".join(plains)
    if any(part in joined for part in _UNUSUAL_PARTS):
        usual = [ok and _UNUSUAL.search(plain) is None for ok, plain in zip(usual, plains, strict=True)]
    _set_column(name, col, bad, files, usual, _read_files)


def _set_column(
    name: str,
    col: _Column,
    bad: list[Problemish],
    values: list[tuple[str, ...]],
    usual: Sequence[object],
    read: Callable[[str], tuple[tuple[str, ...] | None, str | None]],
) -> None:
    """Set each task's `name` to its value, those not in the usual form (falsy in `usual`) or spelling "none"
    read one by one with `read` instead."""
    plains = col.plains
    if not (all(usual) and min(map(len, plains)) > _NONE_LEN):
        for n, (ok, plain) in enumerate(zip(usual, plains, strict=True)):
            if not ok or (len(plain) <= _NONE_LEN and plain.lower() in _NONE):
                value, error = read(plain)
                values[n] = value or ()
                if error:
                    bad.append(col.bad(n, name, error))
    deque(map(setattr, col.tasks, repeat(name), values), 0)


def _bulk_tests(name: str, col: _Column, bad: list[Problemish]) -> None:
    """Tests defined, usually `✅ Yes (a path)`: one C loop when every value starts with ✅."""
    if all(map(_STARTS_YES, col.plains)):
        deque(map(setattr, col.tasks, repeat(name), repeat(True, len(col.tasks))), 0)
    else:
        _bulk_by_value(name, col, bad)


_BULK: dict[str, Callable[[str, _Column, list[Problemish]], None]] = {name: _bulk_by_value for name in _READERS}
_BULK["depends_on"] = _bulk_depends_on
_BULK["files"] = _bulk_files
_BULK["tests_defined"] = _bulk_tests
_STARTS_YES = methodcaller("startswith", "✅")
_COMMA_SPACE = methodcaller("replace", ", ", ",")
_COMMA_SPLIT = methodcaller("split", ",")
_COMMA_SPACE_SPLIT = methodcaller("split", ", ")


def _in_line_order(problem: Problem) -> tuple[bool, int]:
    return problem.line is None, problem.line or 0


_KNOWN = set(_FIELD_NAMES.values())


def _index(plan: Plan) -> None:
    for task in plan.tasks:
        first = plan.by_id.get(task.id)
        if first is not None:
            plan.problems.append(
                Problem(task.line, "duplicate-id", f"task id `{task.id}` is already used on line {first.line}")
            )
        else:
            plan.by_id[task.id] = task


# -- the dependency graph, in time linear in its size -------------------------------------------------------


def check_graph(plan: Plan) -> None:
    """Missing dependencies and cycles, each reported at the line of the task that names them. Linear time.

    Every cycle has a back edge (a task depending on one later in the file) from its earliest task, and the
    rest of the cycle stays among tasks no earlier than that one. So a plan with no back edge (the usual way
    to write one) has no cycle, and otherwise a search from each back edge, kept to later tasks, finds them;
    past a budget of work proportional to the graph, Kahn's and Tarjan's algorithms take over.
    """
    by_id = plan.by_id
    get = by_id.get
    back: list[tuple[Task, Task]] = []
    edges = 0
    lines: list[str] | None = None  # split once, for the first missing dependency's line
    for task in by_id.values():
        if not task.depends_on:
            continue
        resolved = []
        mine = task.order
        for dep in task.depends_on:
            target = get(dep)
            if target is None:
                message = f"task `{task.id}` depends on `{dep}`, which is not in the plan"
                lines = plan.lines if lines is None else lines
                plan.problems.append(Problem(_field_line(lines, task, "depends_on"), "missing-dependency", message))
                continue
            resolved.append(target.id)  # the task's own string: one object per id, however often it is named
            if target.order >= mine:  # a dependency on a later task, or on itself
                back.append((task, target))
        edges += len(resolved)
        task.depends_on = tuple(resolved)
    if back and not _no_cycle_through(back, by_id, 4 * (len(by_id) + edges)):
        _report_cycles(plan)


def _no_cycle_through(back: list[tuple[Task, Task]], by_id: dict[str, Task], budget: int) -> bool:
    """True when no back edge closes a cycle; False when one does, or when the search ran out of budget."""
    for tail, head in back:
        floor = tail.order
        stack, seen = [head], {head.id}
        while stack:
            budget -= 1
            if budget < 0:
                return False
            node = stack.pop()
            if node is tail:
                return False
            for dep in node.depends_on:
                nxt = by_id[dep]
                if nxt.order >= floor and dep not in seen:
                    seen.add(dep)
                    stack.append(nxt)
    return True


def _report_cycles(plan: Plan) -> None:
    by_id = plan.by_id
    left = _not_orderable(by_id)
    # in plan order, so that the same plan always reports the same cycles
    graph = {t: [d for d in task.depends_on if d in left] for t, task in by_id.items() if t in left}
    for cycle in find_cycles(graph):
        first = by_id[cycle[0]]
        shown = cycle if len(cycle) <= 12 else [*cycle[:6], f"… {len(cycle) - 10} more …", *cycle[-4:]]
        path = " → ".join([*shown, cycle[0]])
        message = f"dependency cycle of {len(cycle)} tasks: {path}; remove one of these dependencies"
        plan.problems.append(Problem(first.line, "cycle", message))


def _not_orderable(by_id: dict[str, Task]) -> set[str]:
    """Kahn's algorithm: peel off tasks whose dependencies are all peeled; what remains is in, or behind, a cycle."""
    index = {task_id: n for n, task_id in enumerate(by_id)}
    waiting = [0] * len(index)
    dependents: list[list[int]] = [[] for _ in index]
    for task_id, task in by_id.items():
        me = index[task_id]
        for dep in task.depends_on:
            waiting[me] += 1
            dependents[index[dep]].append(me)
    ready = [n for n, count in enumerate(waiting) if count == 0]
    while ready:
        for nxt in dependents[ready.pop()]:
            waiting[nxt] -= 1
            if waiting[nxt] == 0:
                ready.append(nxt)
    ids = list(index)
    return {ids[n] for n, count in enumerate(waiting) if count}


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


def find_cycles(graph: dict[str, list[str]]) -> list[list[str]]:
    """One cycle (as a path of nodes) per strongly connected component that has one. O(V + E).

    Tarjan's algorithm, iterative (a 10,000-task chain must not hit Python's recursion limit).
    """
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    cycles: list[list[str]] = []
    counter = 0
    for root in graph:
        if root in index:
            continue
        work: list[tuple[str, int]] = [(root, 0)]
        while work:
            node, edge = work.pop()
            if edge == 0:
                index[node] = low[node] = counter
                counter += 1
                stack.append(node)
                on_stack.add(node)
            successors = graph.get(node, [])
            if edge < len(successors):
                work.append((node, edge + 1))
                nxt = successors[edge]
                if nxt not in index:
                    work.append((nxt, 0))
                elif nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
                continue
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = _pop_component(stack, on_stack, node)
                if len(component) > 1 or node in graph.get(node, []):
                    cycles.append(_cycle_in(component, graph, node))
    return cycles


def _pop_component(stack: list[str], on_stack: set[str], root: str) -> set[str]:
    """Tarjan's step: the nodes above `root` on the stack (and `root`) form one strongly connected component."""
    component: set[str] = set()
    while True:
        member = stack.pop()
        on_stack.discard(member)
        component.add(member)
        if member == root:
            return component


def _cycle_in(component: set[str], graph: dict[str, list[str]], start: str) -> list[str]:
    """A shortest cycle through `start` inside its strongly connected component (the easiest for a person to
    break): a breadth-first search from `start` back to it, in time linear in the component."""
    parent: dict[str, str] = {}
    queue = deque([start])
    while queue:
        node = queue.popleft()
        for nxt in graph[node]:
            if nxt == start:
                path = [node]
                while path[-1] != start:
                    path.append(parent[path[-1]])
                return path[::-1]
            if nxt in component and nxt not in parent:
                parent[nxt] = node
                queue.append(nxt)
    raise AssertionError(f"{start} is in no cycle of its component")  # (a component of one has a self-loop)


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


def ids(tasks: Iterable[Task]) -> list[str]:
    return [t.id for t in tasks]
