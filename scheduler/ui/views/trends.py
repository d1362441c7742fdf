"""The Trends page's data (issue 14): per night (or per session) the tasks kept and rolled back, cost per task
and per kept change, tokens, time per task, gate time, the API's stops, coverage; split per agent where several
ran. Read from the saved reports through a `ReportIndex` (no report is parsed twice), and drawn by `charts()`.

A night is the evening it started on: a session that starts at 02:00 belongs to the night before (the day
starts at noon, in the given time zone). Nights without a session are kept on the axis (zero work), so a gap
shows as a gap.
"""

from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import BaseModel, Field

from mcp_servers.core.errors import UsageError
from mcp_servers.core.workspace import Workspace

from .. import svg
from .index import ReportIndex, ReportSummary, shared, sums

Granularity = Literal["night", "session"]
MAX_NIGHTS = 366
MAX_SESSIONS = 500
NIGHT_SHIFT = dt.timedelta(hours=12)


class AgentSeries(BaseModel):
    """One agent's share, a value per label."""

    kept: list[int]
    rolled_back: list[int]
    cost_usd: list[float]
    cost_per_kept: list[float | None]
    tokens: list[int]
    time_per_task_s: list[float | None]
    infra_stops: list[int]


class Trends(BaseModel):
    granularity: Granularity
    labels: list[str] = Field(description="the nights (evening dates) or the sessions' ids, oldest first")
    sessions: list[int] = Field(description="sessions per label")
    kept: list[int]
    rolled_back: list[int]
    cost_usd: list[float]
    cost_per_task: list[float | None]
    cost_per_kept: list[float | None] = Field(description="cost over kept changes (None: nothing kept)")
    tokens_in: list[int]
    tokens_out: list[int]
    time_per_task_s: list[float | None]
    gate_time_per_task_s: list[float | None]
    infra_stops: dict[str, list[int]] = Field(description="the API's stops per kind (usage-limit, overloaded, ...)")
    coverage: list[float | None] = Field(description="the last kept task's coverage")
    coverage_base: list[float | None]
    agents: list[str] = Field(description="every agent that ran in the span, most used first")
    by_agent: dict[str, AgentSeries] = Field(default_factory=dict, description="only when several agents ran")


def night_of(started: str, tz: dt.tzinfo | None = None) -> dt.date:
    """The evening a session started on (before noon: the day before), in `tz` (None: this machine's zone); a
    start that is not a date counts as the first night there is (a damaged report stays out of every span)."""
    try:
        when = dt.datetime.fromisoformat(started)
    except ValueError:
        return dt.date.min
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return (when.astimezone(tz) - NIGHT_SHIFT).date()


def _ratio(a: float, b: float, digits: int = 4) -> float | None:
    return round(a / b, digits) if b else None


def trends(
    ws: Workspace,
    index: ReportIndex | None = None,
    *,
    granularity: Granularity = "night",
    nights: int = 30,
    sessions: int = 50,
    until: dt.date | None = None,
    agent: str | None = None,
    tz: dt.tzinfo | None = None,
) -> Trends:
    """The series of the last `nights` nights up to `until` (default: the newest session's night), or of the last
    `sessions` sessions; `agent` keeps only that agent's share of each session."""
    if granularity == "night" and not 1 <= nights <= MAX_NIGHTS:
        raise UsageError(f"nights must be 1 to {MAX_NIGHTS}, not {nights}.")
    if granularity == "session" and not 1 <= sessions <= MAX_SESSIONS:
        raise UsageError(f"sessions must be 1 to {MAX_SESSIONS}, not {sessions}.")
    every = (index or shared(ws.state_dir)).refresh()
    found = [s for s in every if agent in s.by_agent] if agent else every
    if granularity == "session":
        chosen = found[:sessions][::-1]
        return _build("session", [s.id for s in chosen], [[s] for s in chosen], agent)
    if not every:
        return _build("night", [], [], agent)
    last = until or max(night_of(s.started, tz) for s in every[:50])  # the same span whatever the agent
    first = last - dt.timedelta(days=nights - 1)
    buckets: dict[dt.date, list[ReportSummary]] = {first + dt.timedelta(days=i): [] for i in range(nights)}
    for summary in found:  # newest first: stop at the first session older than the span
        night = night_of(summary.started, tz)
        if night < first and night != dt.date.min:
            break
        if night in buckets:
            buckets[night].append(summary)
    return _build("night", [d.isoformat() for d in buckets], [b[::-1] for b in buckets.values()], agent)


def _figures(group: list[ReportSummary], agent: str | None) -> dict[str, float]:
    return sums(s.vector(agent) for s in group)


