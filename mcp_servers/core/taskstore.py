"""The task queue's runtime state in `state.db`: claims with expiry, attempts, completions, plan edits, events.

The plan file says what the tasks are and which are approved; this says what happened to them. Every write is
one short `BEGIN IMMEDIATE` transaction, so two sessions racing for a claim are served one after the other and
exactly one wins. Time is a parameter: tests pass the clock in instead of patching it.
"""

from __future__ import annotations

import json
import sqlite3
from collections import defaultdict
from dataclasses import dataclass, field

from . import db
from .errors import OvernightError

FAILED = ("failed", "interrupted")
# A run the model's API stopped (a usage limit, an outage): the claim is released and the attempt is not counted,
# neither as an attempt nor as a failure; it stays in the history (issue 12)
INFRA = "infra-stop"


class ClaimHeld(OvernightError):
    """Another live session holds the task."""

    def __init__(self, claim: Claim) -> None:
        self.claim = claim
        super().__init__(f"task `{claim.task_id}` is claimed by session {claim.session} until {iso(claim.expires_at)}")


@dataclass(frozen=True)
class Claim:
    task_id: str
    session: str
    claimed_at: float
    expires_at: float
    attempt_id: int


@dataclass(frozen=True)
class Completion:
    task_id: str
    session: str
    branch: str
    commit: str
    receipt_id: str
    completed_at: float


@dataclass
class TaskState:
    """What the database knows about one task."""

    claim: Claim | None = None
    attempts: int = 0
    failures: int = 0
    last_failure: str | None = None
    blocked: str | None = None
    completions: list[Completion] = field(default_factory=list)


def iso(when: float) -> str:
    import datetime as dt

    return dt.datetime.fromtimestamp(when, dt.UTC).isoformat(timespec="seconds")


def _expire(conn: sqlite3.Connection, now: float) -> None:
    """Claims past their expiry end: their attempt counts as interrupted and the task returns to the queue."""
    conn.execute(
        "UPDATE task_attempts SET outcome = 'interrupted', "
        "ended_at = (SELECT c.expires_at FROM task_claims AS c WHERE c.attempt_id = task_attempts.id), "
        "reason = 'the claim expired: the session holding it stopped renewing it' "
        "WHERE id IN (SELECT attempt_id FROM task_claims WHERE expires_at <= ?)",
        (now,),
    )
    conn.execute("DELETE FROM task_claims WHERE expires_at <= ?", (now,))


def expire(conn: sqlite3.Connection, now: float) -> None:
    """End expired claims; a read first, so that answering a question takes no write lock."""
    if conn.execute("SELECT 1 FROM task_claims WHERE expires_at <= ? LIMIT 1", (now,)).fetchone() is None:
        return
    with db.transaction(conn):
        _expire(conn, now)


def states(conn: sqlite3.Connection, now: float) -> dict[str, TaskState]:
    """Every task's state, after ending expired claims."""
    expire(conn, now)
    found: dict[str, TaskState] = defaultdict(TaskState)
    for row in conn.execute("SELECT * FROM task_claims"):
        found[row["task_id"]].claim = Claim(
            row["task_id"], row["session"], row["claimed_at"], row["expires_at"], row["attempt_id"]
        )
    for row in conn.execute("SELECT task_id, outcome, reason FROM task_attempts WHERE cleared = 0 ORDER BY id"):
        if row["outcome"] == INFRA:
            continue
        state = found[row["task_id"]]
        state.attempts += 1
        if row["outcome"] in FAILED:
            state.failures += 1
            state.last_failure = row["reason"]
        state.blocked = row["reason"] if row["outcome"] == "blocked" else None
    for row in conn.execute("SELECT * FROM task_completions WHERE cleared = 0 ORDER BY id"):
        found[row["task_id"]].completions.append(
            Completion(
                row["task_id"], row["session"], row["branch"], row["commit_id"], row["receipt_id"], row["completed_at"]
            )
        )
    return dict(found)


