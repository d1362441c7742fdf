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
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
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
_FIELD = re.compile(
    r"^(?P<indent>[ \t]*)(?P<bullet>[-*+•])[ \t]+(?P<key>[A-Za-z][A-Za-z0-9 _'/-]{0,39}?)[ \t]*:(?P<value>.*)$"
)
_FENCE = re.compile(r"^[ \t]{0,3}(```|~~~)")
_KEY = re.compile(r"^[A-Za-z][A-Za-z0-9 _'/-]{0,39}$")
_ID_LIST = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]*(?:,[A-Za-z0-9][A-Za-z0-9_.:-]*)*")
# A Files value with none of these needs no cleaning (clean_glob refuses or rewrites them).
_UNUSUAL = re.compile(r"\\|`|\.\.|//|\./|\0|\t|,\s*,")
# Field names whose text is kept as written (shown to people, or free text); the others are kept interpreted.
_TEXT_FIELDS = {"status", "reason", "description", "safety_check", "proposed_by", "tests_defined"}
_NONE = {"", "-", "—", "–", "none", "n/a", "na", "nothing"}  # noqa: RUF001 (dashes people type for "none")


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
        return split_lines(text.decode("utf-8"))

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
# A field key as written -> (its name, the reader for the field-run fast path, None for fields kept as text).
_HANDLERS: dict[str, tuple[str, Callable[[Task, str], str | None] | None] | None] = {}


def _handler(key: str) -> tuple[str, Callable[[Task, str], str | None] | None] | None:
    name = _name(key)
    found = None if name is None else (name, None if name in _TEXT_FIELDS else _READERS.get(name))
    if len(_HANDLERS) < 10_000:
        _HANDLERS[key] = found
    return found


_INTERNED: dict[str, str] = {}


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

    def read(self, text: str) -> None:  # noqa: C901, PLR0912, PLR0915 (the hot loop, in one piece for speed)
        lines = text.split("\n")
        self.queue_end = count = len(lines)
        in_comment = False
        fence: str | None = None
        keys, known, readers = _KEYS, _KNOWN, _READERS
        i = -1
        while i + 1 < count:
            i += 1
            raw = lines[i]
            line = raw[:-1] if raw and raw[-1] == "\r" else raw
            if not line:
                continue
            if in_comment:
                in_comment = "-->" not in line
                continue
            if fence is not None:
                if line.lstrip().startswith(fence):
                    fence = None
                continue
            first = line[0]
            if first == "#" and (m := _HEADING.match(line)) is not None:
                self._heading(i, len(m.group(1)), m.group(2))
                continue
            if ("`" in line or "~" in line) and (fm := _FENCE.match(line)) is not None:
                fence = fm.group(1)
                self._close_task()
                continue
            if "<!--" in line:
                start = line.index("<!--")
                in_comment = "-->" not in line[start + 4 :]
                line = line[:start]
                if not line.strip():
                    continue
                first = line[0]
            if self.queue is None or i >= self.queue_end:
                continue
            task = self.task
            indented = first == " " or first == "\t"  # noqa: PLR1714 (two compares beat a tuple in this loop)
            body = line.lstrip(" \t") if indented else line
            if not body:
                continue
            if task is not None and body[0] in "-*+•" and body[1:2] in (" ", "\t"):
                key, sep, value = body[2:].partition(":")
                if sep:
                    name = keys[key] if key in keys else _name(key)
                    if name is not None and (indented or name in known):
                        task.end = i + 1
                        reader = readers.get(name)
                        if reader is not None and name not in _TEXT_FIELDS and name not in self.seen:
                            self.seen.add(name)  # the fast path: an interpreted field met for the first time
                            expected = reader(task, value.strip().strip("`"))
                            if expected:
                                self._bad(i, task, name, expected, value)
                        else:
                            self._field(i, key, name, value.strip())
                        continue
            if "**[" in body[:10] and (m := _TASK.match(line)) is not None:
                self._task(i, m.group("id"), m.group("title").strip())
                i = self._fields(lines, i)
            elif task is not None:
                if indented:
                    if task.body is None:
                        task.body = []
                    task.body.append(body.strip())
                    task.end = i + 1
                else:
                    self._close_task()
        self._close_task()
        if fence is not None:
            self.problems.append(Problem(None, "fence", "a code fence (``` or ~~~) is never closed"))
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

    def _fields(self, lines: list[str], i: int) -> int:
        """Read the field lines right under task line `i` in a tight loop; the index of the last line read.

        Each line is handled exactly as the main loop would handle it. Anything the main loop treats another way
        (a blank line, a comment, a fence, prose, a key that is not one) ends this loop, and the main loop goes on
        from there.
        """
        task, handlers, seen = self.task, _HANDLERS, self.seen
        if task is None:
            return i
        count = len(lines)
        while i + 1 < count:
            line = lines[i + 1]
            if line[:4] == "  - ":  # the usual indentation: no need to look for other bullets
                key, sep, value = line[4:].partition(":")
            else:
                body = line.lstrip(" \t")
                if body is line or body[:1] not in ("-", "*", "+", "•") or body[1:2] not in (" ", "\t"):
                    break
                key, sep, value = body[2:].partition(":")
            if not sep or "<!--" in line or "```" in line or "~~~" in line:
                break
            handler = handlers[key] if key in handlers else _handler(key)
            if handler is None:
                break
            i += 1
            name, reader = handler
            if reader is not None and name not in seen:
                seen.add(name)
                expected = reader(task, value.strip(" \t\r`"))
                if expected:
                    self._bad(i, task, name, expected, value)
            else:
                self._field(i, key, name, value.strip())
            task.end = i + 1
        return i

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
        self._close_task()
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
        self.task = Task(id=task_id, title=title, section=self.section, index=i, end=i + 1, order=len(self.tasks))
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
        reader = _READERS.get(name)
        if reader is not None:
            expected = reader(task, value.strip("`"))
            if expected:
                self._bad(i, task, name, expected, value)
        values = task.values
        if values is None:
            values = task.values = {}
        values[name] = _INTERNED.setdefault(value, value) if len(value) <= 24 else value
        if name not in _KNOWN:
            if task.keys is None:
                task.keys = {}
            task.keys[name] = key.strip()

    def _close_task(self) -> None:
        if self.task is not None:
            self.tasks.append(self.task)
            self.task = None


