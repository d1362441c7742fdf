"""The gate runs the tests with the project's own interpreter (`[gate] python`), inside the sandbox (issue 11)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from mcp_servers.core.gate import run_gate
from mcp_servers.core.workspace import Workspace

from ..conftest import ADD_SUB, FAST_CONFIG, TEST_SUB, GitRepo, make_repo
from ..support.project_venv import make_venv, other_python

CONFIG = (
    FAST_CONFIG + '[gate]\npython = ".venv/bin/python"\n[gate.security]\nenabled = false\n'
    "[gate.complexity]\nenabled = false\n"
)
# no `pythonpath` setting: `app` is importable only through the environment's editable install
PYPROJECT = '[project]\nname = "sample"\nversion = "0.1.0"\n'
# the test proves which interpreter ran it
TEST_WHICH = "import os, sys\n\n\ndef test_which():\n    assert os.path.isdir(sys.prefix + '/shim'), sys.prefix\n"


def _project(tmp_path: Path, *, coverage: bool = True, base: str = sys.executable) -> GitRepo:
    root = tmp_path / "repo"
    repo = make_repo(root, config=CONFIG, files={"pyproject.toml": PYPROJECT, ".gitignore": ".venv/\n",
                                                  "tests/test_which.py": TEST_WHICH})  # fmt: skip
    make_venv(root / ".venv", coverage=coverage, editable=root / "src", base=base)
    return repo


WHICH_COMMAND = (
    '[[gate.commands]]\nname = "which"\n'
    'run = ["python", "-c", "import os, sys; assert os.path.isdir(sys.prefix + \'/shim\')"]\n'
)


def test_gate_runs_tests_with_the_project_interpreter(tmp_path: Path) -> None:
    repo = _project(tmp_path)
    repo.append("overnight.toml", WHICH_COMMAND)  # `python` in [[gate.commands]] is the project's too
    repo.commit("a command")
    repo.append("src/app/calc.py", ADD_SUB)
    repo.append("tests/test_calc.py", TEST_SUB)
    report = run_gate(Workspace.open(repo.root))
    assert report.passed, report.summary
    tests = next(c for c in report.checks if c.name == "tests")
    assert "3 passed" in tests.summary
    assert next(c for c in report.checks if c.name == "which").status == "passed"


def test_gate_in_a_worktree_imports_the_judged_tree_through_the_editable_install(tmp_path: Path) -> None:
    """The venv's .pth points at the checkout's src; the gate shows the judged tree there, not the checkout."""
    repo = _project(tmp_path)
    other = tmp_path / "session"
    repo.git("worktree", "add", "-q", "-b", "session", str(other))
    session = GitRepo(other)
    session.append("src/app/calc.py", ADD_SUB)
    session.append("tests/test_calc.py", TEST_SUB)  # the checkout has no `sub`: only the judged tree does
    report = run_gate(Workspace.open(other))
    assert report.passed, report.summary


def test_gate_without_coverage_in_the_project_interpreter_names_the_fix(tmp_path: Path) -> None:
    repo = _project(tmp_path, coverage=False)
    repo.append("src/app/calc.py", ADD_SUB)
    repo.append("tests/test_calc.py", TEST_SUB)
    report = run_gate(Workspace.open(repo.root))
    assert not report.passed
    tests = next(c for c in report.checks if c.name == "tests")
    assert "coverage.py is not installed" in tests.summary
    assert "-m pip install coverage" in tests.summary


def test_gate_with_a_missing_project_interpreter_fails_closed(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", config=CONFIG)
    repo.append("src/app/calc.py", ADD_SUB)
    repo.append("tests/test_calc.py", TEST_SUB)
    report = run_gate(Workspace.open(repo.root))
    assert not report.passed
    assert "tests" in report.summary


def test_gate_unsandboxed_in_a_worktree_still_imports_the_judged_src(tmp_path: Path) -> None:
    """With the sandbox off the judged tree cannot be shown at the checkout's path; its src/ goes first instead."""
    repo = _project(tmp_path)
    repo.append("overnight.toml", '[scheduler]\nsandbox = "off"\n')
    repo.commit("unsandboxed")
    other = tmp_path / "session"
    repo.git("worktree", "add", "-q", "-b", "session", str(other))
    session = GitRepo(other)
    session.append("src/app/calc.py", ADD_SUB)
    session.append("tests/test_calc.py", TEST_SUB)
    report = run_gate(Workspace.open(other))
    assert report.passed, report.summary


def test_gate_runs_a_project_interpreter_of_another_python_version(tmp_path: Path) -> None:
    """The project's venv is made from another Python (pyenv's, under a hidden home): its base is shown too."""
    base = other_python()
    if base is None:
        pytest.skip("no Python of another minor version on this machine (pyenv or PATH)")
    version = subprocess.run([base, "-c", "import sys; print(sys.version_info[:2])"], capture_output=True,
                             text=True, check=True).stdout.strip()  # fmt: skip
    repo = _project(tmp_path, base=base)
    repo.write(
        "tests/test_version.py", f"import sys\n\n\ndef test_version():\n    assert sys.version_info[:2] == {version}\n"
    )
    repo.append("src/app/calc.py", ADD_SUB)
    repo.append("tests/test_calc.py", TEST_SUB)
    report = run_gate(Workspace.open(repo.root))
    assert report.passed, report.summary
    assert "4 passed" in next(c for c in report.checks if c.name == "tests").summary
