"""Rate limits and budgets across sessions (issue 12): what the scheduler counts in the state database, so two runs
and the daemon share the counts, and whether a limit of `[limits]` is reached.

Counted events (table `limit_events`), each with the time (the scheduler's clock) and the session:
- `run`: an agent run, recorded when it is admitted (check and record in one IMMEDIATE transaction, so two
  sessions cannot both pass a limit of 1), ended when the run ends; a run that is still going reserves one commit
  for the commit limit until it ends (or its reservation expires: a session that died).
- `commit`: commits the scheduler kept on a session branch (the task's verified commits and its plan update).
- `pr`: a pull request opened (reserved before `gh pr create`, released when that fails).
- `cost`: USD an agent run cost, as the agent CLI reported it, recorded as soon as the run ends (kept or not).

Windows are rolling: "per hour" is the last 3600 seconds, "per day" the last 24 hours, "per week" the last 7 days.
An event counts while `at > now - window`, so it leaves the window at `at + window`, and a limit reached frees up
when enough events have left it. Only the scheduler writes here; no MCP tool reads or writes this table.
"""

from __future__ import annotations

import datetime as dt
import math
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, Field

from . import db
from .config import Limits

Kind = Literal["run", "commit", "pr", "cost"]
HOUR, DAY, WEEK = 3600.0, 86_400.0, 604_800.0
COOLDOWN = "cooldown_between_tasks_s"


@dataclass(frozen=True)
class Rule:
    key: str  # the key in `[limits]`
    kind: Kind
    window: float
    what: str  # "commits in the last 24 h"
    money: bool = False


RULES = (
    Rule("max_agent_runs_per_hour", "run", HOUR, "agent runs in the last hour"),
    Rule("max_commits_per_day", "commit", DAY, "commits kept in the last 24 h"),
    Rule("max_prs_per_hour", "pr", HOUR, "pull requests in the last hour"),
    Rule("max_prs_per_day", "pr", DAY, "pull requests in the last 24 h"),
    Rule("max_cost_usd_per_day", "cost", DAY, "cost in the last 24 h", money=True),
    Rule("max_cost_usd_per_week", "cost", WEEK, "cost in the last 7 days", money=True),
)
RUN_RULES = ("max_agent_runs_per_hour", "max_commits_per_day", "max_cost_usd_per_day", "max_cost_usd_per_week")
PR_RULES = ("max_prs_per_hour", "max_prs_per_day")


class Usage(BaseModel):
    """One configured limit against its count, for `overnight status`."""

    key: str = Field(description="the key in `[limits]`")
    what: str = Field(description="what is counted, over which rolling window")
    window_s: float
    count: float = Field(description="the count (USD for a cost) in the window now (commits kept, not reserved)")
    limit: float
    money: bool = False
    reached: bool
    frees_at: float | None = Field(default=None, description="when (epoch seconds) it is no longer reached")
    frees_at_iso: str | None = None

    def line(self) -> str:
        """`commits kept in the last 24 h: 3 of 10`, `cost in the last 7 days: $4.20 of $20.00`, and when a
        limit reached frees up."""
        if self.key == COOLDOWN:
            when = f"the next agent run may start at {self.frees_at_iso}" if self.reached else "not cooling down"
            return f"cooldown between tasks: {self.limit:g} s ({when})"
        count = f"${self.count:.2f} of ${self.limit:.2f}" if self.money else f"{self.count:g} of {self.limit:g}"
        text = f"{self.what}: {count}"
        return text + (f" (reached; frees up at {self.frees_at_iso})" if self.reached and self.frees_at_iso else "")


class Blocked(BaseModel):
    """A limit that stops the next agent run or pull request: which, its count, and when it frees up."""

    key: str
    what: str
    count: float
    limit: float
    money: bool = False
    frees_at: float

    @property
    def frees_at_iso(self) -> str:
        return iso(self.frees_at)

    def reason(self) -> str:
        """`the limit max_commits_per_day (commits kept in the last 24 h: 10 of 10) is reached; it frees up at ...`"""
        if self.key == COOLDOWN:
            return f"the cooldown between tasks ({self.limit:g} s) runs until {self.frees_at_iso}"
        count = f"${self.count:.2f} of ${self.limit:.2f}" if self.money else f"{self.count:g} of {self.limit:g}"
        return f"the limit {self.key} ({self.what}: {count}) is reached; it frees up at {self.frees_at_iso}"


