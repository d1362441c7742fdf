"""Notifications (issue 12): apprise channels from `[notify]`, each with its event filter, sent off the session's
thread and never stopping a night. `Notifier` for a session's events, `send` for one alert (the daemon), `check`
for `overnight notify test`."""

from __future__ import annotations

from .message import ROUTES, Message, message, of_event
from .notifier import Checked, Notifier, Outbox, check, send

__all__ = ["ROUTES", "Checked", "Message", "Notifier", "Outbox", "check", "message", "of_event", "send"]
