"""What an agent did before it was stopped (timed out, stopped, or its session died): its turns, its tool calls
and the files it wrote, read back from its stream log (`runs/<session>/<task>-<attempt>/agent.jsonl`) by the
adapter of the agent that wrote it (`Adapter.steps`), and from the worktree itself.

The log is the agent's own account and proves nothing: it is shown to the person, never trusted. The files
changed come from git (the worktree against the task's checkpoint, before the rollback): that part is true.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from pydantic import BaseModel, Field

from .agents import registry, short
from .agents.steps import Steps

MAX_CALLS = 40  # the last ones are kept: what it was doing when it was stopped
MAX_FILES = 50


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


def read(log: Path | str, changed: Iterable[str] = (), agent: str = "", root: str = "") -> Activity:
    """What the stream log at `log` shows the agent did, read by the adapter of `agent` (the one that wrote it;
    Claude Code's for a record that does not say); `changed`: the files git says it changed; `root`: the worktree,
    to show the files its calls named relative when its log does not name it."""
    path = Path(log) if str(log) else None
    steps = registry.log_reader(agent).steps(path) if path is not None else Steps()
    calls, named = steps.calls, steps.written
    files = list(dict.fromkeys(short(p, 200) for p in changed if p))[:MAX_FILES]  # (a name holds no line break)
    root = steps.root or (root.rstrip("/") + "/" if root else "")
    named = [n for n in dict.fromkeys(_relative(n, root) for n in named) if n not in files][:MAX_FILES]
    return Activity(turns=steps.turns or 0, tool_calls=calls[-MAX_CALLS:], tool_calls_total=len(calls),
                    files_changed=files, files_named=named, log=str(path) if path else "")  # fmt: skip


def _relative(path: str, root: str) -> str:
    return short(path.removeprefix(root) if root else path, 200)
