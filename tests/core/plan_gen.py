"""Hypothesis strategies for PROJECT_PLAN.md files, and the expectations they carry.

A generated plan is built line by line from plain data (tasks with their sections, fields, priorities,
dependencies on earlier tasks only), so a test knows exactly what `parse` must find without asking `parse`.
Everything a person writes around the tasks is mixed in: prose before and after the queue, decoy headings,
HTML comments and code fences that hold look-alike tasks, blank lines, unknown fields, emoji, CRLF, a BOM.
"""

from __future__ import annotations

import functools
import string
import unicodedata
from dataclasses import dataclass, field

from hypothesis import strategies as st

SECTIONS = ("ready", "pending", "not-ready")
SECTION_HEADINGS = {
    "ready": ["Ready for Autonomous Execution ✅", "Ready for Autonomous Execution",
              "✅ Ready for autonomous execution", "READY FOR AUTONOMOUS EXECUTION", "Ready", "🚀 Ready:"],
    "pending": ["Pending Approval ⏳", "Pending Approval", "⏳ pending approval", "Pending", "PENDING APPROVAL 👀"],
    "not-ready": ["Not Ready ❌", "Not Ready", "❌ not ready", "NOT READY 🚧", "Not ready:"],
}  # fmt: skip
QUEUE_TITLES = ["Task Queue", "📋 Task Queue", "The Task Queue (live)", "TASK QUEUE", "Task queue ✨"]

# Words that no forbidden-operation rule of the default policy matches, for tasks the queue must accept.
SAFE_WORDS = ["Tidy", "the", "parser", "helper", "docs", "for", "rename", "format", "output", "añadir", "naïve",
              "überprüfen", "日本語", "🚀", "✨", "README", "log", "lines", "café", "Ωmega", "improve",
              "errors"]  # fmt: skip

# Status words as people write them, and what they mean: the reference model's own table.
STATUS_WORDS = {
    "READY": "ready", "todo": "ready", "Not started": "ready", "DONE": "done", "Done ✅": "done",
    "completed": "done", "In Progress": "in-progress", "in-progress": "in-progress", "WIP": "in-progress",
    "BLOCKED": "blocked", "cancelled": "cancelled", "wontfix": "cancelled", "PROPOSED": "proposed",
    "failed": "failed",
}  # fmt: skip
PRIORITY_FORMS = {"P0": 0, "P1": 1, "P2": 2, "P3": 3, "p1": 1, "P1 (high)": 1, "P3 - someday": 3, "high": 1,
                  "Low": 3, "critical": 0, "medium": 2}  # fmt: skip
DEP_KEYS = ["Depends on", "Dependencies", "Depends", "depends on"]
UNKNOWN_KEYS = ["Owner", "Notes", "Epic", "Reviewer", "Due", "Link", "Effort_hours", "Area/Component", "Team's note",
                "Ticket", "Estimate_hours"]  # fmt: skip
KNOWN = {"priority", "depends_on", "files", "alignment_score", "estimated_lines", "tests_defined", "status",
         "reason", "description", "safety_check"}  # fmt: skip
NONE_WORDS = ["none", "-", "—", "n/a", "None"]


def _words(text: str) -> str:
    """A heading's words as a reader of headings sees them: letters and digits, lower case, single spaces."""
    kept = [ch.lower() if unicodedata.category(ch)[0] in "LN" else " " for ch in unicodedata.normalize("NFKD", text)]
    return " ".join("".join(kept).split())


def _clean(text: str) -> bool:
    """Text that cannot open or close a comment or a fence, or start a task, wherever it lands."""
    return not any(s in text for s in ("<!--", "-->", "```", "~~~", "**[", "\r", "\n"))


# Printable ASCII and a sample of the unicode people put in plans: accents, ligatures and letters whose case or
# normal form changes their length, CJK, right-to-left, combining marks, zero-width and no-break spaces, emoji with
# joiners, flags and skin tones. (Never control characters or line breaks: those end lines.)
_UNICODE = list(
    "éßİıﬁ①Ⅻñüø日本語中文한국어שלוםمرحباé\u0301\u200b\u200d\u00a0\u3000\ufeff“”‘’—–…•→✓✅❌⏳📋🚀✨👩‍💻🇫🇷👍🏽🧪"
)
_CHARS = st.sampled_from(
    sorted(set(string.ascii_letters + string.digits + string.punctuation + " " + "".join(_UNICODE)))
)


