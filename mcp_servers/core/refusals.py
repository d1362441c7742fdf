"""Runs refused at preflight (the kill switch, no sandbox, a broken config, no ready task, ...): kept apart from
the sessions that started, so session lists show only those, and `overnight status` says the last refusal once
(issue 11). One row per refused run; the oldest are dropped past KEEP."""

from __future__ import annotations

import datetime as dt
import json
import sqlite3

from pydantic import BaseModel, Field

from . import db

KEEP = 1000


class Refusal(BaseModel):
    at: str = Field(description="when, ISO 8601 (UTC)")
    at_s: float = Field(exclude=True)
    session: str = Field(description="the id the run would have had")
    outcome: str = Field(description="preflight-failed, or no-work (no ready task)")
    reason: str
    problems: list[str] = Field(default_factory=list)


def record(conn: sqlite3.Connection, *, at: float, session: str, outcome: str, reason: str,
           problems: list[str]) -> None:  # fmt: skip
    """Keep a refused run (and drop the oldest past KEEP)."""
    with db.transaction(conn):
        conn.execute(
            "INSERT INTO preflight_refusals (at, session, outcome, reason, problems) VALUES (?, ?, ?, ?, ?)",
            (at, session, outcome, reason, json.dumps(problems)),
        )
        conn.execute(
            "DELETE FROM preflight_refusals WHERE id <= (SELECT max(id) FROM preflight_refusals) - ?", (KEEP,)
        )


def recent(conn: sqlite3.Connection, limit: int = 10) -> list[Refusal]:
    """The newest refusals, newest first."""
    rows = conn.execute(
        "SELECT at, session, outcome, reason, problems FROM preflight_refusals ORDER BY at DESC, id DESC LIMIT ?",
        (limit,),
    )
    return [_refusal(row) for row in rows]


def _refusal(row: sqlite3.Row) -> Refusal:
    at = dt.datetime.fromtimestamp(row[0], dt.UTC).isoformat(timespec="seconds")
    return Refusal(at=at, at_s=row[0], session=row[1], outcome=row[2], reason=row[3], problems=json.loads(row[4]))
