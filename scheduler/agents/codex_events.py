"""Codex CLI's `codex exec --json` stream read into the common result, the live view's events and the
infrastructure stops (issue 13).

The stream (Codex 0.171.0, measured against a scripted Responses API): `thread.started`, `turn.started`, then
`item.started` / `item.completed` for each `command_execution` (`command`, `aggregated_output`, `exit_code`,
`status`), `mcp_tool_call` (`server`, `tool`, `arguments`, `result`, `error`, `status`) and `agent_message`
(`text`), and `turn.completed` (`usage`: input, cached input and output tokens, summed over the turn's model
requests) or `turn.failed` (`error.message`). Top-level `error` lines say what codex retries ("Reconnecting...").
Codex reports no cost and no count of model requests: `turns` here counts the model's actions (tool calls,
messages), which is at least the number of requests that made them.

A call a PreToolUse hook blocked gets no JSONL item at all; codex says so on stderr only (`ERROR
codex_core::tools::router: error=Command blocked by PreToolUse hook: <reason>. Command: <command>`), so the
refusals are read from there too. Nothing here is trusted: the scheduler verifies the work itself. Read back
after a run (`steps`): its commands, MCP tool calls and file changes, for the report and a post-mortem.

Infrastructure stops come only from codex's own top-level lines (`turn.failed`, `error`), never from what a
command or a tool printed: that sits inside an item's `aggregated_output` or `result` and is never looked at.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from . import AgentEvent, AgentResult, Outcome, call_text, gate_verdict, short, token_count
from .steps import Steps
from .steps import lines as log_lines
from .stops import InfraStop, Kind

SHELL = "Bash"  # how a command shows in refusals and the live view (codex's hooks call it so too)
_BLOCKED = re.compile(
    r"error=(?P<what>Command|Tool call) blocked by PreToolUse hook: (?P<reason>.*?)\. "
    r"(?:Command|Tool): (?P<call>.*)$"
)
_STATUS = re.compile(r"\blast status: (\d{3})\b|\bstatus[: ]+(\d{3})\b", re.I)
# codex 0.171.0 words a usage limit's reset as the local clock time ("... or try again at 7:06 PM.")
_RESETS = re.compile(r"try again at (\d{1,2}):(\d{2})\s*([AP]M)\.?$", re.I)
WAITING_FOR_NETWORK = "waiting for network"


def tool_name(item: Mapping[str, Any]) -> str:
    """An item's call as the model named it: `Bash` for a command, `mcp__<server>__<tool>` for an MCP tool."""
    if item.get("type") == "mcp_tool_call":
        return f"mcp__{item.get('server')}__{item.get('tool')}"
    return SHELL


def _call(item: Mapping[str, Any]) -> str:
    if item.get("type") == "command_execution":
        return call_text(SHELL, {"command": _unwrap(str(item.get("command") or ""))})
    return call_text(tool_name(item), item.get("arguments"))


def _unwrap(command: str) -> str:
    """`/bin/bash -lc 'CMD'` (how codex reports a command) as CMD."""
    found = re.fullmatch(r"\S*/?(?:ba)?sh -l?c '(.*)'", command, re.S)
    if found:
        return found.group(1).replace("'\\''", "'")
    try:  # quoting the simple form cannot read (`'"'EOF'"'` in a here-document)
        parts = shlex.split(command)
    except ValueError:
        return command
    shell = len(parts) == 3 and re.fullmatch(r"\S*/?(?:ba)?sh", parts[0]) and parts[1] in {"-c", "-lc"}
    return parts[2] if shell else command


def _result_text(item: Mapping[str, Any]) -> str:
    result = item.get("result")
    content = result.get("content") if isinstance(result, Mapping) else None
    text = "\n".join(str(c.get("text", "")) for c in content if isinstance(c, Mapping)) if isinstance(content, list) \
        else ""  # fmt: skip
    error = item.get("error")
    if isinstance(error, Mapping):
        text = "\n".join(p for p in (str(error.get("message") or ""), text) if p)
    elif error:
        text = "\n".join(p for p in (str(error), text) if p)
    return text


