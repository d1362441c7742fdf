"""What an agent adapter declares to the registry (`scheduler.agents.registry`): its settings, how it is built,
how its tools are named in prompts, and what `overnight doctor` checks for it.

Each adapter module (`claude.py`, `replay.py`, ...) defines one `ADAPTER = Adapter(...)`; the registry lists the
modules. Settings come from `[agents.<name>]` in overnight.toml, validated by the adapter's own model (a subclass
of `AgentSettings`), with defaults from the `[scheduler]` keys that predate per-agent settings (`defaults`), so an
overnight.toml written before them keeps working unchanged.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from mcp_servers.core import proc
from mcp_servers.core.config import Scheduler

from .steps import Steps, no_costs, no_steps

if TYPE_CHECKING:
    from . import Agent


class AgentSettings(BaseModel):
    """`[agents.<name>]`: what every agent takes. An adapter's own model adds its keys (`base_url`, ...)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    command: str = Field(default="", description="its CLI (a name on PATH, or a path; empty: the adapter's own)")
    model: str = Field(default="", description="the model to ask for (empty: the CLI's default)")
    max_turns: Annotated[int, Field(ge=1)] = Field(default=80, description="turns the agent gets per task")
    max_budget_usd: Annotated[float, Field(ge=0)] = Field(default=0.0, description="spend per task, USD (0: no cap)")
    timeout_min: Annotated[float, Field(gt=0)] = Field(default=30.0, description="minutes the agent gets per task")


def common_defaults(scheduler: Scheduler) -> dict[str, Any]:
    """The `[scheduler]` keys every agent takes as its defaults: turns, budget and time per task."""
    return {"max_turns": scheduler.max_turns, "max_budget_usd": scheduler.max_budget_usd,
            "timeout_min": scheduler.task_timeout_min}  # fmt: skip


class AgentCheck(BaseModel):
    """What `overnight doctor` says of one agent: whether its CLI is installed (its version), whether it is
    authenticated (None: it cannot be told offline), and what to do."""

    installed: str | None = Field(description="its CLI's version (or where it is); None: not found")
    authenticated: bool | None = None
    detail: str = ""
    fix: str = ""


@dataclass(frozen=True)
class Built:
    """What an adapter is built from besides its settings: the whole `[scheduler]` section, the repository root,
    a script given on the command line (the replay agent's), the environment."""

    scheduler: Scheduler
    root: Path
    script: Path | None = None
    environ: Mapping[str, str] | None = None


def mcp_tool(server: str, name: str) -> str:
    """`mcp__quality__commit`: how Claude Code (and Codex's hooks) name an MCP server's tool."""
    return f"mcp__{server}__{name}"


@dataclass(frozen=True)
class Adapter:
    """One agent the scheduler can run. `build` makes it from its validated settings; `tool(server, name)` is how
    a prompt names one of the three servers' tools to it; `doctor` checks it offline; `defaults` maps the older
    `[scheduler]` keys onto its settings."""

    name: str
    title: str  # for people: "Claude Code"
    settings: type[BaseModel]  # its `[agents.<name>]` model: best a subclass of AgentSettings (extra keys forbidden)
    build: Callable[[Any, Built], Agent]
    tool: Callable[[str, str], str] = mcp_tool
    doctor: Callable[[Any, Mapping[str, str]], AgentCheck] | None = None
    defaults: Callable[[Scheduler], dict[str, Any]] = common_defaults
    install: str = ""  # how a person installs its CLI, said by doctor when it is missing
    default_command: str = ""  # its CLI's name when `command` is empty
    # how its own log is read back after a run (issue 13): what it did (`scheduler.activity`, for the report and a
    # post-mortem), and every cost the log reports (`scheduler.limits.highest_cost`: the highest is counted)
    steps: Callable[[Path], Steps] = no_steps
    costs: Callable[[Path], list[float]] = no_costs


def executable(command: str, environ: Mapping[str, str]) -> str | None:
    """`command` as a path that can be run: itself when absolute, else where PATH finds it; None when neither."""
    if not command:
        return None
    if os.path.isabs(command):
        return command if os.access(command, os.X_OK) else None
    return shutil.which(command, path=environ.get("PATH"))


def npm_reads(exe: str | None, environ: Mapping[str, str]) -> list[Path]:
    """What a CLI installed with npm must read in its sandbox: its `node_modules` (a native binary may sit in a
    sibling package) and the node install that runs it."""
    found = []
    if exe:
        real = Path(exe).resolve()
        found.append(next((p for p in real.parents if p.name == "node_modules"), real.parent))
    node = shutil.which("node", path=environ.get("PATH"))
    if node:
        found.append(Path(node).resolve().parent.parent)
    return found


def cli_version(command: str, environ: Mapping[str, str], install: str) -> AgentCheck:
    """Whether an agent's CLI is there and answers `--version` (offline), for its doctor check."""
    exe = executable(command, environ)
    if exe is None:
        return AgentCheck(installed=None, detail=f"`{command}` is not found",
                          fix=install or "install it, or set `command` under [agents.<name>]")  # fmt: skip
    done = proc.run([exe, "--version"], env=dict(environ), timeout=60)
    if not done.ok:
        return AgentCheck(installed=None, detail=f"`{exe} --version` failed: {done.describe(tail_lines=3)}",
                          fix="reinstall it, or set `command` under [agents.<name>] to one that works")  # fmt: skip
    return AgentCheck(installed=done.text().strip().splitlines()[0] if done.text().strip() else exe)