def iso(at: float) -> str:
    return dt.datetime.fromtimestamp(at, dt.UTC).isoformat(timespec="seconds")


def clean_cost(value: float | None) -> tuple[float, str | None]:
    """A run's reported cost made safe to add: (USD, why it was not taken as it came). A missing, negative or
    non-finite figure counts as 0 (it must never lower a sum, or make every comparison false as NaN does)."""
    if value is None:
        return 0.0, None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
        return 0.0, f"the agent's reported cost {value!r} is not a usable amount; counted as $0"
    return float(value), None


# -- reading ---------------------------------------------------------------------------------------------------


def usage(conn: sqlite3.Connection, limits: Limits, now: float, *, session: str | None = None) -> list[Usage]:
    """Each configured limit (not 0) with its count now; the cooldown, when one is set, last."""
    found = []
    for rule in RULES:
        limit = float(getattr(limits, rule.key))
        if not limit:
            continue
        items = _items(conn, rule, now, session, reserved=False)
        count = sum(amount for amount, _ in items)
        frees = _frees_at(items, limit)
        reached = frees is not None
        found.append(Usage(key=rule.key, what=rule.what, window_s=rule.window, count=round(count, 4), limit=limit,
                           money=rule.money, reached=reached, frees_at=frees,
                           frees_at_iso=iso(frees) if frees is not None else None))  # fmt: skip
    cooling = _cooldown(conn, limits, now)
    if limits.cooldown_between_tasks_s:
        left = max(0.0, cooling.frees_at - now) if cooling else 0.0
        found.append(Usage(key=COOLDOWN, what="cooldown between tasks", window_s=0, count=round(left),
                           limit=limits.cooldown_between_tasks_s, reached=cooling is not None,
                           frees_at=cooling.frees_at if cooling else None,
                           frees_at_iso=cooling.frees_at_iso if cooling else None))  # fmt: skip
    return found


def blocking(conn: sqlite3.Connection, limits: Limits, now: float, keys: Iterable[str], *,
             session: str | None = None, cooldown: bool = False) -> Blocked | None:  # fmt: skip
    """The limit among `keys` (and the cooldown) that frees up last, when any is reached; else None."""
    found: list[Blocked] = []
    for rule in RULES:
        limit = float(getattr(limits, rule.key))
        if rule.key not in keys or not limit:
            continue
        items = _items(conn, rule, now, session)
        frees = _frees_at(items, limit)
        if frees is not None:
            found.append(Blocked(key=rule.key, what=rule.what, count=round(sum(a for a, _ in items), 4), limit=limit,
                                 money=rule.money, frees_at=frees))  # fmt: skip
    if cooldown and (cooling := _cooldown(conn, limits, now)) is not None:
        found.append(cooling)
    return max(found, key=lambda b: b.frees_at) if found else None


def _items(conn: sqlite3.Connection, rule: Rule, now: float, session: str | None, *, reserved: bool = True
           ) -> list[tuple[float, float]]:  # fmt: skip
    """(amount, when it leaves the count) of each event in the rule's window, and for the commit limit each run
    of another session still going (one commit reserved until it ends or its reservation expires)."""
    rows = conn.execute("SELECT amount, at FROM limit_events WHERE kind = ? AND at > ?", (rule.kind, now - rule.window))
    items = [(float(amount), float(at) + rule.window) for amount, at in rows]
    if rule.kind == "commit" and reserved:
        going = conn.execute(
            "SELECT expires_at FROM limit_events WHERE kind = 'run' AND ended_at IS NULL AND expires_at > ?"
            " AND session IS NOT ?",
            (now, session),
        )
        items += [(1.0, float(expires)) for (expires,) in going]
    return items


def _frees_at(items: list[tuple[float, float]], limit: float) -> float | None:
    """When the count drops below `limit` as items leave it (None: it is below already)."""
    total = sum(amount for amount, _ in items)
    if total < limit:
        return None
    for amount, leaves in sorted(items, key=lambda item: item[1]):
        total -= amount
        if total < limit - 1e-9:
            return leaves
    return None  # (unreachable: every item leaves at last)


