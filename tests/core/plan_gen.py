"""Hypothesis strategies for PROJECT_PLAN.md files, and the expectations they carry.

A generated plan is built line by line from plain data (tasks with their sections, fields, priorities,
dependencies on earlier tasks only), so a test knows exactly what `parse` must find without asking `parse`.
Everything a person writes around the tasks is mixed in: prose before and after the queue, decoy headings,
HTML comments and code fences that hold look-alike tasks, blank lines, unknown fields, emoji, CRLF, a BOM.
"""

from __future__ import annotations

import string
import unicodedata
from dataclasses import dataclass, field

from hypothesis import strategies as st

SECTIONS = ("ready", "pending", "not-ready")
SECTION_HEADINGS = {
    "ready": ["Ready for Autonomous Execution ✅", "Ready for Autonomous Execution", "✅ Ready for autonomous execution",
              "READY FOR AUTONOMOUS EXECUTION", "Ready", "🚀 Ready:"],
    "pending": ["Pending Approval ⏳", "Pending Approval", "⏳ pending approval", "Pending", "PENDING APPROVAL 👀"],
    "not-ready": ["Not Ready ❌", "Not Ready", "❌ not ready", "NOT READY 🚧", "Not ready:"],
}  # fmt: skip
QUEUE_TITLES = ["Task Queue", "📋 Task Queue", "The Task Queue (live)", "TASK QUEUE", "Task queue ✨"]

# Words that no forbidden-operation rule of the default policy matches, for tasks the queue must accept.
SAFE_WORDS = ["Tidy", "the", "parser", "helper", "docs", "for", "rename", "format", "output", "añadir", "naïve",
              "überprüfen", "日本語", "🚀", "✨", "README", "log", "lines", "café", "Ωmega", "improve", "errors"]  # fmt: skip

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
KNOWN_NAMES = {
    "priority", "depends on", "depends", "dependencies", "depends-on", "files", "scope", "alignment score",
    "alignment", "estimated lines", "estimate", "estimated size", "tests defined", "tests", "safety check", "status",
    "reason", "description", "proposed by",
}  # fmt: skip
NONE_WORDS = ["none", "-", "—", "n/a", "None"]
BAD_IDS = {"none", "n/a", "na", "nothing", "-"}


def _words(text: str) -> str:
    """A heading's words as a reader of headings sees them: letters and digits, lower case, single spaces."""
    kept = [ch.lower() if unicodedata.category(ch)[0] in "LN" else " " for ch in unicodedata.normalize("NFKD", text)]
    return " ".join("".join(kept).split())


def _clean(text: str) -> bool:
    """Text that cannot open or close a comment or a fence, or start a task, wherever it lands."""
    return not any(s in text for s in ("<!--", "-->", "```", "~~~", "**[", "\r", "\n"))


# Any printable unicode (emoji, accents, CJK, right-to-left), never control characters, surrogates or line breaks.
_CHARS = st.characters(codec="utf-8", exclude_categories=("Cc", "Cs", "Zl", "Zp", "Co", "Cn"))


def free_text(min_size: int = 0, max_size: int = 24) -> st.SearchStrategy[str]:
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


ids = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,11}", fullmatch=True).filter(lambda s: s.lower() not in BAD_IDS)


@dataclass
class GenTask:
    id: str
    title: str
    section: str
    priority: int = 2
    deps: tuple[str, ...] = ()
    status: str | None = None  # the meaning, from STATUS_WORDS
    unsafe: bool = False  # deliberately fails validate_task
    fields: list[tuple[str, str]] = field(default_factory=list)  # (key, value) as parse must report them
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


class _Builder:
    def __init__(self) -> None:
        self.out: list[str] = []

    def add(self, *lines: str) -> None:
        self.out.extend(lines)


def _decoy_lines(draw: st.DrawFn, texts: st.SearchStrategy[str]) -> list[str]:
    """Lines that look like plan structure but are not (inside a comment or a fence)."""
    return draw(
        st.lists(
            st.one_of(
                prose_line(texts),
                st.just("- **[ghost]** a task inside a comment or a fence"),
                st.just("## Task Queue"),
                st.just("### Ready for Autonomous Execution ✅"),
                st.just("  - Status: DONE"),
                st.just(""),
            ),
            max_size=3,
        )
    )


def _comment(draw: st.DrawFn, texts: st.SearchStrategy[str], indent: str = "") -> list[str]:
    if draw(st.booleans()):
        return [f"{indent}<!-- {draw(texts)} -->"]
    return [f"{indent}<!--", *_decoy_lines(draw, texts), "-->"]


def _fence(draw: st.DrawFn, texts: st.SearchStrategy[str]) -> list[str]:
    marker = draw(st.sampled_from(["```", "~~~", "```markdown", "```python"]))
    return [marker, *_decoy_lines(draw, texts), marker[:3]]


