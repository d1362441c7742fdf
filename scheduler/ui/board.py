"""The Tasks page's data: the plan as a board (Ready, Pending Approval, Not Ready, Done), each card with its state
and why, and the person's edits (approve, reject, add), the same calls as `overnight plan ...` makes."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field

from mcp_servers.core import queue
from mcp_servers.core.queue_models import TaskSummary
from mcp_servers.core.workspace import Workspace

from .. import paging
from ..plan_commands import person_move, person_session

COLUMNS = (("ready", "Ready"), ("pending", "Pending Approval"), ("not-ready", "Not Ready"), ("done", "Done"))
DONE_STATES = frozenset({"done", "review", "cancelled"})
MAX_CARDS = 100_000
CARDS_SHOWN = 300  # a column's cards drawn at most (the count says how many there are)

EDITS = threading.Lock()  # one plan edit (and its commit) at a time, whichever browser tab asks


@dataclass
class Board:
    columns: dict[str, list[TaskSummary]] = field(default_factory=lambda: {key: [] for key, _ in COLUMNS})
    total: int = 0
    base_ref: str = ""
    next_id: str | None = None
    passed_over: dict[str, str] = field(default_factory=dict)  # why `plan next` passed a task over
    summary: str = ""


def column(task: TaskSummary) -> str:
    if task.state in DONE_STATES:
        return "done"
    if task.section in {"ready", "pending"}:
        return task.section
    return "not-ready"


def board(ws: Workspace) -> Board:
    """Every task of the plan, by column, with what `overnight plan next` would offer and why it passed others."""
    session, pages = person_session(), []

    def page(cursor: str | None, n: int) -> tuple[list[TaskSummary], str | None]:
        pages.append(queue.list_tasks(ws, session, limit=n, cursor=cursor))
        return pages[-1].tasks, pages[-1].next_cursor

    tasks, _ = paging.collect(page, MAX_CARDS, queue.MAX_LIST)
    found = Board(total=pages[0].total if pages else 0, base_ref=pages[0].base_ref if pages else "")
    for task in tasks:
        found.columns[column(task)].append(task)
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
