"""Receipts mean one thing (issue 10): who asked for a gate run is signed with it, the scheduler's verification
is a verdict and never a receipt, rows from before kinds existed do not count, and `commit` records its commits."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest

from mcp_servers.core import db, receipts
from mcp_servers.core.commit import commit
from mcp_servers.core.gate import run_gate
from mcp_servers.core.models import GateReport, Receipt
from mcp_servers.core.workspace import Workspace

from ..conftest import ADD_SUB, TEST_SUB, GitRepo

TREE = "a" * 40
REPORT = GateReport(passed=True, tree=TREE, base="b" * 40, summary="gate passed", checks=[])
KEY = b"k" * 32


def _record(conn: sqlite3.Connection, kind: receipts.Kind, session: str | None = "s1") -> Receipt | None:
    return receipts.record(conn, KEY, REPORT, policy_hash="p", scope=[], session=session, task_id="t", kind=kind)


def _find(conn: sqlite3.Connection, **kw: object) -> tuple[Receipt, GateReport] | None:
    return receipts.find(conn, KEY, tree=TREE, policy_hash="p", **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize("kind", ["agent-gate", "person-check"])
def test_receipts_agent_and_person_runs_are_receipts_with_their_kind(tmp_path: Path, kind: str) -> None:
    with db.opened(tmp_path / "state.db") as conn:
        made = _record(conn, kind)  # type: ignore[arg-type]
        found = _find(conn)
    assert made is not None and found is not None
    assert found[0].kind == kind and found[0] == made


def test_receipts_a_verification_is_recorded_but_never_a_receipt(tmp_path: Path) -> None:
    with db.opened(tmp_path / "state.db") as conn:
        assert _record(conn, "verification") is None
        row = conn.execute("SELECT id, kind, passed FROM gate_runs").fetchone()
        assert (row["kind"], row["passed"]) == ("verification", 1)
        assert _find(conn) is None and _find(conn, session="s1") is None
        assert receipts.get(conn, KEY, row["id"]) is None
        # relabelled as an agent's run in the database: the signature no longer verifies
        conn.execute("UPDATE gate_runs SET kind = 'agent-gate'")
        assert _find(conn) is None and receipts.get(conn, KEY, row["id"]) is None


def test_receipts_rows_made_before_kinds_existed_do_not_count(tmp_path: Path) -> None:
    with db.opened(tmp_path / "state.db") as conn:
        made = _record(conn, "agent-gate")
        assert made is not None
        fields = {k: v for k, v in receipts._fields(conn.execute("SELECT * FROM gate_runs").fetchone()).items()
                  if k != "kind"}  # fmt: skip
        # the row as migration 3 wrote it: no kind, signed without one
        conn.execute("UPDATE gate_runs SET kind = NULL, mac = ?", (receipts._mac(KEY, fields),))
        assert _find(conn) is None and receipts.get(conn, KEY, made.id) is None


def test_receipts_find_by_session_keeps_to_that_session(tmp_path: Path) -> None:
    with db.opened(tmp_path / "state.db") as conn:
        _record(conn, "agent-gate", session="s1")
        assert _find(conn, session="s1") is not None
        assert _find(conn, session="s2") is None


def test_receipts_unknown_kind_is_refused(tmp_path: Path) -> None:
    with db.opened(tmp_path / "state.db") as conn, pytest.raises(ValueError, match="unknown gate run kind"):
        _record(conn, "the-scheduler")  # type: ignore[arg-type]


def test_receipts_gate_kind_follows_who_asks(repo: GitRepo) -> None:
    repo.append("src/app/calc.py", ADD_SUB)
    repo.append("tests/test_calc.py", TEST_SUB)
    person = Workspace.open(repo.root)
    fresh = run_gate(person, fresh=True)  # the scheduler's verification: a verdict only
    assert fresh.passed and fresh.receipt is None
    checked = run_gate(person)  # nothing cached from the verification: the checks run again
    assert not checked.cached and checked.receipt is not None and checked.receipt.kind == "person-check"
    agent = Workspace.open(repo.root, environ={**os.environ, "OVERNIGHT_SESSION_ID": "s1"})
    assert run_gate(agent, fresh=True, kind="agent-gate").receipt.kind == "agent-gate"  # type: ignore[union-attr]
    with agent.db() as conn:
        kinds = [r["kind"] for r in conn.execute("SELECT kind FROM gate_runs ORDER BY created")]
    assert kinds == ["verification", "person-check", "agent-gate"]


def test_receipts_commit_records_each_commit_it_makes_signed(repo: GitRepo) -> None:
    repo.append("src/app/calc.py", ADD_SUB)
    repo.append("tests/test_calc.py", TEST_SUB)
    ws = Workspace.open(repo.root, environ={**os.environ, "OVERNIGHT_SESSION_ID": "s1", "OVERNIGHT_TASK_ID": "t1"})
    made = commit(ws, "Add sub()")
    with ws.db() as conn:
        found = receipts.recorded_commit(conn, ws.key(), made.commit)
        assert found is not None
        assert (found.tree, found.receipt_id, found.session, found.task_id) == (made.tree, made.receipt_id, "s1", "t1")
        assert receipts.recorded_commit(conn, ws.key(), repo.git("rev-parse", "HEAD^")) is None
        conn.execute("UPDATE commits SET session = 's2'")  # edited in the database: no record at all
        assert receipts.recorded_commit(conn, ws.key(), made.commit) is None
