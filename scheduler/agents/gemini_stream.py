"""Gemini CLI's `--output-format stream-json` read into the common result, the live view's events, and the
infrastructure stops (measured with Gemini CLI 0.61.0 against tests/support/fake_gemini.py).

The stream: `init` (session, model), `message` (`role` user or assistant; an assistant's text comes in `delta`
pieces), `tool_use` (`tool_name`, `tool_id`, `parameters`), `tool_result` (`tool_id`, `status` success or error,
`output`, `error: {type, message}`; a hook's refusal is `policy_violation`), `error` (a warning it went on after)
and last `result` (`status`, `error: {type, message}`, `stats` with `input_tokens`, `output_tokens`, `cached`,
`tool_calls`). It reports no cost. A shell command that exits non-zero is still a `success` (its exit code is not in
the stream), so what the sandbox held is looked for in shell output too, for the report only.

Exit codes: 0 done, 1 an error (a network failure among them), 41 authentication, 42 input, 52 configuration,
53 the session's turn limit (`model.maxSessionTurns`), 55 an untrusted folder, 130 cancelled, and for an API error
the HTTP status modulo 256 (429 -> 173, 500 -> 244, 503 -> 247). An infrastructure stop is read from that exit
code, which nothing the agent runs can set, together with the CLI's own last `result` line: never from what a
tool printed. Read back after a run (`steps`): its tool calls and the files it wrote, for the report and a
post-mortem.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from . import _HELD, AgentEvent, AgentResult, Outcome, call_text, gate_verdict
from . import short as one_line
from .steps import Steps
from .steps import lines as log_lines
from .stops import InfraStop, Kind

# exit code -> (the HTTP status it was, the kind of stop)
API_EXITS: dict[int, tuple[int, Kind]] = {429 % 256: (429, "usage-limit"), 500 % 256: (500, "server-error"),
                                          502 % 256: (502, "server-error"), 503 % 256: (503, "overloaded"),
                                          504 % 256: (504, "server-error")}  # fmt: skip
EXITS = {41: "authentication error", 42: "input error", 44: "sandbox error", 52: "configuration error",
         53: "turn limit", 54: "tool error", 55: "untrusted folder", 130: "cancelled"}  # fmt: skip
WRITES = {"write_file", "replace"}  # its tools that write a file (`file_path`)
NETWORK = "fetch failed"  # the CLI's own words when no HTTP answer came ("[API Error: exception TypeError: ...]")


class GeminiEvents:
    """Gemini's stream as events: each model reply a turn, each `tool_use` a call, each error `tool_result` a
    refusal, the quality gate's answers its verdicts, the `result` line the turns."""

    def __init__(self) -> None:
        self.turns = 0
        self.replying = False  # the last line was the model's (a call or its text): the same turn goes on
        self.calls: dict[str, str] = {}  # tool_id -> tool name

    def __call__(self, line: Mapping[str, Any]) -> list[AgentEvent]:
        kind = line.get("type")
        found: list[AgentEvent] = []
        if kind == "tool_use" or (kind == "message" and line.get("role") == "assistant"):
            if not self.replying:
                self.replying = True
                self.turns += 1
                found.append(AgentEvent("usage", turns=self.turns))
            if kind == "tool_use":
                name = str(line.get("tool_name"))
                self.calls[str(line.get("tool_id"))] = name
                found.append(AgentEvent("tool", call_text(name, line.get("parameters")), turns=self.turns))
            return found
        self.replying = False
        if kind == "tool_result":
            name = self.calls.get(str(line.get("tool_id")), "a tool")
            text = _result_text(line)
            if name.endswith("run_quality_gate") and (verdict := gate_verdict(text)) is not None:
                return [AgentEvent("gate", "gate passed" if verdict else "gate failed", passed=verdict)]
            if line.get("status") == "error":
                return [AgentEvent("refused", one_line(f"{name}: {text}"), turns=self.turns)]
        elif kind == "result":
            stats = _dict(line.get("stats"))
            return [AgentEvent("usage", turns=self.turns, tokens_in=_int(stats.get("input_tokens")),
                               tokens_out=_int(stats.get("output_tokens")))]  # fmt: skip
        return []


