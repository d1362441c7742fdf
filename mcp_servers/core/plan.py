"""PROJECT_PLAN.md: read strictly, written line by line, never re-rendered.

The format people already write: a `Task Queue` heading with three sections (*Ready for Autonomous Execution*,
*Pending Approval*, *Not Ready*; recognised with or without emoji, at any heading level below the queue's),
each task a bold `[id]` line followed by `- Key: value` fields.

Reading never raises on content: every problem (a bad value, a duplicate id, a missing dependency, a cycle)
is collected with its line number, and a plan with errors is never written. Writing changes only the lines
it means to change and keeps every other byte: prose, emoji, blank lines, CRLF, a BOM, unknown fields.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
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
_TASK = re.compile(
    r"^[ \t]*(?:(?:[-*+•]|→|->|\d{1,4}[.)])[ \t]+)?\*\*\[(?P<id>[^\]\n]*)\]\*\*[ \t]*(?P<title>.*?)[ \t]*$"
)
_FIELD = re.compile(
    r"^(?P<indent>[ \t]*)(?P<bullet>[-*+•])[ \t]+(?P<key>[A-Za-z][A-Za-z0-9 _'/-]{0,39}?)[ \t]*:(?P<value>.*)$"
)
_FENCE = re.compile(r"^[ \t]{0,3}(```|~~~)")
_NONE = {"", "-", "—", "–", "none", "n/a", "na", "nothing"}  # noqa: RUF001 (dashes people type for "none")


@dataclass(slots=True)
class Problem:
    line: int | None
    code: str
    message: str
    severity: Literal["error", "warning"] = "error"


@dataclass(slots=True)
class PlanField:
    key: str  # as written
    name: str  # normalised: priority, depends_on, ... or the lower-cased key for unknown fields
    value: str
    index: int  # 0-based line index


@dataclass(slots=True)
class Task:
    id: str
    title: str
    section: str | None
    index: int  # 0-based index of the task line
    end: int  # 0-based index one past the block's last line
    fields: list[PlanField] = field(default_factory=list)
    body: list[str] = field(default_factory=list)
    priority: int = 2
    depends_on: tuple[str, ...] = ()
    files: tuple[str, ...] = ()
    alignment_score: int | None = None
    estimated_lines: int | None = None
    tests_defined: bool | None = None
    status: str | None = None
    order: int = 0

    @property
    def line(self) -> int:
        return self.index + 1

    def get(self, name: str) -> str | None:
        for f in self.fields:
            if f.name == name:
                return f.value
        return None

    @property
    def text(self) -> str:
        """What the task asks for, in words: the title, the description and any prose under it."""
        parts = [self.title, self.get("description") or "", *self.body]
        return " ".join(p for p in parts if p)


@dataclass(slots=True)
class Heading:
    index: int
    level: int
    section: str | None  # for headings inside the queue


@dataclass
class Plan:
    raw: bytes
    bom: bool
    newline: str
    lines: list[str]
    tasks: list[Task]
    by_id: dict[str, Task]
    problems: list[Problem]
    queue: Heading | None
    queue_end: int  # 0-based index one past the queue's last line
    headings: list[Heading]

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
    """Read a plan. Problems are collected with line numbers, never raised."""
    problems: list[Problem] = []
    bom = raw.startswith(b"\xef\xbb\xbf")
    try:
        text = raw[3:].decode("utf-8") if bom else raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        problems.append(Problem(line, "encoding", f"the file is not UTF-8 (byte {e.start}); save it as UTF-8"))
        return Plan(raw, bom, "\n", [], [], {}, problems, None, 0, [])
    lines = split_lines(text)
    newline = "\r\n" if "\r\n" in text else "\n"
    reader = _Reader(lines, problems)
    reader.run()
    plan = Plan(raw, bom, newline, lines, reader.tasks, {}, problems, reader.queue, reader.queue_end, reader.headings)
    _index(plan)
    check_graph(plan)
    return plan


class _Reader:
    """One pass over the lines, tracking comments, code fences, the queue, its sections and the open task."""

    def __init__(self, lines: list[str], problems: list[Problem]) -> None:
        self.lines = lines
        self.problems = problems
        self.tasks: list[Task] = []
        self.headings: list[Heading] = []
        self.queue: Heading | None = None
        self.queue_end = len(lines)
        self.section: str | None = None
        self.section_level = 0
        self.task: Task | None = None

    def run(self) -> None:
        in_comment = False
        fence: str | None = None
        for i, raw in enumerate(self.lines):
            line = raw.rstrip("\r\n")
            if in_comment:
                in_comment = "-->" not in line
                continue
            if fence is not None:
                if line.lstrip().startswith(fence):
                    fence = None
                continue
            if (m := _FENCE.match(line)) is not None:
                fence = m.group(1)
                self._close_task()
                continue
            if "<!--" in line:
                start = line.index("<!--")
                in_comment = "-->" not in line[start + 4 :]
                line = line[:start]
                if not line.strip():
                    continue
            self._line(i, line)
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

    def _line(self, i: int, line: str) -> None:
        if line.startswith("#") and (m := _HEADING.match(line)) is not None:
            self._heading(i, len(m.group(1)), m.group(2))
            return
        if self.queue is None or i >= self.queue_end:
            return
        if "**[" in line and (m := _TASK.match(line)) is not None:
            self._task(i, m.group("id"), m.group("title"))
            return
        if self.task is None:
            return
        if not line.strip():
            return  # blank lines inside a task neither end it nor belong to it
        m = _FIELD.match(line)
        if m is not None and (m.group("indent") or m.group("key").strip().lower() in _FIELD_NAMES):
            self._field(i, m.group("key").strip(), m.group("value").strip())
        elif line[:1] in (" ", "\t"):
            self.task.body.append(line.strip())
            self.task.end = i + 1
        else:
            self._close_task()

    def _heading(self, i: int, level: int, text: str) -> None:
        self._close_task()
        name = _normal(text)
        if self.queue is None or i >= self.queue_end:
            if self.queue is None and "task queue" in name:
                self.queue = Heading(i, level, None)
                self.queue_end = len(self.lines)
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

    def _field(self, i: int, key: str, value: str) -> None:
        task = self.task
        if task is None:
            return
        name = _FIELD_NAMES.get(" ".join(key.lower().replace("_", " ").split()), key.lower())
        if any(f.name == name for f in task.fields):
            self.problems.append(
                Problem(
                    i + 1, "duplicate-field", f"task `{task.id}` has `{key}` twice; the first one counts", "warning"
                )
            )
        else:
            _interpret(task, name, value, i + 1, self.problems)
        task.fields.append(PlanField(key, name, value, i))
        task.end = i + 1

    def _close_task(self) -> None:
        if self.task is not None:
            self.tasks.append(self.task)
            self.task = None


def _interpret(task: Task, name: str, value: str, line: int, problems: list[Problem]) -> None:
    """Turn a known field's text into its value; a value that cannot be read is an error on its line."""
    reader = _READERS.get(name)
    if reader is None:
        return
    expected = reader(task, value.strip().strip("`"))
    if expected:
        code = f"bad-{name.replace('_', '-')}"
        problems.append(Problem(line, code, f"task `{task.id}`: {expected} (got {value!r})"))


