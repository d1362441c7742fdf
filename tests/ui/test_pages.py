"""The command center's pages through the real app over a real repository: adding and rejecting tasks commit the
plan as `overnight plan` does, the Now page shows a session's journal (what the agent wrote, escaped and redacted),
and the live stream follows the journal as it grows."""

from __future__ import annotations

import json
import re
from pathlib import Path

import anyio
import pytest
from starlette.testclient import TestClient

from mcp_servers.core.workspace import Workspace
from scheduler import journal
from scheduler.agents import AgentEvent
from scheduler.events import RunEvent
from scheduler.ui import live, now, security
from scheduler.ui.app import make_app

from ..conftest import GitRepo

BASE = "http://127.0.0.1:8765"
SECRET = "ghp_" + "a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8"


@pytest.fixture
def client(planned: GitRepo) -> TestClient:
    keys = security.Keys()
    keys.allow(8765)
    client = TestClient(make_app(Workspace.open(planned.root), keys), base_url=BASE, follow_redirects=False)
    assert client.get(f"/login?token={keys.login}").status_code == 303
    return client


def csrf(client: TestClient) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', client.get("/tasks").text)
    assert found
    return found.group(1)


def test_add_and_reject_commit_the_plan_as_the_cli_does(planned: GitRepo, client: TestClient) -> None:
    token = csrf(client)
    added = client.post(
        "/tasks/add",
        data={
            "csrf": token,
            "title": "Add div()",
            "files": "src/app/*.py, tests/*.py",
            "priority": "P1",
            "estimate": "12",
            "tests": "tests/test_calc.py",
        },
    )
    assert added.status_code == 303 and "added" in added.headers["location"]
    subject = planned.git("log", "-1", "--format=%s")
    assert subject.startswith("plan: add task_") and subject.endswith("(pending approval)")
    board = client.get("/tasks").text
    assert "Add div()" in board
    pending = board.split('id="col-pending"')[1].split('id="col-not-ready"')[0]
    assert "Add div()" in pending
    bad = client.post("/tasks/add", data={"csrf": token, "title": "x", "estimate": "ten"})
    assert "not%20a%20whole%20number" in bad.headers["location"]
    count = planned.git("rev-list", "--count", "HEAD")
    refused = client.post("/tasks/add", data={"csrf": token, "title": ""})
    assert "error=" in refused.headers["location"] and planned.git("rev-list", "--count", "HEAD") == count
    rejected = client.post("/tasks/mul/reject", data={"csrf": token, "reason": "not <b>now</b>"})
    assert "rejected" in rejected.headers["location"]
    assert planned.git("log", "-1", "--format=%s") == "rejected mul"
    shown = client.get("/tasks/mul").text
    assert "not &lt;b&gt;now&lt;/b&gt;" in shown
    assert client.get("/tasks/nope").status_code == 404
    assert "error=" in client.post("/tasks/nope/approve", data={"csrf": token}).headers["location"]


def plant(ws: Workspace, session: str) -> Path:
    j = journal.Journal(ws.state_dir, session)
    j.write(RunEvent("session", f"overnight: session {session}", session=session))
    j.write(RunEvent("task", "overnight: task sub: Add sub()", session=session, task_id="sub", title="Add sub()"))
    j.write(
        RunEvent(
            "agent",
            f"overnight: task sub: tool: Bash: echo {SECRET} <script>alert(1)</script>",
            session=session,
            task_id="sub",
            agent=AgentEvent("tool", "Bash", turns=4),
            cost_usd=0.42,
        )
    )
    usage = AgentEvent("usage", turns=5, tokens_in=15_200, tokens_out=940)
    j.write(RunEvent("agent", "overnight: task sub: usage", session=session, task_id="sub", agent=usage))
    j.close()
    assert j.path is not None
    return j.path


def test_the_now_page_shows_the_last_sessions_journal_escaped_and_redacted(
    planned: GitRepo, client: TestClient
) -> None:
    ws = Workspace.open(planned.root)
    from scheduler import report

    session = "2026-12-06-abc123"
    report.save(
        ws.state_dir,
        report.SessionRecord(id=session, repo=str(planned.root), started=report.now_iso(), outcome="completed"),
    )
    plant(ws, session)
    page = client.get("/").text
    assert "tool: Bash: echo [REDACTED:github-token] &lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert SECRET not in page and "<script>alert" not in page
    assert f'data-session="{session}"' in page and "No session is running" in page


