"""The session's git worktree: created on `overnight/<date>-<id>` from the base branch, rolled back to a task's
checkpoint when its work fails, removed at the end (the branch stays).

The person's own checkout, its index and its branch are never touched: everything happens in a worktree outside
the checkout and outside `.git` (agents refuse to write under `.git`), on a branch of its own. Nor is their
`.git/config` or `.git/hooks`: no receipt hook is installed for session worktrees (it would take
`extensions.worktreeConfig` in the shared config); the scheduler verifies every commit itself.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

from mcp_servers.core import git
from mcp_servers.core.errors import GitError
from mcp_servers.core.git import Repo
from mcp_servers.core.workspace import Workspace, user_state_dir, worktree_locks


def base_commit(ws: Workspace) -> tuple[str, str]:
    """(the base branch's name, its commit): `scheduler.base_branch`, else the branch checked out."""
    name = ws.settings.scheduler.base_branch or ws.repo.branch()
    if not name:
        raise GitError(
            "HEAD is detached and `scheduler.base_branch` is not set: say which branch sessions start from "
            "(e.g. `base_branch = \"main\"` under [scheduler] in overnight.toml).",
        )
    return name, ws.repo.resolve(name)


def location(ws: Workspace, session: str) -> Path:
    """Where a session's worktree goes: `scheduler.worktree_dir`, else a folder of this repository's under the
    user's overnight folder. Never under `.git` (Claude Code refuses to write there) nor inside the checkout."""
    configured = ws.settings.scheduler.worktree_dir
    if configured:
        base = Path(os.path.expanduser(configured))
        base = base if base.is_absolute() else ws.repo.root / base
    else:
        digest = hashlib.sha256(str(ws.repo.common_dir.resolve()).encode()).hexdigest()[:8]
        base = user_state_dir(ws.environ) / "worktrees" / f"{ws.repo.root.name}-{digest}"
    return base / session


def create(ws: Workspace, session: str, base: str) -> Path:
    """A new worktree for `session` on its own branch from commit `base`. Nothing else is written: not the
    shared `.git/config`, not `.git/hooks`."""
    path = location(ws, session)
    branch = ws.settings.scheduler.branch_prefix + session
    path.parent.mkdir(parents=True, exist_ok=True)
    ws.repo.run("worktree", "add", "--quiet", "-b", branch, str(path), base)
    return path


def orphans(ws: Workspace, keep: str = "") -> list[Path]:
    """Session worktrees no running session owns (a session that died with its lock gone, say)."""
    base = location(ws, "x").parent.resolve()
    found, path = [], None
    for line in ws.repo.out("worktree", "list", "--porcelain").splitlines():
        if line.startswith("worktree "):
            path = Path(line.removeprefix("worktree "))
        elif line.startswith("branch ") and path is not None:
            branch = line.removeprefix("branch refs/heads/")
            if (branch.startswith(ws.settings.scheduler.branch_prefix) and path.resolve().parent == base
                    and path.name != keep):
                found.append(path)
    return found


def rollback(root: Path, checkpoint: str) -> None:
    """Put the worktree back exactly at `checkpoint`: tracked files reset, everything else removed."""
    repo = Repo.discover(root)
    repo.run("reset", "--quiet", "--hard", checkpoint)
    repo.run("clean", "-q", "-f", "-d", "-x")


def clean(root: Path) -> None:
    """Drop whatever is not committed (the scheduler only keeps commits)."""
    rollback(root, "HEAD")


def remove(ws: Workspace, path: Path) -> None:
    """Remove a session's worktree (its branch and commits stay), and its lock files under the state directory."""
    locks = worktree_locks(ws.state_dir, path)  # named before the path is gone (it may resolve through links)
    for root in {path, path.resolve()}:
        git.forget(root)
    ws.repo.run("worktree", "remove", "--force", str(path), check=False)
    if path.exists():
        shutil.rmtree(path, ignore_errors=True)
    ws.repo.run("worktree", "prune", check=False)
    _remove_empty_parents(ws, path)
    for lock in locks:  # its gate and plan locks: nothing takes them again
        lock.unlink(missing_ok=True)


def _remove_empty_parents(ws: Workspace, path: Path) -> None:
    """Remove the folders `create` made above a session's worktree once they hold nothing: this repository's
    folder under the user's `worktrees`, and `worktrees` itself. A configured `scheduler.worktree_dir` is the
    person's and stays. `rmdir` removes only an empty folder, so a session starting meanwhile keeps its own
    (and `git worktree add` makes the folders it needs again)."""
    if ws.settings.scheduler.worktree_dir:
        return
    stop = user_state_dir(ws.environ)
    folder = path.parent
    while folder != stop and stop in folder.parents:
        try:
            folder.rmdir()
        except OSError:  # not empty (another session's worktree), or already gone
            if folder.exists():
                return
        folder = folder.parent


def pending(root: Path) -> list[str]:
    """Paths with uncommitted changes (modified, added, deleted or untracked), as git names them."""
    fields = Repo.discover(root).run("status", "--porcelain", "-z", "--untracked-files=all").text().split("\0")
    paths, skip = [], False
    for field in fields:
        if skip:  # the source of a rename or copy
            skip = False
            continue
        if len(field) > 3:
            paths.append(field[3:])
            skip = field[0] in "RC"
    return paths


def attached(root: Path, branch: str) -> bool:
    """Whether the worktree's HEAD is still its session branch (not detached, not switched)."""
    return Repo.discover(root).out("symbolic-ref", "-q", "HEAD", check=False) == f"refs/heads/{branch}"


def reattach(root: Path, branch: str) -> None:
    """Point the worktree's HEAD back at its session branch."""
    Repo.discover(root).run("symbolic-ref", "HEAD", f"refs/heads/{branch}")


def head(root: Path) -> str:
    return Repo.discover(root).require_commits()