def failed(item: Mapping[str, Any]) -> str | None:
    """The error text of a completed item that failed (a command's output, a tool's error), else None."""
    kind = item.get("type")
    if kind == "command_execution":
        code = item.get("exit_code")
        if item.get("status") == "failed" or (isinstance(code, int) and code != 0):
            return str(item.get("aggregated_output") or f"exit code {code}")
        return None
    if kind == "mcp_tool_call":
        result = item.get("result")
        is_error = isinstance(result, Mapping) and result.get("isError", result.get("is_error")) is True
        if item.get("status") == "failed" or item.get("error") or is_error:
            return _result_text(item) or "(no reason given)"
    return None


def _items(lines: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    found = []
    for line in lines:
        item = line.get("item")
        if line.get("type") == "item.completed" and isinstance(item, Mapping):
            found.append(item)
    return found


def blocked_calls(stderr: str) -> list[tuple[str, str]]:
    """(the call, codex's words) for each call a PreToolUse hook blocked, from codex's own stderr log."""
    found = []
    for line in stderr.splitlines():
        match = _BLOCKED.search(line)
        if match:
            call = call_text(SHELL, {"command": match["call"]}) if match["what"] == "Command" else match["call"]
            found.append((call, f"blocked by the guard: {match['reason']}"))
    return found


def failed_calls(lines: Sequence[Mapping[str, Any]], stderr: str = "") -> list[tuple[str, str]]:
    """(the call, its whole error text) for every call that failed or that the guard blocked."""
    found = [(_call(item), text) for item in _items(lines) if (text := failed(item)) is not None]
    return found + blocked_calls(stderr)


def count_turns(lines: Sequence[Mapping[str, Any]], blocked: int = 0) -> int:
    """The model's actions: each tool call and each message (codex does not count its requests)."""
    kinds = {"command_execution", "mcp_tool_call", "agent_message", "file_change", "web_search"}
    return sum(1 for item in _items(lines) if item.get("type") in kinds) + blocked


def result_from(agent: str, outcome: Outcome, log: Path, stderr: str = "", stalled: bool = False) -> AgentResult:
    """The common result of one `codex exec --json` run: how it ended, tokens, refusals, its last words, any
    infrastructure stop."""
    lines = [line for line in outcome.lines if isinstance(line, Mapping)]
    failures = failed_calls(lines, stderr)
    blocked = len(blocked_calls(stderr))
    servers = {str(i.get("server")): "connected" for i in _items(lines)
               if i.get("type") == "mcp_tool_call" and i.get("status") == "completed"}  # fmt: skip
    result = AgentResult(agent=agent, exit_code=outcome.exit_code, timed_out=outcome.timed_out,
                         stopped=outcome.stopped, duration_s=round(outcome.duration_s, 2), log=str(log),
                         servers=servers, failures=failures[:100],
                         refused=list(dict.fromkeys(f"{c}: {short(t, 300)}" for c, t in failures))[:50])  # fmt: skip
    messages = [str(i.get("text") or "") for i in _items(lines) if i.get("type") == "agent_message"]
    result.final = messages[-1][:2000] if messages else ""
    result.turns = count_turns(lines, blocked)
    usage: list[Mapping[str, Any]] = [u for line in lines if line.get("type") == "turn.completed"
                                      and isinstance(u := line.get("usage"), Mapping)]  # fmt: skip
    if usage:
        result.tokens_in = sum(int(u.get("input_tokens") or 0) for u in usage)
        result.tokens_out = sum(int(u.get("output_tokens") or 0) for u in usage)
    end = next((line for line in reversed(lines) if line.get("type") in {"turn.completed", "turn.failed"}), None)
    if end is None:
        result.terminal_reason = "timed out" if outcome.timed_out else "stopped" if outcome.stopped else "no result"
    else:
        result.terminal_reason = "completed" if end.get("type") == "turn.completed" else "turn failed"
    result.is_error = end is None or end.get("type") != "turn.completed" or outcome.exit_code != 0 \
        or outcome.timed_out  # fmt: skip
    if not (outcome.timed_out or outcome.stopped):
        result.infra = classify(lines, outcome.exit_code, stalled)
    return result


def classify(lines: Sequence[Mapping[str, Any]], exit_code: int | None = 1, stalled: bool = False
             ) -> InfraStop | None:  # fmt: skip
    """The infrastructure stop a codex run ended on, or None: read from the `turn.failed` codex ends on (with the
    `error` line it writes just before it), or, when the adapter ended a run left waiting for the network
    (`stalled`), a network stop.

    A command the agent runs can write lines to codex's own stdout (through /proc/<pid>/fd/1: same user, same
    PID namespace), so a `turn.failed` counts only where codex itself would have written it: as the stream's very
    last line, right after its `error` twin, with codex's exit code 1. A forged one mid-run is followed by the
    real end of the turn; one followed by killing codex leaves another exit code."""
    top = [line for line in lines if isinstance(line, Mapping)]
    errors = [str(line.get("message") or "") for line in top if line.get("type") == "error"]
    retries = sum(1 for e in errors if e.startswith("Reconnecting"))
    if stalled:
        return InfraStop(kind="network", detail=short(errors[-1] if errors else WAITING_FOR_NETWORK, 200),
                         retries=retries)  # fmt: skip
    if len(top) < 2 or top[-1].get("type") != "turn.failed" or exit_code != 1:
        return None  # it succeeded, recovered (codex retried), was ended, or ended for another reason
    error = top[-1].get("error")
    message = str(error.get("message") or "") if isinstance(error, Mapping) else str(error or "")
    if top[-2].get("type") != "error" or str(top[-2].get("message") or "") != message:
        return None
    kind, status = _kind(message)
    if kind is None:
        return None  # a 400, 401, a missing key...: not something waiting fixes
    resets_at = resets(message) if kind == "usage-limit" else None
    return InfraStop(kind=kind, status=status, resets_at=resets_at, detail=short(message, 200), retries=retries)


def resets(message: str, now: datetime | None = None) -> float | None:
    """When a usage limit codex reported resets (epoch seconds): its "try again at 7:06 PM", the next such
    local time; None when it does not say (then the scheduler probes)."""
    found = _RESETS.search(message.strip())
    if found is None:
        return None
    hour, minute = int(found.group(1)) % 12 + (12 if found.group(3).upper() == "PM" else 0), int(found.group(2))
    if minute > 59:
        return None
    now = now or datetime.now().astimezone()
    at = now.replace(hour=hour, minute=minute, second=0, microsecond=0)
    if at < now - timedelta(minutes=1):
        at += timedelta(days=1)
    return at.timestamp()


def _kind(message: str) -> tuple[Kind | None, int | None]:
    lower = message.lower()
    found = _STATUS.search(message)
    status = int(found.group(1) or found.group(2)) if found else None
    if "usage limit" in lower or status == 429 or "too many requests" in lower or "rate limit" in lower \
            or "quota" in lower:  # fmt: skip
        return "usage-limit", status or 429
    if status in {503, 529} or "overloaded" in lower or "at capacity" in lower:
        return "overloaded", status
    if (status is not None and 500 <= status <= 599) or "high demand" in lower:  # codex's words for a 500
        return "server-error", status
    if status is None and any(w in lower for w in ("stream disconnected", "error sending request", "connection",
                                                   "timed out", WAITING_FOR_NETWORK, "network")):  # fmt: skip
        return "network", None
    return None, status


class CodexEvents:
    """`codex exec --json` lines as the live view's events: each command or MCP call a `tool` event (a failed
    one a `refused`), the quality gate's answers its verdicts, each message `said`, the turn's end `usage`."""

    def __init__(self) -> None:
        self.turns = 0
        self.tokens_in: int | None = None
        self.tokens_out: int | None = None

    def __call__(self, line: dict[str, Any]) -> list[AgentEvent]:
        kind = line.get("type")
        if kind == "turn.completed":
            usage = line.get("usage")
            if isinstance(usage, Mapping):  # each turn's own (its input_tokens count the cached ones)
                self.tokens_in = (self.tokens_in or 0) + (token_count(usage.get("input_tokens")) or 0)
                self.tokens_out = (self.tokens_out or 0) + (token_count(usage.get("output_tokens")) or 0)
            return [AgentEvent("usage", turns=self.turns, tokens_in=self.tokens_in, tokens_out=self.tokens_out)]
        item = line.get("item")
        if not isinstance(item, Mapping) or kind not in {"item.started", "item.completed"}:
            return []
        itype = item.get("type")
        if itype == "agent_message" and kind == "item.completed":
            self.turns += 1
            return [AgentEvent("said", short(str(item.get("text") or ""), 300), turns=self.turns)]
        return self._call(kind, item) if itype in {"command_execution", "mcp_tool_call"} else []

    def _call(self, kind: str, item: Mapping[str, Any]) -> list[AgentEvent]:
        if kind == "item.started":
            self.turns += 1
            return [AgentEvent("usage", turns=self.turns), AgentEvent("tool", _call(item), turns=self.turns)]
        if tool_name(item).endswith("run_quality_gate") and (verdict := gate_verdict(_result_text(item))) is not None:
            return [AgentEvent("gate", "gate passed" if verdict else "gate failed", passed=verdict)]
        text = failed(item)
        return [] if text is None else [AgentEvent("refused", short(f"{_call(item)}: {text}"), turns=self.turns)]


def steps(log: Path | str) -> Steps:
    """What a `codex exec --json` log says the run did: each command, MCP tool call and file change as a call (a
    failed one marked, one still running when the log ends too: what it was doing when it was stopped), the files
    its changes named, and its turns counted as `count_turns` counts them. The calls the guard blocked are in
    codex's stderr log only (`agent.stderr` beside it), with no place among the items: they come last."""
    items: dict[str, Mapping[str, Any]] = {}  # id -> its last state, in the order the items started
    read = list(log_lines(log))
    for line in read:
        item = line.get("item")
        if line.get("type") in {"item.started", "item.completed"} and isinstance(item, Mapping):
            items[str(item.get("id") or len(items))] = item
    blocked = blocked_calls(_stderr(Path(log).with_suffix(".stderr"))) if str(log) else []
    found = Steps(turns=count_turns(read, len(blocked)))
    for item in items.values():
        kind = item.get("type")
        if kind in {"command_execution", "mcp_tool_call"}:
            call = _call(item)
        elif kind == "file_change":
            changes = [c for c in item.get("changes") or [] if isinstance(c, Mapping)]
            found.written += [str(c["path"]) for c in changes if c.get("path")]
            call = "patch " + ", ".join(f"{c.get('kind') or 'update'} {c.get('path')}" for c in changes)
        else:
            continue
        failed_ = item.get("status") == "failed" or failed(item) is not None
        running = item.get("status") == "in_progress"
        found.calls.append(short(call + (" (failed)" if failed_ else " (running)" if running else "")))
    found.calls += [short(f"{call} (blocked by the guard)") for call, _ in blocked]
    return found


def _stderr(path: Path, limit: int = 2 * 1024 * 1024) -> str:
    """The end of codex's stderr log ("" when there is none, or it is a link)."""
    try:
        if path.is_symlink() or not path.is_file():
            return ""
        with path.open("rb") as handle:
            handle.seek(max(0, handle.seek(0, 2) - limit))
            return handle.read().decode("utf-8", "replace")
    except OSError:
        return ""