def _priority(task: Task, plain: str) -> str | None:
    m = re.match(r"^P([0-3])\b", plain, re.IGNORECASE)
    word = PRIORITY_WORDS.get(plain.lower())
    if m is None and word is None:
        return "Priority is P0, P1, P2 or P3"
    task.priority = int(m.group(1)) if m else int(word or 0)
    return None


def _depends_on(task: Task, plain: str) -> str | None:
    if plain.lower() in _NONE:
        return None
    ids = [x.strip("[]`* ") for x in re.split(r"[,;\s]+", plain) if x.strip("[]`* ")]
    task.depends_on = tuple(dict.fromkeys(x for x in ids if ID_PATTERN.match(x)))
    wrong = [x for x in ids if not ID_PATTERN.match(x)]
    return f"Depends on lists task ids separated by commas; {', '.join(wrong)} is not one" if wrong else None


def _files(task: Task, plain: str) -> str | None:
    globs = [] if plain.lower() in _NONE else [g.strip().strip("`") for g in plain.split(",") if g.strip()]
    try:
        task.files = tuple(clean_glob(g) for g in globs)
    except UsageError as e:
        return f"Files are globs relative to the repository root ({e})"
    return None


def _alignment(task: Task, plain: str) -> str | None:
    m = re.match(r"^(\d{1,3})(?:\s*/\s*100|\s*%)?$", plain)
    if m is None or int(m.group(1)) > 100:
        return "Alignment score is a number from 0 to 100 (e.g. `95/100`)"
    task.alignment_score = int(m.group(1))
    return None


def _estimate(task: Task, plain: str) -> str | None:
    m = re.match(r"^~?\s*(\d{1,7})\b", plain)
    if m is None:
        return "Estimated lines is a number (e.g. `10`)"
    task.estimated_lines = int(m.group(1))
    return None


