"""A circuit breaker per agent, in `state.db` so every session of the repository (and the daemon) shares it.

Closed: runs start. After `threshold` infrastructure stops in a row (an overloaded API, a server or network error)
it opens: no run of that agent starts until `open_until`. Then it is half-open: one probe run starts; success
closes it, another infrastructure stop opens it again for a new cooldown (issue 12). Time is a parameter.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from typing import Literal

from pydantic import BaseModel, Field

from . import db

State = Literal["closed", "open", "half-open"]


class Breaker(BaseModel):
    agent: str
    state: State = "closed"
    failures: int = Field(default=0, description="infrastructure stops in a row")
    opened_at: str | None = Field(default=None, description="when it last opened, ISO 8601 (UTC)")
    open_until: str | None = Field(default=None, description="when a probe run may start, ISO 8601 (UTC)")
    open_until_s: float | None = Field(default=None, exclude=True)
    last_kind: str | None = Field(default=None, description="the last stop's kind: overloaded, server-error, ...")
    last_detail: str | None = None


def _iso(when: float | None) -> str | None:
    return None if when is None else dt.datetime.fromtimestamp(when, dt.UTC).isoformat(timespec="seconds")


def _breaker(row: sqlite3.Row | None, agent: str, now: float) -> Breaker:
    if row is None:
        return Breaker(agent=agent)
    until = row["open_until"]
    state: State = "closed" if until is None else "open" if now < until else "half-open"
    return Breaker(agent=agent, state=state, failures=row["failures"], opened_at=_iso(row["opened_at"]),
                   open_until=_iso(until), open_until_s=until, last_kind=row["last_kind"],
                   last_detail=row["last_detail"])  # fmt: skip


def get(conn: sqlite3.Connection, agent: str, now: float) -> Breaker:
    """The agent's breaker as of `now` (closed when it never failed)."""
    row = conn.execute("SELECT * FROM agent_breakers WHERE agent = ?", (agent,)).fetchone()
    return _breaker(row, agent, now)


def every(conn: sqlite3.Connection, now: float) -> list[Breaker]:
    """Every agent's breaker that has failed at least once since it last closed, by agent."""
    rows = conn.execute("SELECT * FROM agent_breakers WHERE failures > 0 ORDER BY agent")
    return [_breaker(row, row["agent"], now) for row in rows]


def failed(conn: sqlite3.Connection, agent: str, now: float, *, kind: str, detail: str, threshold: int,
           cooldown_s: float) -> Breaker:  # fmt: skip
    """Count an infrastructure stop; open the breaker at `threshold` in a row (or again after a failed probe)."""
    with db.transaction(conn):
        row = conn.execute("SELECT * FROM agent_breakers WHERE agent = ?", (agent,)).fetchone()
        failures = (row["failures"] if row is not None else 0) + 1
        was_open = row is not None and row["open_until"] is not None
        opens = failures >= threshold or was_open  # a half-open breaker's probe failed: open again
        conn.execute(
            "INSERT INTO agent_breakers (agent, failures, opened_at, open_until, last_kind, last_detail, updated_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (agent) DO UPDATE SET failures = excluded.failures, "
            "opened_at = excluded.opened_at, open_until = excluded.open_until, last_kind = excluded.last_kind, "
            "last_detail = excluded.last_detail, updated_at = excluded.updated_at",
            (agent, failures, now if opens else None, now + cooldown_s if opens else None, kind, detail[:500], now),
        )
    return get(conn, agent, now)


def succeeded(conn: sqlite3.Connection, agent: str, now: float) -> None:
    """A run got through to the model: the breaker closes and its count starts again."""
    if conn.execute("SELECT 1 FROM agent_breakers WHERE agent = ? AND failures > 0", (agent,)).fetchone() is None:
        return  # (no write lock taken on the common path)
    with db.transaction(conn):
        conn.execute("UPDATE agent_breakers SET failures = 0, opened_at = NULL, open_until = NULL, updated_at = ? "
                     "WHERE agent = ?", (now, agent))  # fmt: skip
