"""Live progress as a person sees it: on a pseudo-terminal while the gate or a session runs, and as plain lines
when piped (no escape sequences, nothing wrapped)."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from mcp_servers.core.gate.progress import TestCounter

from ..conftest import FAST_CONFIG, GitRepo, make_repo
from ..support.terminal import ANSI, in_terminal, overnight, piped
from .sessions import make_planned, passing, plan, write_script

SLOW_TESTS = "".join(
    f"\n\ndef test_slow_{n}():\n    import time\n\n    time.sleep(0.6)\n    from app.calc import add\n\n"
    "    assert add(1, 1) == 2\n"
    for n in range(4)
)


def _slow_repo(root: Path) -> GitRepo:
    """The sample project with tests slow enough that the count is seen while they run; one change to gate."""
    repo = make_repo(root, config=FAST_CONFIG)
    repo.append("tests/test_calc.py", SLOW_TESTS)
    repo.commit("slow tests")
    repo.append("src/app/calc.py", "\n\nONE = 1\n")
    return repo


def test_gate_on_a_terminal_shows_each_check_and_the_test_count_before_the_end(tmp_path: Path) -> None:
    repo = _slow_repo(tmp_path / "r")
    seen = in_terminal(overnight("-C", str(repo.root), "check", "--gate"))
    assert seen.returncode == 0, seen.text
    text = seen.text
    assert "gate passed" in text
    for name in ("safety", "tests", "complexity", "security", "coverage"):
        assert f"{name} started" in text, text
    ended = seen.first("✓ tests passed in ")
    assert ended > 0, text
    # the count of tests done, while they ran: before the line that says they ended
    counted = [seen.first(f"tests {n} done") for n in (1, 2, 3)]
    assert all(0 <= at < ended for at in counted), text
    assert seen.first("tests started") < counted[0]
    assert b"\x1b[" in seen.raw  # a live view: colour and cursor movement


def test_gate_piped_prints_plain_lines_on_stderr_and_keeps_json_clean(tmp_path: Path) -> None:
    repo = _slow_repo(tmp_path / "r")
    done = piped(overnight("-C", str(repo.root), "check", "--gate", "--json"))
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["gate"]["passed"] is True
    lines = done.stderr.splitlines()
    assert "gate: safety started" in lines and "gate: tests started" in lines
    assert any(line.startswith("gate: tests passed in ") for line in lines), lines
    assert not ANSI.search(done.stderr.encode()) and not ANSI.search(done.stdout.encode())


def test_gate_quiet_shows_no_progress(tmp_path: Path) -> None:
    repo = _slow_repo(tmp_path / "r")
    done = piped(overnight("-C", str(repo.root), "check", "--gate", "--quiet"))
    assert done.returncode == 0, done.stderr
    assert "started" not in done.stderr and "gate passed" in done.stdout


def test_test_counter_reads_pytest_progress_split_anywhere() -> None:
    told: list[tuple[int, int | None]] = []
    counter = TestCounter(lambda done, percent: told.append((done, percent)))
    stream = (b"..F", b".s", b"    [ 50%]\r\n", b"tests/test_b.py ..", b". [ 90%]\n", b"x [100%]\n",
              b"=== FAILURES ===\n", b"...\n", b"FAILED tests/test_a.py::test_x - assert 1\n")  # fmt: skip
    for piece in stream:
        counter.feed(piece)
    # each time the count or the percentage moves; the failures' report after the run is not counted
    assert told == [(3, None), (5, None), (5, 50), (7, 50), (8, 90), (9, 100)]
    verbose = TestCounter(lambda done, percent: told.append((done, percent)))
    verbose.feed(b"tests/test_a.py::test_one PASSED     [ 50%]\ntests/test_a.py::test_two FAILED   [100%]\n")
    assert told[-1] == (2, 100)


def test_streamed_command_still_times_out_with_its_whole_process_group(tmp_path: Path) -> None:
    from mcp_servers.core import proc

    from ..support.procs import processes_mentioning

    marker = f"sleep 31.{os.getpid()}"
    pieces: list[bytes] = []
    done = proc.run(["sh", "-c", f"{marker} & echo started; {marker}"], timeout=1, on_output=pieces.append)
    assert done.timed_out and not done.ok
    assert pieces == [b"started\n"] and done.stdout == b"started\n"
    assert processes_mentioning(marker) == []


def _session(tmp_path: Path) -> tuple[GitRepo, Path]:
    repo = make_planned(tmp_path / "r", scheduler="max_tasks = 1\n")
    script = write_script(tmp_path / "s.toml", passing("sub", "sub"))
    return repo, script


def _run(repo: GitRepo, script: Path, *more: str) -> list[str]:
    return overnight("-C", str(repo.root), "run", "--agent", "replay", "--script", str(script), *more)


def test_run_on_a_terminal_shows_the_agents_tool_calls_as_they_happen(tmp_path: Path) -> None:
    repo, script = _session(tmp_path)
    seen = in_terminal(_run(repo, script))
    assert seen.returncode == 0, seen.text
    text = seen.text
    report = seen.first("# overnight session")
    calls = [seen.first(f"→ {what}") for what in ("write src/app/calc.py", "write tests/test_calc.py",
                                                   "call quality.run_quality_gate", "call quality.commit")]  # fmt: skip
    assert all(0 <= at < report for at in calls), text
    assert calls == sorted(calls)  # in the order the agent made them
    assert 0 <= seen.first("✓ gate passed") < report, text
    assert 0 <= seen.first("✓ task sub: kept") < report, text
    assert "tool call(s)" in text and "turn(s)" in text and "so far" in text  # the live status line
    assert 0 <= seen.first("✓ verification: tests passed") < seen.first("✓ task sub: kept"), text
    assert b"\x1b[" in seen.raw


def test_run_piped_prints_plain_lines_and_its_result_as_json(tmp_path: Path) -> None:
    repo, script = _session(tmp_path)
    done = piped(_run(repo, script, "--json"))
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["outcome"] == "completed" and result["branch"].startswith("overnight/")
    [task] = result["tasks"]
    assert task["task_id"] == "sub" and task["kept"] is True and task["reasons"] == [] and task["commits"]
    assert result["report"].endswith(f"{result['id']}.md") and result["cost_usd"] == 0.0
    lines = done.stderr.splitlines()
    assert "overnight: task sub: Add sub()" in lines
    assert "overnight: task sub: tool: write src/app/calc.py" in lines
    assert "overnight: task sub: gate: gate passed" in lines
    assert any(line.startswith("overnight: task sub: kept (") for line in lines), lines
    # the scheduler's own verification, check by check, before the outcome
    verified = [n for n, line in enumerate(lines) if line.startswith("overnight: task sub: verification: tests passed")]
    outcome = next(n for n, line in enumerate(lines) if line.startswith("overnight: task sub: kept ("))
    assert verified and verified[0] < outcome, lines
    assert lines.index("overnight: task sub: tool: write src/app/calc.py") < lines.index(
        "overnight: task sub: gate: gate passed"
    )
    assert not ANSI.search(done.stderr.encode())


def test_run_quiet_shows_only_outcomes_and_the_end(tmp_path: Path) -> None:
    repo, script = _session(tmp_path)
    done = piped(_run(repo, script, "--quiet"))
    assert done.returncode == 0, done.stderr
    lines = done.stderr.splitlines()
    assert len(lines) == 2, lines
    assert lines[0].startswith("overnight: task sub: kept (") and lines[1].startswith("overnight: session ")
    assert "# overnight session" in done.stdout


def test_no_color_is_honoured_on_a_terminal(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "r", config=FAST_CONFIG)
    colour = re.compile(rb"\x1b\[[0-9;]*3[0-7]m|\x1b\[[0-9;]*38;")
    coloured = in_terminal(overnight("-C", str(repo.root), "check"))
    assert coloured.returncode == 0 and "safe" in coloured.text
    assert colour.search(coloured.raw)  # green, without NO_COLOR
    plain = in_terminal(overnight("-C", str(repo.root), "check"), env={"NO_COLOR": "1"})
    assert plain.returncode == 0 and "safe" in plain.text
    assert not colour.search(plain.raw), plain.raw


def test_a_long_id_and_path_stay_on_one_line_when_piped(tmp_path: Path) -> None:
    long_id = "a_task_with_a_rather_long_identifier_" + "x" * 26  # 64 characters, the most an id may have
    title = "Touch " + "/".join(["deeply", "nested", "folder"] * 12) + "/module.py"
    repo = make_planned(tmp_path / "r", plan_text=plan((long_id, title)))
    done = piped(overnight("-C", str(repo.root), "plan", "list"))
    assert done.returncode == 0, done.stderr
    [row] = [line for line in done.stdout.splitlines() if long_id in line]
    assert title in row
    assert not ANSI.search(done.stdout.encode())


def test_claude_code_stream_is_read_into_events() -> None:
    from scheduler.agents.claude import ClaudeEvents

    read = ClaudeEvents()
    stream = [
        {"type": "system", "subtype": "init", "mcp_servers": []},
        {"type": "assistant", "message": {"id": "m1", "content": [
            {"type": "text", "text": "Adding sub()."},
            {"type": "tool_use", "id": "t1", "name": "Edit", "input": {"file_path": "src/app/calc.py"}}]}},
        {"type": "user", "message": {"content": [{"type": "tool_result", "tool_use_id": "t1", "content": "ok"}]}},
        {"type": "assistant", "message": {"id": "m2", "content": [
            {"type": "tool_use", "id": "t2", "name": "Bash", "input": {"command": "git commit -am x"}}]}},
        {"type": "user", "message": {"content": [{"type": "tool_result", "tool_use_id": "t2", "is_error": True,
                                                  "content": [{"type": "text", "text": "refused by the guard"}]}]}},
        {"type": "assistant", "message": {"id": "m3", "content": [
            {"type": "tool_use", "id": "t3", "name": "mcp__quality__run_quality_gate", "input": {}}]}},
        {"type": "user", "message": {"content": [{"type": "tool_result", "tool_use_id": "t3",
                                                  "content": '{"passed": false, "summary": "gate failed"}'}]}},
        {"type": "result", "num_turns": 3, "total_cost_usd": 0.42},
    ]  # fmt: skip
    events = [e for line in stream for e in read(line)]
    assert [(e.kind, e.text) for e in events if e.kind != "usage"] == [
        ("tool", "Edit `src/app/calc.py`"),
        ("tool", "Bash `git commit -am x`"),
        ("refused", "Bash: refused by the guard"),
        ("tool", "mcp__quality__run_quality_gate"),
        ("gate", "gate failed"),
    ]
    assert [e.turns for e in events if e.kind == "usage"] == [1, 2, 3, 3]
    assert events[-1].cost_usd == 0.42


@pytest.mark.parametrize("terminal", [True, False])
def test_what_the_agent_wrote_cannot_drive_the_terminal(terminal: bool) -> None:
    """A file name, a command or a test's output is the agent's: escape sequences in it are shown, not sent."""
    import io

    from rich.console import Console

    from mcp_servers.core.gate.progress import GateEvent
    from scheduler.agents import AgentEvent
    from scheduler.events import RunEvent
    from scheduler.live import GateView, RunView

    hostile = "src/\x1b]52;c;ZWNobyBwd25lZA==\x07\x1b[2J.py"
    stream = io.StringIO()
    console = Console(file=stream, force_terminal=terminal, width=100, highlight=False)  # as progress_console()
    with RunView(console) as view:
        view(RunEvent("task", "overnight: task t: T", task_id="t", title="T"))
        view(RunEvent("agent", f"overnight: task t: tool: write {hostile}", task_id="t",
                      agent=AgentEvent("tool", f"write {hostile}")))  # fmt: skip
    with GateView(console) as gate:
        gate(GateEvent("end", "tests", status="failed", summary=f"the tests failed: {hostile}"))
    text = stream.getvalue()
    assert "\x1b]52" not in text and "\x1b[2J" not in text and "\x07" not in text
    assert "src/?]52;c;ZWNobyBwd25lZA==??[2J.py" in text


def test_a_failing_observer_cannot_fail_the_gate_and_is_told_every_check(tmp_path: Path) -> None:
    from mcp_servers.core.gate import run_gate
    from mcp_servers.core.gate.progress import GateEvent
    from mcp_servers.core.workspace import Workspace

    repo = make_repo(tmp_path / "r", config=FAST_CONFIG)
    repo.append("src/app/calc.py", "\n\nONE = 1\n")
    told: list[GateEvent] = []

    def observer(event: GateEvent) -> None:
        told.append(event)
        raise RuntimeError("the screen broke")

    report = run_gate(Workspace.open(repo.root), progress=observer)
    assert report.passed, report.summary
    ended = {e.check: e.status for e in told if e.kind == "end"}
    assert ended == {c.name: c.status for c in report.checks}
    started = {e.check for e in told if e.kind == "start"}
    assert {c.name for c in report.checks if c.status != "skipped"} <= started <= set(ended)
