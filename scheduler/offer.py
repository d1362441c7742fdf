"""Which task a session takes next: the queue's choice, or only the one a person named (`overnight run --task`).

A named task is held to the same rules as any other (approved on the base branch, not done, dependencies done,
not claimed by another session, under the attempt limit, safe): naming it chooses it, never approves it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection

from mcp_servers.core import queue
from mcp_servers.core.queue_models import NextTask, SkippedTask
from mcp_servers.core.workspace import Workspace

_RUNNABLE = frozenset({"ready", "claimed"})  # "claimed" with no reason: claimed by this very session


def offer(
    ws: Workspace,
    session: str,
    *,
    only: str | None = None,
    exclude: Collection[str] = (),
    clock: Callable[[], float] = time.time,
) -> NextTask:
    """The next task for `session`: the queue's best, or `only` when it is runnable (once: then no more)."""
    if only is None:
        return queue.next_task(ws, session, clock=clock, exclude=exclude)
    if only in exclude:
        return NextTask(task=None, skipped=[], skipped_total=0,
                        summary=f"the one task asked for (`--task {only}`) was worked on")  # fmt: skip
    detail = queue.get_task(ws, only, session, clock=clock)
    if detail.why is None and detail.state in _RUNNABLE:
        return NextTask(task=detail, skipped=[], skipped_total=0, summary=f"`{only}`, as asked (`--task {only}`)")
    why = detail.why or detail.state
    return NextTask(task=None, skipped=[SkippedTask(id=only, reason=why)], skipped_total=1,
                    summary=f"task `{only}` may not run: {why}")  # fmt: skip
