"""Gemini CLI's `BeforeTool` hook: `python -I -m scheduler.agents.gemini_hook` refuses what Claude Code's guard
refuses (`scheduler.guard.judge`), translated from Gemini's tool names.

Gemini CLI 0.61.0 sends the call on stdin (`{"hook_event_name": "BeforeTool", "tool_name": "run_shell_command",
"tool_input": {"command": ...}, "cwd": ...}`) and blocks it when the hook prints `{"decision": "deny", "reason":
...}`: the model then gets "Tool execution blocked: <reason>" (a `tool_result` with `status: "error"`, error type
`policy_violation`). A call this hook cannot read is refused (fail closed); a hook that cannot even start lets the
call through in the CLI, which is why this is a first line only: the scheduler verifies everything afterwards.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping
from typing import Any

from scheduler.guard import judge

# Gemini's tools that run or write, as the guard knows them (Claude Code's names and argument keys)
TOOLS = {"run_shell_command": ("Bash", "command"), "write_file": ("Write", "file_path"),
         "replace": ("Edit", "file_path")}  # fmt: skip


def translate(event: Mapping[str, Any]) -> dict[str, Any]:
    """Gemini's hook input as the guard's: the tool renamed, its input kept under the guard's key."""
    tool = str(event.get("tool_name") or "")
    data = event.get("tool_input")
    if tool not in TOOLS:
        return {**event, "tool_input": data if isinstance(data, dict) else {}}
    name, key = TOOLS[tool]
    if not isinstance(data, dict):
        return {**event, "tool_name": name, "tool_input": data}  # the guard refuses what it cannot read
    found = data.get(key) if key in data else data.get("path") or data.get("absolute_path")
    return {**event, "tool_name": name, "tool_input": {**data, key: found}}


def decide(event: Mapping[str, Any], environ: Mapping[str, str]) -> str | None:
    """Why the call must be refused, or None to let it through."""
    return judge(translate(event), environ)


def main() -> int:
    try:
        event = json.loads(sys.stdin.read() or "{}")
        reason = decide(event if isinstance(event, dict) else {}, os.environ)
    except Exception as e:  # fail closed: a call the hook cannot judge is refused
        reason = f"the guard could not check this call ({type(e).__name__}: {e})"
    if reason is None:
        sys.stdout.write(json.dumps({"decision": "allow"}) + "\n")
        return 0
    sys.stdout.write(json.dumps({"decision": "deny", "reason": f"overnight refused this: {reason}."}) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
