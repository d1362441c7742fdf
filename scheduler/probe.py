"""Start each MCP server as an agent would and ask for `initialize` and `tools/list` through the SDK's client.

`overnight doctor` shows the answers; `overnight run` refuses to start a session when a server does not answer.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import anyio

SERVERS = ("quality", "project", "memory")
TIMEOUT_S = 20.0


@dataclass(frozen=True)
class Probe:
    tools: int = 0
    problem: str | None = None


def probe_all(
    root: Path, environ: Mapping[str, str] | None = None, timeout_s: float = TIMEOUT_S
) -> dict[str, Probe]:
    """Server name -> how many tools it listed, or what went wrong. The three start side by side."""
    env = {k: v for k, v in (os.environ if environ is None else environ).items() if k.startswith("OVERNIGHT_")}
    found: dict[str, Probe] = {}

    async def all_of() -> None:
        async with anyio.create_task_group() as group:
            for name in SERVERS:
                group.start_soon(one, name)

    async def one(name: str) -> None:
        found[name] = await probe(name, root, env, timeout_s)

    anyio.run(all_of)
    return {name: found.get(name, Probe(problem="not probed")) for name in SERVERS}


async def probe(name: str, root: Path, env: Mapping[str, str], timeout_s: float = TIMEOUT_S) -> Probe:
    from mcp import Client, StdioServerParameters

    argv = ["-I", "-m", f"mcp_servers.{name}", "--repo", str(root)]  # -I: never the repository's own modules
    params = StdioServerParameters(command=sys.executable, args=argv, cwd=str(root), env={**_base_env(), **env})
    try:
        with anyio.fail_after(timeout_s):
            async with Client(params) as client:
                tools = (await client.list_tools()).tools
    except TimeoutError:
        return Probe(problem=f"no answer within {timeout_s:g}s")
    except Exception as e:  # any failure to start or answer is the problem itself
        return Probe(problem=f"{type(e).__name__}: {e}")
    return Probe(tools=len(tools), problem=None if tools else "it lists no tools")


def _base_env() -> dict[str, str]:
    """What a server needs from our environment to start (the SDK passes only a safe default set otherwise)."""
    keep = ("PATH", "HOME", "LANG", "LC_ALL", "PYTHONPATH", "VIRTUAL_ENV", "TMPDIR")
    return {k: os.environ[k] for k in keep if k in os.environ}
