"""Reading a plan: one pass over its lines, collecting tasks, headings and problems with line numbers."""

from __future__ import annotations

import gc
import re
import unicodedata
from collections.abc import Iterator

from .fields import _BULK, _READERS, Pending, Problemish, _Column
from .graph import check_graph
from .lines import _BULLETS, _KEYS, _comments, _name
from .model import (
    _KNOWN,
    _SECTION_NAMES,
    _TEXT_FIELDS,
    HOLDING_FIELDS,
    ID_PATTERN,
    READ_AS,
    Heading,
    Plan,
    Problem,
    Task,
)

_HEADING = re.compile(r"^(#{1,6})[ \t]+(.*?)[ \t]*#*[ \t]*$")
_TASK = re.compile(r"^[ \t]*(?:(?:[-*+•]|→|->|\d{1,4}[.)])[ \t]+)?\*\*\[(?P<id>[^\]\n]*)\]\*\*(?P<title>.*)$")
_FENCE = re.compile(r"^[ \t]{0,3}(```|~~~)")


_CHUNK = 1000  # tasks whose pending fields are read together


# -- reading ---------------------------------------------------------------------------------------------


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
        """A value that cannot be read: a warning saying how it was read, kept in the task's data too. A field
        that bears on approval or safety holds the task back instead (fail closed): it is never offered."""
        code = f"bad-{name.replace('_', '-')}"
        got = f"{expected} (got {value.strip()!r})"
        if name in HOLDING_FIELDS:
            if task.held is None:
                task.held = {}
            task.held[name] = got
            said = f"{got}; the task is not offered until this is fixed"
        else:
            said = f"{got}; {READ_AS.get(name, 'ignored')}"
        if task.warnings is None:
            task.warnings = []
        task.warnings.append(said)
        self.problems.append(Problem(i + 1, code, f"task `{task.id}`: {said}", "warning"))

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


def _in_line_order(problem: Problem) -> tuple[bool, int]:
    return problem.line is None, problem.line or 0


def _index(plan: Plan) -> None:
    for task in plan.tasks:
        first = plan.by_id.get(task.id)
        if first is not None:
            plan.problems.append(
                Problem(task.line, "duplicate-id", f"task id `{task.id}` is already used on line {first.line}")
            )
        else:
            plan.by_id[task.id] = task
