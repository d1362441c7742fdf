"""The agents the scheduler can run, by name: one module per adapter, each with an `ADAPTER` entry
(`scheduler.agents.adapter.Adapter`). `overnight run --agent`, `[scheduler] agent`, the prompt's tool names,
the check of `[agents.<name>]` and `overnight doctor` all take the list from here.

Adding an agent: write `scheduler/agents/<name>.py` (a class implementing `scheduler.agents.Agent`, its settings
model subclassing `AgentSettings`, and `ADAPTER = Adapter(...)`, with `steps` and `costs` when its log can be read
back), then add one line to `_MODULES` below.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ValidationError

from mcp_servers.core.config import Scheduler, Settings
from mcp_servers.core.errors import ConfigError, UsageError

from .adapter import Adapter, Built, mcp_tool

if TYPE_CHECKING:
    from . import Agent

# name -> the module whose `ADAPTER` it is; imported only when that agent is asked for (the CLI starts fast)
_MODULES: dict[str, str] = {
    "claude": "scheduler.agents.claude",
    "replay": "scheduler.agents.replay",
    "codex": "scheduler.agents.codex",
    "gemini": "scheduler.agents.gemini",
    "command": "scheduler.agents.command",
}


def names() -> list[str]:
    """The registered agents' names, in the registry's order."""
    return list(_MODULES)


def get(name: str) -> Adapter:
    """The adapter named `name`; a UsageError listing the registered ones when there is none."""
    module = _MODULES.get(name)
    if module is None:
        raise UsageError(f"unknown agent {name!r}: the registered agents are {', '.join(names())} "
                         "(set `agent` under [scheduler] in overnight.toml, or pass `--agent`)")  # fmt: skip
    adapter = importlib.import_module(module).ADAPTER
    if not isinstance(adapter, Adapter) or adapter.name != name:
        raise RuntimeError(f"{module}.ADAPTER is not the Adapter of {name!r}")
    return adapter


def settings_for(name: str, scheduler: Scheduler, tables: Mapping[str, Mapping[str, Any]] | None = None
                 ) -> BaseModel:  # fmt: skip
    """Agent `name`'s settings: its `[agents.<name>]` table over the `[scheduler]` keys it defaults from,
    validated by its adapter's model; a ConfigError saying which key is wrong and why."""
    adapter = get(name)
    model = adapter.settings
    legacy = {k: v for k, v in adapter.defaults(scheduler).items() if k in model.model_fields}
    table = dict((tables or {}).get(name) or {})
    try:
        return model.model_validate({**legacy, **table})
    except ValidationError as e:
        raise ConfigError(_describe(name, e, model)) from e


def _describe(name: str, error: ValidationError, model: type[BaseModel]) -> str:
    problems = []
    for item in error.errors():
        key = ".".join(str(p) for p in item["loc"]) or "(the table)"
        if item["type"] == "extra_forbidden":
            what = f"unknown key; [agents.{name}] takes {', '.join(model.model_fields)}"
        else:
            what = f"{item['msg']} (got {item.get('input')!r})"
        problems.append(f"[agents.{name}] key `{key}`: {what}")
    return "invalid agent settings in overnight.toml, nothing was run:\n  " + "\n  ".join(problems)


def configured(settings: Settings) -> list[str]:
    """The agents this repository's settings name: `[scheduler] agent`, any fallback chain, each `[agents.*]`."""
    chain = getattr(settings.scheduler, "agents", None) or []  # issue 13's fallback chains, when there are
    found = [settings.scheduler.agent, *(str(a) for a in chain), *settings.agents]
    return list(dict.fromkeys(found))


def problems(settings: Settings) -> list[str]:
    """What is wrong with the agents the settings name (unknown ones, invalid `[agents.<name>]`); empty if none."""
    found = []
    for name in configured(settings):
        try:
            settings_for(name, settings.scheduler, settings.agents)
        except (UsageError, ConfigError) as e:
            found.append(str(e))
    return found


def make(
    name: str,
    scheduler: Scheduler,
    root: Path,
    script: Path | None = None,
    tables: Mapping[str, Mapping[str, Any]] | None = None,
    environ: Mapping[str, str] | None = None,
) -> Agent:
    """Agent `name`, built by its adapter from its settings (`tables`: the `[agents]` tables of overnight.toml).
    Every table is checked first: a misspelt `[agents.<name>]` would otherwise be settings silently not applied."""
    for other in tables or {}:
        settings_for(other, scheduler, tables)
    adapter = get(name)
    return adapter.build(settings_for(name, scheduler, tables), Built(scheduler, root, script, environ))


def tool_names(agent: str | Agent) -> Callable[[str, str], str]:
    """How `agent` (an agent, or its name) names the servers' tools: `tool("quality", "commit")`. An agent's own
    `tool` method wins (a chain of agents says its current one's); else its adapter's; an agent the registry does
    not know (a test's own, say) gets Claude Code's spelling."""
    own = getattr(agent, "tool", None)
    if not isinstance(agent, str) and callable(own):
        return own  # type: ignore[no-any-return]
    name = agent if isinstance(agent, str) else agent.name
    return get(name).tool if name in _MODULES else mcp_tool


def log_reader(agent: str | None) -> Adapter:
    """The adapter that reads the log `agent` wrote (its steps, its costs): Claude Code's for a record that names
    no agent (written before agents were recorded) or one the registry does not know (a test's own)."""
    return get(agent) if agent and agent in _MODULES else get("claude")


def timeout_min(agent: Agent, scheduler: Scheduler) -> float:
    """The minutes `agent` gets per task: its `[agents.<name>] timeout_min`, else `[scheduler] task_timeout_min`."""
    minutes = getattr(agent, "timeout_min", None)
    return float(minutes) if isinstance(minutes, int | float) and minutes > 0 else scheduler.task_timeout_min
