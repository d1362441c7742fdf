"""What a notification says, and which session events become which notifications (issue 12).

`ROUTES` is the table: a `RunEvent` kind to the notification events it raises, so a new kind (the daemon's
`paused`, `complete`; the usage-limit `wait`) is one line. The text comes partly from the agent (task titles,
reasons), so it is cleaned before it leaves: secrets redacted as memory redacts them, control characters dropped,
mass mentions defused, and cut to a bounded length. Channel secrets are never substituted into it.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

from mcp_servers.core.notify_config import EVENTS
from mcp_servers.core.secrets import redact

from ..events import RunEvent

TITLE_CHARS = 200
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2066-\u2069]")
# `@everyone` on Discord, `<!channel>` on Slack, `@room` on Matrix: an agent's task title must not page everyone.
_MENTION = re.compile(r"(?i)@(?=everyone\b|here\b|channel\b|room\b|all\b)|<!(?=[a-z])")
# Session ends that are no news: another session was running, or there was nothing to do.
QUIET_ENDS = {"already-running", "no-work"}


@dataclass(frozen=True)
class Message:
    """One notification: its event, a one-line title, the text, and where it comes from."""

    event: str
    title: str
    text: str
    session: str = ""
    task: str | None = None
    at: float = field(default_factory=time.time)

    def payload(self) -> str:
        """The JSON a signed webhook receives: `{"event", "title", "text", "session", "task", "at"}`."""
        return json.dumps(asdict(self), sort_keys=True)


def clean(text: str, limit: int) -> str:
    """Agent-written text made safe to send: redacted, no control characters, no mass mentions, at most `limit`."""
    text = redact(text[: limit * 2])[0]  # cut first: a whole test log is never scanned on the session's thread
    text = _CONTROL.sub("", text.replace("\r\n", "\n").replace("\t", " "))
    text = _MENTION.sub(lambda m: m.group(0)[0] + "\u2060" + m.group(0)[1:], text)  # shown, never a mention
    return text if len(text) <= limit else text[: limit - 1] + "…"


def message(event: str, title: str, text: str, *, session: str = "", task: str | None = None, limit: int = 2000
            ) -> Message:  # fmt: skip
    """A cleaned message; ValueError for an event no channel can hear."""
    if event not in EVENTS:
        raise ValueError(f"unknown notification event {event!r}: one of {', '.join(EVENTS)}")
    one_line = " ".join(clean(title, TITLE_CHARS * 2).split())
    return Message(event=event, title=clean(one_line, TITLE_CHARS), text=clean(text, limit), session=session,
                   task=task)  # fmt: skip


def _security(event: RunEvent) -> list[str]:
    return ["security-event"] if event.security else []


def _outcome(event: RunEvent) -> list[str]:
    return ["task-kept" if event.outcome == "passed" else "task-rolled-back", *_security(event)]


def _end(event: RunEvent) -> list[str]:
    return ([] if event.outcome in QUIET_ENDS else ["session-end"]) + _security(event)


# RunEvent kind -> the notification events it raises (kinds not listed raise none).
ROUTES: dict[str, Callable[[RunEvent], list[str]]] = {
    "outcome": _outcome,
    "end": _end,
    # a usage limit's wait (known reset, or probing without one); a retry's or an open breaker's wait is no news
    "wait": lambda event: ["usage-limit-wait"] if event.wait_kind in (None, "usage-limit", "probe") else [],
    "paused": lambda event: ["paused"],
    "complete": lambda event: ["complete"],
}

_TITLES = {
    "task-kept": "task {task} kept",
    "task-rolled-back": "task {task} rolled back ({outcome})",
    "session-end": "session {session} {outcome}",
    "security-event": "security event in session {session}",
    "usage-limit-wait": "session {session} waits for the usage limit to reset",
    "paused": "paused",
    "complete": "complete",
}


def of_event(event: RunEvent, limit: int = 2000) -> list[Message]:
    """The notifications a session event raises (none for most)."""
    route = ROUTES.get(event.kind)
    if route is None:
        return []
    found = []
    for name in route(event):
        title = "overnight: " + _TITLES[name].format(task=event.task_id or "", outcome=event.outcome or "",
                                                     session=event.session or "")  # fmt: skip
        text = event.line
        if event.title and event.task_id:
            text += f"\nTask: {event.task_id} ({event.title})"
        if name == "security-event":
            text += "\nSecurity events:\n" + "\n".join(f"- {e}" for e in event.security)
        found.append(message(name, title, text, session=event.session, task=event.task_id, limit=limit))
    return found
