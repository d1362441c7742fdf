"""The circuit breaker per agent in state.db: closed, open after N stops in a row, half-open after the cooldown,
closed by a success, opened again by a failed probe (issue 12)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from mcp_servers.core import breakers, db


def _fail(conn: sqlite3.Connection, now: float) -> breakers.Breaker:
    return breakers.failed(conn, "claude", now, kind="overloaded", detail="HTTP 529", threshold=3, cooldown_s=100)


def test_breaker_opens_after_n_in_a_row_then_half_opens_and_closes(tmp_path: Path) -> None:
    with db.opened(tmp_path / "state.db") as conn:
        assert breakers.get(conn, "claude", 0).state == "closed"
        assert _fail(conn, 10).state == "closed" and _fail(conn, 11).state == "closed"
        opened = _fail(conn, 12)
        assert opened.state == "open" and opened.failures == 3 and opened.open_until_s == 112
        assert breakers.get(conn, "claude", 111.9).state == "open"
        assert breakers.get(conn, "claude", 112).state == "half-open"
        assert breakers.get(conn, "replay", 50).state == "closed"  # one per agent
        reopened = _fail(conn, 120)  # the probe failed: open again for a new cooldown
        assert reopened.state == "open" and reopened.open_until_s == 220
        assert [b.agent for b in breakers.every(conn, 130)] == ["claude"]
        breakers.succeeded(conn, "claude", 230)
        closed = breakers.get(conn, "claude", 230)
        assert closed.state == "closed" and closed.failures == 0 and breakers.every(conn, 230) == []
        assert _fail(conn, 240).state == "closed"  # the count starts again
