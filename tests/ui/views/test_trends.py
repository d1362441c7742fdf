"""The Sessions list and the Trends series, read from reports written by `report.save` (issue 14)."""

from __future__ import annotations

import datetime as dt
import os
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from mcp_servers.core.errors import UsageError
from mcp_servers.core.models import CheckResult
from mcp_servers.core.workspace import Workspace
from scheduler import report
from scheduler.agents import AgentResult
from scheduler.agents.stops import InfraStop
from scheduler.ui.views import sessions, trends
from scheduler.ui.views.index import ReportIndex

from ...conftest import FAST_CONFIG, make_repo

XSS = '<script>alert("agent")</script>'


def _task(task_id: str, outcome: str, agent: str, cost: float, *, coverage: float | None = None,
          gate_s: float = 1.0) -> report.TaskRecord:  # fmt: skip
    result = AgentResult(agent=agent, is_error=outcome != "passed", turns=3, tokens_in=1000, tokens_out=200,
                         cost_usd=cost)  # fmt: skip
    checks = [CheckResult(name="tests", status="passed", summary="ok", duration_s=gate_s)]
    return report.TaskRecord(task_id=task_id, title=f"{XSS} {task_id}", outcome=outcome, started="x",  # type: ignore[arg-type]
                             duration_s=60.0, agent=result, checks=checks, coverage=coverage,
                             coverage_base=80.0 if coverage else None, reasons=[XSS])  # fmt: skip


def _session(
    sid: str, started: str, tasks: list[report.TaskRecord], *, outcome: str = "completed",
    infra: list[report.InfraRecord] | None = None, agents: list[str] | None = None,
) -> report.SessionRecord:  # fmt: skip
    return report.SessionRecord(id=sid, repo="r", branch=f"overnight/{sid}", base_branch="main", started=started,
                                ended=started, outcome=outcome, agent="claude", agents=agents or [], tasks=tasks,
                                infra=infra or [])  # fmt: skip


@pytest.fixture
def ws(tmp_path: Path) -> Workspace:
    repo = make_repo(tmp_path / "repo", config=FAST_CONFIG)
    ws = Workspace.open(repo.root)
    stop = report.InfraRecord(task_id="b", at="x", stop=InfraStop(kind="usage-limit"), action="handed to codex",
                              cost_usd=0.5, agent="claude")  # fmt: skip
    records = [
        # night of Dec 1 (the 02:00 session belongs to it)
        _session("2026-12-01-aaaaaa", "2026-12-01T22:00:00+00:00",
                 [_task("a", "passed", "claude", 1.0, coverage=85.0), _task("b", "failed", "claude", 3.0)]),
        _session("2026-12-02-bbbbbb", "2026-12-02T02:00:00+00:00",
                 [_task("b", "passed", "codex", 2.0, coverage=86.5)], infra=[stop], agents=["claude", "codex"]),
        # nothing on Dec 2; Dec 3: a session stopped, with nothing kept
        _session("2026-12-03-cccccc", "2026-12-03T23:00:00+00:00", [_task("c", "failed", XSS, 4.0)],
                 outcome="stopped"),
        # a refused run an older version kept a report for: never listed
        _session("2026-12-03-dddddd", "2026-12-03T23:30:00+00:00", [], outcome="preflight-failed"),
    ]  # fmt: skip
    for record in records:
        report.save(ws.state_dir, record)
    return ws


