"""The Tasks page's data: the plan as a board (Ready, Pending Approval, Not Ready, Done), each card with its state
and why, and the person's edits (approve, reject, add), the same calls as `overnight plan ...` makes."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field

from mcp_servers.core import queue
from mcp_servers.core.queue_models import TaskSummary
from mcp_servers.core.workspace import Workspace

from ..plan_commands import person_move, person_session

COLUMNS = (("ready", "Ready"), ("pending", "Pending Approval"), ("not-ready", "Not Ready"), ("done", "Done"))
DONE_STATES = frozenset({"done", "review", "cancelled"})
CARDS_SHOWN = 100  # a column's cards drawn at most (the count says how many there are)

EDITS = threading.Lock()  # one plan edit (and its commit) at a time, whichever browser tab asks


@dataclass
class Board:
    columns: dict[str, list[TaskSummary]] = field(default_factory=lambda: {key: [] for key, _ in COLUMNS})
    counts: dict[str, int] = field(default_factory=lambda: {key: 0 for key, _ in COLUMNS})  # all, not just shown
    total: int = 0
    base_ref: str = ""
    next_id: str | None = None
    passed_over: dict[str, str] = field(default_factory=dict)  # why `plan next` passed a task over
    summary: str = ""


def column(state: str, section: str | None) -> str:
    """The column of a task in this state, in this section of the plan on the base branch."""
    if state in DONE_STATES:
        return "done"
    if section in {"ready", "pending"}:
        return section
    return "not-ready"


def board(ws: Workspace) -> Board:
    """Every task of the plan, by column (the first `CARDS_SHOWN` of each as cards, all of them counted), with
    what `overnight plan next` would offer and why it passed others. The plan is judged once, not once a page."""
    session = person_session()
    cards, counts, totals = queue.columns(ws, session, column, CARDS_SHOWN)
    found = Board(total=totals.total, base_ref=totals.base_ref)
    for key, _ in COLUMNS:
        found.columns[key] = cards.get(key, [])
        found.counts[key] = counts.get(key, 0)
    offered = queue.next_task(ws, session)
    found.next_id = offered.task.id if offered.task else None
    found.passed_over = {s.id: s.reason for s in offered.skipped}
    found.summary = offered.summary
    return found


def approve(ws: Workspace, task_id: str) -> str:
    with EDITS:
        return str(person_move(ws, task_id, "ready", "approved", None, True)["message"])


def reject(ws: Workspace, task_id: str, reason: str | None) -> str:
    with EDITS:
        return str(person_move(ws, task_id, "not-ready", "rejected", reason or None, True)["message"])


def add(ws: Workspace, title: str, files: Sequence[str], priority: str, description: str | None,
        tests: str | None, estimate: int | None, approve_it: bool) -> str:  # fmt: skip
    """`overnight plan add`: the task written and the plan committed alone."""
    from mcp_servers.core.plan_add import add_task

    with EDITS:
        added = add_task(ws, title, files=files, priority=priority, description=description or None,
                         tests=tests or None, estimate=estimate, approve=approve_it, commit=True)  # fmt: skip
    where = "Ready" if added.section == "ready" else "Pending Approval"
    notes = "".join(f"; note: {n}" for n in added.notes)
    return f"added `{added.id}` under {where} and committed it ({(added.commit or '')[:7]}){notes}"