def _filler(draw: st.DrawFn, texts: st.SearchStrategy[str], *, headings: bool, fake_tasks: bool) -> list[str]:
    """Prose between structural parts: paragraphs, blank lines, comments, fences (and headings, look-alike tasks
    where they cannot count: outside the queue)."""
    kinds = ["prose", "blank", "comment", "fence"] + (["heading"] if headings else []) + (["fake"] if fake_tasks else [])
    lines: list[str] = []
    for kind in draw(st.lists(st.sampled_from(kinds), max_size=4)):
        if kind == "prose":
            lines += draw(st.lists(prose_line(texts), min_size=1, max_size=2))
        elif kind == "blank":
            lines.append("")
        elif kind == "comment":
            lines += _comment(draw, texts)
        elif kind == "fence":
            lines += _fence(draw, texts)
        elif kind == "heading":
            text = draw(st.one_of(prose_line(texts), st.sampled_from(["Pending Approval", "Not Ready", "Notes 📝"])))
            if "task queue" not in _words(text):
                lines.append("#" * draw(st.integers(1, 6)) + " " + text)
        elif kind == "fake":
            lines.append(f"- **[{draw(ids)}]** {draw(texts)}")  # before or after the queue: not a task
    return lines


def _field_value(draw: st.DrawFn, task: GenTask, name: str, earlier: list[str], texts: st.SearchStrategy[str],
                 queue_safe: bool) -> tuple[str, str] | None:  # fmt: skip
    """(key, value) for one known field, recording its meaning on the task."""
    if name == "priority":
        form = draw(st.sampled_from(sorted(PRIORITY_FORMS)))
        task.priority = PRIORITY_FORMS[form]
        return "Priority", form
    if name == "depends_on":
        deps = draw(st.lists(st.sampled_from(earlier), unique=True, max_size=3)) if earlier else []
        task.deps = tuple(deps)
        key = draw(st.sampled_from(DEP_KEYS))
        if not deps:
            return key, draw(st.sampled_from(NONE_WORDS))
        style = draw(st.sampled_from(["{}", "[{}]", "`{}`"]))
        sep = draw(st.sampled_from([", ", ",", "; ", " "]))
        return key, sep.join(style.format(d) for d in deps)
    if name == "files":
        return draw(st.sampled_from(["Files", "Scope"])), draw(
            st.sampled_from(["src/app/*.py", "src/**, tests/test_calc.py", "`src/app/calc.py`", "docs/*.md"])
        )
    if name == "alignment":
        score = draw(st.integers(0, 79)) if task.unsafe else draw(st.integers(80 if queue_safe else 0, 100))
        form = draw(st.sampled_from(["{}/100", "{}", "{}%"]))
        return draw(st.sampled_from(["Alignment score", "Alignment"])), form.format(score)
    if name == "estimate":
        n = draw(st.integers(1, 30)) if queue_safe else draw(st.integers(0, 500))
        return draw(st.sampled_from(["Estimated lines", "Estimate"])), draw(
            st.sampled_from(["{}", "~{}", "{} lines"])
        ).format(n)
    if name == "tests":
        yes = True if queue_safe else draw(st.booleans())
        value = draw(st.sampled_from(["Yes", "✅ Yes (tests/test_calc.py)", "yes", "true"] if yes else ["No", "❌ No"]))
        return draw(st.sampled_from(["Tests defined", "Tests"])), value
    if name == "status":
        word = draw(st.sampled_from(sorted(STATUS_WORDS)))
        task.status = STATUS_WORDS[word]
        return "Status", word
    if name == "reason":
        return "Reason", draw(texts)
    if name == "description":
        return "Description", draw(texts)
    if name == "safety":
        return "Safety check", draw(st.sampled_from(["✅ passed", "passed", "ok"]))
    raise AssertionError(name)


_OPTIONAL = ["priority", "depends_on", "files", "status", "reason", "description", "safety"]


