"""What a snapshot holds, and what a difference between two of them is called."""

from __future__ import annotations

import re
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from pydantic import BaseModel, Field


@dataclass(frozen=True)
class FileState:
    """A file as it was: its stat, a content id where reading it was cheap, and its bytes when it is small.

    `digest` is git's blob id of the content (for a tracked file git vouches for, the id in the index), or
    `link:TARGET` for a symbolic link; empty when the file was not read. `data` is kept only for small files,
    so that a change can be undone."""

    mode: int
    size: int
    mtime_ns: int
    ctime_ns: int
    inode: int
    digest: str = ""
    data: bytes | None = field(default=None, repr=False)

    def same_stat(self, other: FileState) -> bool:
        """No process can set ctime back, so an unchanged stat means an unchanged file."""
        return (self.mode, self.size, self.mtime_ns, self.ctime_ns, self.inode) == (
            other.mode, other.size, other.mtime_ns, other.ctime_ns, other.inode)  # fmt: skip

    def same(self, other: FileState) -> bool:
        """Unchanged: the same stat, or the same mode and content."""
        return self.same_stat(other) or (self.mode == other.mode and bool(self.digest) and self.digest == other.digest)

    def describe(self) -> str:
        if self.digest.startswith("link:"):
            return f"a link to {self.digest[5:]}"
        kind = "a file" if stat.S_ISREG(self.mode) else "a special file"
        content = f", content {self.digest[:12]}" if self.digest else ""
        return f"{kind} of {self.size} bytes, mode {stat.S_IMODE(self.mode):o}{content}"


@dataclass(frozen=True)
class Checkout:
    """A worktree other than the session's (the person's checkout first): its HEAD, index, status and files."""

    root: str
    git_dir: str
    head: str  # HEAD's content: "ref: refs/heads/main", or a commit id when detached
    index: str  # a digest of the index's entries (`git ls-files --stage -v`)
    index_data: bytes | None = field(default=None, repr=False)
    status: bytes = field(default=b"", repr=False)  # `git status --porcelain=v2 -z --untracked-files=all`
    files: Mapping[str, FileState] = field(default_factory=dict, repr=False)  # by path relative to root


@dataclass(frozen=True)
class Snapshot:
    """Everything the person owns that a process running as them could change, at one moment."""

    refs: Mapping[str, str]  # name -> commit id, or "ref: TARGET" for a symbolic ref
    checkouts: Mapping[str, Checkout]  # by worktree path
    files: Mapping[str, FileState]  # git's own files (config, hooks, info, ...) and home files, by absolute path
    remotes: Mapping[str, Mapping[str, str] | None]  # remote -> its refs; None when `git ls-remote` failed
    common_dir: str = ""  # git's files are under it (and linked worktrees' `.git` files); the rest are the home's
    session_root: str = ""
    session_branch: str = ""
    home: str = ""
    home_files: tuple[str, ...] = ()
    cost_s: float = 0.0  # how long taking it took


Kind = Literal["git-file", "home-file", "worktree", "ref", "head", "index", "file", "remote-ref", "status"]

_WHAT = {
    "git-file": "git's file {where}",
    "home-file": "{where} in your home",
    "worktree": "the worktree {where}",
    "ref": "the ref {where}",
    "head": "HEAD of the worktree {root}",
    "index": "the index (staged files) of the worktree {root}",
    "file": "{where} in the worktree {root}",
    "remote-ref": "{where} on the remote {root}",
    "status": "`git status` of the worktree {root}",
}


class Event(BaseModel):
    """One thing the person owns that changed: a security event."""

    kind: Kind
    where: str = Field(description="the ref, or the file's path (relative to `root` in a worktree)")
    before: str | None = Field(default=None, description="what it was; None when it did not exist")
    after: str | None = Field(default=None, description="what it is now; None when it is gone")
    root: str = Field(default="", description="the worktree, or the remote, it belongs to")

    def __str__(self) -> str:
        what = _WHAT[self.kind].format(where=self.where, root=self.root)
        before, after = _short(self.before), _short(self.after)
        if before is None:
            return f"{what} was added ({after})"
        if after is None:
            return f"{what} was deleted (it was {before})"
        return f"{what} changed (was {before}, now {after})"


_OID = re.compile(r"\b([0-9a-f]{12})[0-9a-f]{28}(?:[0-9a-f]{24})?\b")


def _short(value: str | None) -> str | None:
    return None if value is None else _OID.sub(r"\1", value)
