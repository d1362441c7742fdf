"""`overnight plan add`: a well-formed task in the right section, and a commit that holds the plan alone."""

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


def _plan(repo: GitRepo) -> P.Plan:
    return P.parse((repo.root / "PROJECT_PLAN.md").read_bytes())


def test_plan_add_approved_commits_the_plan_alone_and_is_offered(
    planned: GitRepo, capsys: pytest.CaptureFixture[str]
) -> None:
    planned.write("src/app/staged.py", "X = 1\n")
    planned.git("add", "src/app/staged.py")  # the person's staged work: stays staged, stays out of the commit
    planned.append("src/app/calc.py", "# an edit in progress\n")
    head = planned.head()
    code = _run(planned, "add", "Add a mul() helper to the calculator", "--approve", "--id", "mul", "--priority",
                "p0", "--files", "src/app/calc.py,tests/test_calc.py", "--depends-on", "done", "--tests",
                "tests/test_calc.py", "--estimate", "12", "--alignment", "90", "--json")  # fmt: skip
    assert code == 0
    added = json.loads(capsys.readouterr().out)
    assert added["id"] == "mul" and added["section"] == "ready" and added["notes"] == []
    assert added["block"] == [
        "- **[mul]** Add a mul() helper to the calculator",
        "  - Priority: P0",
        "  - Depends on: done",
        "  - Files: src/app/calc.py, tests/test_calc.py",
        "  - Alignment score: 90/100",
        "  - Estimated lines: 12",
        "  - Tests defined: ✅ Yes (tests/test_calc.py)",
        "  - Status: READY",
    ]
    assert planned.head() == added["commit"] and planned.git("rev-parse", "HEAD^") == head
    assert planned.git("show", "--name-only", "--format=%s", "HEAD").split() == [
        "plan:", "add", "mul", "(approved)", "PROJECT_PLAN.md"]  # fmt: skip
    assert planned.git("diff", "--cached", "--name-only") == "src/app/staged.py"
    assert planned.git("diff", "--name-only") == "src/app/calc.py"  # unstaged, as it was
    assert "PROJECT_PLAN.md" not in planned.git("status", "--porcelain")  # the index's entry follows the commit
    assert not list((planned.root / ".git").glob(".overnight-plan-*"))  # the temporary index is gone
    plan = _plan(planned)
    assert plan.ok and plan.by_id["mul"].section == "ready" and plan.by_id["mul"].line == added["line"]
    assert planned.git("hash-object", "PROJECT_PLAN.md") == planned.git("rev-parse", "HEAD:PROJECT_PLAN.md")
    assert _run(planned, "next", "--json") == 0
    assert json.loads(capsys.readouterr().out)["task"]["id"] == "mul"


def test_plan_add_without_approval_goes_to_pending(planned: GitRepo, capsys: pytest.CaptureFixture[str]) -> None:
    assert _run(planned, "add", "Tidy the calculator docs") == 0
    said = capsys.readouterr().out
    assert "under Pending Approval" in said and "committed it" in said
    assert "note: no-estimate" in said and "note: no-tests" in said
    [task] = [t for t in _plan(planned).tasks if t.title == "Tidy the calculator docs"]
    assert task.section == "pending" and task.tests_defined is False
    assert task.get("tests_defined") == "⏳ Needs definition" and task.priority == 2
    assert planned.status() == ""


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (("",), "the task needs a title"),
        (("  ",), "the task needs a title"),
        (("A task", "--depends-on", "ghost,sub"), "no task `ghost` in the plan"),
        (("A task", "--id", "sub"), "`sub` cannot be the new task's id"),
        (("A task", "--id", "bad id"), "`bad id` cannot be the new task's id"),
        (("A task", "--files", "../outside/*"), "climbs out with `..`"),
        (("A task", "--tests", "tests/x.py)\n  - Status: READY"), "holds a line break"),
        (("A task", "--files", "src/a.py\r- **[x]** injected"), "holds a line break"),
        (("A task", "--priority", "P9"), "'P9' is not one of"),
        (("Drop the audit table", "--approve"), "not added: forbidden:drop-table"),
        (("Tidy docs", "--approve", "--files", ".env"), "not added: protected-path"),
    ],
)
def test_plan_add_refuses_bad_input_and_writes_nothing(
    planned: GitRepo, capsys: pytest.CaptureFixture[str], args: tuple[str, ...], said: str
) -> None:
    before, head = (planned.root / "PROJECT_PLAN.md").read_bytes(), planned.head()
    assert _run(planned, "add", *args) == 2
    assert said in capsys.readouterr().err
    assert (planned.root / "PROJECT_PLAN.md").read_bytes() == before and planned.head() == head


def test_plan_add_forbidden_operation_without_approval_is_written_with_a_note(
    planned: GitRepo, capsys: pytest.CaptureFixture[str]
) -> None:
    """Not approved, a task the policy refuses is still a person's note for later: written under Pending,
    saying what approval would run into."""
    assert _run(planned, "add", "Drop the audit table", "--json") == 0
    added = json.loads(capsys.readouterr().out)
    assert added["section"] == "pending" and any(n.startswith("forbidden:drop-table") for n in added["notes"])
    assert _plan(planned).by_id[added["id"]].section == "pending"


@pytest.mark.parametrize("staged", [False, True])
def test_plan_add_refuses_a_plan_with_edits_that_are_not_its_own(
    planned: GitRepo, capsys: pytest.CaptureFixture[str], staged: bool
) -> None:
    planned.append("PROJECT_PLAN.md", "\nA note of the person's, not committed yet.\n")
    if staged:
        planned.git("add", "PROJECT_PLAN.md")
    edited, head = (planned.root / "PROJECT_PLAN.md").read_bytes(), planned.head()
    assert _run(planned, "add", "Tidy the docs") == 2
    assert "PROJECT_PLAN.md has uncommitted edits" in capsys.readouterr().err
    assert (planned.root / "PROJECT_PLAN.md").read_bytes() == edited and planned.head() == head
    # --no-commit writes it, with the person's edit, and commits nothing
    assert _run(planned, "add", "Tidy the docs", "--no-commit") == 0
    assert "did not commit it" in capsys.readouterr().out
    assert planned.head() == head and b"A note of the person's" in (planned.root / "PROJECT_PLAN.md").read_bytes()
    assert any(t.title == "Tidy the docs" for t in _plan(planned).tasks)