_CACHED: dict[tuple[str, str], tuple[int | None, str | None]] = {}


def _cached(
    name: str, plain: str, read: Callable[[str], tuple[int | None, str | None]]
) -> tuple[int | None, str | None]:
    """A short field value read once: `P1`, `95/100` and `10` repeat across thousands of tasks."""
    key = (name, plain)
    found = _CACHED.get(key)
    if found is None:
        found = read(plain)
        if len(_CACHED) < 10_000 and len(plain) <= 32:
            _CACHED[key] = found
    return found


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


def _priority(task: Task, plain: str) -> str | None:
    value, error = _cached("priority", plain, _read_priority)
    if value is not None:
        task.priority = value
    return error


def _depends_on(task: Task, plain: str) -> str | None:
    if plain.lower() in _NONE:
        return None
    compact = plain.replace(" ", "")
    if _ID_LIST.fullmatch(compact):  # the usual form, `task_1, task_2`: one check instead of one per id
        ids = compact.split(",")
        if len(compact) <= 64 or max(map(len, ids)) <= 64:
            task.depends_on = tuple(ids) if len(set(ids)) == len(ids) else tuple(dict.fromkeys(ids))
            return None
    ids = [x.strip("[]`* ") for x in re.split(r"[,;\s]+", plain) if x.strip("[]`* ")]
    task.depends_on = tuple(dict.fromkeys(x for x in ids if ID_PATTERN.match(x)))
    wrong = [x for x in ids if not ID_PATTERN.match(x)]
    return f"Depends on lists task ids separated by commas; {', '.join(wrong)} is not one" if wrong else None


def _files(task: Task, plain: str) -> str | None:
    if plain.lower() in _NONE:
        return None
    if _UNUSUAL.search(plain) is None:  # plain relative globs (the usual case): nothing to clean
        simple = tuple(g.strip() for g in plain.split(","))
        if all(g and g[0] not in "-/~" and g[1:2] != ":" for g in simple):
            task.files = simple
            return None
    globs = [g.strip().strip("`") for g in plain.split(",") if g.strip()]
    try:
        task.files = tuple(clean_glob(g) for g in globs)
    except UsageError as e:
        return f"Files are globs relative to the repository root ({e})"
    return None


def _alignment(task: Task, plain: str) -> str | None:
    value, error = _cached("alignment_score", plain, _read_alignment)
    task.alignment_score = value
    return error


def _estimate(task: Task, plain: str) -> str | None:
    value, error = _cached("estimated_lines", plain, _read_estimate)
    task.estimated_lines = value
    return error


def _tests(task: Task, plain: str) -> str | None:
    head = plain[:6].lower()
    if plain.startswith("✅") or head.startswith(("yes", "y ", "true")) or head == "y":
        task.tests_defined = True
    elif plain.startswith("❌") or head.startswith(("no", "n ", "false", "none")) or head == "n":
        task.tests_defined = False
    else:
        words = re.sub(r"[^a-z]+", " ", plain.lower()).split()
        if "✅" in plain or (words and words[0] in {"yes", "y", "true"}):
            task.tests_defined = True
        elif "❌" in plain or (words and words[0] in {"no", "n", "false", "none"}):
            task.tests_defined = False
        else:
            return "Tests defined is `Yes (path/to/test.py)` or `No`"
    return None


_STATUS_OF: dict[str, str | None] = {}