def claim(conn: sqlite3.Connection, task_id: str, session: str, ttl_s: float, now: float) -> tuple[Claim, bool]:
    """Take (or renew) the claim; (claim, True) when it is new. ClaimHeld when another live session has it."""
    with db.transaction(conn):
        _expire(conn, now)
        row = conn.execute("SELECT * FROM task_claims WHERE task_id = ?", (task_id,)).fetchone()
        if row is not None:
            held = Claim(row["task_id"], row["session"], row["claimed_at"], row["expires_at"], row["attempt_id"])
            if held.session != session:
                raise ClaimHeld(held)
            conn.execute("UPDATE task_claims SET expires_at = ? WHERE task_id = ?", (now + ttl_s, task_id))
            _event(conn, task_id, now, session, "agent", "renewed", f"until {iso(now + ttl_s)}")
            return Claim(task_id, session, held.claimed_at, now + ttl_s, held.attempt_id), False
        attempt = conn.execute(
            "INSERT INTO task_attempts (task_id, session, started_at, outcome) VALUES (?, ?, ?, 'running')",
            (task_id, session, now),
        ).lastrowid
        conn.execute(
            "INSERT INTO task_claims (task_id, session, claimed_at, expires_at, attempt_id) VALUES (?, ?, ?, ?, ?)",
            (task_id, session, now, now + ttl_s, attempt),
        )
        _event(conn, task_id, now, session, "agent", "claimed", f"until {iso(now + ttl_s)}")
        return Claim(task_id, session, now, now + ttl_s, int(attempt or 0)), True


def end_attempt(
    conn: sqlite3.Connection, task_id: str, session: str, now: float, outcome: str, reason: str | None = None
) -> bool:
    """End the session's claim on a task with an outcome (released, failed, blocked, done); False if it held none."""
    with db.transaction(conn):
        _expire(conn, now)
        row = conn.execute("SELECT * FROM task_claims WHERE task_id = ?", (task_id,)).fetchone()
        if row is not None and row["session"] != session:
            raise ClaimHeld(
                Claim(row["task_id"], row["session"], row["claimed_at"], row["expires_at"], row["attempt_id"])
            )
        if row is None:
            if outcome not in {"failed", "blocked"}:
                return False
            last = conn.execute(
                "SELECT id, outcome FROM task_attempts WHERE task_id = ? AND session = ? AND cleared = 0 "
                "ORDER BY id DESC LIMIT 1",
                (task_id, session),
            ).fetchone()
            if last is not None and last["outcome"] == "interrupted":
                # the claim expired while the session worked (counted as interrupted): this report says how
                # that same attempt ended, so it replaces the outcome instead of counting a second attempt
                conn.execute("UPDATE task_attempts SET outcome = ?, reason = ? WHERE id = ?",
                             (outcome, reason, last["id"]))  # fmt: skip
            else:  # recorded even without a claim: the agent says it tried
                conn.execute(
                    "INSERT INTO task_attempts (task_id, session, started_at, ended_at, outcome, reason) "
                    "VALUES (?, ?, ?, ?, ?, ?)",
                    (task_id, session, now, now, outcome, reason),
                )
            _event(conn, task_id, now, session, "agent", outcome, reason)
            return True
        conn.execute(
            "UPDATE task_attempts SET outcome = ?, reason = ?, ended_at = ? WHERE id = ?",
            (outcome, reason, now, row["attempt_id"]),
        )
        conn.execute("DELETE FROM task_claims WHERE task_id = ?", (task_id,))
        _event(conn, task_id, now, session, "agent", outcome, reason)
        return True


def record_completion(
    conn: sqlite3.Connection, done: Completion, *, ops: list[tuple[str, str, dict[str, str]]] | None = None
) -> None:
    """Record a completion (ending the session's claim as done) and the plan edits made for it."""
    with db.transaction(conn):
        _expire(conn, done.completed_at)
        row = conn.execute("SELECT attempt_id, session FROM task_claims WHERE task_id = ?", (done.task_id,)).fetchone()
        if row is not None and row["session"] == done.session:
            conn.execute(
                "UPDATE task_attempts SET outcome = 'done', ended_at = ? WHERE id = ?",
                (done.completed_at, row["attempt_id"]),
            )
            conn.execute("DELETE FROM task_claims WHERE task_id = ?", (done.task_id,))
        conn.execute(
            "INSERT INTO task_completions (task_id, session, branch, commit_id, receipt_id, completed_at) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (done.task_id, done.session, done.branch, done.commit, done.receipt_id, done.completed_at),
        )
        for branch, op, payload in ops or []:
            _op(conn, branch, op, done.task_id, payload, done.session, done.completed_at)
        _event(
            conn,
            done.task_id,
            done.completed_at,
            done.session,
            "agent",
            "completed",
            f"commit {done.commit[:12]} on {done.branch}, receipt {done.receipt_id}",
        )


