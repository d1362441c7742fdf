"""Sending notifications without ever holding up or stopping a night (issue 12).

A session's `Notifier` takes its events (`tell`), turns them into messages (`message.ROUTES`) and queues them for
one worker thread, so a slow SMTP server never holds the agent loop. Each channel hears only the events it
subscribed to; a failing channel is retried within its budget, then said on stderr and kept as a warning for the
session's report. `flush` waits a bounded time for the queue at the session's end. `send` is the same delivery,
synchronous, for one message (the daemon's pause and completion alerts); `check` sends a test to each channel.
"""

from __future__ import annotations

import dataclasses
import queue
import sys
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from mcp_servers.core.notify_config import Channel, Notify
from mcp_servers.core.workspace import Workspace

from ..events import RunEvent
from ..report import REFUSED, SessionRecord, save
from . import channels
from .message import Message, clean, message, of_event


@dataclass
class Outbox:
    """The channels of a workspace's `[notify]` settings, and delivery to those that hear a message's event."""

    settings: Notify
    lookup: Callable[[str], str | None]
    env_path: Path
    sleep: Callable[[float], None] = time.sleep
    warn: Callable[[str], None] = lambda line: print(line, file=sys.stderr, flush=True)

    @classmethod
    def of(cls, ws: Workspace, warn: Callable[[str], None] | None = None) -> Outbox:
        from ..cron import env_file

        path = env_file(ws)
        box = cls(ws.settings.notify, channels.secret_values(ws.environ, path), path)
        if warn is not None:
            box.warn = warn
        return box

    def hearing(self, event: str, only: str | None = None) -> list[Channel]:
        return [c for c in self.settings.channels if event in c.events and (only is None or c.name == only)]

    def unready(self, channel: Channel) -> str | None:
        """What keeps a channel from being sent to (a secret not set, an env file others can read), without
        sending; None when its URL fills in."""
        try:
            channels.fill(channel, self.lookup, self.env_path)
        except channels.ChannelError as e:
            return str(e).removeprefix(f"channel {channel.name}: ")
        return None

    def deliver(self, channel: Channel, msg: Message) -> str | None:
        """One channel: None when delivered, else what went wrong (said on stderr too)."""
        try:
            ready = channels.fill(channel, self.lookup, self.env_path)
            why = channels.deliver(ready, msg, self.settings, sleep=self.sleep)
        except channels.ChannelError as e:
            why = str(e).removeprefix(f"channel {channel.name}: ")
        except Exception as e:  # a bug in a plugin: said, never raised into a night
            why = f"{type(e).__name__}: {e}"
            traceback.print_exc(file=sys.stderr)
        if why is not None:
            self.warn(f"overnight: notify: channel {channel.name}: {msg.event} not sent: {why}")
        return why

    def send(self, msg: Message) -> list[str]:
        """Deliver to every channel that hears the message's event; the failures, one line each."""
        failed = []
        for channel in self.hearing(msg.event):
            why = self.deliver(channel, msg)
            if why is not None:
                failed.append(f"notification `{msg.event}` to channel {channel.name} not sent: {why}")
        return failed


def send(ws: Workspace, event: str, title: str, body: str, *, session: str = "", task: str | None = None
         ) -> list[str]:  # fmt: skip
    """Send one notification now (synchronously, bounded by each channel's budget): for the daemon's `paused` and
    `complete`. Returns the failures (also said on stderr); never raises for a channel that fails."""
    box = Outbox.of(ws)
    return box.send(message(event, title, body, session=session, task=task, limit=box.settings.max_chars))


@dataclass(frozen=True)
class Checked:
    channel: str
    delivered: bool
    detail: str = ""


def check(ws: Workspace, only: str | None = None) -> list[Checked]:
    """`overnight notify test`: a test message to each channel (or the one named), whatever events it hears."""
    box = Outbox.of(ws, warn=lambda line: None)
    chosen = [c for c in box.settings.channels if only is None or c.name == only]
    found = []
    for channel in chosen:
        msg = message(channel.events[0], "overnight: test notification",
                      f"A test from `overnight notify test` in {ws.repo.root}: channel {channel.name} works.",
                      limit=box.settings.max_chars)  # fmt: skip
        why = box.deliver(channel, msg)
        found.append(Checked(channel.name, why is None, why or ""))
    return found