def _cooldown(conn: sqlite3.Connection, limits: Limits, now: float) -> Blocked | None:
    pause = limits.cooldown_between_tasks_s
    if not pause:
        return None
    (last,) = conn.execute("SELECT max(ended_at) FROM limit_events WHERE kind = 'run'").fetchone()
    if last is None or float(last) + pause <= now:
        return None
    return Blocked(key=COOLDOWN, what="cooldown between tasks", count=0, limit=pause, frees_at=float(last) + pause)


# -- writing (the scheduler only) ------------------------------------------------------------------------------


def admit_run(conn: sqlite3.Connection, limits: Limits, *, session: str, now: float, expires_at: float
              ) -> int | Blocked:  # fmt: skip
    """Check every limit an agent run must be under (runs per hour, commits per day, cost per day and week, the
    cooldown) and, when none is reached, record the run, in one IMMEDIATE transaction; the run's id, or the limit
    that blocks it."""
    with db.transaction(conn):
        blocked = blocking(conn, limits, now, RUN_RULES, session=session, cooldown=True)
        if blocked is not None:
            return blocked
        return _insert(conn, "run", session, now, 1.0, expires_at=expires_at)


def end_run(conn: sqlite3.Connection, run_id: int, *, now: float, cost_usd: float, task_id: str | None = None,
            note: str | None = None) -> None:  # fmt: skip
    """The run has ended: close it (the cooldown counts from here) and count its cost (never negative)."""
    with db.transaction(conn):
        row = conn.execute("SELECT session FROM limit_events WHERE id = ? AND kind = 'run'", (run_id,)).fetchone()
        if row is None:
            return
        conn.execute("UPDATE limit_events SET ended_at = ?, task_id = coalesce(task_id, ?) WHERE id = ?",
                     (now, task_id, run_id))  # fmt: skip
        if cost_usd > 0 or note:
            _insert(conn, "cost", row[0], now, max(0.0, cost_usd), task_id=task_id, note=note)


def add_run(conn: sqlite3.Connection, *, session: str, now: float, cost_usd: float, task_id: str | None = None,
            note: str | None = None) -> None:  # fmt: skip
    """A run that ended without being admitted first (a retry inside a task): counted all the same, and its cost."""
    with db.transaction(conn):
        run = _insert(conn, "run", session, now, 1.0, task_id=task_id)
        conn.execute("UPDATE limit_events SET ended_at = ? WHERE id = ?", (now, run))
        if cost_usd > 0 or note:
            _insert(conn, "cost", session, now, max(0.0, cost_usd), task_id=task_id, note=note)


def release(conn: sqlite3.Connection, event_id: int) -> None:
    """A reservation that was not used (no task to run, a pull request that was not opened): not counted."""
    with db.transaction(conn):
        conn.execute("DELETE FROM limit_events WHERE id = ? AND kind IN ('run', 'pr')", (event_id,))


def add_commits(conn: sqlite3.Connection, *, session: str, now: float, count: int, task_id: str | None) -> None:
    """Commits the scheduler kept on the session branch (counted once they are kept)."""
    if count > 0:
        with db.transaction(conn):
            _insert(conn, "commit", session, now, float(count), task_id=task_id)


def admit_pr(conn: sqlite3.Connection, limits: Limits, *, session: str, now: float) -> int | Blocked:
    """Check the pull-request limits and reserve one, in one IMMEDIATE transaction; its id, or the limit."""
    with db.transaction(conn):
        blocked = blocking(conn, limits, now, PR_RULES, session=session)
        if blocked is not None:
            return blocked
        return _insert(conn, "pr", session, now, 1.0)


def prune(conn: sqlite3.Connection, before: float) -> int:
    """Drop events no window can count any more (older than `before`; keep at least a week); how many."""
    with db.transaction(conn):
        return conn.execute("DELETE FROM limit_events WHERE at < ? AND (kind != 'run' OR ended_at IS NOT NULL OR "
                            "expires_at < ?)", (before, before)).rowcount  # fmt: skip


def _insert(conn: sqlite3.Connection, kind: Kind, session: str, at: float, amount: float, *,
            task_id: str | None = None, expires_at: float | None = None, note: str | None = None) -> int:  # fmt: skip
    cursor = conn.execute(
        "INSERT INTO limit_events (kind, at, session, task_id, amount, expires_at, note) VALUES (?, ?, ?, ?, ?, ?, ?)",
        (kind, at, session, task_id, amount, expires_at, note),
    )
    return int(cursor.lastrowid or 0)
