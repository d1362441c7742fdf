"""Core messages said in the shell: the MCP tools they name become the commands a person types.

The core words its messages for whoever calls it through MCP (an agent, whose tools are `list_tasks` and
`run_quality_gate`). A person in the shell has no such tools: `overnight plan list` shows the ids. So the CLI
passes every core message it prints through `for_shell`, at its edge, and the core keeps one wording.
"""

from __future__ import annotations

import re

# each MCP tool a core message may name -> what a person runs instead (scheduler/cli.py and its command groups)
SHELL = {
    "list_tasks": "overnight plan list",
    "get_task": "overnight plan show TASK",
    "next_task": "overnight plan next",
    "validate_task": "overnight plan validate",
    "recent_sessions": "overnight memory sessions",
    "get_session": "overnight memory show SESSION",
    "search_memory": "overnight memory search",
    "get_entries": "overnight memory show ENTRY",
    "log_event": "overnight memory add",
    "run_quality_gate": "overnight check --gate",
    "check_changes": "overnight check",
    "validate_changes": "overnight check",
    "health_report": "overnight health",
    "commit": "git commit",
}
_TOOL = re.compile(r"`(?:mcp__\w+?__)?(" + "|".join(sorted(SHELL, key=len, reverse=True)) + r")`")


def for_shell(text: str) -> str:
    """`text` with every tool it names in backticks (`list_tasks`, `mcp__project__list_tasks`) as the command."""
    return _TOOL.sub(lambda m: f"`{SHELL[m.group(1)]}`", text)
