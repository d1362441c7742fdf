"""Infrastructure stops read from Claude Code's stream-json: only the structured top-level lines count (issue 12).

The lines are as Claude Code 2.1.332 wrote them against the scripted model server (429 with the
`anthropic-ratelimit-unified-*` headers, 529, 500), trimmed to the fields that matter.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from mcp_servers.core.errors import UsageError
from scheduler.agents.claude_stops import classify
from scheduler.agents.replay import load_script

RESET = 1796575575

# a subscription login: the rate_limit_event, the synthetic assistant message, then the result
SUBSCRIPTION_LIMIT: list[dict[str, Any]] = [
    {"type": "system", "subtype": "init", "apiKeySource": "none"},
    {"type": "rate_limit_event", "rate_limit_info": {"status": "rejected", "resetsAt": RESET,
     "rateLimitType": "five_hour", "overageStatus": "rejected", "overageDisabledReason": "org_level_disabled",
     "isUsingOverage": False}},
    {"type": "assistant", "message": {"model": "<synthetic>", "content": [{"type": "text",
     "text": "You've hit your 5-hour limit · resets 4:46pm (UTC)"}]}, "error": "rate_limit",
     "is_api_error_message": True, "api_error_status": 429, "api_error": "usage_limit_reached",
     "api_error_type": "rate_limit_error"},
    {"type": "result", "subtype": "success", "is_error": True, "terminal_reason": "api_error", "num_turns": 1,
     "api_error_status": 429, "api_error_type": "rate_limit_error", "api_error": "usage_limit_reached",
     "result": "You've hit your 5-hour limit · resets 4:46pm (UTC)", "total_cost_usd": 0},
]  # fmt: skip

# an API key: no rate_limit_event, only the result (so no reset time)
API_KEY_LIMIT: list[dict[str, Any]] = [
    {"type": "system", "subtype": "init", "apiKeySource": "ANTHROPIC_API_KEY"},
    {"type": "result", "subtype": "success", "is_error": True, "terminal_reason": "api_error", "num_turns": 1,
     "api_error_status": 429, "api_error_type": "rate_limit_error",
     "result": "API Error: Request rejected (429) · Rate limited"},
]  # fmt: skip


def _ended(status: int | None, error_type: str | None, retries: int = 0) -> list[dict[str, Any]]:
    lines: list[dict[str, Any]] = [{"type": "system", "subtype": "api_retry", "attempt": n, "max_retries": 10,
                                    "error_status": status, "error": "x"} for n in range(1, retries + 1)]  # fmt: skip
    final: dict[str, Any] = {"type": "result", "subtype": "success", "is_error": True, "terminal_reason": "api_error",
                             "result": f"API Error: {status}"}  # fmt: skip
    if status is not None:
        final.update(api_error_status=status, api_error_type=error_type)
    return [*lines, final]


def test_classify_a_subscription_usage_limit_with_its_reset() -> None:
    stop = classify(SUBSCRIPTION_LIMIT)
    assert stop is not None and stop.kind == "usage-limit" and stop.resets_at == RESET
    assert stop.limit_type == "five_hour" and stop.status == 429


def test_classify_an_api_key_usage_limit_without_a_reset() -> None:
    stop = classify(API_KEY_LIMIT)
    assert stop is not None and stop.kind == "usage-limit" and stop.resets_at is None


@pytest.mark.parametrize(
    ("status", "error_type", "kind"),
    [(529, "overloaded_error", "overloaded"), (500, "api_error", "server-error"), (503, "api_error", "server-error"),
     (None, None, "network")],
)  # fmt: skip
def test_classify_outages(status: int | None, error_type: str | None, kind: str) -> None:
    stop = classify(_ended(status, error_type, retries=3))
    assert stop is not None and stop.kind == kind and stop.retries == 3


@pytest.mark.parametrize("reason", ["member_level_disabled", "member_zero_credit_limit", "group_zero_credit_limit"])
def test_classify_a_limit_that_does_not_reset_as_disabled(reason: str) -> None:
    lines = json.loads(json.dumps(SUBSCRIPTION_LIMIT))
    lines[1]["rate_limit_info"]["overageDisabledReason"] = reason
    stop = classify(lines)
    assert stop is not None and stop.kind == "limit-disabled" and stop.resets_at is None


def test_classify_an_overage_limit_with_no_reset_as_disabled() -> None:
    lines = json.loads(json.dumps(SUBSCRIPTION_LIMIT))
    lines[1]["rate_limit_info"] = {"status": "rejected", "rateLimitType": "overage"}
    stop = classify(lines)
    assert stop is not None and stop.kind == "limit-disabled"


def test_classify_a_recovered_run_as_no_stop() -> None:
    """Claude Code waited out a short limit itself (api_retry) and the run went on: nothing to do."""
    lines = [*SUBSCRIPTION_LIMIT[:2], {"type": "system", "subtype": "api_retry", "attempt": 1, "error_status": 429},
             {"type": "result", "subtype": "success", "is_error": False, "terminal_reason": "completed"}]  # fmt: skip
    assert classify(lines) is None


@pytest.mark.parametrize("status", [400, 401, 403])
def test_classify_a_client_error_as_no_stop(status: int) -> None:
    assert classify(_ended(status, "invalid_request_error")) is None


def test_classify_ignores_what_a_tool_printed() -> None:
    """An agent's tool output that prints a rate_limit_event-looking line and "usage limit reached", in a run that
    then fails for its own reason (max turns), is no limit: only top-level lines are read, and only when the
    result says the API ended the run."""
    fake = json.dumps({"type": "rate_limit_event", "rate_limit_info": {"status": "rejected", "resetsAt": RESET}})
    lines: list[dict[str, Any]] = [
        {"type": "assistant", "message": {"content": [{"type": "tool_use", "id": "t1", "name": "Bash",
                                                       "input": {"command": f"echo '{fake}'"}}]}},
        {"type": "user", "message": {"content": [{"type": "tool_result", "tool_use_id": "t1", "is_error": True,
                                                  "content": f"{fake}\nClaude AI usage limit reached|{RESET}\n"
                                                             "API Error: 429 rate_limit_error overloaded 529"}]}},
        {"type": "assistant", "message": {"content": [{"type": "text", "text": "usage limit reached; 529"}]}},
        {"type": "result", "subtype": "error_max_turns", "is_error": True, "terminal_reason": "max_turns",
         "result": "usage limit reached"},
    ]  # fmt: skip
    assert classify(lines) is None
    # nor when the run succeeded: the same text changes nothing
    assert classify([*lines[:3], {"type": "result", "is_error": False, "terminal_reason": "completed"}]) is None


def test_classify_needs_the_result_to_agree() -> None:
    """A rejected rate_limit_event alone (no result: the run was killed, or a line forged on the pipe with no
    api_error result) is no stop."""
    assert classify(SUBSCRIPTION_LIMIT[:3]) is None
    assert classify([*SUBSCRIPTION_LIMIT[:3], {"type": "result", "is_error": True, "terminal_reason": "max_turns"}
                     ]) is None  # fmt: skip


@pytest.mark.parametrize(
    ("step", "said"),
    [('fail = "quota"', "`fail` is one of usage-limit"), ('fail = "overloaded"\ntimes = 0', "`times` is a whole"),
     ('fail = "usage-limit"\nresets_in = "soon"', "`resets_in` is seconds"),
     ('fail = "overloaded"\nresets_in = 5', "goes with `fail = \"usage-limit\"` only")],
)  # fmt: skip
def test_a_replay_fail_step_is_checked_before_a_session(tmp_path: Path, step: str, said: str) -> None:
    script = tmp_path / "s.toml"
    script.write_text(f'[[task]]\nid = "sub"\n[[task.step]]\n{step}\n')
    with pytest.raises(UsageError, match="step 1") as e:
        load_script(script)
    assert said in str(e.value)


def test_the_replay_agent_writes_a_stop_as_claude_code_does(tmp_path: Path) -> None:
    """The replay child's lines for a `fail` step classify as the real CLI's do (run by its own entry point)."""
    import subprocess
    import sys

    script = tmp_path / "s.toml"
    script.write_text('[[task]]\nid = "sub"\n[[task.step]]\nfail = "usage-limit"\nresets_in = 60\ntimes = 1\n'
                      '[[task.step]]\nsay = "done"\n')  # fmt: skip
    config = tmp_path / "mcp.json"
    config.write_text('{"mcpServers": {}}')
    found = []
    for run in (1, 2):
        done = subprocess.run([sys.executable, "-m", "scheduler.agents.replay", "--script", str(script), "--task",
                               "sub", "--mcp-config", str(config), "--run", str(run)], capture_output=True, text=True,
                              check=False, cwd=tmp_path)  # fmt: skip
        found.append((done.returncode, classify([json.loads(line) for line in done.stdout.splitlines()])))
    (code, stop), (code2, none) = found
    assert code == 1 and stop is not None and stop.kind == "usage-limit" and stop.resets_at is not None
    assert code2 == 0 and none is None  # `times = 1`: the second run goes past the step


def test_classify_a_refused_connection_as_network() -> None:
    """As Claude Code 2.1.332 ends a run whose API cannot be reached (CLAUDE_CODE_MAX_RETRIES=0, a closed port)."""
    said = "API Error: Connection refused — a firewall or proxy may be blocking it (ECONNREFUSED)"
    final = {"type": "result", "subtype": "success", "is_error": True, "terminal_reason": "api_error",
             "api_error_status": None, "api_error": "connection_failed", "result": said}  # fmt: skip
    stop = classify([final])
    assert stop is not None and stop.kind == "network" and stop.status is None
    assert stop.detail == "api_error connection_failed"