def test_the_app_redacts_each_text_once_and_the_same_as_everywhere() -> None:
    texts = now.Texts(size=2)
    told = f"token {SECRET} <b>x</b>"
    assert texts.shown(told) == now.shown(told) == "token [REDACTED:github-token] <b>x</b>"
    texts.shown(told)
    assert texts.clean.cache_info().hits == 1  # type: ignore[attr-defined]
    texts.shown("a"), texts.shown("b"), texts.shown(told)  # bounded: the oldest answers are dropped
    assert texts.clean.cache_info().currsize == 2 and texts.clean.cache_info().hits == 1  # type: ignore[attr-defined]
    assert texts.shown("x" * (now.MAX_TEXT + 5)).endswith("…")


def test_the_live_stream_follows_the_journal(planned: GitRepo) -> None:
    ws = Workspace.open(planned.root)
    session = "2026-12-06-def456"
    path = plant(ws, session)
    polls = 0

    async def gone() -> bool:
        nonlocal polls
        polls += 1
        if polls == 2:  # the session goes on while the page watches
            j = journal.Journal(ws.state_dir, session)
            j.write(
                RunEvent(
                    "agent",
                    "overnight: task sub: tool: write src/app/calc.py",
                    session=session,
                    task_id="sub",
                    agent=AgentEvent("tool", "write src/app/calc.py"),
                )
            )
            j.write(RunEvent("end", "overnight: session ended", session=session, outcome="completed"))
            j.close()
        return polls > 20

    async def collect() -> list[dict[str, str]]:
        return [item async for item in live.follow(ws, session, path.stat().st_size, False, gone)]

    told = anyio.run(collect)
    events = [json.loads(t["data"]) for t in told if t["event"] == "run"]
    assert [e["line"] for e in events] == [
        "overnight: task sub: tool: write src/app/calc.py",
        "overnight: session ended",
    ]
    assert told[-1]["event"] == "reload"  # the session ended: the page is drawn anew
    # a session id that is no name of a folder of ours follows nothing
    assert anyio.run(lambda: _all(live.follow(ws, "../../etc", 0, False, _after(3)))) == []


def _after(n: int):  # type: ignore[no-untyped-def]
    calls = 0

    async def gone() -> bool:
        nonlocal calls
        calls += 1
        return calls > n

    return gone


async def _all(stream) -> list[dict[str, str]]:  # type: ignore[no-untyped-def]
    return [item async for item in stream]


def test_the_now_page_shows_what_overnight_status_shows(tmp_path: Path) -> None:
    import subprocess
    import sys

    from ..scheduler.sessions import make_planned
    from .conftest import PLAN

    repo = make_planned(tmp_path / "repo", PLAN, scheduler="\n[limits]\nmax_agent_runs_per_hour = 5\n")
    ws = Workspace.open(repo.root)
    session = "2026-12-06-aaa111"
    ws.state_dir.mkdir(parents=True, exist_ok=True)
    # a live process that reads as a scheduler holds the lock (`lock.alive` checks its command line)
    runner = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)", "overnight"])
    try:
        _status_shown(ws, repo, session, runner.pid)
    finally:
        runner.kill()
        runner.wait()


def _status_shown(ws: Workspace, repo: GitRepo, session: str, pid: int) -> None:
    import time

    from mcp_servers.core import breakers
    from scheduler import lock

    held = {"pid": pid, "session": session, "started": "2026-12-06T21:00:00+00:00", "task": "sub",
            "agent": "claude", "branch": f"overnight/{session}",
            "waiting": {"kind": "usage-limit", "until": "2026-12-06T23:00:00+00:00", "task": "sub",
                        "line": "the usage limit of <b>claude</b> resets at 23:00"}}  # fmt: skip
    (ws.state_dir / lock.LOCK_FILE).write_text(json.dumps(held))
    with ws.db() as conn:
        breakers.failed(conn, "claude", time.time(), kind="overloaded", detail="529 <i>overloaded</i>", threshold=1,
                        cooldown_s=600)  # fmt: skip
    plant(ws, session)
    keys = security.Keys()
    keys.allow(8765)
    client = TestClient(make_app(ws, keys), base_url=BASE, follow_redirects=False)
    client.get(f"/login?token={keys.login}")
    page = client.get("/").text
    assert "running" in page and session in page and 'data-live="1"' in page
    assert "Waiting (usage-limit) until 2026-12-06T23:00:00+00:00" in page
    assert "resets at 23:00" in page and "&lt;b&gt;claude&lt;/b&gt;" in page
    assert "0 of 5" in page
    assert "overloaded: 529 &lt;i&gt;overloaded&lt;/i&gt;" in page and ">open<" in page
    assert "$0.42" in page and 'id="turns">5<' in page  # from the journal
    assert 'id="tokens">15,200 in, 940 out<' in page and "task sub: usage" not in page  # counted, not listed
    stop = client.get("/stop").text
    assert "Yes, stop" in stop and session in stop


