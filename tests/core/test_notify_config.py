"""`[notify]` in overnight.toml: channels, their event filters, and secrets that must live in the env file."""

from __future__ import annotations

from pathlib import Path

import pytest

from mcp_servers.core import config
from mcp_servers.core.errors import ConfigError
from mcp_servers.core.notify_config import EVENTS, literal_secrets


def _load(tmp_path: Path, text: str) -> config.Settings:
    path = tmp_path / "overnight.toml"
    path.write_text(text)
    return config.load(tmp_path)


def _channel(url: str, extra: str = "") -> str:
    return f'[notify]\nattempts = 2\n\n[[notify.channels]]\nname = "mail"\nurl = "{url}"\n{extra}'


def test_notify_channels_default_to_every_event(tmp_path: Path) -> None:
    settings = _load(tmp_path, _channel("mailto://{SMTP_USER}:{SMTP_PASSWORD}@localhost:2525?to=me@example.org"))
    [channel] = settings.notify.channels
    assert channel.events == list(EVENTS) and settings.notify.attempts == 2
    assert config.Settings().notify.channels == []  # no channel: no notification


@pytest.mark.parametrize(
    ("url", "what"),
    [
        ("mailto://bob:hunter2@localhost:2525?to=me@example.org", "the password in the URL"),
        ("hmac://127.0.0.1:8080/hook?secret=abc", "the value of `secret=`"),
        ("json://example.org/x?token=abc", "the value of `token=`"),
        ("slack://T1JJ3T3L2/A1BRTD4JD/TIiajkdnlazkcOXrIdevi7FQ/", "reads as a token"),
        ("tgram://123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw/12345/", "reads as a token"),
    ],
)
def test_notify_a_literal_secret_is_a_config_error_that_says_to_move_it(tmp_path: Path, url: str, what: str) -> None:
    with pytest.raises(ConfigError) as e:
        _load(tmp_path, _channel(url))
    message = str(e.value)
    assert "overnight.toml:6" in message and "notify.channels.0.url" in message and what in message
    assert "env file" in message and "`{NAME}`" in message
    assert "hunter2" not in message and "AAHdqTcv" not in message and "TIiajkdn" not in message  # never repeated


@pytest.mark.parametrize(
    "url",
    [
        "mailto://{SMTP_USER}:{SMTP_PASSWORD}@localhost:2525?to=me@example.org&from=night@example.org",
        "hmac://127.0.0.1:8080/hook?secret={HOOK_SECRET}",
        "slack://{SLACK_TOKENS}/#general",
        "discord://{WEBHOOK_ID}/{WEBHOOK_TOKEN}",
        "ntfy://ntfy.sh/my-overnight-topic",
        "{WHOLE_URL}",
    ],
)
def test_notify_references_and_plain_urls_are_accepted(url: str) -> None:
    assert literal_secrets(url) == []


def test_notify_refuses_what_is_not_a_reference_or_reaches_the_agent(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"not a `\{NAME\}` reference"):
        _load(tmp_path, _channel("mailto://{smtp_user}@localhost?to=me@example.org"))
    with pytest.raises(ConfigError, match=r"OVERNIGHT_\* are passed to the agent"):
        _load(tmp_path, _channel("hmac://127.0.0.1/x?secret={OVERNIGHT_HOOK}"))


def test_notify_unknown_events_and_twice_named_channels_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"notify\.channels\.0\.events\.0"):
        _load(tmp_path, _channel("ntfy://ntfy.sh/t", 'events = ["lunch"]\n'))
    twice = _channel("ntfy://ntfy.sh/t") + '\n[[notify.channels]]\nname = "mail"\nurl = "ntfy://ntfy.sh/u"\n'
    with pytest.raises(ConfigError, match="mail appears more than once"):
        _load(tmp_path, twice)
