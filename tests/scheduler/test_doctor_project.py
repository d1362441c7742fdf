"""`overnight doctor` checks the configuration against the tree (issue 11, item 2)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mcp_servers.core.workspace import Workspace
from scheduler import doctor_project
from scheduler.cli import main

from ..conftest import FAST_CONFIG, make_repo
from ..support.project_venv import make_venv

FLAT = {
    "mypkg/__init__.py": "",
    "mypkg/calc.py": "def add(a, b):\n    return a + b\n",
    "tests/test_calc.py": "from mypkg.calc import add\n\n\ndef test_add():\n    assert add(1, 2) == 3\n",
}


def _by_name(findings: list[doctor_project.Finding], name: str) -> list[doctor_project.Finding]:
    return [f for f in findings if f.name == name]


def test_doctor_flat_layout_with_src_defaults_says_what_matches_nothing(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "r", config=FAST_CONFIG, files=FLAT)
    repo.git("rm", "-rq", "src")
    repo.commit("flat")
    found = doctor_project.checks(Workspace.open(repo.root))
    allowed = _by_name(found, "allowed path")
    assert [f.detail for f in allowed] == ["`src/**` matches no file in the tree", "`docs/**` matches no file "
                                           "in the tree"]  # fmt: skip
    assert all(f.status == "warn" and "overnight init --force" in f.fix for f in allowed)
    source = _by_name(found, "coverage source")
    assert len(source) == 1 and source[0].status == "error" and "No data to report" in source[0].detail
    assert 'source = ["mypkg"]' in source[0].fix
    assert "flat layout: code mypkg" in _by_name(found, "layout")[0].detail


def test_doctor_protected_glob_of_the_persons_own_matching_nothing(tmp_path: Path) -> None:
    config = FAST_CONFIG + '[policy]\nextend_protected_paths = ["src/app/secret_*.py", "README.md"]\n'
    repo = make_repo(tmp_path / "r", config=config)
    found = _by_name(doctor_project.checks(Workspace.open(repo.root)), "protected path")
    assert [f.detail for f in found] == ["`src/app/secret_*.py` matches no file in the tree"]


def test_doctor_project_environment_not_configured_is_a_warning_with_the_setting(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "r", config=FAST_CONFIG, files={".gitignore": ".venv/\n"})
    make_venv(repo.root / ".venv")
    found = _by_name(doctor_project.checks(Workspace.open(repo.root)), "project python")
    assert found[0].status == "warn" and "overnight's own interpreter" in found[0].detail
    assert 'python = ".venv/bin/python"' in found[0].fix


def test_doctor_project_interpreter_without_coverage_or_missing(tmp_path: Path) -> None:
    config = FAST_CONFIG + '[gate]\npython = ".venv/bin/python"\n'
    repo = make_repo(tmp_path / "r", config=config, files={".gitignore": ".venv/\n"})
    found = _by_name(doctor_project.checks(Workspace.open(repo.root)), "project python")
    assert found[0].status == "error" and "does not exist" in found[0].detail
    make_venv(repo.root / ".venv", coverage=False)
    found = _by_name(doctor_project.checks(Workspace.open(repo.root)), "project python")
    assert [f.status for f in found] == ["ok", "error"]
    assert "coverage.py is not installed" in found[1].detail
    assert found[1].fix == f"`{repo.root}/.venv/bin/python -m pip install coverage`"


def test_doctor_run_tests_on_head_passes_and_says_how_long(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = FAST_CONFIG + '[gate]\npython = ".venv/bin/python"\n'
    repo = make_repo(tmp_path / "r", config=config, files={".gitignore": ".venv/\n"})
    make_venv(repo.root / ".venv", editable=repo.root / "src")
    main(["-C", str(repo.root), "doctor", "--json", "--run-tests"])
    found = [f for f in json.loads(capsys.readouterr().out)["findings"] if f["name"] == "tests on HEAD"]
    assert found[0]["status"] == "ok", found
    assert "1 passed" in found[0]["detail"] and "coverage 100.0%" in found[0]["detail"]
    assert "s, sandboxed)" in found[0]["detail"]


def test_doctor_run_tests_on_head_failing_is_an_error(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "r", config=FAST_CONFIG)
    repo.write("tests/test_calc.py", "def test_add():\n    assert 1 == 2\n")
    repo.commit("break it")
    found = _by_name(doctor_project.checks(Workspace.open(repo.root), run_tests=True), "tests on HEAD")
    assert found[0].status == "error" and "1 failed" in found[0].detail
    assert "gate would fail on the unchanged tree" in found[0].fix
    without = _by_name(doctor_project.checks(Workspace.open(repo.root)), "tests on HEAD")
    assert "--run-tests" in without[0].detail
