"""The plan's model: its sections, field names and statuses, and the parsed Task, Heading and Plan."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from ..errors import UsageError

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
    "safety check": "safety_check", "safety": "safety_check",
    "auto-approved": "auto_approved", "auto approved": "auto_approved",
    "status": "status",
    "reason": "reason",
    "description": "description",
    "proposed by": "proposed_by",
}  # fmt: skip
ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")


# Field names whose text is kept as written (shown to people, or free text); the others are kept interpreted.
_TEXT_FIELDS = {"status", "reason", "description", "safety_check", "proposed_by", "tests_defined", "auto_approved"}
# Fields that bear on approval or safety: when one's value cannot be read, the task is not offered (fail closed);
# a value of any other field that cannot be read is a warning saying how it was read.
HOLDING_FIELDS = {"files", "depends_on", "status", "safety_check", "auto_approved"}
# What the plan's value of each field that cannot be read is taken as, for the warning that says so.
READ_AS = {
    "priority": "read as P2, the default",
    "alignment_score": "read as no score",
    "estimated_lines": "read as no estimate",
    "tests_defined": "read as no tests defined",
}
_NONE = {"", "-", "—", "–", "none", "n/a", "na", "nothing"}  # noqa: RUF001 (dashes people type for "none")
_NONE_LEN = max(map(len, _NONE))


_KNOWN = set(_FIELD_NAMES.values())


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
    safety_check: str | None = None  # passed, caution or failed: the plan's own Safety check, as understood
    auto_approved: bool | None = None  # the plan's Auto-approved field: a date or yes (True), no (False)
    values: dict[str, str] | None = None  # name -> text, for text fields and fields this module does not know
    keys: dict[str, str] | None = None  # name -> key as written, for fields this module does not know
    body: list[str] | None = None  # indented prose under the task
    warnings: list[str] | None = None  # field values that could not be read, and how they were read
    held: dict[str, str] | None = None  # approval or safety fields that could not be read -> why: never offered

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


def split_lines(text: str) -> list[str]:
    """Lines with their endings, split on LF only: joining them gives the text back, byte for byte."""
    parts = text.split("\n")
    lines = [p + "\n" for p in parts[:-1]]
    if parts[-1]:
        lines.append(parts[-1])
    return lines


def ids(tasks: Iterable[Task]) -> list[str]:
    return [t.id for t in tasks]
