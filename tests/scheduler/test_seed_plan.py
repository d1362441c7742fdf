"""The plan this product was designed from runs as written (issue 11): it validates, and its first Ready task
is offered by `overnight plan next` and by the project server's `next_task`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from mcp import Client

from mcp_servers.core import queue
from mcp_servers.core.workspace import Workspace
from mcp_servers.project.server import build
from scheduler.cli import main

from ..conftest import FAST_CONFIG, GitRepo, make_repo

SEED = (Path(__file__).parent.parent / "fixtures" / "seed_PROJECT_PLAN.md").read_text(encoding="utf-8")


@pytest.fixture
def seeded(tmp_path: Path) -> GitRepo:
    return make_repo(tmp_path / "r", config=FAST_CONFIG, files={"PROJECT_PLAN.md": SEED})


def _run(repo: GitRepo, *args: str) -> int:
    return main(["-C", str(repo.root), "plan", *args])


def test_seed_plan_validates_clean(seeded: GitRepo, capsys: pytest.CaptureFixture[str]) -> None:
    assert _run(seeded, "validate", "--json") == 0
    data = json.loads(capsys.readouterr().out)
    assert data["ok"] is True and data["errors"] == [] and data["tasks"] == 6


def test_seed_plan_next_offers_its_first_ready_task(seeded: GitRepo, capsys: pytest.CaptureFixture[str]) -> None:
    assert _run(seeded, "next", "--json") == 0
    data = json.loads(capsys.readouterr().out)
    assert data["task"]["id"] == "task_3"
    assert data["task"]["title"] == "Add User model with email and password fields"
    assert data["skipped"] == []  # nothing ahead of it: task_1 and task_2 are done
    assert _run(seeded, "list", "--json") == 0
    listed = json.loads(capsys.readouterr().out)["tasks"]
    states = {t["id"]: t["state"] for t in listed}
    assert {t["id"]: t["why"] for t in listed}[
        "task_4"
    ] == "pending approval; tests not defined yet (⏳ Needs definition)"
    assert states == {"task_1": "done", "task_2": "done", "task_3": "ready", "task_5": "blocked",
                      "task_4": "pending-approval", "task_6": "not-ready"}  # fmt: skip
    # task_5 waits for task_3 (a dependency), not for a topic word; task_4 says why it is not ready
    whys = {}
    for task_id in ("task_5", "task_4"):
        assert _run(seeded, "show", task_id, "--json") == 0
        whys[task_id] = json.loads(capsys.readouterr().out)["why"]
    assert whys == {
        "task_5": "blocked by task_3",
        "task_4": "pending approval; tests not defined yet (⏳ Needs definition)",
    }


def test_seed_plan_password_task_is_offered_once_its_dependency_is_done(
    seeded: GitRepo, capsys: pytest.CaptureFixture[str]
) -> None:
    """The second Ready task, about passwords and marked `⚠️ Touches authentication`, is approved work."""
    ws = Workspace.open(seeded.root)
    assert queue.check_plan_task(ws, "task_5").ok
    seeded.write(
        "PROJECT_PLAN.md", SEED.replace("  - Status: READY\n\n→ **[task_5]**", "  - Status: DONE\n\n→ **[task_5]**")
    )
    seeded.commit("task_3 done")
    assert _run(seeded, "next", "--json") == 0
    task = json.loads(capsys.readouterr().out)["task"]
    assert task["id"] == "task_5" and task["safety_check"] == "⚠️ Touches authentication (needs review)"
    assert task["fields"] == {"Use": "bcrypt through passlib, never a plain hash"}


@pytest.mark.anyio
async def test_seed_plan_next_task_through_the_project_server(seeded: GitRepo, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OVERNIGHT_SESSION_ID", "s-seed")
    async with Client(build(str(seeded.root)), raise_exceptions=True) as client:
        found = (await client.call_tool("next_task", {})).structured_content
        assert found["task"]["id"] == "task_3"
        checked = (await client.call_tool("validate_plan", {})).structured_content
        assert checked["ok"] is True and checked["errors"] == []


def test_seed_plan_with_an_unreadable_value_validates_with_a_warning(
    seeded: GitRepo, capsys: pytest.CaptureFixture[str]
) -> None:
    """A value that cannot be read is a warning that says how it was read, not an error that stops the queue."""
    seeded.write(
        "PROJECT_PLAN.md",
        SEED.replace(
            "  - Priority: P1\n  - Depends on: task_1, task_2", "  - Priority: soonish\n  - Depends on: task_1, task_2"
        ),
    )
    seeded.commit("a priority nobody can read")
    assert _run(seeded, "validate") == 0
    out = capsys.readouterr().out
    assert "PROJECT_PLAN.md:31: warning: task `task_3`: Priority is P0, P1, P2 or P3 (got 'soonish'); read as P2" in out
    assert "6 task(s), 0 error(s), 1 warning(s)" in out  # (the base and the working tree hold the same file)
    assert _run(seeded, "next", "--json") == 0
    assert json.loads(capsys.readouterr().out)["task"]["id"] == "task_3"