def _tests(task: Task, plain: str) -> str | None:
    words = re.sub(r"[^a-z]+", " ", plain.lower()).split()
    if "✅" in plain or (words and words[0] in {"yes", "y", "true"}):
        task.tests_defined = True
    elif "❌" in plain or (words and words[0] in {"no", "n", "false", "none"}):
        task.tests_defined = False
    else:
        return "Tests defined is `Yes (path/to/test.py)` or `No`"
    return None


def _status(task: Task, plain: str) -> str | None:
    key = " ".join(re.sub(r"[^a-z' _-]+", " ", plain.lower()).replace("_", " ").split())
    status = STATUSES.get(key) or STATUSES.get(key.replace(" ", "-"))
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
    """Missing dependencies and cycles, each reported at the line of the task that names them."""
    for task in plan.by_id.values():
        for dep in task.depends_on:
            if dep not in plan.by_id:
                line = next((f.index + 1 for f in task.fields if f.name == "depends_on"), task.line)
                plan.problems.append(
                    Problem(
                        line, "missing-dependency", f"task `{task.id}` depends on `{dep}`, which is not in the plan"
                    )
                )
    for cycle in find_cycles({t.id: [d for d in t.depends_on if d in plan.by_id] for t in plan.by_id.values()}):
        first = plan.by_id[cycle[0]]
        path = " → ".join([*cycle, cycle[0]])
        plan.problems.append(
            Problem(first.line, "cycle", f"dependency cycle: {path}; remove one of these dependencies")
        )


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
    name = _FIELD_NAMES.get(key.lower(), key.lower())
    lines = list(plan.lines)
    existing = next((f for f in task.fields if f.name == name), None)
    if existing is not None:
        old = lines[existing.index]
        prefix = old[: old.index(":", old.index(existing.key)) + 1]
        lines[existing.index] = f"{prefix} {value}{_ending(old, plan)}"
    else:
        at = task.end
        indent = _field_indent(plan, task)
        ending = _ending(lines[at - 1], plan)
        if not lines[at - 1].endswith("\n"):
            lines[at - 1] += plan.newline
        lines.insert(at, f"{indent}{key}: {value}{ending if at < len(plan.lines) else ''}")
    return render(plan, lines)


def _field_indent(plan: Plan, task: Task) -> str:
    if task.fields:
        m = _FIELD.match(plan.lines[task.fields[0].index].rstrip("\r\n"))
        if m:
            return f"{m.group('indent')}{m.group('bullet')} "
    return "  - "


def move_task(plan: Plan, task_id: str, section: str) -> bytes:
    """The plan with a task's block (its line, fields and prose) moved to the end of another section."""
    task = plan.task(task_id)
    if task.section == section:
        return plan.raw
    block = plan.lines[task.index : task.end]
    if not block[-1].endswith("\n"):
        block[-1] += plan.newline
    rest = plan.lines[: task.index] + plan.lines[task.end :]
    shift = task.end - task.index
    moved = Plan(plan.raw, plan.bom, plan.newline, rest, [], {}, [], plan.queue, plan.queue_end - shift, [])
    for h in plan.headings:
        moved.headings.append(Heading(h.index - shift if h.index > task.index else h.index, h.level, h.section))
    return render(plan, _insert_in_section(moved, section, block))


def append_task(plan: Plan, section: str, block: Sequence[str]) -> bytes:
    """The plan with new task lines (already formatted, no line endings) at the end of a section."""
    return render(plan, _insert_in_section(plan, section, [line + plan.newline for line in block]))


def _insert_in_section(plan: Plan, section: str, block: list[str]) -> list[str]:
    """Insert `block` after the last non-blank line of `section` (creating the section when it is missing)."""
    lines = list(plan.lines)
    heading = next((h for h in reversed(plan.headings) if h.section == section), None)
    if heading is None:
        if plan.queue is None:
            raise UsageError("the plan has no `## Task Queue` heading to add a section to; add one first.")
        level = "#" * (plan.queue.level + 1)
        at = _last_content(lines, plan.queue.index, plan.queue_end) + 1
        if lines and not lines[-1].endswith("\n") and at == len(lines):
            lines[-1] += plan.newline
        lines[at:at] = [plan.newline, f"{level} {SECTION_TITLES[section]}{plan.newline}", plan.newline, *block]
        return lines
    end = next((h.index for h in plan.headings if h.index > heading.index and h.level <= heading.level), len(lines))
    end = min(end, plan.queue_end) if plan.queue_end > heading.index else end
    at = _last_content(lines, heading.index, end) + 1
    if at == heading.index + 1:
        block = [plan.newline, *block]  # a blank line between a heading and its first task
    if at > 0 and not lines[at - 1].endswith("\n"):
        lines[at - 1] += plan.newline
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
