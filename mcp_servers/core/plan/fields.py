"""Field values: each read by a function of its text, `(value, problem)`, and many tasks' values at once."""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import repeat
from operator import methodcaller

from ..errors import UsageError
from ..paths import clean_glob
from .lines import _find_field
from .model import _NONE, _NONE_LEN, ID_PATTERN, PRIORITY_WORDS, STATUSES, Task

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
    if plain.startswith("⏳") or (words and words[0] in _NOT_YET):  # `⏳ Needs definition`: not defined yet
        return False, None
    return None, "Tests defined is `Yes (path/to/test.py)`, `No` or `⏳ Needs definition`"


_NOT_YET = {"needs", "need", "pending", "tbd", "todo", "later", "missing", "to"}
# A plan's own Safety check: `✅ Passed`, `⚠️ Touches authentication (needs review)` (a caution the person saw
# when they approved the task), `❌ Unsafe: …`. First the sign, else the first word.
_SAFETY_SIGNS = (("✅", "passed"), ("✔", "passed"), ("⚠", "caution"), ("❌", "failed"), ("⛔", "failed"),
                 ("🚫", "failed"), ("✖", "failed"))  # fmt: skip
_SAFETY_WORDS = {
    "passed": "passed", "pass": "passed", "ok": "passed", "okay": "passed", "safe": "passed", "yes": "passed",
    "clear": "passed", "cleared": "passed", "reviewed": "passed",
    "caution": "caution", "warning": "caution", "warn": "caution", "touches": "caution", "review": "caution",
    "needs": "caution", "careful": "caution",
    "failed": "failed", "fail": "failed", "unsafe": "failed", "no": "failed", "blocked": "failed",
    "dangerous": "failed", "refused": "failed",
}  # fmt: skip


def _read_safety(plain: str) -> tuple[str | None, str | None]:
    for sign, meaning in _SAFETY_SIGNS:
        if plain.startswith(sign):
            return meaning, None
    words = re.sub(r"[^a-z]+", " ", plain.lower()).split()
    found = _SAFETY_WORDS.get(words[0]) if words else None
    if found is None:
        return None, "Safety check is `✅ Passed`, `⚠️ <what to watch>` or `❌ <why it is unsafe>`"
    return found, None


_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}(?:[ T]\d{2}:\d{2}(?::\d{2})?(?:Z|[+-]\d{2}:?\d{2})?)?\b")


def _read_approved(plain: str) -> tuple[bool | None, str | None]:
    """`Auto-approved: 2025-01-15` (or yes) agrees with the section; `No` holds the task back."""
    text = plain.lstrip("✅❌ \ufe0f")
    head = re.sub(r"[^a-z]+", " ", text.lower()).split()
    if _DATE.match(text) or plain.startswith("✅") or (head and head[0] in {"yes", "true", "approved"}):
        return True, None
    if plain.startswith("❌") or (head and head[0] in {"no", "false", "not", "pending"}):
        return False, None
    return None, "Auto-approved is a date (`2025-01-15`), `Yes` or `No`"


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
    "safety_check": _read_safety,
    "auto_approved": _read_approved,
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