def _task_lines(draw: st.DrawFn, b: _Builder, task: GenTask, earlier: list[str], texts: st.SearchStrategy[str],
                queue_safe: bool) -> None:  # fmt: skip
    prefix = draw(st.sampled_from(["- ", "* ", "→ ", "", "1. ", "  - ", "+ "]))
    task.index = len(b.out)
    b.add(f"{prefix}**[{task.id}]** {task.title}".rstrip())
    indent = draw(st.sampled_from(["  - ", "    - ", "  * ", "\t- ", "- ", "   + "]))
    names = draw(st.lists(st.sampled_from(_OPTIONAL), unique=True, max_size=len(_OPTIONAL)))
    if queue_safe:
        # what validate_task needs (unless this task is deliberately unsafe): alignment, estimate, tests
        task.unsafe = draw(st.integers(0, 5)) == 0
        names += ["alignment", "estimate", "tests"]
        names = draw(st.permutations(names))
    else:
        names += draw(st.lists(st.sampled_from(["alignment", "estimate", "tests"]), unique=True))
    entries: list[tuple[str, str]] = []
    for name in names:
        got = _field_value(draw, task, name, earlier, texts, queue_safe)
        if got is not None:
            entries.append(got)
    if indent.strip() != indent:  # indented fields: unknown keys are fields too
        unknown = draw(st.lists(st.sampled_from(UNKNOWN_KEYS), unique=True, max_size=2))
        for key in unknown:
            entries.insert(draw(st.integers(0, len(entries))), (key, draw(texts)))
    task.end = task.index + 1
    for key, value in entries:
        extra = draw(st.sampled_from(["", "", "", "", "blank", "comment", "body"]))
        if extra == "blank":
            b.add("")
        elif extra == "comment":
            b.add(*_comment(draw, texts, indent="  "))
        elif extra == "body" and indent.strip() != indent:
            b.add("    " + draw(prose_line(texts)))
        b.add(f"{indent}{key}: {value}".rstrip() if value else f"{indent}{key}:")
        task.fields.append((key, value))
        task.end = len(b.out)
    if draw(st.integers(0, 4)) == 0 and (indent.strip() != indent or not entries):
        b.add("    " + draw(prose_line(texts)))  # an indented paragraph under the task belongs to it
        task.end = len(b.out)


@st.composite
def plans(draw: st.DrawFn, *, queue_safe: bool = False, max_tasks: int = 8) -> GenPlan:
    """A valid plan. `queue_safe`: harmless titles and the fields validate_task asks for (a few tasks are made
    unsafe on purpose, marked `unsafe`)."""
    texts = safe_text() if queue_safe else free_text(min_size=1)
    titles = texts if queue_safe else st.one_of(st.just(""), texts)
    newline = draw(st.sampled_from(["\n", "\r\n"]))
    bom = draw(st.booleans())
    final_newline = draw(st.booleans())
    qlevel = draw(st.integers(1, 3))
    slevel = draw(st.integers(qlevel + 1, min(qlevel + 3, 6)))
    b = _Builder()

    # prose before the queue: anything, including headings and look-alike tasks, which do not count there
    b.add(*draw(st.lists(prose_line(texts), max_size=2)))
    b.add(*_filler(draw, texts, headings=True, fake_tasks=True))
    b.add("#" * qlevel + " " + draw(st.sampled_from(QUEUE_TITLES)))
    b.add(*_filler(draw, texts, headings=False, fake_tasks=False))

    order = draw(st.permutations(SECTIONS))
    counts = {s: draw(st.integers(0, max_tasks // 2)) for s in SECTIONS}
    all_ids = draw(st.lists(ids, unique_by=str.lower, min_size=sum(counts.values()), max_size=sum(counts.values())))
    tasks: list[GenTask] = []
    for section in order:
        if counts[section] == 0 and draw(st.booleans()):
            continue  # a section with no tasks may be left out altogether
        b.add("#" * slevel + " " + draw(st.sampled_from(SECTION_HEADINGS[section])))
        b.add(*_filler(draw, texts, headings=False, fake_tasks=False))
        for _ in range(counts[section]):
            task_id = all_ids[len(tasks)]
            title = draw(titles)
            task = GenTask(id=task_id, title=title, section=section, order=len(tasks))
            _task_lines(draw, b, task, [t.id for t in tasks], texts, queue_safe)
            tasks.append(task)
            between = draw(st.sampled_from(["blank", "blank", "none", "prose", "comment", "fence", "subheading"]))
            if between == "blank":
                b.add("")
            elif between == "prose":
                b.add(draw(prose_line(texts)))
            elif between == "comment":
                b.add(*_comment(draw, texts))
            elif between == "fence":
                b.add(*_fence(draw, texts))
            elif between == "subheading" and slevel < 6:
                b.add("#" * (slevel + 1) + " " + draw(st.sampled_from(["Notes", "Details 🔎", "Part two"])))
        if draw(st.integers(0, 5)) == 0:
            # a heading of its own at the sections' level, with prose only: not a queue section
            b.add("#" * slevel + " " + draw(st.sampled_from(["Notes", "Open questions ❓"])))
            b.add(*draw(st.lists(prose_line(texts), max_size=2)))

    if draw(st.booleans()):
        # after the queue: a heading at its level or above ends it; look-alike tasks there do not count
        b.add("#" * draw(st.integers(1, qlevel)) + " " + draw(st.sampled_from(["Notes", "Changelog 📝", "Done log"])))
        b.add(*_filler(draw, texts, headings=True, fake_tasks=True))

    out = b.out
    lines = [line + newline for line in out]
    if not final_newline and lines:
        lines[-1] = lines[-1][: -len(newline)]
        if not lines[-1]:
            lines.pop()
    raw = ("\ufeff" if bom else "").encode() + "".join(lines).encode("utf-8")
    return GenPlan(raw=raw, lines=lines, tasks=tasks, bom=bom, newline=newline, final_newline=final_newline)
