"""Round trips through the MCP TypeScript SDK's client (bench/ts_client.mjs), for benchmarks that also measure
through the Python SDK's client: the two validate structured answers very differently (jsonschema walked per
answer, or ajv compiled once), and Claude Code's client is the TypeScript one."""

from __future__ import annotations

import json
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from mcp.client.stdio import StdioServerParameters

HERE = Path(__file__).resolve().parent
NODE_MODULES = HERE.parent / "tests" / "e2e" / "node" / "node_modules"  # installed by scripts/test (npm ci)


def ts_round_trips(
    params: StdioServerParameters, calls: list[tuple[str, str, dict[str, Any]]], rounds: int, warmup: int
) -> dict[str, Any]:
    """{"times": {label: [ms...]}, "answers": {label: structured answer}, "errors": n}; calls interleaved."""
    if not (NODE_MODULES / "@modelcontextprotocol" / "client").is_dir():
        raise SystemExit(f"FAIL: the TypeScript SDK client is not installed under {NODE_MODULES}: run scripts/test")
    spec = {"command": params.command, "args": list(params.args), "cwd": str(params.cwd), "warmup": warmup,
            "rounds": rounds, "calls": [list(c) for c in calls]}  # fmt: skip
    with tempfile.NamedTemporaryFile("w", suffix=".json") as f:
        json.dump(spec, f)
        f.flush()
        done = subprocess.run(["node", str(HERE / "ts_client.mjs"), str(NODE_MODULES), f.name],
                              capture_output=True, text=True, timeout=3600, check=False)  # fmt: skip
    if done.returncode != 0:
        raise SystemExit(f"FAIL: the TypeScript client failed ({done.returncode}): {done.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(done.stdout)
    return result
