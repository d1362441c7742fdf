"""Attacks on receipts, reproduced with real sessions: a tree the agent committed with plain git must never be
kept, whatever receipts exist for it (issue 10)."""

from __future__ import annotations

import os
from pathlib import Path

from mcp_servers.core import hooks
from mcp_servers.core.workspace import Workspace

from ..conftest import ADD_SUB, TEST_SUB
from .sessions import Person, make_planned, run_session, task_script, write_script

# The change of a task done properly (see sessions.PASS), committed with plain git instead of the `commit` tool.
CHANGE = """
[[task.step]]
append = "src/app/calc.py"
text = "\\n\\ndef sub(a, b):\\n    return a - b\\n"
[[task.step]]
append = "tests/test_calc.py"
text = "\\n\\ndef test_sub():\\n    from app.calc import sub\\n\\n    assert sub(3, 1) == 2\\n"
"""
AROUND_THE_HOOK = CHANGE + """
[[task.step]]
run = ["git", "commit", "-q", "--no-verify", "-am", "around the hook"]
"""
THROUGH_THE_HOOK = CHANGE + """
[[task.step]]
run = ["git", "commit", "-qam", "through the hook"]
"""


def test_verification_of_a_plain_commit_leaves_no_receipt_a_later_plain_commit_can_use(tmp_path: Path) -> None:
    # unsandboxed, so that the agent's git can commit at all: the scheduler's verification on its own
    repo = make_planned(tmp_path / "r", scheduler='max_tasks = 1\nsandbox = "off"\n')
    person = Person.of(repo)
    # session 1: plain git around the hook; the scheduler's own gate run passes the tree, the task is rolled back
    first, said = run_session(repo, write_script(tmp_path / "s1.toml", task_script("sub", AROUND_THE_HOOK)))
    [task] = first.tasks
    assert task.outcome == "failed", said
    assert all(c.status == "passed" for c in task.checks)  # verification judged the tree good...
    assert any("outside the gated `commit` tool" in r for r in task.reasons)  # ...and still refused the commit
    # session 2: the same tree, plain-committed again: verification refuses it, whatever receipts exist for it
    second, said = run_session(repo, write_script(tmp_path / "s2.toml", task_script("sub", THROUGH_THE_HOOK)))
    [task] = second.tasks
    assert task.outcome == "failed", said
    assert any("outside the gated `commit` tool" in r for r in task.reasons), task
    assert second.final_commit == second.base_commit
    person.assert_untouched(repo)


def test_hook_refuses_a_tree_only_the_schedulers_verification_passed(tmp_path: Path) -> None:
    repo = make_planned(tmp_path / "r", scheduler="max_tasks = 1\n")
    run_session(repo, write_script(tmp_path / "s1.toml", task_script("sub", AROUND_THE_HOOK)))
    # the person's checkout, staged with the very tree verification passed
    repo.append("src/app/calc.py", ADD_SUB)
    repo.append("tests/test_calc.py", TEST_SUB)
    repo.git("add", "src", "tests")
    ok, message = hooks.check_staged(Workspace.open(repo.root), dict(os.environ))
    assert not ok, message