def test_trends_per_night_with_agents_split(ws: Workspace) -> None:
    t = trends.trends(ws, nights=4, tz=dt.UTC)
    assert t.labels == ["2026-11-30", "2026-12-01", "2026-12-02", "2026-12-03"]
    assert t.sessions == [0, 2, 0, 1]
    assert t.kept == [0, 2, 0, 0] and t.rolled_back == [0, 1, 0, 1]
    assert t.cost_usd == [0, 6.5, 0, 4.0]  # 1 + 3 + 2 and the stopped run's 0.5
    assert t.cost_per_task == [None, round(6.5 / 3, 4), None, 4.0]
    assert t.cost_per_kept == [None, 3.25, None, None]
    assert t.tokens_in == [0, 3000, 0, 1000] and t.tokens_out == [0, 600, 0, 200]
    assert t.time_per_task_s == [None, 60.0, None, 60.0] and t.gate_time_per_task_s == [None, 1.0, None, 1.0]
    assert t.infra_stops == {"usage-limit": [0, 1, 0, 0]}
    assert t.coverage == [None, 86.5, None, None] and t.coverage_base == [None, 80.0, None, None]
    assert t.agents == ["claude", XSS, "codex"]  # most used first, then by name
    assert t.by_agent["claude"].kept == [0, 1, 0, 0] and t.by_agent["claude"].cost_usd == [0, 4.5, 0, 0]
    assert t.by_agent["claude"].infra_stops == [0, 1, 0, 0]
    assert trends.trends(ws, nights=3, tz=dt.UTC, agent="claude").infra_stops == {"usage-limit": [1, 0, 0]}
    assert t.by_agent["codex"].cost_per_kept == [None, 2.0, None, None]
    only = trends.trends(ws, nights=2, tz=dt.UTC, agent="codex")
    assert only.labels == ["2026-12-02", "2026-12-03"] and only.kept == [0, 0] and not only.by_agent
    only = trends.trends(ws, nights=3, tz=dt.UTC, agent="codex")
    assert only.kept == [1, 0, 0] and only.cost_usd == [2.0, 0, 0] and only.infra_stops == {}
    per = trends.trends(ws, granularity="session", sessions=2, tz=dt.UTC)
    assert per.labels == ["2026-12-02-bbbbbb", "2026-12-03-cccccc"] and per.kept == [1, 0]
    # the charts: well-formed, and the agent name an agent could choose comes out as text
    charts = trends.charts(t)
    assert {"tasks", "cost", "tokens", "time", "infra", "coverage", "agents-kept", "agents-cost"} <= set(charts)
    for name, chart in charts.items():
        root = ET.fromstring(chart)  # noqa: S314 (our own output)
        assert root.get("role") == "img", name
        assert "<script" not in chart, name
    drawn = ET.fromstring(charts["agents-kept"])  # noqa: S314 (our own output)
    assert XSS in [t.text for t in drawn.iter("{http://www.w3.org/2000/svg}text")]
    # a report whose start is not a date stays out of every span, and breaks nothing
    report.save(ws.state_dir, _session("2026-12-09-999999", "not a date", [_task("z", "passed", "claude", 9.0)]))
    again = trends.trends(ws, nights=4, tz=dt.UTC)
    assert again.labels == t.labels and again.kept == t.kept
    with pytest.raises(UsageError, match="nights must be 1 to 366"):
        trends.trends(ws, nights=0)


def test_the_list_pages_and_filters_and_the_index_rereads_only_what_changed(ws: Workspace) -> None:
    index = ReportIndex(ws.state_dir)
    page = sessions.list_sessions(ws, index, limit=2)
    assert [s.id for s in page.items] == ["2026-12-03-cccccc", "2026-12-02-bbbbbb"]
    assert page.total == 3 and page.next_offset == 2 and page.outcomes == ["completed", "stopped"]
    assert page.agents == sorted(["claude", "codex", XSS])
    rest = sessions.list_sessions(ws, index, offset=2, limit=2)
    assert [s.id for s in rest.items] == ["2026-12-01-aaaaaa"] and rest.next_offset is None
    assert rest.items[0].total.kept == 1 and rest.items[0].total.cost_usd == 4.0
    assert [s.id for s in sessions.list_sessions(ws, index, outcome="stopped").items] == ["2026-12-03-cccccc"]
    assert [s.id for s in sessions.list_sessions(ws, index, agent="codex").items] == ["2026-12-02-bbbbbb"]
    dated = sessions.list_sessions(ws, index, since="2026-12-02", until="2026-12-02")
    assert [s.id for s in dated.items] == ["2026-12-02-bbbbbb"]
    with pytest.raises(UsageError, match="'yesterday' is not a date: give it as YYYY-MM-DD"):
        sessions.list_sessions(ws, index, since="yesterday")
    with pytest.raises(UsageError, match="limit must be 1 to 200"):
        sessions.list_sessions(ws, index, limit=0)
    # a report rewritten (a person merged its branch) is read again; the others are not
    kept = {s.id: s for s in index.refresh()}
    record = report.load(ws.state_dir, "2026-12-01-aaaaaa")
    record.reviewed = "merged into main"
    path = report.reports_dir(ws.state_dir) / "2026-12-01-aaaaaa.json"
    report.save(ws.state_dir, record)
    os.utime(path, ns=(1, path.stat().st_mtime_ns + 1_000_000))
    again = {s.id: s for s in index.refresh()}
    assert again["2026-12-01-aaaaaa"].reviewed == "merged into main"
    assert again["2026-12-02-bbbbbb"] is kept["2026-12-02-bbbbbb"]  # not parsed again
    # once the folder is older than the racy window, an unchanged folder is trusted: no report is looked at
    # (reports are only ever renamed into place, which changes the folder)
    later = ReportIndex(ws.state_dir, clock=lambda: path.parent.stat().st_mtime_ns / 1e9 + 10)
    first = later.refresh()
    text = path.read_text()
    path.write_text(text.replace("merged into main", "merged into MAIN"))  # in place, the folder unchanged
    assert later.refresh() is first and first[-1].reviewed == "merged into main"
    report.save(ws.state_dir, record)  # renamed into place: seen
    assert later.refresh() is not first
    # a damaged report is named, not fatal; a deleted one leaves the list
    (report.reports_dir(ws.state_dir) / "2026-12-04-eeeeee.json").write_text("{not json")
    path.unlink()
    page = sessions.list_sessions(ws, index)
    assert page.unreadable == ["2026-12-04-eeeeee.json"] and page.total == 2