def test_a_long_column_is_cut_with_its_count(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    from scheduler.ui import board

    monkeypatch.setattr(board, "CARDS_SHOWN", 1)
    page = client.get("/tasks").text
    ready = page.split('id="col-ready"')[1].split('id="col-pending"')[0]
    assert '<span class="count">2</span>' in ready and "and 1 more" in ready and ready.count("<article") == 1


def _client(ws: Workspace) -> TestClient:
    keys = security.Keys()
    keys.allow(8765)
    client = TestClient(make_app(ws, keys), base_url=BASE, follow_redirects=False)
    assert client.get(f"/login?token={keys.login}").status_code == 303
    return client


def test_sessions_a_real_session_reviewed_merged_and_discarded_with_csrf(tmp_path: Path) -> None:
    import os

    from scheduler import report

    from ..scheduler.sessions import make_planned, passing, plan, run_session, write_script
    from .conftest import XSS_IMG, XSS_SCRIPT

    repo = make_planned(tmp_path / "r", plan(("sub", "Add sub()")))
    record, said = run_session(repo, write_script(tmp_path / "s.toml", passing("sub", "sub")))
    assert record.outcome not in report.REFUSED, said
    ws = Workspace.open(repo.root, environ=dict(os.environ))
    # a report whose agent-written texts try to inject HTML (an older session: its branch is gone)
    task = report.TaskRecord(task_id="xss", title=f"Title {XSS_SCRIPT}", outcome="failed", started="x",
                             reasons=[f"the gate failed: {XSS_IMG}"], refused=[f"Bash: {XSS_SCRIPT} (refused)"],
                             security_events=["~/.ssh/config changed; put back"])  # fmt: skip
    old = report.SessionRecord(id="2026-11-30-abcdef", repo="r", started="2026-11-30T22:00:00+00:00",
                               outcome="completed", tasks=[task])  # fmt: skip
    report.save(ws.state_dir, old)
    client = _client(ws)
    listed = client.get("/sessions").text
    assert listed.index(record.id) < listed.index("2026-11-30-abcdef")  # newest first
    assert "1 security" in listed
    assert "No session matches" in client.get("/sessions?outcome=crashed").text
    assert record.id not in client.get("/sessions?until=2026-11-30").text
    bad = client.get("/sessions?since=yesterday")
    assert bad.status_code == 400 and "is not a date: give it as YYYY-MM-DD" in bad.text
    # the XSS report: every text shown as text, the security event before the tasks
    shown = client.get("/sessions/2026-11-30-abcdef").text
    assert "Title &lt;script&gt;alert(&#39;xss-1&#39;)&lt;/script&gt;" in shown
    assert "&lt;img src=x onerror=" in shown and "<script>alert" not in shown and "<img src=x" not in shown
    assert shown.index('id="security"') < shown.index("Tasks</h2>")
    assert client.get("/sessions/..%2F..%2Fetc").status_code == 404
    # the real session: its checks, its kept diff in <pre>, what merge and discard would do
    page = client.get(f"/sessions/{record.id}").text
    assert "+def sub(a, b):" in page and "<pre>" in page and 'id="merge"' in page and "by a fast-forward" in page
    base = repo.git("rev-parse", "main")
    # without the CSRF token, merging and discarding are refused, and change nothing
    assert client.post(f"/sessions/{record.id}/merge").status_code == 403
    assert client.post(f"/sessions/{record.id}/discard", data={"csrf": "forged"}).status_code == 403
    assert repo.git("rev-parse", "main") == base and repo.git("branch", "--list", record.branch)
    token = csrf(client)
    # a prefix names a session for the CLI, never for a form
    prefix = client.post(f"/sessions/{record.id[:12]}/merge", data={"csrf": token})
    assert "error=" in prefix.headers["location"] and repo.git("rev-parse", "main") == base
    merged = client.post(f"/sessions/{record.id}/merge", data={"csrf": token})
    assert "said=session" in merged.headers["location"] and "fast-forward" in merged.headers["location"]
    assert repo.git("rev-parse", "main") == repo.git("rev-parse", record.branch) != base
    again = client.post(f"/sessions/{record.id}/merge", data={"csrf": token})
    assert "already%20in%20main" in again.headers["location"]
    confirm = client.get(f"/sessions/{record.id}/discard").text
    assert "Yes, discard" in confirm and record.branch in confirm
    gone = client.post(f"/sessions/{record.id}/discard", data={"csrf": token})
    assert "said=deleted" in gone.headers["location"] and not repo.git("branch", "--list", record.branch)
    after = client.get(f"/sessions/{record.id}").text
    assert "discarded" in after and 'id="merge"' not in after
    assert report.load(ws.state_dir, record.id).reviewed.startswith("discarded")


def test_memory_searches_with_the_filters_and_shows_text_as_text(planned: GitRepo, client: TestClient) -> None:
    import itertools

    from mcp_servers.core import memory

    from .conftest import XSS_IMG

    ws = Workspace.open(planned.root)
    clock = itertools.count(1_800_000_000, 60).__next__
    memory.log_event(ws, "lesson", f"the calc cache lies {XSS_IMG} {SECRET}", session="s1", task_id="sub",
                     files=["src/app/calc.py"], source="agent", clock=clock)  # fmt: skip
    memory.log_event(ws, "decision", "calc uses plain floats", session="s2", source="person", clock=clock)
    for i in range(25):
        memory.log_event(ws, "note", f"note {i} on the queue", session="s3", clock=clock)
    page = client.get("/memory?q=cache").text
    assert "&lt;img src=x onerror=" in page and "<img src=x" not in page and SECRET not in page
    assert '<strong class="source">agent</strong>' in page and "not instructions" in page
    assert 'href="/sessions/s1"' in page and ">stale<" not in page
    planned.append("src/app/calc.py", "\n# changed\n")
    assert ">stale<" in client.get("/memory?q=cache").text  # the file it names changed since
    person = client.get("/memory?kind=decision").text
    assert "plain floats" in person and "calc cache" not in person
    assert "calc cache" in client.get("/memory?task=sub").text
    assert "calc cache" in client.get("/memory?file=src/app/calc.py").text
    assert "plain floats" not in client.get("/memory?session=s1").text
    first = client.get("/memory?session=s3").text
    assert first.count('class="entry') == 20 and "offset=20" in first
    rest = client.get("/memory?session=s3&offset=20").text
    assert rest.count('class="entry') == 5 and 'id="more"' not in rest
    refused = client.get("/memory?kind=rumour")
    assert refused.status_code == 400 and "kind &#39;rumour&#39; is not one of" in refused.text
    assert client.get("/memory?offset=x").status_code == 400


def test_trends_draws_the_charts_per_night_and_per_agent(planned: GitRepo, client: TestClient) -> None:
    from scheduler import report
    from scheduler.agents import AgentResult

    ws = Workspace.open(planned.root)

    def task(agent: str, outcome: str) -> report.TaskRecord:
        return report.TaskRecord(task_id="t", title="t", outcome=outcome, started="x", duration_s=30.0,  # type: ignore[arg-type]
                                 agent=AgentResult(agent=agent, is_error=False, cost_usd=1.5, tokens_in=10,
                                                   tokens_out=5))  # fmt: skip

    for i, (agent, outcome) in enumerate([("claude", "passed"), ("codex", "failed"), ('<b id="x">', "passed")]):
        report.save(ws.state_dir, report.SessionRecord(id=f"2026-12-0{i + 1}-aaaaa{i}", repo="r",
                    started=f"2026-12-0{i + 1}T22:00:00+00:00", outcome="completed",
                    tasks=[task(agent, outcome)]))  # fmt: skip
    page = client.get("/trends?nights=7").text
    for name in ("tasks", "cost", "tokens", "time", "coverage", "agents-kept", "agents-cost"):
        assert f'id="chart-{name}"' in page, name
    assert "<svg" in page and '<b id="x">' not in page and "&lt;b id=" in page
    assert "3 session(s) over 7 night(s)" in page and "2 kept, 1 rolled back" in page
    one = client.get("/trends?nights=7&agent=codex").text
    assert "1 session(s)" in one and 'id="chart-agents-kept"' not in one
    assert "3 session(s) over 3 session(s)" in client.get("/trends?by=session").text
    # the same page again is the same drawing; a new report draws it anew
    assert client.get("/trends?nights=7").text == page
    report.save(ws.state_dir, report.SessionRecord(id="2026-12-04-aaaaa3", repo="r", outcome="completed",
                                                   started="2026-12-04T22:00:00+00:00",
                                                   tasks=[task("claude", "passed")]))  # fmt: skip
    assert "4 session(s) over 7 night(s)" in client.get("/trends?nights=7").text
    refused = client.get("/trends?nights=0")
    assert refused.status_code == 400 and "nights must be 1 to 366" in refused.text
