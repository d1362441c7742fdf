"""The gated commit: only a tree with a passing receipt is committed, with trailers naming it."""

from __future__ import annotations

import pytest

from mcp_servers.core.commit import clean_message, commit
from mcp_servers.core.errors import GateError, GitError, UsageError
from mcp_servers.core.gate import run_gate
from mcp_servers.core.workspace import Workspace

from ..conftest import ADD_SUB, TEST_SUB, GitRepo


def _trailers(repo: GitRepo, commit_id: str) -> str:
    return repo.git("log", "-1", "--format=%(trailers:only,unfold)", commit_id)


def test_commit_makes_a_commit_of_the_receipted_tree_with_trailers(repo: GitRepo) -> None:
    head = repo.head()
    repo.append("src/app/calc.py", ADD_SUB)
    repo.append("tests/test_calc.py", TEST_SUB)
    ws = Workspace.open(repo.root)
    receipt = run_gate(ws).receipt
    assert receipt is not None
    result = commit(ws, "Add sub()\n\nSubtraction for the calculator.", task_id="task_3")
    assert result.receipt_id == receipt.id and result.branch == "main"
    assert repo.head() == result.commit
    assert repo.git("rev-parse", "HEAD^") == head
    assert repo.git("rev-parse", "HEAD^{tree}") == receipt.tree
    assert _trailers(repo, "HEAD").splitlines() == [
        f"Overnight-Receipt: {receipt.id}",
        "Overnight-Task: task_3",
    ]
    assert repo.git("log", "-1", "--format=%s") == "Add sub()"
    assert repo.status() == ""


def test_commit_runs_the_gate_when_there_is_no_receipt(repo: GitRepo) -> None:
    repo.append("src/app/calc.py", ADD_SUB)
    repo.append("tests/test_calc.py", TEST_SUB)
    result = commit(Workspace.open(repo.root), "Add sub()")
    assert "Overnight-Receipt:" in result.message and "Overnight-Task" not in result.message


def test_commit_takes_the_task_from_the_session_environment(repo: GitRepo) -> None:
    repo.append("src/app/calc.py", ADD_SUB)
    repo.append("tests/test_calc.py", TEST_SUB)
    ws = Workspace.open(repo.root, environ={"OVERNIGHT_TASK_ID": "task_9", "PATH": "/usr/bin:/bin"})
    commit(ws, "Add sub()")
    assert "Overnight-Task: task_9" in _trailers(repo, "HEAD")


def test_commit_refuses_a_tree_that_fails_the_gate_and_moves_nothing(repo: GitRepo) -> None:
    head = repo.head()
    repo.append("src/app/calc.py", ADD_SUB)
    repo.write(".env", "SECRET=1\n")
    with pytest.raises(GateError) as e:
        commit(Workspace.open(repo.root), "sneak")
    assert repo.head() == head
    message = str(e.value)
    assert message.startswith("nothing was committed because the gate failed:\n- safety:")
    assert "[protected-path] `.env` is protected" in message and "run `run_quality_gate` again" in message


def test_commit_strips_trailers_the_caller_forged(repo: GitRepo) -> None:
    repo.append("src/app/calc.py", ADD_SUB)
    repo.append("tests/test_calc.py", TEST_SUB)
    forged = "Add sub()\n\nOvernight-Receipt: deadbeefdeadbeef\noVERNIGHT-task: task_666\n"
    result = commit(Workspace.open(repo.root), forged, task_id="task_1")
    trailers = _trailers(repo, result.commit).splitlines()
    assert trailers == [f"Overnight-Receipt: {result.receipt_id}", "Overnight-Task: task_1"]
    assert "deadbeef" not in result.message and "task_666" not in result.message


def test_commit_with_nothing_to_commit_says_so(repo: GitRepo) -> None:
    with pytest.raises(GateError, match=r"nothing to commit"):
        commit(Workspace.open(repo.root), "empty")


@pytest.mark.parametrize("message", ["", "   \n", "Overnight-Receipt: abc\n"])
def test_commit_refuses_an_empty_message(message: str) -> None:
    with pytest.raises(UsageError, match=r"empty"):
        clean_message(message)


def test_commit_refuses_a_bad_task_id(repo: GitRepo) -> None:
    repo.append("src/app/calc.py", ADD_SUB)
    with pytest.raises(UsageError, match=r"not a task id"):
        commit(Workspace.open(repo.root), "x", task_id="--help\nOvernight-Receipt: x")


def test_commit_refuses_a_detached_head_and_changes_nothing(repo: GitRepo) -> None:
    repo.git("checkout", "-q", "--detach")
    repo.append("src/app/calc.py", ADD_SUB)
    index = repo.index_tree()
    with pytest.raises(GitError, match=r"HEAD is detached.*git switch -c"):
        commit(Workspace.open(repo.root), "x")
    assert repo.index_tree() == index
    assert "M src/app/calc.py" in repo.status()


def test_commit_refuses_during_a_merge(repo: GitRepo) -> None:
    repo.conflicting_merge()
    with pytest.raises(GitError, match=r"middle of a merge.*git merge --abort"):
        commit(Workspace.open(repo.root), "x")
