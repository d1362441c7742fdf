"""`[notify]` in overnight.toml: where notifications go and which events each channel hears (issue 12).

A channel's `url` is an apprise URL (`mailto://`, `slack://`, `ntfy://`, `json://`, ... and overnight's signed
webhook `hmac://` / `hmacs://`). Its secrets are `{NAME}` references, filled from the environment and the 0600 env
file when a notification is sent, never written in overnight.toml: a password, a token-named query value or a
token-like path segment written out literally is a config error that says to move it to the env file.

Why references inside the URL, and not a key naming a variable that holds the whole URL: where notifications go
(the scheme, the host, the recipients) stays in the committed, reviewed overnight.toml, which agents cannot change;
only the secret parts live in the env file. (A whole-URL reference, `url = "{SLACK_URL}"`, is still allowed when a
service puts its secret in the host part.)
"""

from __future__ import annotations

import re
from typing import Literal
from urllib.parse import parse_qsl, urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic_core import PydanticCustomError

from .secrets import find_secrets

Event = Literal["session-end", "task-kept", "task-rolled-back", "security-event", "usage-limit-wait", "paused",
                "complete"]  # fmt: skip
EVENTS: tuple[Event, ...] = ("session-end", "task-kept", "task-rolled-back", "security-event", "usage-limit-wait",
                             "paused", "complete")  # fmt: skip

REFERENCE = re.compile(r"\{([A-Z_][A-Z0-9_]*)\}")
# Query keys whose value is a secret in some apprise service (token=, apikey=, secret=, pass=, ...).
_SECRET_KEY = re.compile(r"(?i)token|key|secret|pass|pwd|auth|sig|cred|webhook")
# A path segment or host part written out that reads as a token: long, letters and digits, no dots.
_TOKENISH = re.compile(r"^(?=[A-Za-z0-9_-]*[0-9])(?=[A-Za-z0-9_-]*[A-Za-z])[A-Za-z0-9_-]{16,}$")
_MARK = "\x00REF\x00"
# the error type of a URL with a secret written out (not itself a password)
LITERAL_SECRET = "literal_secret"  # noqa: S105


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def references(url: str) -> list[str]:
    """The env variables a channel URL names, in order."""
    return REFERENCE.findall(url)


def literal_secrets(url: str) -> list[str]:
    """What in a channel URL is a secret written out instead of a `{NAME}` reference (empty: none)."""
    if "{" in REFERENCE.sub("", url) or "}" in REFERENCE.sub("", url):
        return ["a `{` or `}` that is not a `{NAME}` reference (upper-case letters, digits and `_`)"]
    if REFERENCE.fullmatch(url.strip()):
        return []  # the whole URL from the env file
    masked = REFERENCE.sub(_MARK, url)
    found: list[str] = []
    try:
        parts = urlsplit(masked)
        password = parts.password
    except ValueError as e:
        return [f"the URL does not parse ({e})"]
    if not parts.scheme:
        return ["the URL has no scheme (e.g. `mailto://`, `slack://`, `hmac://`)"]
    if password and password != _MARK:
        found.append("the password in the URL")
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        if value and value != _MARK and _SECRET_KEY.search(key):
            found.append(f"the value of `{key}=`")
    segments = [s for s in re.split(r"[@:/]", parts.netloc + parts.path) if s]
    found += [f"`{s[:4]}…` (it reads as a token)" for s in segments if _MARK not in s and _TOKENISH.match(s)]
    if not found and find_secrets(REFERENCE.sub("", url)):
        found.append("a value that reads as a credential")
    return found


class Channel(_Section):
    """One place notifications go."""

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]*$", max_length=40, description="the channel's name in logs")
    url: str = Field(
        min_length=3,
        max_length=2000,
        description="an apprise URL; secrets only as {NAME} references, filled from the environment and the 0600 "
        "env file (`<state>/cron.env`), never written here",
    )
    events: list[Event] = Field(
        default_factory=lambda: list(EVENTS), min_length=1, description="the events this channel hears (all by default)"
    )

    @field_validator("url")
    @classmethod
    def _no_literal_secret(cls, value: str) -> str:
        found = literal_secrets(value)
        if found:
            # (a custom error type: the config error then does not repeat the URL, and the secret, back)
            raise PydanticCustomError(
                LITERAL_SECRET,
                "a secret is written in overnight.toml ({names}): put it in the 0600 env file "
                "`.git/overnight/cron.env` as NAME=value and write `{ref}` in the URL instead",
                {"names": "; ".join(found), "ref": "{NAME}"},
            )
        bad = [n for n in references(value) if n.startswith("OVERNIGHT_")]
        if bad:
            raise ValueError(f"{{{bad[0]}}}: variables named OVERNIGHT_* are passed to the agent; name the secret "
                             "otherwise (e.g. SMTP_PASSWORD)")  # fmt: skip
        return value


class Notify(_Section):
    """Notifications (apprise): each channel with its URL and the events it hears; a failure never stops a night."""

    channels: list[Channel] = Field(
        default_factory=list,
        description="where notifications go: [[notify.channels]] tables with name, url and events",
    )
    attempts: int = Field(default=3, ge=1, le=5, description="tries per notification and channel")
    retry_s: float = Field(default=0.5, ge=0, le=5, description="seconds before the first retry, doubled each time")
    budget_s: float = Field(
        default=10.0, gt=0, le=60, description="seconds a notification may take on one channel, retries included"
    )
    flush_s: float = Field(
        default=20.0, ge=0, le=300, description="seconds a session waits at its end for notifications still queued"
    )
    max_chars: int = Field(default=2000, ge=200, le=20000, description="longest notification text, in characters")

    @model_validator(mode="after")
    def _unique(self) -> Notify:
        names = [c.name for c in self.channels]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"channel names must be unique: {', '.join(twice)} appears more than once")
        return self