def _status(task: Task, plain: str) -> str | None:
    status = _STATUS_OF.get(plain, "")
    if status == "":
        key = " ".join(re.sub(r"[^a-z' _-]+", " ", plain.lower()).replace("_", " ").split())
        status = STATUSES.get(key) or STATUSES.get(key.replace(" ", "-"))
        if len(_STATUS_OF) < 1000:
            _STATUS_OF[plain] = status
    if status is None:
        return f"Status is one of {', '.join(sorted(set(STATUSES.values())))}"
    task.status = status
    return None


_READERS: dict[str, Callable[[Task, str], str | None]] = {
    "priority": _priority,
    "depends_on": _depends_on,
    "files": _files,
    "alignment_score": _alignment,
    "estimated_lines": _estimate,
    "tests_defined": _tests,
    "status": _status,
}
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
    back: list[tuple[Task, Task]] = []
    edges = 0
    for task in by_id.values():
        if not task.depends_on:
            continue
        resolved = []
        for dep in task.depends_on:
            target = by_id.get(dep)
            if target is None:
                message = f"task `{task.id}` depends on `{dep}`, which is not in the plan"
                plan.problems.append(Problem(_field_line(plan, task, "depends_on"), "missing-dependency", message))
                continue
            resolved.append(target.id)  # the task's own string: one object per id, however often it is named
            if target.order > task.order:
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
    for cycle in find_cycles({t: [d for d in by_id[t].depends_on if d in left] for t in left}):
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


def _field_line(plan: Plan, task: Task, name: str) -> int:
    """The line of a task's field (for messages); the task's line when it cannot be found."""
    index = _field_index(plan.lines, task, name)
    return index + 1 if index is not None else task.line


def _field_index(lines: Sequence[str], task: Task, name: str) -> int | None:
    """The index of the line holding a task's field `name`, found again in the text (writers use it)."""
    for index in range(task.index + 1, task.end):
        m = _FIELD.match(lines[index].rstrip("\r\n"))
        if m and _name(m.group("key")) == name:
            return index
    return None


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
    """A concrete cycle inside a strongly connected component: walk inside it until a node repeats."""
    path: list[str] = []
    seen: dict[str, int] = {}
    node = start
    while node not in seen:
        seen[node] = len(path)
        path.append(node)
        node = next(n for n in graph[node] if n in component)
    return path[seen[node] :]


# -- writing: line edits on the original text --------------------------------------------------------------


def render(plan: Plan, lines: Sequence[str]) -> bytes:
    """The bytes of a plan whose lines are `lines` (the BOM, if there was one, kept)."""
    return ("\ufeff" if plan.bom else "").encode() + "".join(lines).encode("utf-8")


def _ending(line: str, plan: Plan) -> str:
    if line.endswith("\r\n"):
        return "\r\n"
    return "\n" if line.endswith("\n") else plan.newline


def set_field(plan: Plan, task_id: str, key: str, value: str) -> bytes:
    """The plan with one field of one task set: its line rewritten, or a new line after the task's last field."""
    task = plan.task(task_id)
    value = one_line(value)
    name = _name(key) or key.lower()
    lines = plan.lines
    existing = _field_index(lines, task, name)
    if existing is not None:
        old = lines[existing]
        m = _FIELD.match(old.rstrip("\r\n"))
        assert m is not None  # noqa: S101 (_field_index matched this line)
        prefix = old[: m.start("value")]
        lines[existing] = f"{prefix} {value}{_ending(old, plan)}"
    else:
        at = task.end
        indent = _field_indent(lines, task)
        ending = _ending(lines[at - 1], plan)
        if not lines[at - 1].endswith("\n"):
            lines[at - 1] += plan.newline
        lines.insert(at, f"{indent}{key}: {value}{ending if at < len(lines) else ''}")
    return render(plan, lines)


def _field_indent(lines: Sequence[str], task: Task) -> str:
    for index in range(task.index + 1, task.end):
        m = _FIELD.match(lines[index].rstrip("\r\n"))
        if m:
            return f"{m.group('indent')}{m.group('bullet')} "
    return "  - "


def move_task(plan: Plan, task_id: str, section: str) -> bytes:
    """The plan with a task's block (its line, fields and prose) moved to the end of another section."""
    task = plan.task(task_id)
    if task.section == section:
        return plan.raw
    lines = plan.lines
    block = lines[task.index : task.end]
    if not block[-1].endswith("\n"):
        block[-1] += plan.newline
    rest = lines[: task.index] + lines[task.end :]
    shift = task.end - task.index
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
    end = next((h.index for h in where.headings if h.index > heading.index and h.level <= heading.level), len(lines))
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


def one_line(text: str) -> str:
    """Text made safe for one line of the plan: no line breaks, no control characters."""
    cleaned = "".join(" " if unicodedata.category(ch) in {"Cc", "Zl", "Zp"} else ch for ch in text)
    return " ".join(cleaned.split())


def ids(tasks: Iterable[Task]) -> list[str]:
    return [t.id for t in tasks]
