"""The git `pre-commit` hook that refuses a commit whose staged tree has no passing gate receipt.

Opt-in in a person's checkout (`overnight hooks install`). The scheduler does not install it for its
worktrees (that would write the shared `.git/config`); it verifies every commit itself.
A hook that was there before is kept beside ours and run after our check passes.
"""

from __future__ import annotations

import os
import stat
import sys
from collections.abc import Mapping
from pathlib import Path

from . import receipts
from .errors import UsageError
from .git import git_env
from .workspace import Workspace

MARKER = "# installed by overnight"
CHAINED = ".pre-overnight"


def script(python: str = sys.executable) -> str:
    """The hook: our check first (failing closed if it cannot run), then the hook it replaced, if any."""
    return f"""#!/bin/sh
{MARKER}: refuse a commit whose staged tree has no passing gate receipt.
# Remove it with `overnight hooks uninstall`; the hook it replaced (if any) is kept as pre-commit{CHAINED}.
"{python}" -m scheduler hooks run pre-commit || exit 1
if [ -x "$0{CHAINED}" ]; then exec "$0{CHAINED}" "$@"; fi
exit 0
"""


def install(ws: Workspace, *, force: bool = False, python: str = sys.executable) -> tuple[Path, str]:
    """Install the pre-commit hook; return its path and what happened."""
    hooks = ws.repo.hooks_dir()
    in_git_dir = _inside(hooks, ws.repo.common_dir) or _inside(hooks, ws.repo.git_dir)
    if _inside(hooks, ws.repo.root) and not in_git_dir and not force:
        raise UsageError(
            f"git takes its hooks from {hooks} (core.hooksPath), a folder inside the worktree that is probably "
            "committed. Installing there would change a tracked file: pass `--force` to do it anyway.",
        )
    hooks.mkdir(parents=True, exist_ok=True)
    path = hooks / "pre-commit"
    wanted = script(python)
    if path.exists():
        current = path.read_text(errors="replace")
        if current == wanted:
            return path, "already installed"
        if MARKER not in current:
            chained = path.with_name(path.name + CHAINED)
            if chained.exists():
                raise UsageError(f"{chained} already exists: move it away, then install again.")
            os.replace(path, chained)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(wanted)
    tmp.chmod(tmp.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    os.replace(tmp, path)
    return path, "installed"


def uninstall(ws: Workspace) -> tuple[Path, str]:
    hooks = ws.repo.hooks_dir()
    path = hooks / "pre-commit"
    if not path.exists() or MARKER not in path.read_text(errors="replace"):
        return path, "not installed"
    path.unlink()
    chained = path.with_name(path.name + CHAINED)
    if chained.exists():
        os.replace(chained, path)
        return path, "removed; the previous hook is back"
    return path, "removed"


def is_installed(ws: Workspace) -> bool:
    path = ws.repo.hooks_dir() / "pre-commit"
    return path.exists() and MARKER in path.read_text(errors="replace") and os.access(path, os.X_OK)


def check_staged(ws: Workspace, environ: Mapping[str, str]) -> tuple[bool, str]:
    """Is there a passing receipt for the tree being committed (the index git names in GIT_INDEX_FILE)?

    The scheduler's verification verdicts are not receipts (`receipts.find` never returns one), and in a
    scheduler session only that session's own receipts count. The scheduler keeps no commit made this way
    anyway: only the `commit` tool's (issue 10)."""
    env = git_env(environ, keep=("GIT_INDEX_FILE",))
    tree = ws.repo.index_tree(env)
    session = environ.get("OVERNIGHT_SESSION_ID") or None
    with ws.db() as conn:
        hit = receipts.find(conn, ws.key(), tree=tree, policy_hash=ws.settings.policy_hash(), session=session)
    if hit:
        return True, f"overnight: tree {tree[:12]} has gate receipt {hit[0].id}"
    return False, (
        f"overnight: refusing this commit: its tree {tree[:12]} has no passing gate receipt under the current "
        "policy.\n  Run the gate (`overnight check --gate`, or the `run_quality_gate` tool) and commit with the "
        "`commit` tool, which adds the receipt trailer."
    )


def _inside(path: Path, root: Path) -> bool:
    try:
        path.resolve().relative_to(root.resolve())
    except ValueError:
        return False
    return True
