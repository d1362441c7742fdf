"""The command center in a real browser: headless Chromium (Debian's, driven by Playwright) against `overnight ui`
started as a real process on a planned repository: log in with the printed link, the board, approving a task
(the plan committed, `overnight plan next` offers it), titles and agent text that try to inject HTML shown as
text, a replay session's tool calls on the Now page within a second, and the kill switch.

Screenshots of each page go to docs/screenshots/ when OVERNIGHT_SCREENSHOTS=1."""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from mcp_servers.core.workspace import Workspace
from scheduler import journal, report

from ..conftest import GitRepo
from ..scheduler.sessions import make_planned, spawn_run, task_script, wait_for_agent, write_script
from .conftest import XSS_IMG, XSS_SCRIPT, card

CHROMIUM = Path("/usr/bin/chromium")
SHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"

INSTALL_HINT = "run `bash scripts/test`, which installs Debian's chromium and playwright (the test extra)"


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    """One headless Chromium for the module. A missing browser is a failure, never a skip (as in tests/e2e): CI
    installs it through .ci/run, so an absent one means the install is broken."""
    try:
        from playwright import sync_api
    except ImportError:
        pytest.fail(f"playwright is not installed; {INSTALL_HINT}", pytrace=False)
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing; {INSTALL_HINT}", pytrace=False)
    with sync_api.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        yield chromium
        chromium.close()


XSS_TITLE = f"Title {XSS_SCRIPT} and {XSS_IMG}"
PLAN = (
    "# Plan\n\n## Task Queue\n\n### Ready for Autonomous Execution ✅\n\n### Pending Approval ⏳\n"
    + card("mul", "Add mul()")
    + "\n### Not Ready ❌\n"
    + card("xss", XSS_TITLE)
)
AGENT_XSS = '<img src=y onerror="alert(3)"> xss-3'
WORKING = f"""
[[task.step]]
sleep = 2
[[task.step]]
write = "src/app/live.py"
text = "LIVE = 1\\n"
[[task.step]]
spend = 0.12
tokens_in = 15200
tokens_out = 940
[[task.step]]
say = '{AGENT_XSS}'
[[task.step]]
sleep = 600
"""


@pytest.fixture
def page(browser: object) -> Iterator[object]:
    context = browser.new_context(viewport={"width": 1280, "height": 860})  # type: ignore[attr-defined]
    tab = context.new_page()
    dialogs: list[str] = []
    tab.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    tab.dialogs = dialogs
    yield tab
    context.close()


def serve(repo: GitRepo) -> tuple[subprocess.Popen[str], str]:
    """`overnight ui --no-open --port 0` as its own process; its first line, the login URL."""
    argv = [sys.executable, "-m", "scheduler", "-C", str(repo.root), "ui", "--no-open", "--port", "0"]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines: queue.Queue[str] = queue.Queue()
    assert proc.stdout is not None
    threading.Thread(target=lambda: lines.put(proc.stdout.readline() if proc.stdout else ""), daemon=True).start()
    try:
        url = lines.get(timeout=30).strip()
    except queue.Empty:
        proc.kill()
        raise AssertionError("`overnight ui` printed no URL in 30 s") from None
    assert url.startswith("http://127.0.0.1:") and "/login?token=" in url, (url, proc.stderr)
    return proc, url


@pytest.fixture
def ui(tmp_path: Path) -> Iterator[tuple[GitRepo, str]]:
    repo = make_planned(tmp_path / "repo", PLAN, scheduler="max_tasks = 1\n")
    proc, url = serve(repo)
    yield repo, url
    proc.terminate()
    try:
        rest, errors = proc.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        rest, errors = proc.communicate()
    assert rest == "", errors  # nothing but the URL on stdout
    assert "Traceback" not in errors, errors


def shot(tab: object, name: str) -> None:
    if os.environ.get("OVERNIGHT_SCREENSHOTS") == "1":
        SHOTS.mkdir(parents=True, exist_ok=True)
        tab.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)  # type: ignore[attr-defined]


def overnight(repo: GitRepo, *args: str) -> str:
    argv = [sys.executable, "-m", "scheduler", "-C", str(repo.root), *args]
    return subprocess.run(argv, capture_output=True, text=True, check=True).stdout


def plan_next(repo: GitRepo) -> dict[str, object]:
    return dict(json.loads(overnight(repo, "plan", "next", "--json")))


