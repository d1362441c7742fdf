"""Paths: glob matching the way `.gitignore` reads globs, folding for look-alikes, and checks on paths we are given.

- A pattern with no `/` matches a file's name at any depth (`.env*` matches `src/.env.local`); a pattern with a
  `/` is anchored at the repository root (`.github/workflows/**`); `**` crosses directories, `*` and `?` do not.
- Protected patterns are matched against a *folded* path (NFKD, combining marks dropped, look-alike letters
  mapped to ASCII, case-folded), so `.ENV`, `.еnv` with a Cyrillic `е` and `．env` in full width all count.
  Allowed patterns are matched exactly: `SRC/x.py` is not under `src/`. Both choices fail closed.
- `look_alike` tells a non-ASCII name that passes for another (`cаlc.py`, full width, a hidden variation
  selector) from one that is simply not English (`docs/café.md`), which passes.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Iterable
from pathlib import Path, PurePosixPath

from .errors import UsageError

# Letters from other scripts that render like ASCII ones (the common part of Unicode's confusables list).
_CONFUSABLES = str.maketrans(
    {
        "а": "a",
        "в": "b",
        "е": "e",
        "ё": "e",
        "к": "k",
        "м": "m",
        "н": "h",
        "о": "o",
        "р": "p",
        "с": "c",
        "т": "t",
        "у": "y",
        "х": "x",
        "ѕ": "s",
        "і": "i",
        "ї": "i",
        "ј": "j",
        "ԁ": "d",
        "һ": "h",
        "ԛ": "q",
        "ԝ": "w",
        "ӏ": "l",
        "ɡ": "g",
        "ı": "i",
        "ȷ": "j",
        "ℓ": "l",
        "А": "A",
        "В": "B",
        "Е": "E",
        "К": "K",
        "М": "M",
        "Н": "H",
        "О": "O",
        "Р": "P",
        "С": "C",
        "Т": "T",
        "Х": "X",
        "Ѕ": "S",
        "І": "I",
        "Ј": "J",
        "α": "a",
        "β": "b",
        "ε": "e",
        "ι": "i",
        "κ": "k",
        "ν": "v",
        "ο": "o",
        "ρ": "p",
        "τ": "t",
        "υ": "u",
        "χ": "x",
        "Α": "A",
        "Β": "B",
        "Ε": "E",
        "Ζ": "Z",
        "Η": "H",
        "Ι": "I",
        "Κ": "K",
        "Μ": "M",
        "Ν": "N",
        "Ο": "O",
        "Ρ": "P",
        "Τ": "T",
        "Υ": "Y",
        "Χ": "X",
        "օ": "o",
        "ս": "u",
        "հ": "h",
        "ց": "g",
        "ք": "p",
        "Ꭺ": "A",
        "Ꮯ": "C",
        "Ꭼ": "E",
        "Ꮋ": "H",
        "Ꭻ": "J",
        "Ꮶ": "K",
        "Ꮇ": "M",
        "Ꭲ": "T",
        "Ꮃ": "W",
        "ꓚ": "C",
        "ꓐ": "B",
        "ꓓ": "D",
        "ꓰ": "E",
        "ꓲ": "I",
        "ꓡ": "L",
        "ꓟ": "M",
        "ꓠ": "N",
        "ꓑ": "P",
        "ꓢ": "S",
        "ꓔ": "T",
        "ꓦ": "V",
        "ꓪ": "W",
        "ꓫ": "X",
    },
)

_LOOK_ALIKES = frozenset(chr(code) for code in _CONFUSABLES)

# Characters that change how a name looks without being seen: zero-width, joiners, bidi controls.
_INVISIBLE = {0x00AD, 0x034F, 0x061C, 0x180E, 0x2060, 0x2061, 0x2062, 0x2063, 0x2064, 0xFEFF}
_INVISIBLE.update(range(0x200B, 0x2010))
_INVISIBLE.update(range(0x202A, 0x202F))
_INVISIBLE.update(range(0x2066, 0x206A))


def fold(path: str) -> str:
    """The form of `path` that protected patterns are matched against (see the module docstring)."""
    if path.isascii():
        return path.lower()  # no look-alikes or marks in plain ASCII; this is the common case by far
    text = "".join(ch for ch in path if ord(ch) not in _INVISIBLE)
    text = unicodedata.normalize("NFKD", text)
    text = "".join(ch for ch in text if not unicodedata.combining(ch))
    return text.translate(_CONFUSABLES).casefold()


# Characters that are there but not seen, beyond those above: variation selectors, tags, fillers.
_IGNORABLE = {0x115F, 0x1160, 0x17B4, 0x17B5, 0x180B, 0x180C, 0x180D, 0x3164, 0xFFA0}
_IGNORABLE.update(range(0xFE00, 0xFE10))
_IGNORABLE.update(range(0xE0000, 0xE0080))
_IGNORABLE.update(range(0xE0100, 0xE01F0))


def look_alike(path: str) -> str | None:
    """Why a non-ASCII path is a look-alike of another name, or None when it is not one (issue 11).

    A name is a look-alike when a part of it hides a character (a variation selector, a filler), is not in its
    normal form (NFKC: full-width letters, ligatures, mathematical letters, a decomposed `é`; each looks like
    another spelling of the same name), or holds letters of another script that render like ASCII ones, either
    among ASCII letters (`cаlc.py` with a Cyrillic `а`) or making up the whole name (`арр.py`). Other non-ASCII
    names pass: `docs/café.md`, `日本語.md`, a word in Cyrillic or Greek. (Names that fold to a protected name
    are refused as protected whatever this says; invisible and control characters by `odd_characters`.)
    """
    if path.isascii():
        return None
    for part in path.split("/"):
        if part.isascii():
            continue
        hidden = [ch for ch in part if ord(ch) in _IGNORABLE]
        if hidden:
            return f"`{part}` holds {_named(hidden)}, which changes how it looks without being seen"
        normal = unicodedata.normalize("NFKC", part)
        if normal != part:
            return f"`{part}` is not in its normal form: it looks like `{normal}`"
        for word in _WORD.findall(part):
            swapped = [ch for ch in word if ch in _LOOK_ALIKES]
            if swapped and (word.translate(_CONFUSABLES).isascii() or any(ch.isascii() for ch in word)):
                skeleton = part.translate(_CONFUSABLES)
                return f"`{part}` reads as `{skeleton}` through look-alike letters ({_named(swapped)})"
    return None


_WORD = re.compile(r"[^\W\d_]+")  # a run of letters: a word of a name, apart from its dots, digits and dashes


def _named(chars: list[str]) -> str:
    return ", ".join(f"U+{ord(ch):04X} {unicodedata.name(ch, 'unnamed')}" for ch in dict.fromkeys(chars))


def odd_characters(path: str) -> list[str]:
    """Descriptions of the control, invisible or bidi characters in a path (empty when there are none)."""
    found = []
    for ch in path:
        code = ord(ch)
        if code in _INVISIBLE or unicodedata.category(ch) in {"Cc", "Cf", "Zl", "Zp"}:
            found.append(f"U+{code:04X} {unicodedata.name(ch, 'control character')}")
    return found


@functools.lru_cache(maxsize=1024)
def glob_regex(pattern: str, ignore_case: bool = False) -> re.Pattern[str]:
    """Compile a gitignore-style glob into a regular expression over repository-relative POSIX paths."""
    pat = pattern.strip()
    if pat.endswith("/"):
        pat += "**"
    anchored = "/" in pat.rstrip("/")
    pat = pat.lstrip("/")
    out = [] if anchored else ["(?:.*/)?"]
    i = 0
    while i < len(pat):
        if pat.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif pat.startswith("**", i):
            out.append(".*")
            i += 2
        elif pat[i] == "*":
            out.append("[^/]*")
            i += 1
        elif pat[i] == "?":
            out.append("[^/]")
            i += 1
        elif pat[i] == "[" and (end := pat.find("]", i + 2)) != -1:
            body = pat[i + 1 : end]
            if body.startswith("!"):
                body = "^" + body[1:]
            out.append("[" + body.replace("\\", "\\\\") + "]")
            i = end + 1
        else:
            out.append(re.escape(pat[i]))
            i += 1
    return re.compile("".join(out) + r"\Z", re.IGNORECASE if ignore_case else 0)


class Globs:
    """A list of globs; `match(path)` returns the first pattern that matches, or None."""

    def __init__(self, patterns: Iterable[str], *, folded: bool = False) -> None:
        self.patterns = [p for p in patterns if p.strip()]
        self.folded = folded
        self._compiled = [(p, glob_regex(fold(p) if folded else p, folded)) for p in self.patterns]

    def match(self, path: str) -> str | None:
        subject = fold(path) if self.folded else path
        for pattern, regex in self._compiled:
            if regex.match(subject):
                return pattern
        return None

    def __bool__(self) -> bool:
        return bool(self.patterns)


def clean_glob(pattern: str) -> str:
    """A repository-relative glob from a caller (a task's `Files:` entry); refuses anything that escapes the repo."""
    text = pattern.strip()
    if not text or "\0" in text or text.startswith("-"):
        raise UsageError(f"{pattern!r} is not a usable file pattern: give a path relative to the repository root.")
    if text.startswith(("/", "~")) or re.match(r"^[A-Za-z]:", text):
        raise UsageError(f"{pattern!r} is absolute: task file patterns are relative to the repository root.")
    parts = [p for p in text.replace("\\", "/").split("/") if p not in {"", "."}]
    if ".." in parts:
        raise UsageError(f"{pattern!r} climbs out with `..`: task file patterns stay inside the repository.")
    return "/".join(parts)


def inside(root: Path, path: str) -> str:
    """`path` (relative to `root`, or absolute) as a repository-relative POSIX path, after resolving symlinks.

    Raises UsageError when it leaves the repository.
    """
    if "\0" in path or path.startswith("-"):
        raise UsageError(f"{path!r} is not a usable path.")
    real_root = root.resolve()
    target = (root / path).resolve()
    try:
        rel = target.relative_to(real_root)
    except ValueError:
        raise UsageError(f"{path!r} is outside the repository {root}: give a path inside it.") from None
    return str(PurePosixPath(*rel.parts)) if rel.parts else "."
