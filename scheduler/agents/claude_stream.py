"""Claude Code's stream-json read into the common result (the replay agent writes the same format).

The last `result` line says how the run ended (turns, tokens, cost, permission denials, is-error); the
`system/init` line names the MCP servers and their status; a `tool_use` followed by an `is_error` `tool_result`
is a refused call; a replay step with `ok: false` is one too. The scheduler trusts none of it: it verifies the work.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from . import AgentResult, Outcome, _call, _first
from .stops import classify


def result_from(agent: str, outcome: Outcome, log: Path) -> AgentResult:
    """What the last `result` line says, with the exit code and the wall clock the scheduler saw itself."""
    final = next((line for line in reversed(outcome.lines) if line.get("type") == "result"), None)
    init = next((line for line in outcome.lines if line.get("type") == "system" and line.get("subtype") == "init"), {})
    servers = {str(s.get("name")): str(s.get("status")) for s in init.get("mcp_servers", []) if isinstance(s, dict)}
    result = AgentResult(
        agent=agent,
        exit_code=outcome.exit_code,
        timed_out=outcome.timed_out,
        stopped=outcome.stopped,
        duration_s=round(outcome.duration_s, 2),
        log=str(log),
        servers=servers,
        refused=refusals(outcome.lines),
        failures=failed_calls(outcome.lines)[:100],
    )
    if final is None:
        result.terminal_reason = "timed out" if outcome.timed_out else "stopped" if outcome.stopped else "no result"
        return result
    usage = final.get("usage") or {}
    result.is_error = bool(final.get("is_error", True)) or outcome.exit_code != 0 or outcome.timed_out
    result.terminal_reason = final.get("terminal_reason") or final.get("subtype")
    result.turns = final.get("num_turns")
    result.tokens_in = _tokens(usage, "input")
    result.tokens_out = usage.get("output_tokens")
    result.cost_usd = final.get("total_cost_usd")
    result.final = str(final.get("result") or "")[:2000]
    result.permission_denials = [_denial(d) for d in final.get("permission_denials") or [] if isinstance(d, dict)]
    if not (outcome.timed_out or outcome.stopped):
        result.infra = classify(outcome.lines)
    return result


def refusals(lines: list[dict[str, Any]], limit: int = 50) -> list[str]:
    """Tool calls that came back as errors, and why: from Claude Code's stream (a tool_use, then its is_error
    tool_result: permission rules, the guard hook, our servers' refusals) or the replay agent's steps."""
    return list(dict.fromkeys(f"{call}: {_first(text)}" for call, text in failed_calls(lines)))[:limit]


def failed_calls(lines: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """(the call, its whole error text) for every tool call or step that came back as an error."""
    calls: dict[str, str] = {}
    found: list[tuple[str, str]] = []
    for line in lines:
        if line.get("type") == "step" and line.get("ok") is False:
            what = line.get("tool") or " ".join(map(str, line.get("argv") or [])) or line.get("action")
            found.append((str(what), _text(line.get("error") or line.get("result") or line.get("output"))))
            continue
        message = line.get("message")
        content = message.get("content") if isinstance(message, dict) else None
        for block in content if isinstance(content, list) else []:
            if not isinstance(block, dict):
                continue
            if block.get("type") == "tool_use":
                calls[str(block.get("id"))] = _call(str(block.get("name")), block.get("input"))
            elif block.get("type") == "tool_result" and block.get("is_error"):
                found.append((calls.get(str(block.get("tool_use_id")), "a tool"), _text(block.get("content"))))
    return found


def _tokens(usage: Mapping[str, Any], kind: str) -> int | None:
    parts = [
        usage.get(f"{kind}_tokens"),
        usage.get("cache_read_input_tokens"),
        usage.get("cache_creation_input_tokens"),
    ]
    found = [int(p) for p in parts if isinstance(p, int)]
    return sum(found) if found else None


def _denial(denial: Mapping[str, Any]) -> str:
    return _call(str(denial.get("tool_name")), denial.get("tool_input"))


def _text(content: Any) -> str:
    if isinstance(content, list):
        return "\n".join(str(c.get("text", "")) for c in content if isinstance(c, dict))
    return str(content or "")
