"""The saved session reports, summed up once and kept: what the Sessions list and the Trends page read.

A report is parsed when it is new or has changed (by its file's size and modification time) and reduced to a
`ReportSummary` of the figures the pages show; the index (its caller's, or the process's one per state
directory from `shared()`) answers every later call from memory after one look at the folder. With 1,000 reports
the first scan parses them all (1-3 s); a later one costs nothing while the folder is unchanged, else stats the
files and parses only what changed.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from pydantic import BaseModel, Field

from scheduler import report

RACY_S = 2.0  # a folder changed this recently may change again within its timestamp's resolution


class Figures(BaseModel):
    """What a session (or a night, or one agent's share of either) did and cost."""

    tasks: int = 0
    kept: int = 0
    rolled_back: int = 0
    cost_usd: float = 0.0
    tokens_in: int = 0
    tokens_out: int = 0
    turns: int = 0
    task_time_s: float = Field(default=0.0, description="the tasks' time, summed")
    gate_time_s: float = Field(default=0.0, description="the scheduler's gate runs' checks, summed")
    infra_stops: int = Field(default=0, description="runs the model's API stopped")

    def add(self, other: Figures) -> None:
        for name in FIELDS:
            setattr(self, name, getattr(self, name) + getattr(other, name))

    def vector(self) -> tuple[float, ...]:
        return tuple(self.__dict__[name] for name in FIELDS)


FIELDS = tuple(Figures.model_fields)
ZERO = (0.0,) * len(FIELDS)


class ReportSummary(BaseModel):
    """One session report reduced to what the list and the trends show."""

    id: str
    started: str
    ended: str | None = None
    outcome: str
    stop_reason: str = ""
    agent: str = ""
    agents: list[str] = Field(default_factory=list, description="every agent that ran a task, or was stopped")
    branch: str = ""
    base_branch: str = ""
    reviewed: str = ""
    sandbox: str = "bwrap"
    security_events: int = 0
    held: int = 0
    infra_kinds: dict[str, int] = Field(default_factory=dict, description="API stops by kind")
    infra_by_agent: dict[str, dict[str, int]] = Field(default_factory=dict, description="API stops by agent, kind")
    coverage: float | None = Field(default=None, description="the coverage the last kept task measured")
    coverage_base: float | None = None
    total: Figures = Field(default_factory=Figures)
    by_agent: dict[str, Figures] = Field(default_factory=dict)
    vectors: dict[str | None, tuple[float, ...]] = Field(default_factory=dict, exclude=True, repr=False,
                                                         description="`total` (None) and `by_agent` as plain "
                                                         "numbers in FIELDS order: trends add up many")  # fmt: skip

    def model_post_init(self, context: object, /) -> None:
        self.vectors = {None: self.total.vector(), **{name: f.vector() for name, f in self.by_agent.items()}}

    def vector(self, agent: str | None = None) -> tuple[float, ...]:
        """The figures (of one agent's share) as plain numbers in `FIELDS` order."""
        return self.vectors.get(agent, ZERO)


def sums(vectors: Iterable[tuple[float, ...]]) -> dict[str, float]:
    """Vectors added up, by field name."""
    totals = [sum(column) for column in zip(*vectors, strict=True)]
    return dict(zip(FIELDS, totals, strict=True)) if totals else dict.fromkeys(FIELDS, 0.0)


def summarize(record: report.SessionRecord) -> ReportSummary:
    """A report's figures, in total and per agent."""
    total, by_agent = Figures(), dict[str, Figures]()
    coverage = coverage_base = None
    for task in record.tasks:
        name = task.agent.agent if task.agent else record.agent
        one = Figures(tasks=1, kept=int(task.outcome == "passed"), rolled_back=int(task.outcome != "passed"),
                      task_time_s=task.duration_s, gate_time_s=sum(c.duration_s for c in task.checks))  # fmt: skip
        if task.agent is not None:
            one.cost_usd, one.turns = task.agent.cost_usd or 0.0, task.agent.turns or 0
            one.tokens_in, one.tokens_out = task.agent.tokens_in or 0, task.agent.tokens_out or 0
        total.add(one)
        by_agent.setdefault(name, Figures()).add(one)
        if task.outcome == "passed" and task.coverage is not None:
            coverage, coverage_base = task.coverage, task.coverage_base
    kinds: dict[str, int] = {}
    per: dict[str, dict[str, int]] = {}
    for stop in record.infra:
        name = stop.agent or record.agent
        one = Figures(infra_stops=1, cost_usd=stop.cost_usd, turns=stop.turns)
        total.add(one)
        by_agent.setdefault(name, Figures()).add(one)
        kinds[stop.stop.kind] = kinds.get(stop.stop.kind, 0) + 1
        mine = per.setdefault(name, {})
        mine[stop.stop.kind] = mine.get(stop.stop.kind, 0) + 1
    return ReportSummary(
        id=record.id, started=record.started, ended=record.ended, outcome=record.outcome,
        stop_reason=record.stop_reason, agent=record.agent, agents=sorted(by_agent) or [record.agent],
        branch=record.branch, base_branch=record.base_branch, reviewed=record.reviewed, sandbox=record.sandbox,
        security_events=len(record.all_security_events()), held=sum(len(t.held) for t in record.tasks),
        infra_kinds=kinds, infra_by_agent=per, coverage=coverage, coverage_base=coverage_base, total=total,
        by_agent=by_agent,
    )  # fmt: skip


class ReportIndex:
    """The summaries of a state directory's reports, newest first, kept up to date by `refresh()` (thread-safe)."""

    def __init__(self, state_dir: Path, clock: Callable[[], float] = time.time) -> None:
        self.state_dir, self.clock = state_dir, clock
        self._seen: dict[str, tuple[tuple[int, int], ReportSummary | None]] = {}
        self._ordered: list[ReportSummary] = []
        self._lock = threading.Lock()
        self._folder: tuple[int, int, int] | None = None
        self._folder_seen = 0.0
        self.unreadable: list[str] = []

    def refresh(self) -> list[ReportSummary]:
        """Every session that started (refused runs left out, as `report.recent` does), newest first."""
        with self._lock:
            folder = report.reports_dir(self.state_dir)
            there = folder.stat()
            folder_stamp = (there.st_ino, there.st_mtime_ns, there.st_size)
            # `report.save` renames each file into place, which changes the folder: an unchanged folder, not
            # changed in the last RACY_S seconds before it was last looked at either, has unchanged reports
            if folder_stamp == self._folder and self._folder_seen - there.st_mtime_ns / 1e9 > RACY_S:
                return self._ordered
            self._folder, self._folder_seen = folder_stamp, self.clock()
            changed = False
            current: dict[str, tuple[tuple[int, int], ReportSummary | None]] = {}
            with os.scandir(folder) as found:
                for item in found:
                    if not item.name.endswith(".json") or item.name.startswith("."):
                        continue
                    stat = item.stat()
                    stamp = (stat.st_mtime_ns, stat.st_size)
                    kept = self._seen.get(item.name)
                    if kept is None or kept[0] != stamp:
                        kept, changed = (stamp, self._read(Path(item.path))), True
                    current[item.name] = kept
            if changed or len(current) != len(self._seen):
                self._seen = current
                live = [s for _, s in current.values() if s is not None and s.outcome not in report.REFUSED]
                self._ordered = sorted(live, key=lambda s: (s.started, s.id), reverse=True)
                self.unreadable = sorted(name for name, (_, s) in current.items() if s is None)
            return self._ordered

    def _read(self, path: Path) -> ReportSummary | None:
        try:
            return summarize(report.SessionRecord.model_validate_json(path.read_bytes()))
        except (OSError, ValueError):
            return None  # being written (a temporary file is renamed over it), or damaged: listed as unreadable


_SHARED: dict[Path, ReportIndex] = {}
_SHARED_LOCK = threading.Lock()


def shared(state_dir: Path) -> ReportIndex:
    """The process's index of a state directory (what a view uses when its caller passes none)."""
    key = state_dir.resolve()
    with _SHARED_LOCK:
        found = _SHARED.get(key)
        if found is None:
            found = _SHARED[key] = ReportIndex(key)
        return found
