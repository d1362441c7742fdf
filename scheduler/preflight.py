"""Preflight: what must hold before a session starts and anything is spent (the kill switch, the sandbox, the
agent, the three servers), and which tasks the session would take, so an agent that cannot do them (a replay
script without their steps) is refused before any attempt is used. A refused run is logged apart from the
sessions (`mcp_servers.core.refusals`)."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable

from mcp_servers.core import sandbox
from mcp_servers.core.workspace import Workspace

from . import chain
from .agents import Agent
from .control import stop_file
from .offer import offer


def preflight(ws: Workspace, agent: Agent) -> list[str]:
    """Everything that must hold before anything is spent; each problem says what to do."""
    from .probe import probe_all

    problems = []
    if stop_file(ws).exists():
        problems.append("the kill switch is set (`overnight stop` set it): `overnight resume` clears it")
    if ws.settings.scheduler.sandbox != "off":
        why = sandbox.problem(ws.environ)
        if why:
            problems.append(f"no sandbox can be made, so no agent may run: {why}")
    own = agent.problems(ws.environ)
    if len(chain.names(ws.settings.scheduler)) > 1:  # a chain: which of its agents (its fallbacks: `chain.prepare`)
        own = [f"agent {agent.name} (the first of the chain): {p}" for p in own]
    problems += own
    for name, found in probe_all(ws.repo.root, ws.environ).items():
        if found.problem:
            problems.append(f"the `{name}` server does not answer initialize and tools/list: {found.problem} (run "
                            f"`{sys.executable} -m mcp_servers.{name}` to see its errors)")
    return problems


def takes(ws: Workspace, session: str, first: str, limit: int, only: str | None = None,
          clock: Callable[[], float] = time.time) -> list[str]:  # fmt: skip
    """The tasks the session would take, in order, if each failed (the most it can take): the ready ones (or the
    one asked for, `only`), up to `limit`."""
    taken = [first]
    while len(taken) < limit:
        found = offer(ws, session, only=only, exclude=taken, clock=clock)
        if found.task is None:
            break
        taken.append(found.task.id)
    return taken
