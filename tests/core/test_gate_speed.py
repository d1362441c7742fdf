"""A faster gate (issue 11, item 7): coverage through sys.monitoring where the tests' Python has it, and the base
measured beside the tree on a first gate. Real interpreters, real git, real pytest under coverage."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from mcp_servers.core import proc, receipts
from mcp_servers.core.config import DEFAULTS
from mcp_servers.core.gate import interpreter, run_gate
from mcp_servers.core.gate.tests import command
from mcp_servers.core.workspace import Workspace

from ..conftest import ADD_SUB, TEST_SUB, make_repo

PY312 = Path("/root/.pyenv/versions/3.12.1/bin/python3.12")
HERE = (sys.version_info[0], sys.version_info[1])


def _run(argv: list[str], *, env: dict[str, str], timeout: float) -> proc.Completed:
    return proc.run(argv, env=env, timeout=timeout)


def test_the_version_is_read_from_the_interpreters_files(tmp_path: Path) -> None:
    assert interpreter.from_files(Path(sys.executable)) == HERE  # a venv's `python`: its real name, python3.N
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "python").write_text("#!/bin/sh\nexit 1\n")
    (venv / "pyvenv.cfg").write_text("home = /usr/bin\ninclude-system-site-packages = false\nversion = 3.13.0\n")
    assert interpreter.from_files(venv / "bin" / "python") == (3, 13)


def test_an_interpreter_its_files_do_not_name_is_asked_once(tmp_path: Path) -> None:
    fake = tmp_path / "bin" / "interp"
    fake.parent.mkdir()
    calls = tmp_path / "calls"
    fake.write_text(f"#!/bin/sh\necho x >> {calls}\necho 3.12\n")
    fake.chmod(0o755)
    known = interpreter.Interpreters()
    assert known.version(str(fake), _run, dict(os.environ)) == (3, 12)
    assert known.version(str(fake), _run, dict(os.environ)) == (3, 12)
    assert calls.read_text().count("x") == 1  # remembered per path and modification time
    fake.write_text(f"#!/bin/sh\necho x >> {calls}\necho not a python\n")
    os.utime(fake, ns=(1, 1))
    assert known.version(str(fake), _run, dict(os.environ)) is None
    assert known.version("no-such-interpreter-here", _run, dict(os.environ)) is None


def test_sysmon_from_python_312_and_lines_only() -> None:
    assert interpreter.coverage_env((3, 12)) == {"COVERAGE_CORE": "sysmon"}
    assert interpreter.coverage_env((3, 11)) == {} and interpreter.coverage_env(None) == {}
    assert interpreter.mode((3, 12)) == "line/py3.12" and interpreter.mode(None) == "line"
    argv, wrapped = command(DEFAULTS, Path("/d"))
    assert wrapped and "--branch" not in argv  # sysmon measures branches only from 3.14: the gate reads lines


@pytest.mark.skipif(not PY312.exists(), reason="needs pyenv's Python 3.12")
def test_coverage_really_uses_sys_monitoring_on_312(tmp_path: Path) -> None:
    """coverage.py under 3.12, line coverage, COVERAGE_CORE as the gate sets it: its own debug output says sysmon."""
    venv = tmp_path / "v"
    subprocess.run([str(PY312), "-m", "venv", str(venv)], check=True)
    done = subprocess.run([str(venv / "bin/python"), "-m", "pip", "install", "-q", "coverage"], capture_output=True,
                          check=False)  # fmt: skip
    if done.returncode != 0:
        pytest.skip(f"coverage cannot be installed for 3.12 here: {done.stderr[-200:]!r}")
    (tmp_path / "m.py").write_text("x = 1\n")
    version = interpreter.from_files(venv / "bin" / "python")
    assert version == (3, 12)
    env = {**os.environ, **interpreter.coverage_env(version), "COVERAGE_DEBUG": "sys"}
    out = subprocess.run([str(venv / "bin/python"), "-m", "coverage", "run", "m.py"], cwd=tmp_path, env=env,
                         capture_output=True, text=True, check=True)  # fmt: skip
    assert "core: SysMonitor" in out.stdout + out.stderr
    assert "Can't use core=sysmon" not in out.stdout + out.stderr


def _first_gate(tmp_path: Path, name: str, tests_pass: bool = True) -> tuple[Workspace, str]:
    repo = make_repo(tmp_path / name, config="[gate.coverage]\nmin_total = 0\nmin_changed_lines = 0\n")
    repo.append("src/app/calc.py", ADD_SUB)
    repo.append("tests/test_calc.py", TEST_SUB if tests_pass else "\n\ndef test_no():\n    assert False\n")
    return Workspace.open(repo.root), repo.git("rev-parse", "HEAD^{tree}")


def test_a_first_gate_measures_the_base_beside_the_tree(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Beside the tests, not after them: even when the tests fail (the coverage check, which would ask for the
    base's figure, does not run), the base was measured and is remembered; with one core it is not."""
    mode = interpreter.mode(HERE)
    ws, base_tree = _first_gate(tmp_path, "two", tests_pass=False)
    assert not run_gate(ws).passed
    with ws.db() as conn:
        assert receipts.coverage_of(conn, base_tree, mode) is not None
    monkeypatch.setattr(os, "cpu_count", lambda: 1)
    ws, base_tree = _first_gate(tmp_path, "one", tests_pass=False)
    assert not run_gate(ws).passed
    with ws.db() as conn:
        assert receipts.coverage_of(conn, base_tree, mode) is None


def test_the_base_figure_is_the_same_measured_beside_or_after(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    beside, _ = _first_gate(tmp_path, "beside")
    first = run_gate(beside)
    monkeypatch.setattr(os, "cpu_count", lambda: 1)
    after, _ = _first_gate(tmp_path, "after")
    second = run_gate(after)
    assert first.passed and second.passed
    figures = [{c.name: c.data for c in r.checks}["coverage"] for r in (first, second)]
    assert figures[0] == figures[1] and figures[0]["base"] == 100.0
