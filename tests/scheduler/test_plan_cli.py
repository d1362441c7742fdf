"""`overnight plan ...`: the queue from the shell, and the person's approve and reject."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mcp_servers.core import plan as P
from scheduler.cli import main

from ..conftest import FAST_CONFIG, GitRepo, make_repo
from ..core.test_queue import PLAN


@pytest.fixture
def planned(tmp_path: Path) -> GitRepo:
    return make_repo(tmp_path / "r", config=FAST_CONFIG, files={"PROJECT_PLAN.md": PLAN})


def _run(repo: GitRepo, *args: str) -> int:
    return main(["-C", str(repo.root), "plan", *args])


def test_plan_cli_next_json_has_the_documented_shape(planned: GitRepo, capsys: pytest.CaptureFixture[str]) -> None:
    assert _run(planned, "next", "--json") == 0
    data = json.loads(capsys.readouterr().out)
    assert set(data) == {"task", "skipped"}
    assert data["task"]["id"] == "sub"
    assert {"id", "reason"} == set(data["skipped"][0]) and {s["id"] for s in data["skipped"]} == {
        "after_sub",
        "drop",
        "idea",
    }


def test_plan_cli_list_and_show(planned: GitRepo, capsys: pytest.CaptureFixture[str]) -> None:
    assert _run(planned, "list") == 0
    out = capsys.readouterr().out
    assert "after_sub" in out and "blocked" in out and "8 task(s); approval read from HEAD" in out
    assert _run(planned, "show", "drop") == 0
    assert "unsafe: forbidden:drop-table" in capsys.readouterr().out
    assert _run(planned, "show", "ghost") == 2
    assert "no task `ghost`" in capsys.readouterr().err


def test_plan_cli_approve_commits_only_the_plan(planned: GitRepo, capsys: pytest.CaptureFixture[str]) -> None:
    planned.write("src/app/wip.py", "x = 1\n")  # the person's unrelated work stays uncommitted
    head = planned.head()
    assert _run(planned, "approve", "idea") == 0
    assert "approved `idea` and committed it" in capsys.readouterr().out
    assert planned.git("rev-parse", "HEAD^") == head
    shown = planned.git("show", "--name-only", "--format=%s", "HEAD").splitlines()
    assert [line for line in shown if line] == ["approved idea", "PROJECT_PLAN.md"]
    assert "?? src/app/wip.py" in planned.git("status", "--porcelain")
    plan = P.parse((planned.root / "PROJECT_PLAN.md").read_bytes())
    assert plan.by_id["idea"].section == "ready" and plan.by_id["idea"].status == "ready"
    assert _run(planned, "next", "--json") == 0
    assert json.loads(capsys.readouterr().out)["task"]["id"] == "idea"  # P0, and approved on HEAD now


def test_plan_cli_approve_leaves_a_plan_with_other_edits_to_the_person(
    planned: GitRepo, capsys: pytest.CaptureFixture[str]
) -> None:
    (planned.root / "PROJECT_PLAN.md").write_text(PLAN + "\nA note the person is writing.\n")
    head = planned.head()
    assert _run(planned, "approve", "idea") == 0
    assert "had other uncommitted edits, so it was not committed" in capsys.readouterr().out
    assert planned.head() == head


def test_plan_cli_reject_with_reason(planned: GitRepo, capsys: pytest.CaptureFixture[str]) -> None:
    assert _run(planned, "reject", "low", "--reason", "not this quarter", "--no-commit") == 0
    plan = P.parse((planned.root / "PROJECT_PLAN.md").read_bytes())
    assert plan.by_id["low"].section == "not-ready" and plan.by_id["low"].get("reason") == "not this quarter"
    assert "commit it for the approval to count" in capsys.readouterr().out


def test_plan_cli_validate_exits_1_with_line_numbers(planned: GitRepo, capsys: pytest.CaptureFixture[str]) -> None:
    assert _run(planned, "validate") == 0
    capsys.readouterr()
    (planned.root / "PROJECT_PLAN.md").write_text(PLAN.replace("  - Depends on: sub\n", "  - Depends on: ghost\n"))
    assert _run(planned, "validate") == 1
    assert (
        "PROJECT_PLAN.md:20: error: task `after_sub` depends on `ghost`, which is not in the plan"
        in capsys.readouterr().out
    )
    assert _run(planned, "validate", "--json") == 1
    assert json.loads(capsys.readouterr().out)["errors"][0]["code"] == "missing-dependency"


def test_plan_cli_reset_and_summary(planned: GitRepo, capsys: pytest.CaptureFixture[str]) -> None:
    assert _run(planned, "reset", "sub") == 0
    assert "offered again" in capsys.readouterr().out
    assert _run(planned, "summary", "--json") == 0
    data = json.loads(capsys.readouterr().out)
    assert data["tasks"] == 8 and data["next"]["id"] == "sub"


def test_plan_cli_init_registers_the_project_server(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "r")
    assert main(["-C", str(repo.root), "init"]) == 0
    assert {"quality", "project"} <= set(json.loads((repo.root / ".mcp.json").read_text())["mcpServers"])


def test_plan_cli_list_limit_pages_past_one_calls_cap(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # issue 11: a --limit above list_tasks' per-call cap is honoured by paging through its cursor
    from mcp_servers.core import queue

    from .sessions import plan

    count = queue.MAX_LIST + 5
    repo = make_repo(tmp_path / "r", config=FAST_CONFIG,
                     files={"PROJECT_PLAN.md": plan(*((f"t{i:03}", f"Task {i}") for i in range(count)))})  # fmt: skip
    assert _run(repo, "list", "--limit", str(count + 100), "--json") == 0
    data = json.loads(capsys.readouterr().out)
    assert [t["id"] for t in data["tasks"]] == [f"t{i:03}" for i in range(count)]
    assert data["total"] == count and data["next_cursor"] is None
    assert _run(repo, "list", "--limit", str(queue.MAX_LIST + 1), "--json") == 0
    data = json.loads(capsys.readouterr().out)
    assert len(data["tasks"]) == queue.MAX_LIST + 1 and data["next_cursor"] == str(queue.MAX_LIST + 1)
    assert _run(repo, "list", "--limit", str(count)) == 0
    assert f"{count} task(s)" in capsys.readouterr().out
