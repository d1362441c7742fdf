"""`overnight init` finds the layout and the project's environment, writes them, and says so (issue 11)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from mcp_servers.core import config, project_env
from scheduler.cli import main

from ..conftest import GitRepo, make_repo
from ..support.project_venv import make_venv

FLAT = {"mypkg/__init__.py": "", "mypkg/calc.py": "X = 1\n", "tests/test_calc.py": "def test_x():\n    pass\n",
        "doc/index.rst": "doc\n", ".gitignore": ".venv/\n"}  # fmt: skip


def _flat(tmp_path: Path) -> GitRepo:
    repo = make_repo(tmp_path / "r", files=FLAT)
    repo.git("rm", "-rq", "src")
    repo.commit("flat")
    return repo


def test_init_flat_layout_with_a_venv_writes_what_it_found(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    repo = _flat(tmp_path)
    make_venv(repo.root / ".venv", coverage=False)
    assert main(["-C", str(repo.root), "init", "--json"]) == 0
    found = json.loads(capsys.readouterr().out)["found"]
    assert found["layout"]["style"] == "flat" and found["layout"]["packages"] == ["mypkg"]
    assert found["environment"]["kind"] == "venv" and found["environment"]["python"] == ".venv/bin/python"
    assert found["environment"]["interpreter"]["version"] == ".".join(map(str, sys.version_info[:3]))
    assert any("coverage.py is not installed" in n and "pip install coverage" in n for n in found["notes"])
    settings = config.load(repo.root)
    assert settings.policy.allowed_paths == ["mypkg/**", "tests/**", "doc/**"]
    assert settings.gate.coverage.source == ["mypkg"]
    assert settings.gate.python == ".venv/bin/python"
    # the rest of the file is the commented template, and the written keys say where they came from
    text = (repo.root / "overnight.toml").read_text()
    assert text.count("# (found in this repository by `overnight init`)") == 3
    assert "# max_changed_lines = 30" in text


def test_init_prints_layout_environment_and_interpreter(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    repo = _flat(tmp_path)
    make_venv(repo.root / ".venv")
    assert main(["-C", str(repo.root), "init"]) == 0
    out = capsys.readouterr().out
    assert "layout: flat layout: code mypkg; tests tests; docs doc" in out
    assert "environment: venv at" in out and f"Python {sys.version_info[0]}.{sys.version_info[1]}" in out
    assert "set gate.python = .venv/bin/python" in out


def test_init_without_an_environment_says_overnights_interpreter_is_used(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("VIRTUAL_ENV", raising=False)
    repo = _flat(tmp_path)
    assert main(["-C", str(repo.root), "init", "--json"]) == 0
    found = json.loads(capsys.readouterr().out)["found"]
    assert found["environment"]["kind"] == "none" and "gate.python" not in found["settings"]
    assert any("overnight's own interpreter" in n for n in found["notes"])
    assert config.load(repo.root).gate.python == ""


def test_project_python_of_a_session_worktree_is_the_checkouts(tmp_path: Path) -> None:
    """An agent's worktree has no say in which interpreter runs: `.venv/bin/python` is the person's checkout's."""
    repo = make_repo(tmp_path / "r")
    other = tmp_path / "session"
    repo.git("worktree", "add", "-q", "-b", "s", str(other))
    common = Path(GitRepo(other).git("rev-parse", "--path-format=absolute", "--git-common-dir"))
    checkout = project_env.checkout_root(other, common)
    assert checkout == repo.root
    assert project_env.interpreter_path(".venv/bin/python", checkout) == str(repo.root / ".venv/bin/python")


def test_init_and_doctor_say_when_git_does_not_ignore_the_environment(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    repo = make_repo(tmp_path / "r")
    make_venv(repo.root / ".venv")
    assert main(["-C", str(repo.root), "init", "--commit", "--json"]) == 0
    notes = json.loads(capsys.readouterr().out)["found"]["notes"]
    assert any("git does not ignore `.venv/`" in n and ".git/info/exclude" in n for n in notes), notes
    from mcp_servers.core.workspace import Workspace
    from scheduler import doctor_project

    found = [f for f in doctor_project.checks(Workspace.open(repo.root)) if f.status == "warn"]
    assert any("git does not ignore `.venv/`" in f.detail for f in found), found
    (repo.root / ".git" / "info" / "exclude").write_text(".venv/\n")
    found = [f for f in doctor_project.checks(Workspace.open(repo.root)) if "ignore" in f.detail]
    assert found == []
