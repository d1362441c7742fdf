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
from scheduler.ui import live, security
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
    assert "$0.42" in page and 'id="turns">4<' in page  # from the journal
    stop = client.get("/stop").text
    assert "Yes, stop" in stop and session in stop


def test_a_long_column_is_cut_with_its_count(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    from scheduler.ui import board

    monkeypatch.setattr(board, "CARDS_SHOWN", 1)
    page = client.get("/tasks").text
    ready = page.split('id="col-ready"')[1].split('id="col-pending"')[0]
    assert '<span class="count">2</span>' in ready and "and 1 more" in ready and ready.count("<article") == 1