_STOP = object()


@dataclass
class Notifier:
    """A session's notifications, sent off its thread. Without channels it does nothing and starts no thread."""

    outbox: Outbox
    _queue: queue.Queue[object] = field(default_factory=queue.Queue)
    _warnings: list[str] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _thread: threading.Thread | None = None
    _held: list[Message] = field(default_factory=list)  # a session's end, sent by `settle` with its summary

    @classmethod
    def of(cls, ws: Workspace) -> Notifier:
        return cls(Outbox.of(ws))

    def tell(self, event: RunEvent) -> None:
        """Queue what a session event raises for the channels that hear it; never raises."""
        try:
            for msg in of_event(event, self.outbox.settings.max_chars):
                if event.kind == "end" and event.session:
                    self._held.append(msg)
                else:
                    self.post(msg)
        except Exception:  # the night goes on whatever a notification does
            traceback.print_exc(file=sys.stderr)

    def post(self, msg: Message) -> None:
        if not self.outbox.hearing(msg.event):
            return
        if self._thread is None:
            self._thread = threading.Thread(target=self._work, name="overnight-notify", daemon=True)
            self._thread.start()
        self._queue.put(msg)

    def _work(self) -> None:
        while True:
            item = self._queue.get()
            if item is _STOP:
                return
            if isinstance(item, threading.Event):  # a flush mark: all before it is done
                item.set()
                continue
            if not isinstance(item, Message):
                continue
            failed = self.outbox.send(item)
            with self._lock:
                self._warnings += failed

    def flush(self, wait_s: float | None = None) -> list[str]:
        """Wait (at most `wait_s`, default `flush_s`) for what is queued; the failures since the last flush, and a
        line for what was still unsent when the wait ran out."""
        held, self._held = self._held, []
        for msg in held:
            self.post(msg)
        if self._thread is not None:
            mark = threading.Event()
            self._queue.put(mark)
            wait = self.outbox.settings.flush_s if wait_s is None else wait_s
            if not mark.wait(wait):
                left = sum(1 for item in list(self._queue.queue) if isinstance(item, Message))
                with self._lock:
                    self._warnings.append(f"notifications still being sent when the session ended (waited {wait:g}s"
                                          f"; {left} more queued): they may not arrive")  # fmt: skip
        with self._lock:
            found, self._warnings = self._warnings, []
        return found

    def settle(self, record: SessionRecord, state_dir: Path) -> None:
        """At a session's end: its end notifications sent with what it kept and rolled back, `flush`ed, and the
        failures added to its report's warnings (saved again)."""
        held, self._held = self._held, []
        for msg in held:
            self.post(
                dataclasses.replace(msg, text=clean(f"{msg.text}\n{summary(record)}", self.outbox.settings.max_chars))
            )
        failed = [w for w in self.flush() if w not in record.warnings]
        record.warnings += failed
        if failed and record.outcome not in REFUSED:
            save(state_dir, record)

    def close(self) -> None:
        """Stop the worker once the queue is done (it is a daemon thread: it never holds the process)."""
        if self._thread is not None:
            self._queue.put(_STOP)
            self._thread = None


def summary(record: SessionRecord) -> str:
    """What a session kept and rolled back, for its end notification."""
    kept = [f"- {t.task_id} ({t.title})" for t in record.tasks if t.outcome == "passed"]
    back = [f"- {t.task_id} ({t.title}): {t.outcome}" + (f": {t.reasons[0].splitlines()[0]}" if t.reasons else "")
            for t in record.tasks if t.outcome != "passed"]  # fmt: skip
    branch = record.branch if record.final_commit and record.final_commit != record.base_commit else ""
    lines = [f"Branch: {branch or '(none: nothing kept)'}; cost ${record.cost_usd:.2f}"]
    lines += [f"Problem: {p.strip().splitlines()[-1][:300]}" for p in record.problems[:3] if p.strip()]
    lines += ["Kept:", *kept] if kept else ["Kept: nothing"]
    lines += ["Rolled back:", *back] if back else []
    return "\n".join(lines)
