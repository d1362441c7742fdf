"""`overnight doctor`'s lines about agents: one per agent the settings name (`[scheduler] agent`, a fallback
chain, each `[agents.<name>]`), from the agent registry: whether its CLI is installed (its version), whether it is
authenticated as far as can be told offline, its place in the chain, and what to do; an unknown name or invalid
settings is an error; so is an agent's own budget its prices cannot enforce (one from `[scheduler]`: a warning)."""

from __future__ import annotations

from collections.abc import Mapping

from pydantic import BaseModel

from mcp_servers.core.config import Settings
from mcp_servers.core.errors import ConfigError, UsageError

from .agents import budget, registry
from .agents.adapter import Adapter, AgentCheck, cli_version
from .doctor import Finding


def checks(settings: Settings, environ: Mapping[str, str]) -> list[Finding]:
    found = []
    for name in registry.configured(settings):
        try:
            adapter = registry.get(name)
            own = registry.settings_for(name, settings.scheduler, settings.agents)
        except (UsageError, ConfigError) as e:
            found.append(Finding(name=f"agent {name}", status="error", detail=str(e),
                                 fix=f"fix [scheduler] agent or [agents.{name}] in overnight.toml "
                                 f"(registered agents: {', '.join(registry.names())})"))  # fmt: skip
            continue
        found.append(_finding(name, adapter, _check(adapter, own, environ), _role(name, settings)))
        unpriced, warned = budget.unenforced(name, own, settings.scheduler)
        if unpriced or warned:  # (a budget its CLI's tokens cannot be priced for: scheduler.agents.budget)
            what, fix = (unpriced or warned or "").rsplit(": ", 1)
            found.append(Finding(name=f"agent {name} budget", status="error" if unpriced else "warn",
                                 detail=what, fix=fix))  # fmt: skip
    return found


def _role(name: str, settings: Settings) -> str:
    """Where the agent stands: the one sessions use, or its place in the fallback chain, or outside it."""
    chain = list(settings.scheduler.agents)
    if len(chain) > 1:
        if name not in chain:
            return " (configured, not in the chain)"
        at = chain.index(name)
        return " (sessions start with it)" if at == 0 else f" (fallback {at} of the chain)"
    return " (sessions use it)" if name == settings.scheduler.agent else ""


def _check(adapter: Adapter, own: BaseModel, environ: Mapping[str, str]) -> AgentCheck:
    if adapter.doctor is not None:
        return adapter.doctor(own, environ)
    command = str(getattr(own, "command", "") or adapter.default_command or adapter.name)
    return cli_version(command, environ, adapter.install)  # installed or not; its login cannot be told


def _finding(name: str, adapter: Adapter, check: AgentCheck, role: str) -> Finding:
    title = f"{adapter.title}{role}"
    if check.installed is None:
        return Finding(name=f"agent {name}", status="warn", detail=f"{title}: not installed; {check.detail}",
                       fix=check.fix or adapter.install)  # fmt: skip
    if check.authenticated is False:
        return Finding(
            name=f"agent {name}",
            status="warn",
            detail=f"{title}: {check.installed}; not authenticated: {check.detail}",
            fix=check.fix,
        )
    login = "authenticated" if check.authenticated else "whether it is authenticated cannot be told offline"
    extra = f"; {check.detail}" if check.detail else ""
    return Finding(name=f"agent {name}", status="ok", detail=f"{title}: {check.installed}; {login}{extra}",
                   fix=check.fix)  # fmt: skip
