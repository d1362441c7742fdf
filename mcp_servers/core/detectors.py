"""Credential formats from a maintained detector: the regex plugins of detect-secrets (Yelp).

Each `RegexBasedDetector` subclass in `detect_secrets.plugins` lists compiled regexes (`denylist`) for one
provider's format: Twilio, SendGrid, Discord, Mailchimp, Telegram, Square, Azure storage, IBM, Artifactory and
the ones `core.secrets` also knows. They are used as data: no `SecretsCollection`, no `scan_line`, no settings,
so nothing global is read or changed, custom plugins named in someone's baseline are never imported, and
each regex runs once over the candidate lines of a text instead of once per line (detect-secrets' own scan
took 21 s over 122k lines; see the research notes).

Left out: `IPPublicDetector` (an address is not a credential), and the keyword and entropy plugins, which are
not regex lists; `core.secrets` has its own, tuned not to flag hashes, UUIDs or code.
"""

from __future__ import annotations

import functools
import importlib
import pkgutil
import re
from bisect import bisect_right
from collections.abc import Iterator

_SKIPPED = {"IPPublicDetector"}
# Every format these plugins know has a run of 20 or more such characters; lines without one are not scanned,
# which keeps the cost of a large change near zero (the slowest plugins are keyword-prefixed assignments).
_CANDIDATE = re.compile(r"[A-Za-z0-9+/=_-]{20,}")


@functools.cache  # the plugins' regexes are constants of the installed package: built once per process
def plugins() -> tuple[tuple[str, re.Pattern[str]], ...]:
    """(kind, regex) for every regex-based plugin, the kind being its `secret_type` in lower-case-with-dashes."""
    from detect_secrets import plugins as package
    from detect_secrets.plugins.base import RegexBasedDetector

    found: list[tuple[str, re.Pattern[str]]] = []
    for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda i: i.name):
        module = importlib.import_module(f"{package.__name__}.{info.name}")
        for cls in vars(module).values():
            if not isinstance(cls, type) or not issubclass(cls, RegexBasedDetector) or cls.__name__ in _SKIPPED:
                continue
            secret_type = cls.__dict__.get("secret_type")
            if cls.__module__ == module.__name__ and isinstance(secret_type, str):
                kind = re.sub(r"[^a-z0-9]+", "-", secret_type.lower()).strip("-")
                found.extend((kind, regex) for regex in getattr(cls, "denylist", ()))
    return tuple(found)


def scan(text: str) -> Iterator[tuple[str, int, int]]:
    """(kind, start, end) of every match of a plugin regex in `text`, the secret being the first group if any."""
    starts: list[int] = []
    pieces: list[str] = []
    for line in _candidate_lines(text):
        starts.append(line[0])
        pieces.append(text[line[0] : line[1]])
    if not pieces:
        return
    joined = "\n".join(pieces)
    offsets = [0]
    for piece in pieces[:-1]:
        offsets.append(offsets[-1] + len(piece) + 1)
    for kind, regex in plugins():
        for m in regex.finditer(joined):
            group = 1 if regex.groups and m.group(1) else 0
            start, end = _trim(joined, *m.span(group))
            if start < end:
                i = bisect_right(offsets, start) - 1
                shift = starts[i] - offsets[i]
                yield kind, start + shift, end + shift


def _candidate_lines(text: str) -> Iterator[tuple[int, int]]:
    """(start, end) of each line of `text` holding a long enough run of token characters, once each."""
    last = -1
    for m in _CANDIDATE.finditer(text):
        start = text.rfind("\n", 0, m.start()) + 1
        if start <= last:
            continue
        end = text.find("\n", m.end())
        end = len(text) if end == -1 else end
        last = end
        yield start, end


def _trim(text: str, start: int, end: int) -> tuple[int, int]:
    """Without the delimiters some plugins match around the secret (`"`, `=`, `:`, blanks)."""
    while start < end and text[start] in " \t\"'=:":
        start += 1
    while end > start and text[end - 1] in " \t\"'":
        end -= 1
    return start, end
