"""Channels as the person configured them, their `{NAME}` secrets filled in, and one delivery with retries.

The URLs come only from `[notify]` in the settings in force (overnight.toml as committed, which agents cannot
change); the values only from the process environment (where `overnight run --env-file` and a service's
EnvironmentFile put them) and the 0600 env file `<state>/cron.env`, refused when others may read it. Nothing an
agent writes ever reaches a URL.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from mcp_servers.core.errors import UsageError
from mcp_servers.core.notify_config import REFERENCE, Channel, Notify

from .message import Message

_TYPES = {"task-kept": "success", "complete": "success", "security-event": "failure", "task-rolled-back": "warning",
          "usage-limit-wait": "warning", "paused": "warning", "session-end": "info"}  # fmt: skip


class ChannelError(Exception):
    """A channel that cannot be sent to as configured (a missing secret, a URL apprise refuses): not retried."""


@dataclass(frozen=True)
class Ready:
    """A channel with its URL filled in, and the secret values to keep out of every message about it."""

    channel: Channel
    url: str
    hidden: tuple[str, ...]

    def scrub(self, text: str) -> str:
        for value in self.hidden:
            text = text.replace(value, "***")
        return text


def secret_values(environ: Mapping[str, str], env_file: Path) -> Callable[[str], str | None]:
    """Look a `{NAME}` up: the environment first, then the env file (read once, only when needed)."""
    cache: dict[str, str] | None = None

    def lookup(name: str) -> str | None:
        nonlocal cache
        if name in environ:
            return environ[name]
        if cache is None:
            from ..cron import load_env_file  # (python-dotenv, and the 0600 check)

            cache = load_env_file(env_file) if env_file.exists() else {}
        return cache.get(name)

    return lookup


def fill(channel: Channel, lookup: Callable[[str], str | None], env_file: Path) -> Ready:
    """The channel's URL with each `{NAME}` replaced by its value, percent-encoded where it sits in the URL."""
    template = channel.url
    whole = REFERENCE.fullmatch(template.strip())
    if whole:  # the whole URL from the env file
        value = _value(channel, whole.group(1), lookup, env_file)
        return Ready(channel, value, _hidden([value]))
    start = template.find("://") + 3
    authority_end = min((i for i in (template.find("/", start), template.find("?", start)) if i >= 0),
                        default=len(template))  # fmt: skip
    parts, pos, values = [], 0, []
    for match in REFERENCE.finditer(template):
        value = _value(channel, match.group(1), lookup, env_file)
        in_path = authority_end <= match.start() < (template.find("?") if "?" in template else len(template))
        parts += [template[pos : match.start()], quote(value, safe="/" if in_path else "")]
        values += [value, quote(value, safe="")]
        pos = match.end()
    parts.append(template[pos:])
    return Ready(channel, "".join(parts), _hidden(values))


def _hidden(values: list[str]) -> tuple[str, ...]:
    return tuple(sorted({v for v in values if len(v) >= 4}, key=len, reverse=True))


def _value(channel: Channel, name: str, lookup: Callable[[str], str | None], env_file: Path) -> str:
    try:
        value = lookup(name)
    except UsageError as e:
        raise ChannelError(str(e)) from e
    if not value:
        raise ChannelError(
            f"channel {channel.name}: {{{name}}} is not set: add `{name}=...` to the env file "
            f"{env_file} (mode 0600; `overnight cron install` makes it) or to the environment"
        )
    return value


def deliver(ready: Ready, msg: Message, settings: Notify, *, sleep: Callable[[float], None] = time.sleep,
            monotonic: Callable[[], float] = time.monotonic) -> str | None:  # fmt: skip
    """Send `msg` on one channel, retrying with backoff within `budget_s`; None when delivered, else why not."""
    import apprise  # (here: importing it takes 0.4 s, which a night without channels never pays)

    from . import webhook

    try:
        server = apprise.Apprise.instantiate(ready.url, suppress_exceptions=False)
    except Exception as e:  # apprise raises its own and plain errors for a URL it refuses
        raise ChannelError(f"channel {ready.channel.name}: apprise refuses its URL: {ready.scrub(str(e))}") from e
    if server is None:
        raise ChannelError(f"channel {ready.channel.name}: apprise knows no service for its URL's scheme")
    signed = ready.url.split("://", 1)[0].lower() in webhook.SCHEMES
    body, title = (msg.payload(), "") if signed else (msg.text, msg.title)
    deadline = monotonic() + settings.budget_s
    why = "not delivered"
    for attempt in range(settings.attempts):
        left = deadline - monotonic()
        if left <= 0:
            break
        sender = apprise.Apprise()
        sender.add(server)
        result = sender.notify(body, title=title, notify_type=_TYPES.get(msg.event, "info"), body_format="text",
                               timeout=left)  # fmt: skip
        if result:
            return None
        lines = [e.message for e in result.logs() if e.level in {"WARNING", "ERROR", "CRITICAL"}]
        why = ready.scrub("; ".join(dict.fromkeys(lines)) or "not delivered")
        pause = settings.retry_s * 2**attempt
        if attempt + 1 < settings.attempts and monotonic() + pause < deadline:
            sleep(pause)
        else:
            break
    return f"{why} (after {attempt + 1} attempt{'s' if attempt else ''})"
