"""What the person owns, captured before a session and compared after each task: a difference is a security
event, put back where it can be and reported first.

An agent, or the tests it writes, runs as the person. It could plant a hook, an alias or `core.fsmonitor` so that
code runs on the person's next `git`, edit their checkout, another worktree, `~/.bashrc` or `.git/info/exclude`,
move or delete refs, or push to a remote by URL. A snapshot holds, cheaply:

- every ref (`for-each-ref`: branches, tags, remotes, notes, the stash), and each worktree's HEAD;
- git's files that steer it or run code (config, hooks, info, remotes, alternates, the stash's reflog, each
  linked worktree's admin files and `.git` file, submodules' config and hooks), with their bytes;
- each worktree but the session's (the person's checkout first): the stat of every file, git's content id where
  it is cheap (tracked files git vouches for, small untracked ones), small files' bytes, the index and the status;
- the home's files listed in `scheduler.watch_home` (those under `~/.ssh` by stat only);
- each remote's refs (`git ls-remote`, with a timeout: a remote that cannot be reached is unknown, not changed).

A file whose stat (with ctime and inode, which no process can set back) is unchanged is unchanged; one whose
stat changed is compared by content.
"""

from __future__ import annotations

from mcp_servers.core.workspace import Workspace

from .capture import steering_files, take
from .diff import compare, file_events
from .model import Checkout, Event, FileState, Snapshot
from .undo import quarantine, restore

__all__ = ["Checkout", "Event", "FileState", "Snapshot", "check", "compare", "quarantine", "restore", "take"]


def check(ws: Workspace, before: Snapshot) -> list[str]:
    """Compare what the person owns with `before` and put back what changed: one line per security event, saying
    what changed and what was done about it (empty: nothing changed).

    git's own files and the home's are compared and put back first, read without running git, so that git is
    then asked about the rest under the person's own configuration, not one a process planted."""
    keep = quarantine(ws)
    steering = file_events(before, steering_files(ws, before))
    said = [f"{e}: {done}" for e, done in zip(steering, restore(ws, before, steering, keep=keep), strict=True)]
    rest = compare(before, take(ws, like=before))
    said += [f"{e}: {done}" for e, done in zip(rest, restore(ws, before, rest, keep=keep), strict=True)]
    return list(dict.fromkeys(said))
