"""Core messages said in the shell: the MCP tools they name become the commands a person types.

The core words its messages for whoever calls it through MCP (an agent, whose tools are `list_tasks` and
`run_quality_gate`). A person in the shell has no such tools: `overnight plan list` shows the ids. So the CLI
passes every core message it prints through `for_shell`, at its edge, and the core keeps one wording.
"""

from __future__ import annotations

import functools
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


@functools.cache
def _tool() -> re.Pattern[str]:
    """A tool in backticks, bare (`list_tasks`) or as any registered agent spells it (`mcp__project__list_tasks`
    for Claude Code and Codex, `mcp_project_list_tasks` for Gemini CLI): the spellings come from the registry."""
    from .agents import registry  # (here: the shell's start does not import every adapter)

    tools = "|".join(sorted(SHELL, key=len, reverse=True))
    prefixes = set()
    for name in registry.names():
        spelt = registry.get(name).tool("SERVER", "TOOL")
        before, found, after = spelt.partition("SERVER")
        between, found_tool, end = after.partition("TOOL")
        if not found or not found_tool or end:
            continue  # a spelling that does not end on the tool's own name: nothing to take off
        prefixes.add(re.escape(before) + r"\w+?" + re.escape(between))
    spellings = "|".join(sorted(prefixes, key=len, reverse=True))
    return re.compile(r"`(?:" + spellings + r")?(" + tools + r")`" if spellings else r"`(" + tools + r")`")


def for_shell(text: str) -> str:
    """`text` with every tool it names in backticks (`list_tasks`, `mcp__project__list_tasks`) as the command."""
    if "`" not in text:
        return text  # (most lines: the registry's adapters are not even imported)
    return _tool().sub(lambda m: f"`{SHELL[m.group(1)]}`", text)
