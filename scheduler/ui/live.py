"""The Now page's live updates: the running session's journal, followed as it grows, as server-sent events.

`run` events carry one journal event each (`now.present`ed: texts redacted; the page's script sets them as text,
never as HTML); `agent` names the agent the session runs now (a fallback chain may hand the task on); `reload`
says another session started or the one shown ended, so the page is drawn anew."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import anyio

from mcp_servers.core.workspace import Workspace

from .. import journal
from .now import present, running_session

POLL_S = 0.2  # a tool call shows within this (and the browser's own delay)
LOCK_EVERY = 5  # polls between two reads of the run lock (which session runs)


async def follow(ws: Workspace, session: str, offset: int, live: bool, gone: Callable[[], Any]
                 ) -> AsyncIterator[dict[str, str]]:  # fmt: skip
    """The events of `session` from byte `offset` on, until the client goes (`gone()`, awaited, is true); `live`:
    the session was running when the page was drawn (else the page shows the last one, and waits for a new one)."""
    path = journal.path_of(ws.state_dir, session) if session else None
    polls, agent = 0, ""
    while not await gone():
        if path is not None:
            events, offset = await anyio.to_thread.run_sync(journal.read, path, offset)
            for event in events:
                yield {"event": "run", "data": json.dumps(present(event)), "id": str(offset)}
                if event.get("kind") == "end":
                    yield {"event": "reload", "data": "the session ended"}
                    return
        if polls % LOCK_EVERY == 0:
            running, runs = await anyio.to_thread.run_sync(running_session, ws)
            if running != session and (running or live):
                yield {"event": "reload", "data": "another session started" if running else "the session ended"}
                return
            if running and runs and runs != agent:
                agent = runs
                yield {"event": "agent", "data": json.dumps({"agent": agent})}
        polls += 1
        await anyio.sleep(POLL_S)
