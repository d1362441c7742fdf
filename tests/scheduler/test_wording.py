"""In the shell, messages name the commands a person types; through MCP, the same core messages name the tools
(tests/mcp_servers/test_project_server.py checks that side)."""

from __future__ import annotations

from pathlib import Path

import pytest

from scheduler.cli import main
from scheduler.wording import for_shell

from .sessions import make_planned


def test_for_shell_names_commands_for_tools_in_backticks_only() -> None:
    assert for_shell("there is no task `x` in the plan: `list_tasks` shows the ids.") == (
        "there is no task `x` in the plan: `overnight plan list` shows the ids."
    )
    assert for_shell("call `mcp__quality__run_quality_gate` first") == "call `overnight check --gate` first"
    assert for_shell("the list_tasks tool, `list_tasks_more`, `commit`") == (
        "the list_tasks tool, `list_tasks_more`, `git commit`"
    )


def test_shell_errors_name_commands_not_tools(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    repo = make_planned(tmp_path / "r")
    assert main(["-C", str(repo.root), "plan", "show", "nope"]) == 2
    err = capsys.readouterr().err
    assert "`overnight plan list` shows the ids" in err and "list_tasks" not in err
    assert main(["-C", str(repo.root), "plan", "reset", "nope"]) == 2
    assert "`overnight plan list` shows the ids" in capsys.readouterr().err
    assert main(["-C", str(repo.root), "memory", "show", "no-such-session"]) == 2
    err = capsys.readouterr().err
    assert "`overnight memory sessions` lists them" in err and "recent_sessions" not in err
    assert main(["-C", str(repo.root), "health"]) == 0
    out = capsys.readouterr().out
    assert "no coverage measured yet: run the quality gate (`overnight check --gate`) once" in out
    assert "run_quality_gate" not in out