def free_text(min_size: int = 0, max_size: int = 16) -> st.SearchStrategy[str]:
    """Arbitrary unicode words, single-spaced and trimmed (so `one_line` leaves them as they are)."""
    return (
        st.text(_CHARS, min_size=min_size, max_size=max_size)
        .map(lambda s: " ".join(s.split()))
        .filter(lambda s: len(s) >= min_size and _clean(s))
    )


def safe_text(min_words: int = 1, max_words: int = 5) -> st.SearchStrategy[str]:
    return st.lists(st.sampled_from(SAFE_WORDS), min_size=min_words, max_size=max_words).map(" ".join)


def prose_line(texts: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    """A line of prose at the left margin: starts with a letter, so it is never a heading, a bullet or a task."""
    return st.tuples(st.sampled_from(string.ascii_letters), texts).map(lambda t: (t[0] + t[1]).rstrip())


# Task ids: every character an id may have (letters, digits, `_`, `.`, `:`, `-`), without a regex strategy (slow).
ids = st.tuples(
    st.sampled_from(["task_", "T", "api.v", "ui:", "", "A-", "fix_", "x", "Q3.", "b-"]), st.integers(0, 120)
).map(lambda t: f"{t[0]}{t[1]}")


@dataclass
class GenTask:
    id: str
    title: str
    section: str
    priority: int = 2
    deps: tuple[str, ...] = ()
    status: str | None = None  # the meaning, from STATUS_WORDS
    unsafe: bool = False  # deliberately fails validate_task
    alignment: int | None = None
    estimate: int | None = None
    tests: bool | None = None
    files: tuple[str, ...] = ()
    # (key, value, name, line index) of each field, in order; name: the field's meaning, or the lower-cased key
    fields: list[tuple[str, str, str, int]] = field(default_factory=list)
    index: int = 0  # 0-based line of the task line
    end: int = 0  # one past the block's last line (the last field or prose line of the task)
    order: int = 0


@dataclass
class GenPlan:
    raw: bytes
    lines: list[str]  # with their endings, as `parse` must split them
    tasks: list[GenTask]
    bom: bool
    newline: str
    final_newline: bool

    @property
    def by_id(self) -> dict[str, GenTask]:
        return {t.id: t for t in self.tasks}


TEXT_FIELDS = ("status", "reason", "description", "safety_check", "tests_defined")
FILES = {"src/app/*.py": ("src/app/*.py",), "src/**, tests/test_calc.py": ("src/**", "tests/test_calc.py"),
         "`src/app/calc.py`": ("src/app/calc.py",), "docs/*.md": ("docs/*.md",)}  # fmt: skip


class _Builder:
    def __init__(self) -> None:
        self.out: list[str] = []

    def add(self, *lines: str) -> None:
        self.out.extend(lines)


# What comments and fences hide (inside a task's block too: a commented-out field line is not the field)
_DECOYS = ["- **[ghost]** a task inside a comment or a fence", "## Task Queue", "### Ready for Autonomous Execution ✅",
           "  - Status: DONE", ""]  # fmt: skip


@dataclass(frozen=True)
class _Kit:
    """The strategies of one flavour of plan, built once (building strategies inside a draw is slow)."""

    texts: st.SearchStrategy[str]
    titles: st.SearchStrategy[str]
    prose: st.SearchStrategy[str]
    decoys: st.SearchStrategy[list[str]]
    paragraph: st.SearchStrategy[list[str]]
    queue_safe: bool


@functools.cache
def _kit(queue_safe: bool) -> _Kit:
    texts = safe_text() if queue_safe else free_text(min_size=1)
    prose = prose_line(texts)
    return _Kit(
        texts=texts,
        titles=texts if queue_safe else st.one_of(st.just(""), texts),
        prose=prose,
        decoys=st.lists(st.one_of(prose, st.sampled_from(_DECOYS)), max_size=3),
        paragraph=st.lists(prose, min_size=1, max_size=2),
        queue_safe=queue_safe,
    )


_BOOL = st.booleans()
_FENCES = st.sampled_from(["```", "~~~", "```markdown", "```python"])
_LEVEL = st.integers(1, 6)
_PROSE_HEADINGS = st.sampled_from(["Pending Approval", "Not Ready", "Notes 📝", "Ready"])
_FILLER_INSIDE = st.lists(st.sampled_from(["prose", "blank", "comment", "fence"]), max_size=4)
_FILLER_OUTSIDE = st.lists(st.sampled_from(["prose", "blank", "comment", "fence", "heading", "fake"]), max_size=4)
_TASK_PREFIX = st.sampled_from(["- ", "* ", "→ ", "", "1. ", "  - ", "+ "])
_FIELD_INDENT = st.sampled_from(["  - ", "    - ", "  * ", "\t- ", "- ", "   + "])
_OPTIONAL = ["priority", "depends_on", "files", "status", "reason", "description", "safety_check"]
_OPTIONAL_NAMES = st.lists(st.sampled_from(_OPTIONAL), unique=True, max_size=len(_OPTIONAL))
_VALIDATION = ["alignment_score", "estimated_lines", "tests_defined"]
_VALIDATION_NAMES = st.lists(st.sampled_from(_VALIDATION), unique=True)
_UNKNOWN = st.lists(st.sampled_from(UNKNOWN_KEYS), unique=True, max_size=2)
_EXTRA = st.sampled_from(["", "", "", "", "blank", "comment", "body"])
_BETWEEN = st.sampled_from(["blank", "blank", "none", "prose", "comment", "fence", "subheading"])
_SUBHEADINGS = st.sampled_from(["Notes", "Details 🔎", "Part two"])
_OWN_HEADINGS = st.sampled_from(["Notes", "Open questions ❓"])
_AFTER_HEADINGS = st.sampled_from(["Notes", "Changelog 📝", "Done log"])
_ONE_IN_FIVE = st.integers(0, 4)
# How people space a field line: mostly `Key: value`, sometimes `Key:value`, `Key :  value` or trailing blanks
_SPACING = st.tuples(
    st.sampled_from([": "] * 6 + [":", ":  ", " : ", ":\t"]), st.sampled_from([""] * 6 + [" ", "  ", "\t"])
)
_SAMPLED = {
    "priority": st.sampled_from(sorted(PRIORITY_FORMS)),
    "dep_key": st.sampled_from(DEP_KEYS),
    "none": st.sampled_from(NONE_WORDS),
    "dep_style": st.sampled_from(["{}", "[{}]", "`{}`"]),
    "dep_sep": st.sampled_from([", ", ",", "; ", " , ", " ", "  "]),
    "files_key": st.sampled_from(["Files", "Scope"]),
    "files": st.sampled_from(sorted(FILES)),
    "align_form": st.sampled_from(["{}/100", "{}", "{}%"]),
    "align_key": st.sampled_from(["Alignment score", "Alignment"]),
    "est_key": st.sampled_from(["Estimated lines", "Estimate"]),
    "est_form": st.sampled_from(["{}", "~{}", "{} lines"]),
    "yes": st.sampled_from(["Yes", "✅ Yes (tests/test_calc.py)", "yes", "true"]),
    "no": st.sampled_from(["No", "❌ No"]),
    "tests_key": st.sampled_from(["Tests defined", "Tests"]),
    "status": st.sampled_from(sorted(STATUS_WORDS)),
    # for the queue: done more often, so that dependencies are met often enough to matter
    "status_queue": st.sampled_from([*sorted(STATUS_WORDS), *["DONE"] * 8, *["Done ✅"] * 2]),
    "safety": st.sampled_from(["✅ passed", "passed", "ok"]),
}


def _comment(draw: st.DrawFn, kit: _Kit, indent: str = "") -> list[str]:
    if draw(_BOOL):
        return [f"{indent}<!-- {draw(kit.texts)} -->"]
    return [f"{indent}<!--", *draw(kit.decoys), "-->"]


def _fence(draw: st.DrawFn, kit: _Kit) -> list[str]:
    marker = draw(_FENCES)
    return [marker, *draw(kit.decoys), marker[:3]]


def _filler(draw: st.DrawFn, kit: _Kit, *, outside: bool) -> list[str]:
    """Prose between structural parts: paragraphs, blank lines, comments, fences (and, outside the queue, where
    they cannot count, headings and look-alike tasks)."""
    lines: list[str] = []
    for kind in draw(_FILLER_OUTSIDE if outside else _FILLER_INSIDE):
        if kind == "prose":
            lines += draw(kit.paragraph)
        elif kind == "blank":
            lines.append("")
        elif kind == "comment":
            lines += _comment(draw, kit)
        elif kind == "fence":
            lines += _fence(draw, kit)
        elif kind == "heading":
            text = draw(st.one_of(kit.prose, _PROSE_HEADINGS))
            if "task queue" not in _words(text):
                lines.append("#" * draw(_LEVEL) + " " + text)
        elif kind == "fake":
            lines.append(f"- **[{draw(ids)}]** {draw(kit.texts)}")  # before or after the queue: not a task
    return lines


def _field_value(  # noqa: PLR0911 (one branch per field)
    draw: st.DrawFn, task: GenTask, name: str, earlier: list[str], kit: _Kit
) -> tuple[str, str, str]:
    """(key, value, name) for one known field, recording its meaning on the task."""
    if name == "priority":
        form = draw(_SAMPLED["priority"])
        task.priority = PRIORITY_FORMS[form]
        return "Priority", form, name
    if name == "depends_on":
        deps = draw(st.lists(st.sampled_from(earlier), unique=True, max_size=3)) if earlier else []
        task.deps = tuple(deps)
        key = draw(_SAMPLED["dep_key"])
        if not deps:
            return key, draw(_SAMPLED["none"]), name
        style, sep = draw(_SAMPLED["dep_style"]), draw(_SAMPLED["dep_sep"])
        return key, sep.join(style.format(d) for d in deps), name
    if name == "files":
        value = draw(_SAMPLED["files"])
        task.files = FILES[value]
        return draw(_SAMPLED["files_key"]), value, name
    if name == "alignment_score":
        low = 80 if kit.queue_safe else 0
        task.alignment = draw(st.integers(0, 79)) if task.unsafe else draw(st.integers(low, 100))
        return draw(_SAMPLED["align_key"]), draw(_SAMPLED["align_form"]).format(task.alignment), name
    if name == "estimated_lines":
        task.estimate = draw(st.integers(1, 30)) if kit.queue_safe else draw(st.integers(0, 500))
        return draw(_SAMPLED["est_key"]), draw(_SAMPLED["est_form"]).format(task.estimate), name
    if name == "tests_defined":
        task.tests = kit.queue_safe or draw(_BOOL)
        return draw(_SAMPLED["tests_key"]), draw(_SAMPLED["yes" if task.tests else "no"]), name
    if name == "status":
        word = draw(_SAMPLED["status_queue" if kit.queue_safe else "status"])
        task.status = STATUS_WORDS[word]
        return "Status", word, name
    if name in ("reason", "description"):
        return name.capitalize(), draw(kit.texts), name
    if name == "safety_check":
        return "Safety check", draw(_SAMPLED["safety"]), name
    raise AssertionError(name)


def _task_lines(draw: st.DrawFn, b: _Builder, task: GenTask, earlier: list[str], kit: _Kit) -> None:
    prefix = draw(_TASK_PREFIX)
    task.index = len(b.out)
    b.add(f"{prefix}**[{task.id}]** {task.title}".rstrip())
    indent = draw(_FIELD_INDENT)
    indented = indent[:1] in (" ", "\t")
    names = draw(_OPTIONAL_NAMES)
    if kit.queue_safe:
        # what validate_task needs (unless this task is deliberately unsafe): alignment, estimate, tests
        task.unsafe = draw(_ONE_IN_FIVE) == 0
        # and, more often than not, what the queue orders by: a priority, dependencies, a status
        names += [n for n in ("priority", "depends_on", "status") if n not in names and draw(_ONE_IN_FIVE) < 3]
        names = draw(st.permutations([*names, *_VALIDATION]))
    else:
        names += draw(_VALIDATION_NAMES)
    entries = [_field_value(draw, task, name, earlier, kit) for name in names]
    if indented:  # indented fields: unknown keys are fields too
        for key in draw(_UNKNOWN):
            entries.insert(draw(st.integers(0, len(entries))), (key, draw(kit.texts), key.lower()))
    task.end = task.index + 1
    for key, value, name in entries:
        extra = draw(_EXTRA)
        if extra == "blank":
            b.add("")  # a blank line inside a task neither ends it nor belongs to it
        elif extra == "comment":
            b.add(*_comment(draw, kit, indent="  "))
        elif extra == "body" and indented:
            b.add("    " + draw(kit.prose))
        sep, trail = draw(_SPACING)
        b.add(f"{indent}{key}{sep}{value}{trail}")
        task.fields.append((key, value, name, len(b.out) - 1))
        task.end = len(b.out)
    if draw(_ONE_IN_FIVE) == 0 and (indented or not entries):
        b.add("    " + draw(kit.prose))  # an indented paragraph under the task belongs to it
        task.end = len(b.out)


@st.composite
def plans(draw: st.DrawFn, *, queue_safe: bool = False, max_tasks: int = 8) -> GenPlan:  # noqa: C901
    """A valid plan. `queue_safe`: harmless titles and the fields validate_task asks for (about one task in five
    is made unsafe on purpose, with a low alignment score, and marked `unsafe`)."""
    kit = _kit(queue_safe)
    newline = draw(st.sampled_from(["\n", "\r\n"]))
    bom, final_newline = draw(_BOOL), draw(_BOOL)
    qlevel = draw(st.integers(1, 3))
    slevel = draw(st.integers(qlevel + 1, min(qlevel + 3, 6)))
    b = _Builder()

    # prose before the queue: anything, including headings and look-alike tasks, which do not count there
    b.add(*_filler(draw, kit, outside=True))
    b.add("#" * qlevel + " " + draw(st.sampled_from(QUEUE_TITLES)))
    b.add(*_filler(draw, kit, outside=False))

    order = draw(st.permutations(SECTIONS))
    counts = {s: draw(st.integers(0, max_tasks // 2)) for s in SECTIONS}
    total = sum(counts.values())
    all_ids = draw(st.lists(ids, unique_by=str.lower, min_size=total, max_size=total))
    tasks: list[GenTask] = []
    for section in order:
        if counts[section] == 0 and draw(_BOOL):
            continue  # a section with no tasks may be left out altogether
        b.add("#" * slevel + " " + draw(st.sampled_from(SECTION_HEADINGS[section])))
        b.add(*_filler(draw, kit, outside=False))
        for _ in range(counts[section]):
            task = GenTask(id=all_ids[len(tasks)], title=draw(kit.titles), section=section, order=len(tasks))
            _task_lines(draw, b, task, [t.id for t in tasks], kit)
            tasks.append(task)
            between = draw(_BETWEEN)
            if between == "blank":
                b.add("")
            elif between == "prose":
                b.add(draw(kit.prose))  # prose at the margin ends the task
            elif between == "comment":
                b.add(*_comment(draw, kit))
            elif between == "fence":
                b.add(*_fence(draw, kit))
            elif between == "subheading" and slevel < 6:
                b.add("#" * (slevel + 1) + " " + draw(_SUBHEADINGS))  # inside the section
        if draw(_ONE_IN_FIVE) == 0:
            # a heading of its own at the sections' level, with prose only: not a queue section
            b.add("#" * slevel + " " + draw(_OWN_HEADINGS), *draw(kit.paragraph))

    if draw(_BOOL):
        # after the queue: a heading at its level or above ends it; look-alike tasks there do not count
        b.add("#" * draw(st.integers(1, qlevel)) + " " + draw(_AFTER_HEADINGS))
        b.add(*_filler(draw, kit, outside=True))

    lines = [line + newline for line in b.out]
    if not final_newline:
        while lines and lines[-1] == newline:
            lines.pop()  # (a file cannot end in an empty line without a newline)
        lines[-1] = lines[-1][: -len(newline)]
    raw = ("\ufeff" if bom else "").encode() + "".join(lines).encode("utf-8")
    return GenPlan(raw=raw, lines=lines, tasks=tasks, bom=bom, newline=newline, final_newline=final_newline)