def test_log_in_see_the_board_and_approve_a_task(ui: tuple[GitRepo, str], page: object) -> None:
    repo, url = ui
    tab = page
    assert plan_next(repo)["task"] is None
    tab.goto(url.replace("/login", "/tasks").split("?")[0])  # type: ignore[attr-defined]
    assert "Log in first" in tab.content()  # type: ignore[attr-defined]
    tab.goto(url)  # type: ignore[attr-defined]
    assert tab.url.endswith("/") and tab.locator("h1").inner_text() == "Now"  # type: ignore[attr-defined]
    shot(tab, "now")
    tab.goto(tab.url + "tasks")  # type: ignore[attr-defined]
    pending, not_ready = tab.locator("#col-pending"), tab.locator("#col-not-ready")  # type: ignore[attr-defined]
    assert "mul" in pending.inner_text() and "Add mul()" in pending.inner_text()
    # the titles that try to inject HTML are text: visible as written, no dialog, no element made from them
    assert tab.locator("#task-xss .title").inner_text() == XSS_TITLE  # type: ignore[attr-defined]
    assert not_ready.locator("img").count() == 0 and not_ready.locator("script").count() == 0
    shot(tab, "tasks")
    before = int(repo.git("rev-list", "--count", "HEAD"))
    tab.locator("#task-mul button.approve").click()  # type: ignore[attr-defined]
    tab.wait_for_selector("p.said")  # type: ignore[attr-defined]
    assert "approved `mul` and committed it" in tab.locator("p.said").inner_text()  # type: ignore[attr-defined]
    assert "mul" in tab.locator("#col-ready").inner_text()  # type: ignore[attr-defined]
    assert int(repo.git("rev-list", "--count", "HEAD")) == before + 1
    assert repo.git("log", "-1", "--format=%s") == "approved mul"
    offered = plan_next(repo)["task"]
    assert isinstance(offered, dict) and offered["id"] == "mul"
    tab.goto(tab.url.split("?")[0] + "/xss")  # type: ignore[attr-defined]
    assert XSS_TITLE in tab.locator("h1").inner_text()  # type: ignore[attr-defined]
    shot(tab, "task")
    assert tab.dialogs == []  # type: ignore[attr-defined]


def test_a_session_shows_live_and_the_kill_switch_stops_it(ui: tuple[GitRepo, str], page: object,
                                                            tmp_path: Path) -> None:  # fmt: skip
    repo, url = ui
    tab = page
    tab.goto(url)  # type: ignore[attr-defined]
    overnight(repo, "plan", "approve", "mul")
    script = write_script(tmp_path / "s.toml", task_script("mul", WORKING))
    proc = spawn_run(repo, script)
    try:
        held = wait_for_agent(repo, proc)
        session = str(held["session"])
        path = journal.path_of(Workspace.open(repo.root).state_dir, session)
        assert path is not None
        # the page, drawn before the session started, follows it: the agent's write appears within a second
        step = tab.locator("#steps li", has_text="write src/app/live.py")  # type: ignore[attr-defined]
        step.wait_for(timeout=15_000)
        seen = time.time()
        events, _ = journal.read(path)
        [written] = [e for e in events if e["kind"] == "agent" and "write src/app/live.py" in e["agent"]["text"]]
        assert seen - written["at"] < 1.0, f"the tool call showed {seen - written['at']:.2f} s after it happened"
        said = tab.locator("#steps li", has_text="xss-3")  # type: ignore[attr-defined]
        said.wait_for(timeout=15_000)
        assert AGENT_XSS in said.inner_text() and tab.locator("#steps img").count() == 0  # type: ignore[attr-defined]
        assert tab.locator("#tokens").inner_text() == "15,200 in, 940 out"  # type: ignore[attr-defined]
        assert tab.locator("#cost").inner_text() == "$0.12"  # type: ignore[attr-defined]
        assert tab.locator("#agent").inner_text() == "replay"  # told by the stream: the page was drawn before
        assert session in tab.locator("#session").inner_text()  # type: ignore[attr-defined]
        shot(tab, "now-running")
        tab.locator("#stop").click()  # type: ignore[attr-defined]
        assert "Stop the night?" in tab.locator("h1").inner_text()  # type: ignore[attr-defined]
        shot(tab, "stop")
        tab.locator("#stop-confirm").click()  # type: ignore[attr-defined]
        tab.wait_for_selector("p.said")  # type: ignore[attr-defined]
        assert "signalled to stop" in tab.locator("p.said").inner_text()  # type: ignore[attr-defined]
        output, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    record = report.load(Workspace.open(repo.root).state_dir, session)
    assert record.outcome == "stopped" and [t.outcome for t in record.tasks] == ["stopped"], output
    assert tab.dialogs == []  # type: ignore[attr-defined]
    _the_other_pages(repo, tab, url.split("/login")[0], session)