def reset(conn: sqlite3.Connection, task_id: str, now: float, actor: str = "person") -> None:
    """Forget a task's claims, attempts and completions (they stay in the history, marked cleared)."""
    with db.transaction(conn):
        conn.execute("DELETE FROM task_claims WHERE task_id = ?", (task_id,))
        conn.execute("UPDATE task_attempts SET cleared = 1 WHERE task_id = ?", (task_id,))
        conn.execute("UPDATE task_completions SET cleared = 1 WHERE task_id = ?", (task_id,))
        _event(conn, task_id, now, None, actor, "reset", "claims, attempts and completions cleared")


def record_op(
    conn: sqlite3.Connection, branch: str, op: str, task_id: str, payload: dict[str, str], session: str, now: float
) -> None:
    """Journal an edit a tool made to the plan file, so the policy can tell it from a hand edit."""
    with db.transaction(conn):
        _op(conn, branch, op, task_id, payload, session, now)
        _event(conn, task_id, now, session, "agent", op, json.dumps(payload))


def _op(
    conn: sqlite3.Connection, branch: str, op: str, task_id: str, payload: dict[str, str], session: str, now: float
) -> None:
    conn.execute(
        "INSERT INTO plan_ops (branch, op, task_id, payload, session, created_at) VALUES (?, ?, ?, ?, ?, ?)",
        (branch, op, task_id, json.dumps(payload, sort_keys=True), session, now),
    )


def ops(conn: sqlite3.Connection, branch: str) -> list[tuple[str, str, dict[str, str]]]:
    """The plan edits tools made on a branch, oldest first: (op, task id, payload)."""
    rows = conn.execute("SELECT op, task_id, payload FROM plan_ops WHERE branch = ? ORDER BY id", (branch,))
    return [(r["op"], r["task_id"], json.loads(r["payload"])) for r in rows]


def event(
    conn: sqlite3.Connection, task_id: str, now: float, session: str | None, actor: str, name: str, detail: str | None
) -> None:
    with db.transaction(conn):
        _event(conn, task_id, now, session, actor, name, detail)


def _event(
    conn: sqlite3.Connection, task_id: str, now: float, session: str | None, actor: str, name: str, detail: str | None
) -> None:
    conn.execute(
        "INSERT INTO task_events (task_id, at, session, actor, event, detail) VALUES (?, ?, ?, ?, ?, ?)",
        (task_id, now, session, actor, name, detail),
    )


def events(conn: sqlite3.Connection, task_id: str, limit: int = 10) -> list[sqlite3.Row]:
    """The newest events of a task, newest first."""
    return list(conn.execute("SELECT * FROM task_events WHERE task_id = ? ORDER BY id DESC LIMIT ?", (task_id, limit)))


def retract(conn: sqlite3.Connection, task_id: str, session: str, now: float, reason: str) -> None:
    """Withdraw a session's completions of a task (its work was rolled back), keeping them in the history."""
    with db.transaction(conn):
        conn.execute("UPDATE task_completions SET cleared = 1 WHERE task_id = ? AND session = ?", (task_id, session))
        _event(conn, task_id, now, session, "scheduler", "retracted", reason)


def settle(conn: sqlite3.Connection, task_id: str, session: str, now: float, outcome: str, reason: str) -> None:
    """Record the scheduler's verdict on the session's attempt at a task, once.

    The claim still held: the attempt ends with `outcome`. Already ended by the agent as failed, blocked or
    interrupted: that stands. Released or completed by the agent but refused by the scheduler: one more failed
    attempt is recorded with the reason.
    """
    with db.transaction(conn):
        _expire(conn, now)
        row = conn.execute("SELECT * FROM task_claims WHERE task_id = ?", (task_id,)).fetchone()
        if row is not None and row["session"] == session:
            conn.execute("UPDATE task_attempts SET outcome = ?, reason = ?, ended_at = ? WHERE id = ?",
                         (outcome, reason, now, row["attempt_id"]))  # fmt: skip
            conn.execute("DELETE FROM task_claims WHERE task_id = ?", (task_id,))
        else:
            last = conn.execute(
                "SELECT outcome FROM task_attempts WHERE task_id = ? AND session = ? AND cleared = 0 "
                "ORDER BY id DESC LIMIT 1",
                (task_id, session),
            ).fetchone()
            if last is None or last["outcome"] not in {*FAILED, "blocked"}:
                conn.execute(
                    "INSERT INTO task_attempts (task_id, session, started_at, ended_at, outcome, reason) "
                    "VALUES (?, ?, ?, ?, ?, ?)",
                    (task_id, session, now, now, outcome, reason),
                )
        _event(conn, task_id, now, session, "scheduler", outcome, reason)
