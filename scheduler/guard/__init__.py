"""The guard: which of an agent's tool calls are refused before they run (`judge`), shared by every agent's hook.

Each agent's hook reads its CLI's hook input, puts the call in the terms `judge` reads (`tool_name` `Bash` with
`command`, or a write tool with its path) and answers as its CLI expects: `scheduler.guard.claude` for Claude
Code (`python -m scheduler.guard` is the same, kept for the hooks of runs set up before), one module per agent
beside it. They live here, not in the adapters, because a hook starts for every tool call: this package imports
almost nothing (a hook under `scheduler.agents` would import the whole adapter layer each time).

Refused: `git commit` (the quality server's `commit` tool is the only way to commit), `git push`, `--no-verify`,
`core.hooksPath`, history rewrites and branch switches, a person's plan commands, and file writes outside the
allowed paths, onto protected paths, outside the task's scope, or onto the plan file. This is a first line; the
scheduler's own verification after the agent exits is what decides.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

_SEGMENT = r"[^|;&\n]*"  # within one simple command
_BASH_RULES: list[tuple[re.Pattern[str], str]] = [
    (re.compile(rf"\bgit\b{_SEGMENT}\bcommit\b", re.I),
     "`git commit` is refused: commit with the quality server's `commit` tool, which needs a passing gate receipt"),
    (re.compile(rf"\bgit\b{_SEGMENT}\bpush\b", re.I), "`git push` is refused: the scheduler pushes, agents never do"),
    (re.compile(r"--no-verify", re.I), "`--no-verify` is refused: the gate's hooks are not optional"),
    (re.compile(r"hooks-?path", re.I), "changing `core.hooksPath` is refused"),
    (re.compile(rf"\bgit\b{_SEGMENT}\b(update-ref|replace|filter-branch|filter-repo|rebase|am|cherry-pick|merge"
                rf"|revert|switch|worktree|config|stash)\b", re.I),
     "rewriting history, switching branches or changing git's configuration is refused: work on the files"),
    (re.compile(rf"\bgit\b{_SEGMENT}\breset\b{_SEGMENT}\b(HEAD[~^]|[0-9a-f]{{7,40}}\b|origin/|--soft|--mixed)", re.I),
     "moving HEAD with `git reset` is refused: undo a file with `git checkout -- PATH` instead"),
    (re.compile(rf"\bgit\b{_SEGMENT}\b(checkout|branch)\b{_SEGMENT}(\s-[bBdDmM]\b|\s--orphan\b)", re.I),
     "creating, deleting or switching branches is refused"),
    (re.compile(rf"\bovernight\b{_SEGMENT}\bplan\b{_SEGMENT}\b(approve|reject|reset)\b", re.I),
     "only a person approves, rejects or resets tasks"),
    (re.compile(rf"\bovernight\b{_SEGMENT}\b(init|hooks|cron|resume)\b", re.I),
     "changing overnight's own setup is refused"),
]  # fmt: skip
_WRITE_TOOLS = {"Write": "file_path", "Edit": "file_path", "MultiEdit": "file_path", "NotebookEdit": "notebook_path"}


def judge(event: Mapping[str, Any], environ: Mapping[str, str]) -> str | None:
    """Why the call must be refused, or None to let it through."""
    tool = str(event.get("tool_name") or "")
    data = event.get("tool_input") or {}
    if not isinstance(data, dict):
        return "the tool input could not be read"
    if tool == "Bash":
        command = str(data.get("command") or "")
        plain = re.sub(r"[\\'\"`]", "", command)  # quoting and escapes do not hide a command from this check
        for pattern, reason in _BASH_RULES:
            if pattern.search(command) or pattern.search(plain):
                return reason
        return None
    key = _WRITE_TOOLS.get(tool)
    if key is None:
        return None
    return _judge_write(str(data.get(key) or ""), event, environ)


def _judge_write(target: str, event: Mapping[str, Any], environ: Mapping[str, str]) -> str | None:
    from mcp_servers.core.workspace import Workspace

    root = environ.get("OVERNIGHT_REPO") or str(event.get("cwd") or "")
    if not target or not root:
        return "the file path or the worktree is unknown"
    ws = Workspace.open(root, environ=environ)
    path = Path(target) if os.path.isabs(target) else ws.repo.root / target
    lexical = Path(os.path.normpath(path))
    # the path as written (normalised), and where symlinks lead: both must be allowed
    for candidate, base in ((lexical, ws.repo.root), (path.resolve(), ws.repo.root.resolve())):
        try:
            rel = candidate.relative_to(base).as_posix()
        except ValueError:
            return f"`{target}` is outside the worktree {ws.repo.root}"
        reason = _judge_path(ws, rel)
        if reason:
            return reason
    return None


def _judge_path(ws: Any, rel: str) -> str | None:
    from mcp_servers.core.paths import Globs
    from mcp_servers.core.policy import ALWAYS_PROTECTED
    from mcp_servers.core.queue import task_scope

    policy = ws.settings.policy
    protected = Globs([*ALWAYS_PROTECTED, *policy.all_protected], folded=True).match(rel)
    if protected:
        return f"`{rel}` is protected (pattern `{protected}`): only a person may change it"
    if rel == ws.settings.plan.path:
        return f"`{rel}` changes only through `complete_task` and `propose_task`"
    if not Globs(policy.allowed_paths).match(rel):
        return f"`{rel}` is outside the paths agents may change ({', '.join(policy.allowed_paths)})"
    scope = task_scope(ws)
    if scope and not Globs(scope).match(rel):
        return f"`{rel}` is outside this task's Files: scope ({', '.join(scope)})"
    return None