MEMORY_XSS = '<img src=z onerror="alert(4)"> xss-4'


def _past_nights(repo: GitRepo) -> None:
    """The five nights before tonight's (one kept change with its checks and diff a night) for Sessions, Trends."""
    import datetime as dt

    from mcp_servers.core.models import CheckResult, Finding
    from scheduler.agents import AgentResult

    ws = Workspace.open(repo.root)
    head = repo.git("rev-parse", "HEAD")
    tonight = dt.datetime.now(dt.UTC).replace(hour=22, minute=0, second=0, microsecond=0)
    for day in range(1, 6):
        agent = "claude" if day % 2 else "codex"
        started = tonight - dt.timedelta(days=day if dt.datetime.now(dt.UTC).hour >= 12 else day + 1)
        sid = f"{started:%Y-%m-%d}-00000{day}"
        tasks = []
        for k, passed in enumerate([True, bool(day % 3), False]):
            tests = CheckResult(name="tests", status="passed" if passed else "failed", duration_s=2.0 + day / 4,
                                summary="12 passed" if passed else "1 failed, 11 passed",
                                findings=[] if passed else [Finding(path="tests/test_calc.py", line=12,
                                                                    message="assert sub(3, 1) == 2")])  # fmt: skip
            checks = [CheckResult(name=n, status="passed", summary="ok", duration_s=0.4) for n in ("policy", "lint")]
            result = AgentResult(agent=agent, is_error=False, turns=12, tokens_in=40_000 + 900 * day, tokens_out=5_000,
                                 cost_usd=0.4 + day / 10)  # fmt: skip
            tasks.append(report.TaskRecord(
                task_id=f"t{day}{k}", title=f"Task {day}{k}", outcome="passed" if passed else "failed", started="x",
                duration_s=200.0 + 30 * k, checks=[*checks, tests], coverage=80 + day / 2, coverage_base=80.0,
                commits=[head] if passed and k == 0 else [], agent=result,
                reasons=[] if passed else ["the gate failed: tests: 1 failed"],
                refused=[] if passed else ["Bash: git push origin main (refused: git writes go through commit)"],
                held=[] if passed or day != 1 else ["write to ~/.bashrc (held by the sandbox)"]))  # fmt: skip
        report.save(ws.state_dir, report.SessionRecord(
            id=sid, repo=str(repo.root), started=started.isoformat(), ended=started.isoformat(), outcome="completed",
            agent=agent, base_branch="main", base_commit=head, branch=f"overnight/{sid}", tasks=tasks))  # fmt: skip


def _the_other_pages(repo: GitRepo, tab: object, base: str, session: str) -> None:
    """Sessions, one session, Memory (an agent's entry that tries to inject HTML, shown as text) and Trends."""
    from mcp_servers.core import memory

    _past_nights(repo)
    memory.log_event(Workspace.open(repo.root), "lesson", f"the live test taught {MEMORY_XSS}", session=session,
                     task_id="mul", source="agent")  # fmt: skip
    tab.goto(f"{base}/sessions")  # type: ignore[attr-defined]
    rows = tab.locator("#sessions tbody tr")  # type: ignore[attr-defined]
    assert rows.count() == 6 and session in rows.first.inner_text()
    shot(tab, "sessions")
    tab.locator("#sessions a").nth(1).click()  # type: ignore[attr-defined]
    assert "-000001" in tab.locator("h1").inner_text()  # type: ignore[attr-defined]
    assert tab.locator("details.diff pre").first.is_visible()  # type: ignore[attr-defined]
    shot(tab, "session")
    tab.goto(f"{base}/memory?q=live")  # type: ignore[attr-defined]
    entry = tab.locator("#entries li.entry .text").first  # type: ignore[attr-defined]
    assert MEMORY_XSS in entry.inner_text() and tab.locator("#entries img").count() == 0  # type: ignore[attr-defined]
    shot(tab, "memory")
    tab.goto(f"{base}/trends?nights=7")  # type: ignore[attr-defined]
    assert tab.locator("figure.chart svg").count() >= 6  # type: ignore[attr-defined]
    shot(tab, "trends")
    assert tab.dialogs == []  # type: ignore[attr-defined]
