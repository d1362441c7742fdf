"""How much a change adds, in the measures the policy limits: bytes, and Python statements.

Lines alone are easy to game: 500 statements joined by `;` are one line, and so is a 10 KB string. Bytes are
counted over the added lines. Statements are counted with `ast` on the new version of each changed Python file:
every statement that starts on an added line counts, so code packed onto one line counts in full, while an
edit inside an existing multi-line statement adds none. A file that does not parse counts the `;`-separated
parts of its added lines, so a syntax error cannot hide what was packed in.
"""

from __future__ import annotations

import ast
from collections.abc import Callable

from . import changes as ch
from .git import Repo

PYTHON_SUFFIXES = (".py", ".pyi")


def added_bytes(changes: ch.ChangeSet) -> int:
    """UTF-8 bytes of every added line, newline included."""
    return sum(len(text.encode("utf-8", "surrogateescape")) + 1 for f in changes.files for _, text in f.added_lines)


def added_statements(repo: Repo, changes: ch.ChangeSet) -> int:
    """Python statements that start on an added line, over every changed Python file."""
    files = [
        f
        for f in changes.files
        if f.path.endswith(PYTHON_SUFFIXES) and f.added_lines and not f.binary and f.new_mode != "120000"
    ]
    if not files:
        return 0
    blobs = repo.read_blobs([f.new_oid for f in files], max_size=ch.MAX_BLOB_BYTES)
    return sum(statements_on(blobs.get(f.new_oid, b""), f.added_lines) for f in files)


def statements_on(source: bytes, lines: list[tuple[int, str]]) -> int:
    """Statements of `source` starting on the given (git line number, text) lines."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return sum(_parts(text) for _, text in lines)
    to_git = _git_lines(source)
    wanted = {n for n, _ in lines}
    return sum(1 for node in ast.walk(tree) if isinstance(node, ast.stmt) and to_git(node.lineno) in wanted)


def _parts(text: str) -> int:
    return sum(1 for part in text.split(";") if part.strip())


def _git_lines(source: bytes) -> Callable[[int], int]:
    """A function from Python's line numbers to git's: git ends lines at LF only, Python at a lone CR too."""
    if b"\r" not in source:
        return lambda n: n
    owner = [0]
    for number, line in enumerate(source.split(b"\n"), start=1):
        body = line[:-1] if line.endswith(b"\r") else line  # the CR of a CRLF ends no extra line
        owner.extend([number] * (1 + body.count(b"\r")))
    return lambda n: owner[n] if n < len(owner) else n
