"""What an agent did before it was stopped (timed out, stopped, or its session died): its turns, its tool calls
and the files it wrote, read back from its stream log (`runs/<session>/<task>-<attempt>/agent.jsonl`) and from
the worktree itself.

The log is the agent's own account and proves nothing: it is shown to the person, never trusted. The files
changed come from git (the worktree against the task's checkpoint, before the rollback): that part is true.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from .agents import call_text, short

MAX_CALLS = 40  # the last ones are kept: what it was doing when it was stopped
MAX_FILES = 50
MAX_LOG_BYTES = 20 * 1024 * 1024  # a log past this is read from its end
_WRITES = {"Write", "Edit", "MultiEdit", "NotebookEdit"}  # Claude Code's tools that write a file


class Activity(BaseModel):
    """An agent's run as its log tells it, and the files git says it changed."""

    turns: int = Field(default=0, description="turns the log shows (each step or assistant message)")
    tool_calls: list[str] = Field(default_factory=list, description=f"its last {MAX_CALLS} tool calls, each short")
    tool_calls_total: int = 0
    files_changed: list[str] = Field(default_factory=list, description="files changed in the worktree against the "
                                     "task's checkpoint (from git, before the rollback)")  # fmt: skip
    files_named: list[str] = Field(default_factory=list, description="files its write calls named that git does "
                                   "not show changed (from the log)")  # fmt: skip
    log: str = Field(default="", description="the stream log it was read from")

    def lines(self) -> list[str]:
        """The report's lines for it."""
        shown = self.tool_calls
        more = self.tool_calls_total - len(shown)
        calls = ("; ".join(shown) + (f" (and {more} earlier)" if more > 0 else "")) if shown else "none"
        out = [f"- Before it was stopped: {self.turns} turns, {self.tool_calls_total} tool calls: {calls}"]
        out.append(f"- Files it changed (git, before the rollback): {', '.join(self.files_changed) or 'none'}")
        if self.files_named:
            out.append(f"- Files its calls named but git shows unchanged: {', '.join(self.files_named)}")
        if self.log:
            out.append(f"- Its log: {self.log}")
        return out


def read(log: Path | str, changed: Iterable[str] = ()) -> Activity:
    """What the stream log at `log` shows the agent did; `changed`: the files git says it changed."""
    path = Path(log) if str(log) else None
    calls: list[str] = []
    named: list[str] = []
    turns = steps = 0
    result_turns: int | None = None
    for line in _lines(path):
        kind = line.get("type")
        if kind == "step":  # the replay agent: one line per step
            steps += 1
            call, wrote = _step(line)
        elif kind == "assistant":  # Claude Code: an assistant message is a turn
            turns += 1
            call, wrote = None, None
            for call_, wrote_ in _tool_uses(line):
                calls.append(call_)
                named += [wrote_] if wrote_ else []
        elif kind == "result" and isinstance(line.get("num_turns"), int):
            result_turns = line["num_turns"]
            continue
        else:
            continue
        if call:
            calls.append(call)
        if wrote:
            named.append(wrote)
    files = list(dict.fromkeys(short(p, 200) for p in changed if p))[:MAX_FILES]  # (a name holds no line break)
    root = _root(path)
    named = [n for n in dict.fromkeys(_relative(n, root) for n in named) if n not in files][:MAX_FILES]
    total = result_turns if result_turns is not None else max(turns, steps)
    return Activity(turns=total, tool_calls=calls[-MAX_CALLS:], tool_calls_total=len(calls), files_changed=files,
                    files_named=named, log=str(path) if path else "")  # fmt: skip


def _lines(path: Path | None) -> Iterator[dict[str, Any]]:
    if path is None or not path.is_file() or path.is_symlink():
        return
    try:
        with path.open("rb") as handle:
            size = handle.seek(0, 2)
            handle.seek(max(0, size - MAX_LOG_BYTES))
            if size > MAX_LOG_BYTES:
                handle.readline()  # a partial line
            for raw in handle:
                try:
                    item = json.loads(raw)
                except (json.JSONDecodeError, UnicodeDecodeError):
                    continue
                if isinstance(item, dict):
                    yield item
    except OSError:
        return


def _step(line: dict[str, Any]) -> tuple[str | None, str | None]:
    action = line.get("action")
    failed = " (failed)" if line.get("ok") is False else ""
    if action == "write":
        path = str(line.get("path") or "")
        return short(f"write {path}{failed}"), path or None
    if action == "call":
        return short(f"{line.get('tool')}{failed}"), None
    if action == "run":
        return short(f"run `{' '.join(map(str, line.get('argv') or []))}`{failed}"), None
    if line.get("ok") is False:  # a step that failed before it said what it was
        return short(f"a step failed: {line.get('error') or ''}"), None
    return None, None


def _tool_uses(line: dict[str, Any]) -> Iterator[tuple[str, str | None]]:
    message = line.get("message")
    content = message.get("content") if isinstance(message, dict) else None
    for block in content if isinstance(content, list) else []:
        if not isinstance(block, dict) or block.get("type") != "tool_use":
            continue
        name = str(block.get("name") or "a tool")
        data = block.get("input")
        wrote = None
        if name in _WRITES and isinstance(data, dict):
            found = data.get("file_path") or data.get("notebook_path")
            wrote = str(found) if found else None
        yield short(call_text(name, data)), wrote


def _root(log: Path | None) -> str:
    """The worktree the run worked in, as the log's `init` line names it (to show written paths relative)."""
    for line in _lines(log):
        if line.get("type") == "system" and isinstance(line.get("cwd"), str):
            return str(line["cwd"]).rstrip("/") + "/"
        break
    return ""


def _relative(path: str, root: str) -> str:
    return short(path.removeprefix(root) if root else path, 200)
