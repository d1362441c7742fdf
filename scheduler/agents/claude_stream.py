"""Claude Code's stream-json read into the common result (the replay agent writes the same format).

The last `result` line says how the run ended (turns, tokens, cost, permission denials, is-error); the
`system/init` line names the MCP servers and their status; a `tool_use` followed by an `is_error` `tool_result`
is a refused call; a replay step with `ok: false` is one too. The scheduler trusts none of it: it verifies the work.
Read back after a run: its steps (`steps`: each assistant message a turn, its `tool_use` blocks the calls; a replay
agent's `step` lines) and every cost its `result` lines report (`costs`).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from . import AgentResult, Outcome, _call, _first, call_text, short, token_count
from .claude_stops import classify
from .steps import Steps
from .steps import lines as log_lines

_WRITES = {"Write", "Edit", "MultiEdit", "NotebookEdit"}  # Claude Code's tools that write a file


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
    result.tokens_out = token_count(usage.get("output_tokens"))
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
    found = [p for p in map(token_count, parts) if p is not None]
    return sum(found) if found else None


def _denial(denial: Mapping[str, Any]) -> str:
    return _call(str(denial.get("tool_name")), denial.get("tool_input"))


def _text(content: Any) -> str:
    if isinstance(content, list):
        return "\n".join(str(c.get("text", "")) for c in content if isinstance(c, dict))
    return str(content or "")


def steps(log: Path | str) -> Steps:
    """What a Claude Code (or replay agent) log says the run did: an assistant message is a turn and its
    `tool_use` blocks its calls; a replay `step` line is a turn and a call; the `result` line's `num_turns`, when
    there is one, is the count."""
    found = Steps()
    turns = replayed = 0
    for line in log_lines(log):
        kind = line.get("type")
        if kind == "step":  # the replay agent: one line per step
            replayed += 1
            call, wrote = _step(line)
            found.calls += [call] if call else []
            found.written += [wrote] if wrote else []
        elif kind == "assistant":  # Claude Code: an assistant message is a turn
            turns += 1
            for call, wrote_ in _tool_uses(line):
                found.calls.append(call)
                found.written += [wrote_] if wrote_ else []
        elif kind == "result" and isinstance(line.get("num_turns"), int):
            found.turns = line["num_turns"]
    if found.turns is None:
        found.turns = max(turns, replayed)
    found.root = _root(log)
    return found


def costs(log: Path | str) -> list[float]:
    """The `total_cost_usd` of every top-level `result` line of the log (what a tool printed sits inside a message
    and is not one), in order."""
    found: list[float] = []
    try:
        with Path(log).open(encoding="utf-8", errors="replace") as handle:
            for raw in handle:
                if '"result"' not in raw:
                    continue
                try:
                    data = json.loads(raw)
                except ValueError:
                    continue
                value = data.get("total_cost_usd") if isinstance(data, dict) and data.get("type") == "result" else None
                if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
                    found.append(float(value))
    except OSError:
        return []
    return found


def _step(line: dict[str, Any]) -> tuple[str | None, str | None]:
    action = line.get("action")
    failed = " (failed)" if line.get("ok") is False else ""
    if action == "write":
        path = str(line.get("path") or "")
        return short(f"write {path}{failed}"), path or None
    if action == "call":
        return short(f"{line.get('tool')}{failed}"), None
    if action == "run":
        return short(f"run `{' '.join(map(str, line.get('argv') or []))}`{failed}"), None
    if line.get("ok") is False:  # a step that failed before it said what it was
        return short(f"a step failed: {line.get('error') or ''}"), None
    return None, None


def _tool_uses(line: dict[str, Any]) -> Iterator[tuple[str, str | None]]:
    message = line.get("message")
    content = message.get("content") if isinstance(message, dict) else None
    for block in content if isinstance(content, list) else []:
        if not isinstance(block, dict) or block.get("type") != "tool_use":
            continue
        name = str(block.get("name") or "a tool")
        data = block.get("input")
        wrote = None
        if name in _WRITES and isinstance(data, dict):
            written = data.get("file_path") or data.get("notebook_path")
            wrote = str(written) if written else None
        yield short(call_text(name, data)), wrote


def _root(log: Path | str) -> str:
    """The worktree the run worked in, as the log's `init` line names it (to show written paths relative)."""
    for line in log_lines(log):
        if line.get("type") == "system" and isinstance(line.get("cwd"), str):
            return str(line["cwd"]).rstrip("/") + "/"
        break
    return ""
