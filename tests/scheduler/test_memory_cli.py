"""`overnight memory ...`: people query and add to memory between sessions."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mcp_servers.core import memory
from mcp_servers.core.errors import UsageError
from mcp_servers.core.workspace import Workspace
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


def test_memory_cli_limit_pages_past_one_calls_cap(repo: GitRepo, capsys: pytest.CaptureFixture[str]) -> None:
    # issue 11: a --limit above the tools' per-call cap (50) is honoured by paging, not refused
    ws = Workspace.open(repo.root)
    total = memory.MAX_LIMIT + 12
    for i in range(total):
        memory.start_session(ws, session=f"night-{i:03}", goal="g", clock=lambda i=i: 1_000_000.0 + i)
        memory.log_event(ws, "note", f"rounding note {i}", session=f"night-{i:03}", clock=lambda i=i: 1_000_000.0 + i)
    assert _run(repo, "sessions", "--limit", str(total + 5), "--json") == 0
    data = json.loads(capsys.readouterr().out)
    ids = [s["id"] for s in data["sessions"]]
    assert ids == [f"night-{i:03}" for i in reversed(range(total))] and data["next_offset"] is None
    assert _run(repo, "sessions", "--limit", "55", "--json") == 0
    data = json.loads(capsys.readouterr().out)
    assert [s["id"] for s in data["sessions"]] == ids[:55] and data["next_offset"] == 55
    for query in (["rounding"], ["--kind", "note"]):  # ranked by words, and newest first by a filter
        assert _run(repo, "search", *query, "--limit", "100", "--json") == 0
        hits = [h["id"] for h in json.loads(capsys.readouterr().out)["hits"]]
        assert sorted(hits) == list(range(1, total + 1)), query  # every entry, once
    assert _run(repo, "search", "--kind", "note", "--limit", "51", "--json") == 0
    data = json.loads(capsys.readouterr().out)
    assert len(data["hits"]) == 51 and data["next_offset"] == 51
    assert _run(repo, "sessions", "--limit", "0") == 2  # still a usage error below one


def test_memory_core_pages_with_next_offset(repo: GitRepo) -> None:
    ws = Workspace.open(repo.root)
    for i in range(5):
        memory.log_event(ws, "note", f"paging note {i}", session="s", clock=lambda i=i: 1_000_000.0 + i)
    first = memory.search(ws, "paging", limit=2)
    second = memory.search(ws, "paging", limit=2, offset=first.next_offset or 0)
    last = memory.search(ws, "paging", limit=2, offset=second.next_offset or 0)
    assert (first.next_offset, second.next_offset, last.next_offset) == (2, 4, None)
    assert len({h.id for h in first.hits + second.hits + last.hits}) == 5
    with pytest.raises(UsageError, match="offset -1 is out of range"):
        memory.recent_sessions(ws, 10, -1)
