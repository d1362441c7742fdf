"""`overnight memory ...`: people query and add to memory between sessions."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from scheduler.cli import main

from ..conftest import GitRepo, make_repo


def _run(repo: GitRepo, *args: str) -> int:
    return main(["-C", str(repo.root), "memory", *args])


def test_memory_cli_add_search_show(repo: GitRepo, capsys: pytest.CaptureFixture[str]) -> None:
    assert _run(repo, "add", "Use banker's rounding for money", "--kind", "decision", "--file", "src/app/calc.py") == 0
    assert "added #1" in capsys.readouterr().out
    assert _run(repo, "search", "rounding money", "--json") == 0
    hits = json.loads(capsys.readouterr().out)["hits"]
    assert [(h["id"], h["kind"], h["source"]) for h in hits] == [(1, "decision", "person")]
    assert _run(repo, "search", "rounding", "--kind", "failure") == 0
    assert "nothing found" in capsys.readouterr().out
    assert _run(repo, "show", "1") == 0
    assert "Use banker's rounding for money" in capsys.readouterr().out
    repo.append("src/app/calc.py", "\n# edit\n")
    assert _run(repo, "search", "rounding") == 0
    assert "(stale)" in capsys.readouterr().out
    assert _run(repo, "show", "99") == 2


def test_memory_cli_sessions_and_show_session(repo: GitRepo, capsys: pytest.CaptureFixture[str],
                                              monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    monkeypatch.setenv("OVERNIGHT_SESSION_ID", "night-3")
    assert _run(repo, "add", "a lesson", "--kind", "lesson") == 0
    assert _run(repo, "sessions", "--json") == 0
    sessions = json.loads(capsys.readouterr().out.split("\n", 1)[1])["sessions"]
    assert sessions[0]["id"] == "night-3" and sessions[0]["entries"] == 1
    assert _run(repo, "show", "night-3") == 0
    assert "a lesson" in capsys.readouterr().out


def test_memory_cli_export_import_round_trip(repo: GitRepo, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for i in range(3):
        _run(repo, "add", f"note {i}", "--tag", f"t{i}")
    out = tmp_path / "memory.jsonl"
    assert _run(repo, "export", "-o", str(out)) == 0
    assert _run(repo, "export") == 0
    assert capsys.readouterr().out.splitlines()[-3:] == out.read_text().splitlines()[-3:]
    other = make_repo(tmp_path / "other")
    assert main(["-C", str(other.root), "memory", "import", str(out)]) == 0
    assert "imported 3 entries" in capsys.readouterr().out
    assert main(["-C", str(other.root), "memory", "export"]) == 0
    assert capsys.readouterr().out == out.read_text()


def test_memory_cli_import_refuses_a_bad_file(
    repo: GitRepo, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"type": "entry"}\n')
    assert _run(repo, "import", str(bad)) == 2
    assert "line 1 of the import" in capsys.readouterr().err


def test_memory_cli_search_with_nothing_to_search_for_is_a_usage_error(repo: GitRepo,
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    assert _run(repo, "add", "a lesson", "--kind", "lesson") == 0
    capsys.readouterr()
    assert _run(repo, "search") == 2
    assert "say what to search for" in capsys.readouterr().err
    assert _run(repo, "search", "  ") == 2
    assert _run(repo, "search", "--kind", "lesson") == 0  # a filter alone lists what it selects
    assert "a lesson" in capsys.readouterr().out
