"""A change as git sees it: status letters, old and new paths, modes, blob ids, binary flags, added lines.

The policy judges this and never an agent's description of its work. Everything comes from two git calls
on two trees (`diff-tree --raw --numstat -z` and `diff-tree -p -U0`), so staged, unstaged and untracked work
and writes made through any tool look the same.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from .errors import UsageError
from .git import Repo, decode_path

# Past this many bytes of patch text the added lines are not scanned; the policy then fails the change.
MAX_PATCH_BYTES = 64 * 1024 * 1024
# A changed file larger than this is not read at all; it counts as binary (it cannot be reviewed either).
MAX_BLOB_BYTES = 32 * 1024 * 1024
_HUNK = re.compile(rb"^@@ -\d+(?:,\d+)? \+(\d+)(?:,\d+)? @@")
_RENAME_COPY = {"R", "C"}
_OCTAL = re.compile(rb"\\([0-7]{3}|[abfnrtv\\\"])")
_ESCAPES = {
    b"a": b"\a",
    b"b": b"\b",
    b"f": b"\f",
    b"n": b"\n",
    b"r": b"\r",
    b"t": b"\t",
    b"v": b"\v",
    b"\\": b"\\",
    b'"': b'"',
}


@dataclass
class FileChange:
    """One file in a change. `path` is the new path (the old one for a deletion)."""

    status: str
    path: str
    old_mode: str
    new_mode: str
    old_oid: str
    new_oid: str
    old_path: str | None = None
    similarity: int | None = None
    added: int = 0
    removed: int = 0
    binary: bool = False
    symlink_target: str | None = None
    added_lines: list[tuple[int, str]] = field(default_factory=list)

    @property
    def paths(self) -> list[str]:
        """Every path this change touches: both ends of a rename or copy."""
        return [p for p in (self.old_path, self.path) if p is not None]


@dataclass
class ChangeSet:
    base: str
    base_tree: str
    tree: str
    files: list[FileChange]
    scanned: bool = True

    @property
    def lines_added(self) -> int:
        return sum(f.added for f in self.files)

    @property
    def lines_removed(self) -> int:
        return sum(f.removed for f in self.files)


def default_base(environ: Mapping[str, str] | None = None) -> str:
    """The ref work is compared with: the task's checkpoint when the scheduler set one, else HEAD."""
    environ = os.environ if environ is None else environ
    return environ.get("OVERNIGHT_CHECKPOINT") or "HEAD"


def collect(repo: Repo, base: str, tree: str) -> ChangeSet:
    """The change from commit `base` to `tree`, as git reports it."""
    base_commit = repo.resolve(base)
    base_tree = repo.tree_of(base_commit)
    files = _raw_and_numstat(repo, base_tree, tree)
    scanned = _attach_added_lines(repo, base_tree, tree, files)
    _mark_binaries(repo, files)
    links = [f for f in files if f.new_mode == "120000"]
    if links:
        blobs = repo.read_blobs([f.new_oid for f in links])
        for f in links:
            f.symlink_target = blobs.get(f.new_oid, b"").decode("utf-8", "surrogateescape")
    return ChangeSet(base=base_commit, base_tree=base_tree, tree=tree, files=files, scanned=scanned)


def _raw_and_numstat(repo: Repo, old: str, new: str) -> list[FileChange]:
    tokens = repo.diff_trees(old, new, "-M", "-C", "--raw", "--numstat", "-z").split(b"\0")
    files: list[FileChange] = []
    i = 0
    while i < len(tokens) and tokens[i].startswith(b":"):
        old_mode, new_mode, old_oid, new_oid, status = tokens[i][1:].decode().split()
        letter = status[0]
        if letter in _RENAME_COPY:
            source, target = decode_path(tokens[i + 1]), decode_path(tokens[i + 2])
            files.append(FileChange(letter, target, old_mode, new_mode, old_oid, new_oid, source, int(status[1:])))
            i += 3
        else:
            files.append(FileChange(letter, decode_path(tokens[i + 1]), old_mode, new_mode, old_oid, new_oid))
            i += 2
    for f in files:
        if i >= len(tokens):
            break
        added, removed, rest = tokens[i].split(b"\t", 2)
        i += 3 if not rest else 1  # a rename or copy puts its two paths in the next two tokens
        if added == b"-":
            f.binary = True
        else:
            f.added, f.removed = int(added), int(removed)
    return files


def _attach_added_lines(repo: Repo, old: str, new: str, files: list[FileChange]) -> bool:
    """Fill in each file's added lines from a zero-context patch; False when the patch was too big to read.

    A lone CR ends a line for Python and for a reader but not for git's counts, so each one inside a line
    counts as one more changed line (otherwise 200 statements joined by CRs would count as one).
    """
    wanted = {f.path: f for f in files if not f.binary and (f.added or f.removed)}
    if not wanted:
        return True
    patch = repo.diff_trees(old, new, "-M", "-C", "-p", "-U0", max_bytes=MAX_PATCH_BYTES + 1)
    if len(patch) > MAX_PATCH_BYTES:
        return False
    current: FileChange | None = None
    in_header = False
    line_no = 0
    for raw in patch.split(b"\n"):
        if raw.startswith(b"diff --git"):
            current, in_header = None, True
        elif raw.startswith(b"@@"):
            m = _HUNK.match(raw)
            line_no, in_header = (int(m.group(1)) if m else 0), False
        elif in_header:
            # only here is `+++ ` a file header: in a hunk it is an added line that starts with `++`
            if raw.startswith(b"+++ "):
                current = wanted.get(_patch_path(raw[4:]))
        elif current is not None and raw[:1] in (b"+", b"-"):
            text = raw[1:].decode("utf-8", "replace")
            extra = text.removesuffix("\r").count("\r")
            if raw.startswith(b"+"):
                current.added += extra
                current.added_lines.append((line_no, text))
                line_no += 1
            else:
                current.removed += extra
    return True


def _mark_binaries(repo: Repo, files: list[FileChange]) -> None:
    """A file with a NUL byte is binary, whatever git's attributes make `diff` say about it."""
    regular = [f for f in files if f.status != "D" and f.new_mode in {"100644", "100755"} and not f.binary]
    if not regular:
        return
    blobs = repo.read_blobs([f.new_oid for f in regular], max_size=MAX_BLOB_BYTES)
    for f in regular:
        data = blobs.get(f.new_oid)
        if data is None or b"\0" in data:
            f.binary = True


def _patch_path(spec: bytes) -> str:
    """The path in a `+++ b/PATH` line, unquoting git's C-style quotes."""
    spec = spec.rstrip(b"\t")
    if spec.startswith(b'"') and spec.endswith(b'"'):
        spec = _OCTAL.sub(lambda m: _unescape(m.group(1)), spec[1:-1])
    return decode_path(spec[2:] if spec.startswith(b"b/") else spec)


def _unescape(code: bytes) -> bytes:
    return bytes([int(code, 8)]) if code.isdigit() else _ESCAPES[code]


def changed_lines(changes: ChangeSet, path: str) -> set[int]:
    """The new line numbers added or modified in `path`."""
    for f in changes.files:
        if f.path == path:
            return {n for n, _ in f.added_lines}
    return set()


def require_tree(tree: str) -> str:
    if not re.fullmatch(r"[0-9a-f]{40}|[0-9a-f]{64}", tree):
        raise UsageError(f"{tree!r} is not a tree id.")
    return tree
