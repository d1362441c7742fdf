"""Adjacent string literals joined, and the detector plugins read as data."""

from __future__ import annotations

import pytest

from mcp_servers.core import detectors, literals


@pytest.mark.parametrize(
    ("text", "joined"),
    [
        pytest.param('k = "AKIA" "ABCD"', 'k = "AKIAABCD"', id="implicit"),
        pytest.param("k = 'sk-' + 'ant'", "k = 'sk-ant'", id="plus"),
        pytest.param('k = ("AB"\n     "CD")', 'k = ("ABCD")', id="over-lines"),
        pytest.param('k = "AB" \\\n    "CD"', 'k = "ABCD"', id="backslash-continuation"),
        pytest.param("q = 'DELETE ' f'FROM {t}'", "q = 'DELETE FROM {t}'", id="prefix"),
        pytest.param("q = \"a\" 'b'", "q = \"ab'", id="mixed-quotes"),
        pytest.param('f("a", "b")', 'f("a", "b")', id="arguments-stay-apart"),
        pytest.param('x = "a" + y + "b"', 'x = "a" + y + "b"', id="variable-between"),
        pytest.param('x = ""', 'x = ""', id="empty-literal"),
    ],
)
def test_literals_join(text: str, joined: str) -> None:
    assert literals.join(text).text == joined


def test_literals_spans_map_back_to_the_original() -> None:
    text = 'a = "AK" + "IA" "XY" # tail'
    joined = literals.join(text)
    start = joined.text.index("AKIAXY")
    assert text[slice(*joined.span(start, start + 6))] == 'AK" + "IA" "XY'
    tail = joined.text.index("tail")
    assert text[slice(*joined.span(tail, tail + 4))] == "tail"


def test_detectors_plugins_are_the_regex_plugins_without_ip_addresses() -> None:
    kinds = {kind for kind, _ in detectors.plugins()}
    assert {"twilio-api-key", "sendgrid-api-key", "discord-bot-token", "mailchimp-access-key"} <= kinds
    assert not any(kind.startswith("public-ip") for kind in kinds)


def test_detectors_scan_only_lines_with_a_long_token_and_maps_positions_back() -> None:
    sid = "SK" + "3f9a1c7e5b2d8f4a6c0e9b1d7f3a5c8e"
    text = f"first line\nkey = '{sid}'\nlast"
    found = list(detectors.scan(text))
    assert [(kind, text[start:end]) for kind, start, end in found] == [("twilio-api-key", sid)]
    assert list(detectors.scan("short words only\n" * 1000)) == []
