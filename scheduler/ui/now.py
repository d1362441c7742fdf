"""The Now page's data: the running session or daemon cycle (`control.status`, what `overnight status` shows) and
what its journal says it is doing (the task, the agent's tool calls, gate checks, turns, tokens, cost, elapsed).

What an agent wrote (tool arguments, its words, task titles) passes `shown`: secrets redacted, as in memory; the
templates and the page's script escape it."""

from __future__ import annotations

import datetime as dt
import functools
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from mcp_servers.core.secrets import redact
from mcp_servers.core.workspace import Workspace

from .. import control, journal
from ..lock import read_lock

MAX_TEXT = 2000
STEPS_SHOWN = 200


def shown(text: object, clean: Callable[[str], str] | None = None) -> str:
    """Text an agent may have written, fit to show: cut to `MAX_TEXT` characters, secrets redacted (by `clean`,
    a `Texts.clean`, when given)."""
    value = str(text or "")
    if len(value) > MAX_TEXT:
        value = value[:MAX_TEXT] + "…"
    return clean(value) if clean is not None else redact(value)[0]


class Texts:
    """Redaction with its answers kept (a bounded LRU; redacting is a pure function of the text): every page
    shows the same titles, reasons and entries again, and each costs the secret detectors 20-200 µs. Made with
    the web app, used by its templates and views."""

    def __init__(self, size: int = 10_000) -> None:
        self.clean: Callable[[str], str] = functools.lru_cache(maxsize=size)(lambda text: redact(text)[0])

    def shown(self, text: object) -> str:
        return shown(text, self.clean)


def present(event: dict[str, Any]) -> dict[str, Any]:
    """A journal event as the page gets it: the fields it shows, texts `shown`."""
    agent = event.get("agent") if isinstance(event.get("agent"), dict) else None
    gate = event.get("gate") if isinstance(event.get("gate"), dict) else None
    out: dict[str, Any] = {"kind": str(event.get("kind", "")), "line": shown(event.get("line")),
                           "task_id": shown(event.get("task_id")), "title": shown(event.get("title")),
                           "at": event.get("at")}  # fmt: skip
    for key in ("cost_usd", "seconds"):
        if isinstance(event.get(key), int | float):
            out[key] = event[key]
    for key in ("outcome", "reason", "until", "wait_kind"):
        if event.get(key) is not None:
            out[key] = shown(event[key])
    if agent:
        out["agent"] = {"kind": shown(agent.get("kind")), "text": shown(agent.get("text"))}
        for key in ("turns", "tokens_in", "tokens_out"):
            if isinstance(agent.get(key), int):
                out[key] = agent[key]
    if gate:
        out["gate"] = {"kind": shown(gate.get("kind")), "check": shown(gate.get("check")),
                       "status": shown(gate.get("status"))}  # fmt: skip
    return out


@dataclass
class Progress:
    """What the journal says of the session so far."""

    session: str = ""
    task_id: str = ""
    title: str = ""
    turns: int | None = None
    tokens_in: int | None = None
    tokens_out: int | None = None
    cost_usd: float | None = None
    started: float | None = None
    ended: str = ""  # the end event's line, once it ended
    waiting: dict[str, Any] | None = None
    steps: list[dict[str, Any]] = field(default_factory=list)
    offset: int = 0

    def add(self, event: dict[str, Any]) -> None:
        kind = event.get("kind")
        if kind == "session" and isinstance(event.get("at"), int | float):
            self.started = float(event["at"])
        if kind == "task":
            self.task_id, self.title, self.turns, self.waiting = event["task_id"], event["title"], None, None
            self.tokens_in = self.tokens_out = None
        if kind == "wait":
            self.waiting = {"until": event.get("until"), "kind": event.get("wait_kind"), "line": event["line"]}
        if kind == "end":
            self.ended = event["line"]
        for key in ("turns", "tokens_in", "tokens_out"):
            if isinstance(event.get(key), int):
                setattr(self, key, event[key])
        if isinstance(event.get("cost_usd"), int | float):
            self.cost_usd = float(event["cost_usd"])
        if (event.get("agent") or {}).get("kind") != "usage":  # the counters above say it
            self.steps.append(event)


def progress(ws: Workspace, session: str) -> Progress:
    """The journal of `session`, read to its end (its last `STEPS_SHOWN` events kept)."""
    found = Progress(session=session)
    path = journal.path_of(ws.state_dir, session)
    if path is None:
        return found
    events, found.offset = journal.tail(path, keep=STEPS_SHOWN)
    for event in events:
        found.add(present(event))
    return found


def running_session(ws: Workspace) -> tuple[str, str]:
    """The session that holds the run lock now and the agent it runs ('' when none)."""
    held = read_lock(ws) or {}
    return str(held.get("session") or ""), shown(held.get("agent"))


def now(ws: Workspace) -> dict[str, Any]:
    """Everything the Now page shows."""
    status = control.status(ws)
    running = status.get("running") or {}
    session = str(running.get("session") or "")
    last = status["sessions"][0] if status["sessions"] else None
    shown_session = session or (str(last["id"]) if last else "")
    done = progress(ws, shown_session) if shown_session else Progress()
    elapsed = None
    if done.started is not None and session:
        elapsed = round(time.time() - done.started)
    return {"status": status, "running": running, "session": session, "shown_session": shown_session,
            "progress": done, "elapsed_s": elapsed, "last": last, "now": dt.datetime.now(dt.UTC)}  # fmt: skip
