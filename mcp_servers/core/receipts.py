"""Gate runs and receipts: every run is recorded, a passing one is a receipt, each row signed with an HMAC.

A receipt binds a tree id to the base it was compared with, the policy hash it was judged under, the task
scope, the result of every check and who asked for the run (its kind). A row whose MAC does not verify (edited
in the database) counts as no receipt at all. The key lives in the state directory with mode 0600; the
scheduler re-checks everything itself and does not rely on the key being secret from a process running as the
same user.

Kinds (issue 10): `agent-gate` (the quality server's `run_quality_gate`/`commit` in a session), `person-check`
(`overnight check --gate`, or a gate run with no session) and `verification` (the scheduler's own run after an
agent exits). A verification is a verdict, never a receipt: no hook, no `commit`, no cache accepts it, so a tree
the scheduler judged for a plain `git commit` does not become committable. Rows made before kinds existed
(migration 4) have none: they are not receipts (nothing says who asked for them, and a verification then looked
like any other run); the cost is one fresh gate run per tree.

The `commit` tool also records every commit it makes (commit id, tree, receipt, session, task, signed), so the
scheduler can tell its commits from any other, whatever receipts exist for their trees.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import secrets
import sqlite3
from collections.abc import Mapping, Sequence
from typing import Any, Literal, get_args

from pydantic import BaseModel

from . import db
from .models import GateReport, Receipt

Kind = Literal["agent-gate", "person-check", "verification"]
KINDS: tuple[str, ...] = get_args(Kind)
VOUCHING: tuple[str, ...] = ("agent-gate", "person-check")  # the kinds that are receipts: never "verification"


def _mac(key: bytes, fields: dict[str, object]) -> str:
    blob = json.dumps(fields, sort_keys=True, separators=(",", ":")).encode()
    return hmac.new(key, blob, hashlib.sha256).hexdigest()


def _fields(row: sqlite3.Row | dict[str, object]) -> dict[str, object]:
    names = (
        "id",
        "tree",
        "base",
        "policy_hash",
        "scope",
        "passed",
        "report",
        "session",
        "task_id",
        "created",
        "kind",
    )
    return {name: row[name] for name in names}


def record(
    conn: sqlite3.Connection,
    key: bytes,
    report: GateReport,
    *,
    policy_hash: str,
    scope: Sequence[str],
    session: str | None,
    task_id: str | None,
    kind: Kind,
) -> Receipt | None:
    """Store a gate run; for a passing run return its receipt (never for a `verification`: it is a verdict)."""
    if kind not in KINDS:
        raise ValueError(f"unknown gate run kind {kind!r}")
    checks = {c.name: c.status for c in report.checks}
    row: dict[str, object] = {
        "id": secrets.token_hex(8),
        "tree": report.tree,
        "base": report.base,
        "policy_hash": policy_hash,
        "scope": json.dumps(sorted(scope)),
        "passed": int(report.passed),
        "report": report.model_dump_json(exclude={"receipt", "cached"}),
        "session": session,
        "task_id": task_id,
        "created": _now(),
        "kind": kind,
    }
    mac = _mac(key, row)
    with db.transaction(conn):
        conn.execute(
            "INSERT INTO gate_runs (id, tree, base, policy_hash, scope, passed, report, session, task_id, created,"
            " kind, mac) VALUES (:id, :tree, :base, :policy_hash, :scope, :passed, :report, :session, :task_id,"
            " :created, :kind, :mac)",
            {**row, "mac": mac},
        )
    return _receipt(row, checks, mac) if report.passed and kind in VOUCHING else None


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")


def _receipt(row: sqlite3.Row | dict[str, object], checks: Mapping[str, str], mac: str) -> Receipt:
    return Receipt(
        id=str(row["id"]),
        tree=str(row["tree"]),
        base=str(row["base"]),
        policy_hash=str(row["policy_hash"]),
        scope=json.loads(str(row["scope"])),
        checks=dict(checks),
        session=row["session"],  # type: ignore[arg-type]
        task_id=row["task_id"],  # type: ignore[arg-type]
        created=str(row["created"]),
        kind=str(row["kind"]),
        mac=mac,
    )


def _verified(key: bytes, row: sqlite3.Row) -> bool:
    return hmac.compare_digest(_mac(key, _fields(row)), str(row["mac"]))


def _from_row(key: bytes, row: sqlite3.Row) -> tuple[Receipt, GateReport] | None:
    if row["kind"] not in VOUCHING or not row["passed"] or not _verified(key, row):
        return None
    report = GateReport.model_validate_json(row["report"])
    return _receipt(row, {c.name: c.status for c in report.checks}, row["mac"]), report


def find(
    conn: sqlite3.Connection,
    key: bytes,
    *,
    tree: str,
    policy_hash: str,
    base: str | None = None,
    scope: Sequence[str] | None = None,
    session: str | None = None,
) -> tuple[Receipt, GateReport] | None:
    """The newest valid receipt for `tree` under `policy_hash` (and `base`, `scope` and `session`, when given).

    Only the kinds in `VOUCHING` are receipts: the scheduler's own verification never is one."""
    sql = "SELECT * FROM gate_runs WHERE tree = ? AND policy_hash = ? AND passed = 1 AND kind IN (?, ?)"
    params: list[object] = [tree, policy_hash, *VOUCHING]
    if session is not None:
        sql += " AND session = ?"
        params.append(session)
    if base is not None:
        sql += " AND base = ?"
        params.append(base)
    if scope is not None:
        sql += " AND scope = ?"
        params.append(json.dumps(sorted(scope)))
    for row in conn.execute(sql + " ORDER BY created DESC", params):
        found = _from_row(key, row)
        if found:
            return found
    return None


