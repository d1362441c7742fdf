"""`verify.outside_commit`: the scheduler keeps only commits the `commit` tool recorded for its session, each
naming the receipt that vouches for its tree (issue 10)."""

from __future__ import annotations

import os

import pytest

from mcp_servers.core import receipts
from mcp_servers.core.commit import commit
from mcp_servers.core.workspace import Workspace
from scheduler.verify import outside_commit

from ..conftest import ADD_SUB, TEST_SUB, GitRepo


@pytest.fixture
def made(repo: GitRepo) -> tuple[Workspace, str, str]:
    """A commit the `commit` tool made in session s1: the workspace, the commit, its receipt."""
    repo.append("src/app/calc.py", ADD_SUB)
    repo.append("tests/test_calc.py", TEST_SUB)
    ws = Workspace.open(repo.root, environ={**os.environ, "OVERNIGHT_SESSION_ID": "s1"})
    result = commit(ws, "Add sub()")
    return ws, result.commit, result.receipt_id


def _why(ws: Workspace, commit_id: str, session: str | None = "s1") -> str | None:
    with ws.db() as conn:
        return outside_commit(conn, ws.key(), ws.repo, commit_id, session=session,
                              policy_hash=ws.settings.policy_hash())  # fmt: skip


def test_verify_a_commit_the_tool_made_in_this_session_is_kept(made: tuple[Workspace, str, str]) -> None:
    ws, commit_id, _ = made
    assert _why(ws, commit_id) is None


def test_verify_a_commit_the_tool_made_for_another_session_is_refused(made: tuple[Workspace, str, str]) -> None:
    ws, commit_id, _ = made
    assert _why(ws, commit_id, session="s2") == "the `commit` tool made it for session s1, not this one"


def test_verify_a_plain_commit_copying_the_trailer_is_refused(repo: GitRepo, made: tuple[Workspace, str, str]) -> None:
    ws, _, receipt_id = made
    repo.git("reset", "-q", "--soft", "HEAD^")  # the same tree, committed with plain git and a copied trailer
    repo.git("commit", "-q", "--no-verify", "-m", f"Add sub(), my way\n\nOvernight-Receipt: {receipt_id}")
    assert _why(ws, repo.head()) == "the `commit` tool has no record of it"


def test_verify_a_record_naming_another_receipt_than_the_trailer_is_refused(made: tuple[Workspace, str, str]) -> None:
    ws, commit_id, receipt_id = made
    with ws.db() as conn:
        receipts.record_commit(conn, ws.key(), commit=commit_id, tree=ws.repo.tree_of(commit_id), receipt_id="0" * 16,
                               session="s1", task_id=None)  # fmt: skip
    assert _why(ws, commit_id) == f"its `Overnight-Receipt:` trailer says {receipt_id!r}, the `commit` tool used " + (
        "0" * 16
    )


def test_verify_a_commit_whose_receipt_no_longer_verifies_is_refused(made: tuple[Workspace, str, str]) -> None:
    ws, commit_id, _ = made
    with ws.db() as conn:
        conn.execute("UPDATE gate_runs SET kind = 'person-check'")  # edited: the signature breaks
    assert "no valid receipt" in (_why(ws, commit_id) or "")
