"""Live progress as a person sees it: on a pseudo-terminal while the gate or a session runs, and as plain lines
when piped (no escape sequences, nothing wrapped)."""

from __future__ import annotations

import os
from pathlib import Path

from mcp_servers.core.gate.progress import TestCounter

from ..conftest import FAST_CONFIG, GitRepo, make_repo
from ..support.terminal import ANSI, in_terminal, overnight, piped

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
    import json

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