def get(conn: sqlite3.Connection, key: bytes, receipt_id: str) -> Receipt | None:
    """The receipt with this id, if it exists, passed, is of a vouching kind and its MAC verifies."""
    row = conn.execute("SELECT * FROM gate_runs WHERE id = ?", (receipt_id,)).fetchone()
    found = _from_row(key, row) if row else None
    return found[0] if found else None


def problems(receipt: Receipt | None, *, tree: str, policy_hash: str) -> list[str]:
    """Why a receipt does not vouch for `tree` under `policy_hash` (empty when it does)."""
    if receipt is None:
        return ["no valid receipt (none recorded, it did not pass, or its signature does not verify)"]
    found = []
    if receipt.tree != tree:
        found.append(f"the receipt is for tree {receipt.tree[:12]}, not {tree[:12]}")
    if receipt.policy_hash != policy_hash:
        found.append(f"the receipt was made under policy {receipt.policy_hash}, the policy is now {policy_hash}")
    return found


class CommitRecord(BaseModel):
    """A commit the `commit` tool made: which tree, under which receipt, in which session, for which task."""

    commit: str
    tree: str
    receipt_id: str
    session: str | None
    task_id: str | None
    created: str


def record_commit(
    conn: sqlite3.Connection,
    key: bytes,
    *,
    commit: str,
    tree: str,
    receipt_id: str,
    session: str | None,
    task_id: str | None,
) -> CommitRecord:
    """Remember, signed, that the `commit` tool made `commit` (the scheduler keeps no other commit)."""
    row: dict[str, object] = {
        "commit_id": commit,
        "tree": tree,
        "receipt_id": receipt_id,
        "session": session,
        "task_id": task_id,
        "created": _now(),
    }
    with db.transaction(conn):
        conn.execute(
            "INSERT OR REPLACE INTO commits (commit_id, tree, receipt_id, session, task_id, created, mac)"
            " VALUES (:commit_id, :tree, :receipt_id, :session, :task_id, :created, :mac)",
            {**row, "mac": _mac(key, {"record": "commit", **row})},
        )
    return _commit_record(row)


def recorded_commit(conn: sqlite3.Connection, key: bytes, commit: str) -> CommitRecord | None:
    """The `commit` tool's record of `commit`, if there is one and its MAC verifies."""
    row = conn.execute("SELECT * FROM commits WHERE commit_id = ?", (commit,)).fetchone()
    if row is None:
        return None
    fields = {name: row[name] for name in ("commit_id", "tree", "receipt_id", "session", "task_id", "created")}
    if not hmac.compare_digest(_mac(key, {"record": "commit", **fields}), str(row["mac"])):
        return None
    return _commit_record(fields)


def _commit_record(row: Mapping[str, object]) -> CommitRecord:
    return CommitRecord.model_validate({**row, "commit": row["commit_id"]})


def last_runs(conn: sqlite3.Connection, limit: int = 5) -> list[sqlite3.Row]:
    return list(conn.execute("SELECT * FROM gate_runs ORDER BY created DESC LIMIT ?", (limit,)))


def last_run_for(conn: sqlite3.Connection, session: str, task_id: str) -> GateReport | None:
    """The newest gate run a session made for a task (passed or not), for the morning report."""
    row = conn.execute(
        "SELECT report FROM gate_runs WHERE session = ? AND task_id = ? ORDER BY created DESC LIMIT 1",
        (session, task_id),
    ).fetchone()
    return GateReport.model_validate_json(row["report"]) if row else None


def save_coverage(
    conn: sqlite3.Connection, tree: str, percent: float, files: dict[str, dict[str, float]], mode: str
) -> None:
    """A tree's coverage, measured in `mode` (see `gate.interpreter.mode`); it replaces one measured otherwise."""
    with db.transaction(conn):
        conn.execute(
            "INSERT OR REPLACE INTO coverage (tree, percent, files, created, mode) VALUES (?, ?, ?, ?, ?)",
            (tree, percent, json.dumps(files), dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), mode),
        )


def coverage_of(conn: sqlite3.Connection, tree: str, mode: str) -> tuple[float, dict[str, Any]] | None:
    """A tree's coverage when it was measured in `mode`: a figure measured another way (branch coverage, another
    Python) is not comparable, so it is as if none was remembered."""
    row = conn.execute("SELECT percent, files FROM coverage WHERE tree = ? AND mode = ?", (tree, mode)).fetchone()
    return (float(row["percent"]), json.loads(row["files"])) if row else None


def latest_coverage(conn: sqlite3.Connection) -> tuple[str, float, dict[str, Any]] | None:
    row = conn.execute("SELECT tree, percent, files FROM coverage ORDER BY created DESC LIMIT 1").fetchone()
    return (str(row["tree"]), float(row["percent"]), json.loads(row["files"])) if row else None


def measured_coverage(conn: sqlite3.Connection, prefer: str | None) -> tuple[str, str, dict[str, Any]] | None:
    """(tree, when, per-file figures) of one measurement: the `prefer`red tree's when it was measured, else the
    newest (ties: the last written)."""
    row = conn.execute(
        "SELECT tree, created, files FROM coverage ORDER BY tree = ? DESC, created DESC, rowid DESC LIMIT 1",
        (prefer or "",),
    ).fetchone()
    return (str(row["tree"]), str(row["created"]), json.loads(row["files"])) if row else None
