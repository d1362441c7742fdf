"""The daemon's reports: progress every `report_every_hours`, status every `status_every_hours`, and the final
one (complete, stopped) or the alert when it pauses. Markdown and JSON under `reports/daemon/` beside the session
reports; `overnight report --daemon` shows them. Every figure comes from the cycles in `state.db`, which hold
each cycle's session outcome as the session's own report has it."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field

from mcp_servers.core.errors import UsageError

from .daemon_state import Cycle
from .report import reports_dir, write_pair

Kind = Literal["progress", "status", "complete", "paused", "stopped"]
FINAL = ("complete", "stopped")


class CycleLine(BaseModel):
    number: int
    session: str | None
    outcome: str
    stop_reason: str = ""
    started: str
    ended: str | None
    tasks_done: int
    tasks_failed: int
    cost_usd: float

    @classmethod
    def of(cls, cycle: Cycle) -> CycleLine:
        return cls(number=cycle.id, session=cycle.session, outcome=cycle.outcome, stop_reason=cycle.stop_reason,
                   started=iso(cycle.started), ended=iso(cycle.ended) if cycle.ended is not None else None,
                   tasks_done=cycle.tasks_done, tasks_failed=cycle.tasks_failed, cost_usd=cycle.cost_usd)  # fmt: skip


class Totals(BaseModel):
    cycles: int = 0
    error_cycles: int = 0
    tasks_done: int = Field(default=0, description="tasks kept on the session branches")
    tasks_failed: int = Field(default=0, description="tasks rolled back")
    cost_usd: float = 0.0

    @classmethod
    def of(cls, cycles: list[Cycle]) -> Totals:
        return cls(cycles=len(cycles), error_cycles=sum(c.error for c in cycles),
                   tasks_done=sum(c.tasks_done for c in cycles), tasks_failed=sum(c.tasks_failed for c in cycles),
                   cost_usd=round(sum(c.cost_usd for c in cycles), 4))  # fmt: skip


class DaemonReport(BaseModel):
    id: str
    daemon: str = Field(description="the daemon run's id")
    kind: Kind
    repo: str
    at: str
    state: str = Field(description="what the daemon was doing: running, waiting, paused, complete, stopped")
    reason: str = ""
    since: str = Field(description="the start of the period this report covers")
    cycles: list[CycleLine] = Field(default_factory=list, description="the cycles of the period")
    period: Totals = Field(default_factory=Totals)
    totals: Totals = Field(default_factory=Totals, description="every cycle of this daemon run")
    open_tasks: list[str] = Field(default_factory=list, description="approved tasks not done yet")
    criteria: dict[str, str] = Field(default_factory=dict, description="each completion criterion: held or not, why")
    next_cycle_at: str | None = None


def iso(when: float) -> str:
    return dt.datetime.fromtimestamp(when, dt.UTC).isoformat(timespec="seconds")


def folder(state_dir: Path) -> Path:
    path = reports_dir(state_dir) / "daemon"
    path.mkdir(parents=True, exist_ok=True)
    return path


def save(state_dir: Path, report: DaemonReport) -> Path:
    """Write the report's JSON and Markdown (atomically); the Markdown's path."""
    return write_pair(folder(state_dir), report.id, report.model_dump_json(indent=2), render(report))


def listing(state_dir: Path) -> list[DaemonReport]:
    """Every daemon report, oldest first (one that cannot be read is left out)."""
    found = []
    for path in folder(state_dir).glob("*.json"):
        try:
            found.append(DaemonReport.model_validate_json(path.read_text()))
        except (OSError, ValueError):
            continue
    return sorted(found, key=lambda r: (r.at, r.id))


def load(state_dir: Path, report_id: str | None = None) -> DaemonReport:
    """A daemon report by id; the newest without one."""
    if report_id is None:
        found = listing(state_dir)
        if not found:
            raise UsageError("there is no daemon report yet: `overnight daemon` writes them as it runs.")
        return found[-1]
    path = folder(state_dir) / f"{report_id}.json"
    if "/" in report_id or not path.exists():
        raise UsageError(f"there is no daemon report {report_id!r}: `overnight report --daemon --list` lists them.")
    return DaemonReport.model_validate_json(path.read_text())


TITLES = {"progress": "progress", "status": "status", "complete": "complete: the project is done",
          "paused": "paused: alert", "stopped": "stopped"}  # fmt: skip


def render(report: DaemonReport) -> str:
    lines = [
        f"# overnight daemon {report.daemon}: {TITLES[report.kind]}",
        "",
        f"- At {report.at}; state: **{report.state}**" + (f" ({report.reason})" if report.reason else ""),
    ]
    t = report.totals
    lines.append(f"- All cycles of this daemon: {t.cycles} ({t.error_cycles} ended in error); tasks kept "
                 f"{t.tasks_done}, rolled back {t.tasks_failed}; ${t.cost_usd:.2f}")  # fmt: skip
    if report.kind not in FINAL:
        p = report.period
        lines.append(f"- Since {report.since}: {p.cycles} cycle(s); tasks kept {p.tasks_done}, rolled back "
                     f"{p.tasks_failed}; ${p.cost_usd:.2f}")  # fmt: skip
    if report.next_cycle_at:
        lines.append(f"- Next cycle: {report.next_cycle_at}")
    if report.open_tasks:
        lines.append(f"- Approved tasks not done: {', '.join(report.open_tasks)}")
    if report.criteria:
        lines += ["", "## Completion criteria", ""] + [f"- `{k}`: {v}" for k, v in report.criteria.items()]
    if report.cycles:
        lines += ["", "## Cycles", "", "| cycle | session | outcome | kept | rolled back | cost | why it stopped |",
                  "|---|---|---|---|---|---|---|"]  # fmt: skip
        for c in report.cycles:
            why = c.stop_reason.replace("|", "\\|").replace("\n", " ")[:160]
            lines.append(f"| {c.number} | {c.session or '-'} | {c.outcome} | {c.tasks_done} | {c.tasks_failed} | "
                         f"${c.cost_usd:.2f} | {why} |")  # fmt: skip
    if report.kind == "paused":
        lines += ["", "The daemon waits: look at the cycles' session reports (`overnight report SESSION`), fix what "
                  "fails, then `overnight resume`."]  # fmt: skip
    return "\n".join(lines) + "\n"