def _build(granularity: Granularity, labels: list[str], groups: list[list[ReportSummary]], agent: str | None) -> Trends:
    sums = [_figures(g, agent) for g in groups]
    used: dict[str, int] = {}
    kinds: set[str] = set()

    def stops(s: ReportSummary) -> dict[str, int]:
        return s.infra_by_agent.get(agent, {}) if agent else s.infra_kinds

    for group in groups:
        for s in group:
            kinds.update(stops(s))
            for name, fig in s.by_agent.items():
                used[name] = used.get(name, 0) + fig.tasks + fig.infra_stops
    agents = sorted(used, key=lambda n: (-used[n], n))
    covered = [[s for s in g if s.coverage is not None] for g in groups]
    result = Trends(
        granularity=granularity, labels=labels, sessions=[len(g) for g in groups],
        kept=[int(f["kept"]) for f in sums], rolled_back=[int(f["rolled_back"]) for f in sums],
        cost_usd=[round(f["cost_usd"], 4) for f in sums],
        cost_per_task=[_ratio(f["cost_usd"], f["tasks"]) for f in sums],
        cost_per_kept=[_ratio(f["cost_usd"], f["kept"]) for f in sums],
        tokens_in=[int(f["tokens_in"]) for f in sums], tokens_out=[int(f["tokens_out"]) for f in sums],
        time_per_task_s=[_ratio(f["task_time_s"], f["tasks"], 2) for f in sums],
        gate_time_per_task_s=[_ratio(f["gate_time_s"], f["tasks"], 2) for f in sums],
        infra_stops={k: [sum(stops(s).get(k, 0) for s in g) for g in groups] for k in sorted(kinds)},
        coverage=[c[-1].coverage if c else None for c in covered],
        coverage_base=[c[-1].coverage_base if c else None for c in covered],
        agents=agents,
    )  # fmt: skip
    if len(agents) > 1 and not agent:
        for name in agents:
            per = [_figures(g, name) for g in groups]
            result.by_agent[name] = AgentSeries(
                kept=[int(f["kept"]) for f in per], rolled_back=[int(f["rolled_back"]) for f in per],
                cost_usd=[round(f["cost_usd"], 4) for f in per],
                cost_per_kept=[_ratio(f["cost_usd"], f["kept"]) for f in per],
                tokens=[int(f["tokens_in"] + f["tokens_out"]) for f in per],
                time_per_task_s=[_ratio(f["task_time_s"], f["tasks"], 2) for f in per],
                infra_stops=[int(f["infra_stops"]) for f in per],
            )  # fmt: skip
    return result


def charts(t: Trends) -> dict[str, str]:
    """The Trends page's charts as SVG text, by name (each escapes its own labels)."""
    L, S = t.labels, svg.Series
    per = " per night" if t.granularity == "night" else " per session"
    tokens = [S(name="tokens in", values=list(map(float, t.tokens_in))),
              S(name="tokens out", values=list(map(float, t.tokens_out)))]  # fmt: skip
    out = {
        "tasks": svg.stacked_bars("Tasks kept and rolled back" + per, L, [
            S(name="kept", values=list(map(float, t.kept)), color="#009E73"),
            S(name="rolled back", values=list(map(float, t.rolled_back)), color="#D55E00")]),
        "cost": svg.line_chart("Cost per task and per kept change", L, [
            S(name="per task", values=list(t.cost_per_task)), S(name="per kept change", values=list(t.cost_per_kept))],
            unit="$"),
        "tokens": svg.stacked_bars("Tokens" + per, L, tokens),
        "time": svg.line_chart("Time per task (s)", L, [
            S(name="task", values=list(t.time_per_task_s)), S(name="gate", values=list(t.gate_time_per_task_s))]),
        "infra": svg.stacked_bars("Runs the API stopped" + per, L, [
            S(name=kind, values=list(map(float, counts))) for kind, counts in t.infra_stops.items()]),
        "coverage": svg.line_chart("Coverage (%)", L, [
            S(name="after the kept change", values=list(t.coverage)), S(name="base", values=list(t.coverage_base))]),
    }  # fmt: skip
    if t.by_agent:
        agents = list(t.by_agent.items())
        out["agents-kept"] = svg.stacked_bars("Tasks kept per agent" + per, L, [
            S(name=name, values=list(map(float, a.kept))) for name, a in agents])  # fmt: skip
        out["agents-cost"] = svg.stacked_bars("Cost per agent" + per, L, [
            S(name=name, values=list(a.cost_usd)) for name, a in agents], unit="$")  # fmt: skip
    return out