def read_result(agent: str, outcome: Outcome, log: Path) -> AgentResult:
    """The common result of one run: the exit code and wall clock the scheduler saw, the rest from the stream."""
    lines = outcome.lines
    events = GeminiEvents()
    for line in lines:
        events(line)
    failed = failed_calls(lines)
    result = AgentResult(agent=agent, exit_code=outcome.exit_code, timed_out=outcome.timed_out,
                         stopped=outcome.stopped, duration_s=round(outcome.duration_s, 2), log=str(log),
                         turns=events.turns or None, final=final_text(lines)[:2000],
                         refused=list(dict.fromkeys(f"{call}: {_first(text)}" for call, text in failed))[:50],
                         failures=(failed + held_output(lines))[:100])  # fmt: skip
    final = next((line for line in reversed(lines) if line.get("type") == "result"), None)
    if final is None:
        result.terminal_reason = "timed out" if outcome.timed_out else "stopped" if outcome.stopped else "no result"
        return result
    stats = _dict(final.get("stats"))
    result.tokens_in = _int(stats.get("input_tokens"))
    result.tokens_out = _int(stats.get("output_tokens"))
    result.is_error = final.get("status") != "success" or outcome.exit_code != 0 or outcome.timed_out
    error = _dict(final.get("error"))
    code = outcome.exit_code
    result.terminal_reason = ("success" if not result.is_error else EXITS.get(code or 0)
                              or (f"api error {API_EXITS[code][0]}" if code in API_EXITS else None)
                              or str(error.get("type") or "error"))  # fmt: skip
    if not result.final and error.get("message"):
        result.final = str(error["message"])[:2000]
    if not (outcome.timed_out or outcome.stopped):
        result.infra = classify(lines, code)
    return result


def classify(lines: Sequence[Mapping[str, Any]], exit_code: int | None) -> InfraStop | None:
    """The infrastructure stop a run ended on, or None: from the exit code (an API error's HTTP status mod 256,
    or 1 with the CLI's own "fetch failed") and the last line being the CLI's error `result`."""
    last = lines[-1] if lines else None
    if exit_code in (None, 0) or last is None or last.get("type") != "result" or last.get("status") != "error":
        return None
    error = _dict(last.get("error"))
    message = str(error.get("message") or "")
    detail = one_line(message, 200)
    if exit_code in API_EXITS:
        status, kind = API_EXITS[exit_code]
        return InfraStop(kind=kind, status=status, detail=detail)
    if exit_code == 1 and message.startswith("[API Error:") and NETWORK in message:
        return InfraStop(kind="network", detail=detail)
    return None


def failed_calls(lines: Sequence[Mapping[str, Any]]) -> list[tuple[str, str]]:
    """(the call, its whole error text) for every tool call that came back as an error."""
    calls: dict[str, str] = {}
    found = []
    for line in lines:
        if line.get("type") == "tool_use":
            calls[str(line.get("tool_id"))] = call_text(str(line.get("tool_name")), line.get("parameters"))
        elif line.get("type") == "tool_result" and line.get("status") == "error":
            found.append((calls.get(str(line.get("tool_id")), "a tool"), _result_text(line)))
    return found


def held_output(lines: Sequence[Mapping[str, Any]]) -> list[tuple[str, str]]:
    """Shell calls that 'succeeded' but whose output shows the sandbox holding something (a read-only file
    system, a refused connection): Gemini does not mark a command that exited non-zero. For the report only."""
    calls: dict[str, str] = {}
    found = []
    for line in lines:
        if line.get("type") == "tool_use" and line.get("tool_name") == "run_shell_command":
            calls[str(line.get("tool_id"))] = call_text("run_shell_command", line.get("parameters"))
        elif line.get("type") == "tool_result" and line.get("status") != "error":
            call = calls.get(str(line.get("tool_id")))
            text = str(line.get("output") or "")
            if call and any(mark in text.lower() for mark in _HELD):
                found.append((call, text))
    return found


def final_text(lines: Sequence[Mapping[str, Any]]) -> str:
    """The model's last words: its text after the last tool call."""
    parts: list[str] = []
    for line in lines:
        if line.get("type") in {"tool_use", "tool_result"}:
            parts = []
        elif line.get("type") == "message" and line.get("role") == "assistant":
            parts.append(str(line.get("content") or ""))
    return "".join(parts).strip()


def _result_text(line: Mapping[str, Any]) -> str:
    error = line.get("error")
    if isinstance(error, dict) and error.get("message"):
        return str(error["message"])
    return str(line.get("output") or "")


def _first(text: str) -> str:
    text = " ".join(ln.strip() for ln in text.splitlines() if ln.strip())
    text = text.removeprefix("Tool execution blocked: ") or "(no reason given)"
    return text if len(text) <= 300 else text[:299] + "…"


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def steps(log: Path | str) -> Steps:
    """What a Gemini CLI stream-json log says the run did: each `tool_use` a call (one that came back as an error
    marked), the files its `write_file` and `replace` calls named, its turns counted as the live view counts them."""
    events = GeminiEvents()
    found = Steps()
    at: dict[str, int] = {}  # tool_id -> its call's place in found.calls
    for line in log_lines(log):
        events(line)
        kind = line.get("type")
        if kind == "tool_use":
            name, data = str(line.get("tool_name") or "a tool"), line.get("parameters")
            at[str(line.get("tool_id"))] = len(found.calls)
            found.calls.append(one_line(call_text(name, data)))
            if name in WRITES and isinstance(data, dict) and data.get("file_path"):
                found.written.append(str(data["file_path"]))
        elif kind == "tool_result" and line.get("status") == "error" and str(line.get("tool_id")) in at:
            place = at.pop(str(line.get("tool_id")))
            found.calls[place] = one_line(found.calls[place] + " (failed)")
    found.turns = events.turns
    return found
