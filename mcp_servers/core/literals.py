"""Adjacent string literals joined, so that text split across them is scanned whole.

`"AKIA" "ABCD..."` (implicit concatenation in Python and C), `"sk-ant-" + "..."` (Python, JavaScript, Java) and
the same pieces on consecutive lines inside parentheses all read as one literal after `join`. Scanners run on
the joined text and map what they find back to the original with `Joined.span`.

The literals are found by a regular expression, not a tokenizer: it has to work on any language and on patch
fragments that do not parse. A quote inside a comment can pair up wrongly; the worst that does is join two
pieces that were not meant together, which only ever shows more text to the scanners.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from dataclasses import dataclass, field

# One single-line string literal: a quote, then anything but that quote, a backslash escape or a line break.
_LITERAL = re.compile(r"""(?P<q>["'])(?:\\.|(?!(?P=q))[^\\\n])*(?P=q)""")
# What may stand between two literals that the language joins: blanks, line breaks, a backslash continuation,
# one `+`, and the next literal's prefix (`f`, `b`, `r`, `u`).
_GAP = re.compile(r"(?:\s|\\\n)*(?:\+(?:\s|\\\n)*)?[rRbBuUfF]{0,2}")


@dataclass(frozen=True)
class Joined:
    """The text with adjacent literals merged, and how to find where its characters came from."""

    text: str
    marks: list[int] = field(default_factory=list)  # positions in `text` where characters were dropped
    shifts: list[int] = field(default_factory=list)  # characters dropped before each mark, in all

    @property
    def changed(self) -> bool:
        return bool(self.marks)

    def span(self, start: int, end: int) -> tuple[int, int]:
        """The span of the original text that `text[start:end]` came from."""
        if start >= end:
            return start, end
        return self._origin(start), self._origin(end - 1) + 1

    def _origin(self, pos: int) -> int:
        i = bisect_right(self.marks, pos)
        return pos + (self.shifts[i - 1] if i else 0)


def join(text: str) -> Joined:
    """`text` with every run of adjacent string literals merged into one literal."""
    if '"' not in text and "'" not in text:
        return Joined(text)
    cuts: list[tuple[int, int]] = []  # spans to drop: a closing quote, the gap, the next opening quote
    previous: re.Match[str] | None = None
    for m in _LITERAL.finditer(text):
        if previous is not None and _GAP.fullmatch(text, previous.end(), m.start()):
            cuts.append((previous.end() - 1, m.start() + 1))
        previous = m
    if not cuts:
        return Joined(text)
    parts, marks, shifts = [], [], []
    pos = dropped = 0
    for start, end in cuts:
        parts.append(text[pos:start])
        dropped += end - start
        marks.append(start - (dropped - (end - start)))
        shifts.append(dropped)
        pos = end
    parts.append(text[pos:])
    return Joined("".join(parts), marks, shifts)
