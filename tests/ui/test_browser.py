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
