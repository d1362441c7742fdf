"""The real `claude` CLI, offline, against the scripted model in tests/support/fake_anthropic.py.

These tests prove the harness the scheduler's end-to-end tests stand on: the CLI takes the scripted turns, runs
the tools they name (built-in and MCP), applies deny rules and PreToolUse hooks, sends the results back, and ends
with a `result` line the adapter can parse. Nothing leaves 127.0.0.1.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from ..conftest import make_repo
from ..support.fake_anthropic import DUMMY_API_KEY, ApiError, FakeAnthropic, Hang, Reply, block_text
from .conftest import CLIENT_TIMEOUT

pytestmark = pytest.mark.e2e


@dataclass
class ClaudeRun:
    """One finished `claude -p ... --output-format stream-json --verbose`."""

    returncode: int
    lines: list[dict[str, Any]]
    stderr: str
    seconds: float

    @property
    def init(self) -> dict[str, Any]:
        first = self.lines[0] if self.lines else {}
        assert first.get("type") == "system" and first.get("subtype") == "init", self.describe()
        return first

    @property
    def result(self) -> dict[str, Any]:
        assert self.lines and self.lines[-1].get("type") == "result", f"no final result line\n{self.describe()}"
        return self.lines[-1]

    def of_type(self, kind: str, subtype: str | None = None) -> list[dict[str, Any]]:
        return [m for m in self.lines if m.get("type") == kind and (subtype is None or m.get("subtype") == subtype)]

    def describe(self) -> str:
        body = "\n".join(json.dumps(line)[:800] for line in self.lines)
        return f"exit {self.returncode} after {self.seconds:.2f}s\n{body}\nstderr: {self.stderr[-2000:]}"


def parse_stream(stdout: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stdout.splitlines() if line.strip()]


def claude_argv(claude: Path, prompt: str, *args: str) -> list[str]:
    return [str(claude), "-p", prompt, "--output-format", "stream-json", "--verbose", *args]


def run_claude(
    claude: Path, cwd: Path, env: dict[str, str], prompt: str, *args: str, timeout: float = CLIENT_TIMEOUT
) -> ClaudeRun:
    started = time.monotonic()
    done = subprocess.run(
        claude_argv(claude, prompt, *args),
        check=False,
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )
    return ClaudeRun(done.returncode, parse_stream(done.stdout), done.stderr, time.monotonic() - started)


def quality_mcp_config(path: Path) -> Path:
    config = {
        "mcpServers": {"quality": {"type": "stdio", "command": sys.executable, "args": ["-m", "mcp_servers.quality"]}}
    }
    path.write_text(json.dumps(config))
    return path


# ------------------------------------------------------------------------------------------------ (a)


def test_the_cli_prints_the_scripted_answer_and_a_clean_result(
    tmp_path: Path, claude_bin: Path, fake_model: FakeAnthropic, offline_env: dict[str, str]
) -> None:
    fake_model.set_script([Reply(text="hi from the scripted model", input_tokens=1234, output_tokens=56)])
    work = tmp_path / "work"
    work.mkdir()

    run = run_claude(claude_bin, work, offline_env, "say hi")

    assert run.returncode == 0, run.describe()
    assert run.init["apiKeySource"] == "ANTHROPIC_API_KEY", run.init
    result = run.result
    assert result["is_error"] is False, run.describe()
    assert result["subtype"] == "success" and result["terminal_reason"] == "completed", result
    assert result["result"] == "hi from the scripted model"
    assert result["num_turns"] == 1
    assert result["stop_reason"] == "end_turn"
    assert result["permission_denials"] == []
    # The usage the model reported is what the result carries, in total and per model.
    assert result["usage"]["input_tokens"] == 1234 and result["usage"]["output_tokens"] == 56, result["usage"]
    (model_usage,) = result["modelUsage"].values()
    assert model_usage["inputTokens"] == 1234 and model_usage["outputTokens"] == 56
    assert result["total_cost_usd"] > 0  # a client-side estimate, even for a fake model

    # The one request: the streaming main loop, with the dummy key, and nothing else (no side queries,
    # no model listing, no token counting).
    assert [(r.method, r.route, r.kind) for r in fake_model.requests] == [("POST", "/v1/messages", "main")]
    request = fake_model.requests[0]
    assert request.headers["x-api-key"] == DUMMY_API_KEY
    assert request.headers["user-agent"].startswith("claude-cli/")
    assert request.body["stream"] is True
    assert "say hi" in json.dumps(request.messages)
    assert {"Bash", "Edit", "Write", "Read"} <= set(request.tool_names)
    assert fake_model.remaining == 0 and fake_model.overruns == 0


# ------------------------------------------------------------------------------------------------ (b)


def test_an_mcp_tool_call_reaches_the_quality_server_and_its_result_comes_back(
    tmp_path: Path, claude_bin: Path, fake_model: FakeAnthropic, offline_env: dict[str, str]
) -> None:
    repo = make_repo(tmp_path / "repo")
    mcp_config = quality_mcp_config(tmp_path / "mcp.json")
    fake_model.set_script([{"tool": "mcp__quality__get_policy", "input": {}}, "read the policy"])

    run = run_claude(
        claude_bin,
        repo.root,
        offline_env,
        "read the policy",
        "--mcp-config",
        str(mcp_config),
        "--strict-mcp-config",
        "--permission-mode",
        "dontAsk",
        "--allowedTools",
        "mcp__quality__get_policy",
    )

    assert run.returncode == 0, run.describe()
    assert {"name": "quality", "status": "connected"}.items() <= run.init["mcp_servers"][0].items(), run.init
    assert "mcp__quality__get_policy" in run.init["tools"]
    assert run.result["is_error"] is False and run.result["num_turns"] == 2, run.describe()
    assert run.result["permission_denials"] == []

    first, follow_up = fake_model.main_requests
    # Claude Code advertises the MCP tool, either in `tools` or (2.1.330) as a deferred tool named in the
    # system-reminder text; either way a tool_use naming it is executed.
    assert "mcp__quality__get_policy" in first.tool_names or "mcp__quality__get_policy" in json.dumps(first.body)
    (block,) = follow_up.tool_results()
    assert block["tool_use_id"] == "toolu_fake_0_0" and not block.get("is_error"), block
    policy = json.loads(block_text(block))
    assert policy["policy"]["max_changed_lines"] == 30, policy
    assert policy["config_source"] == "defaults"
    assert fake_model.tool_result_text("toolu_fake_0_0") == block_text(block)


# ------------------------------------------------------------------------------------------------ (c)


@pytest.mark.parametrize("rule", ["Bash(git commit:*)", "Bash(git commit *)"])
def test_a_scoped_deny_rule_refuses_git_commit_and_the_result_lists_the_denial(
    rule: str, tmp_path: Path, claude_bin: Path, fake_model: FakeAnthropic, offline_env: dict[str, str]
) -> None:
    repo = make_repo(tmp_path / "repo")
    repo.append("src/app/calc.py", "\nX = 1\n")
    base = repo.head()
    fake_model.set_script(
        [
            [
                {"tool": "Bash", "input": {"command": "git commit -qam wip", "description": "commit"}},
                {"tool": "Bash", "input": {"command": "git status --porcelain", "description": "status"}},
            ],
            "tried to commit",
        ]
    )

    run = run_claude(
        claude_bin,
        repo.root,
        offline_env,
        "commit the change",
        "--permission-mode",
        "dontAsk",
        "--allowedTools",
        "Bash",  # every Bash command is allowed except what the deny rule names
        "--disallowedTools",
        rule,
    )

    assert run.returncode == 0, run.describe()
    assert run.result["is_error"] is False, run.describe()
    assert run.result["permission_denials"] == [
        {
            "tool_name": "Bash",
            "tool_use_id": "toolu_fake_0_0",
            "tool_input": {"command": "git commit -qam wip", "description": "commit"},
        }
    ]
    assert repo.head() == base
    denied = fake_model.tool_result("toolu_fake_0_0")
    assert denied["is_error"] is True
    assert "Permission to use Bash with command git commit -qam wip has been denied" in block_text(denied)
    # The allowed command in the same turn did run.
    assert "M src/app/calc.py" in fake_model.tool_result_text("toolu_fake_0_1")


def test_a_scoped_deny_rule_is_not_a_wall_git_dash_c_slips_past_it_under_a_broad_allow(
    tmp_path: Path, claude_bin: Path, fake_model: FakeAnthropic, offline_env: dict[str, str]
) -> None:
    """Why the scheduler needs the hooks and its own verification as well: with `--allowedTools Bash`, the rule
    `Bash(git commit:*)` matches the command's prefix, so `git -C . commit` (or `bash -c '...'`) is not denied.
    If this starts failing, the pinned Claude Code matches deny rules more thoroughly: re-read the layers."""
    repo = make_repo(tmp_path / "repo")
    repo.append("src/app/calc.py", "\nX = 1\n")
    base = repo.head()
    fake_model.set_script([{"tool": "Bash", "input": {"command": "git -C . commit -qam sneaky"}}, "done"])

    run = run_claude(
        claude_bin,
        repo.root,
        offline_env,
        "commit",
        "--permission-mode",
        "dontAsk",
        "--allowedTools",
        "Bash",
        "--disallowedTools",
        "Bash(git commit:*)",
    )

    assert run.result["is_error"] is False, run.describe()
    assert run.result["permission_denials"] == []
    assert repo.head() != base and repo.git("log", "-1", "--format=%s") == "sneaky"


# ------------------------------------------------------------------------------------------------ (d)

BLOCKING_HOOK = """\
#!/bin/sh
# A PreToolUse hook: keep what Claude Code sent, refuse the call (exit 2; stderr is the reason).
cat > "$(dirname "$0")/hook-input.json"
echo "overnight: Bash is blocked by the test hook; use the commit tool" >&2
exit 2
"""


def test_a_pretooluse_hook_that_exits_2_blocks_bash_and_its_message_reaches_the_model(
    tmp_path: Path, claude_bin: Path, fake_model: FakeAnthropic, offline_env: dict[str, str]
) -> None:
    repo = make_repo(tmp_path / "repo")
    hooks = tmp_path / "hooks"
    hooks.mkdir()
    hook = hooks / "block.sh"
    hook.write_text(BLOCKING_HOOK)
    hook.chmod(0o755)
    settings = tmp_path / "settings.json"
    settings.write_text(
        json.dumps(
            {"hooks": {"PreToolUse": [{"matcher": "Bash", "hooks": [{"type": "command", "command": str(hook)}]}]}}
        )
    )
    marker = tmp_path / "ran"
    fake_model.set_script([{"tool": "Bash", "input": {"command": f"touch {marker}", "description": "x"}}, "blocked"])

    run = run_claude(
        claude_bin,
        repo.root,
        offline_env,
        "touch a file",
        "--settings",
        str(settings),
        "--permission-mode",
        "dontAsk",
        "--allowedTools",
        "Bash",  # allowed by the rules: only the hook stands in the way
    )

    assert run.returncode == 0, run.describe()
    assert not marker.exists(), "the hook did not block the command"
    blocked = fake_model.tool_result("toolu_fake_0_0")
    assert blocked["is_error"] is True
    assert "overnight: Bash is blocked by the test hook; use the commit tool" in block_text(blocked)
    assert block_text(blocked).startswith("PreToolUse:Bash hook error")
    # A hook's refusal is also listed as a permission denial.
    assert [d["tool_use_id"] for d in run.result["permission_denials"]] == ["toolu_fake_0_0"]
    seen = json.loads((hooks / "hook-input.json").read_text())
    assert seen["hook_event_name"] == "PreToolUse" and seen["tool_name"] == "Bash"
    assert seen["tool_input"]["command"] == f"touch {marker}" and seen["tool_use_id"] == "toolu_fake_0_0"
    assert seen["permission_mode"] == "dontAsk" and seen["cwd"] == str(repo.root)


# ------------------------------------------------------------------------------------------------ side queries


def test_side_queries_are_answered_without_consuming_script_turns(
    tmp_path: Path, claude_bin: Path, fake_model: FakeAnthropic, offline_env: dict[str, str]
) -> None:
    """A `prompt` hook makes Claude Code ask the model on the side (no tools, structured output); the fake
    answers it with schema-valid JSON that lets the call go ahead, and the script is not advanced."""
    settings = tmp_path / "settings.json"
    prompt_hook = {"type": "prompt", "prompt": "Allow this? $ARGUMENTS"}
    settings.write_text(json.dumps({"hooks": {"PreToolUse": [{"matcher": "Bash", "hooks": [prompt_hook]}]}}))
    work = tmp_path / "work"
    work.mkdir()
    fake_model.set_script([{"tool": "Bash", "input": {"command": "echo side-ok", "description": "x"}}, "done"])

    run = run_claude(
        claude_bin,
        work,
        offline_env,
        "echo",
        "--settings",
        str(settings),
        "--permission-mode",
        "dontAsk",
        "--allowedTools",
        "Bash(echo:*)",
    )

    assert run.result["is_error"] is False and run.result["result"] == "done", run.describe()
    assert [r.kind for r in fake_model.requests] == ["main", "side", "main"]
    assert [r.turn for r in fake_model.main_requests] == [0, 1]
    (side,) = fake_model.side_requests
    assert side.tool_names == [] and "Allow this?" in json.dumps(side.messages)
    assert side.body["output_config"]["format"]["type"] == "json_schema"
    assert fake_model.tool_result_text("toolu_fake_0_0") == "side-ok"


# ------------------------------------------------------------------------------------------------ API errors


def test_an_api_error_with_retries_off_ends_the_run_as_an_error(
    tmp_path: Path, claude_bin: Path, fake_model: FakeAnthropic, offline_env: dict[str, str]
) -> None:
    fake_model.set_script([ApiError(500, "api_error", "scripted failure", times=None)])
    work = tmp_path / "work"
    work.mkdir()

    run = run_claude(claude_bin, work, {**offline_env, "CLAUDE_CODE_MAX_RETRIES": "0"}, "hi")

    assert run.returncode == 1, run.describe()
    result = run.result
    # `subtype` says success; is_error, terminal_reason and the exit code tell the truth.
    assert result["is_error"] is True and result["terminal_reason"] == "api_error", result
    assert result["api_error_status"] == 500
    assert "scripted failure" in result["result"]
    assert len(fake_model.main_requests) == 1


def test_an_overloaded_answer_is_retried_and_the_next_turn_answers_the_retry(
    tmp_path: Path, claude_bin: Path, fake_model: FakeAnthropic, offline_env: dict[str, str]
) -> None:
    fake_model.set_script([ApiError(529), "recovered"])
    work = tmp_path / "work"
    work.mkdir()

    run = run_claude(claude_bin, work, offline_env, "hi")

    assert run.returncode == 0 and run.result["result"] == "recovered", run.describe()
    (retry,) = run.of_type("system", "api_retry")
    assert retry["error_status"] == 529 and retry["attempt"] == 1
    assert [r.turn for r in fake_model.main_requests] == [0, 1]


# ------------------------------------------------------------------------------------------------ a hanging model


def test_a_hanging_model_keeps_the_cli_waiting_until_it_is_killed(
    tmp_path: Path, claude_bin: Path, fake_model: FakeAnthropic, offline_env: dict[str, str]
) -> None:
    """The CLI has no watchdog of its own for a stalled stream (none fired within 150 s when measured), so the
    scheduler's wall clock must end it; SIGTERM ends it at once (exit 143) and leaves no result line."""
    fake_model.set_script([Hang(after_headers=True)])
    work = tmp_path / "work"
    work.mkdir()
    process = subprocess.Popen(
        claude_argv(claude_bin, "hi"),
        cwd=work,
        env=offline_env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        assert fake_model.hang_started.wait(CLIENT_TIMEOUT), "the CLI never asked the model"
        time.sleep(1.0)
        assert process.poll() is None, "the CLI gave up on a hanging model by itself"
        os.killpg(process.pid, signal.SIGTERM)
        stdout, stderr = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()

    assert process.returncode == 143, (process.returncode, stderr)
    assert not [m for m in parse_stream(stdout) if m.get("type") == "result"]


def test_a_stream_cut_short_falls_back_to_a_non_streaming_request_answered_by_the_next_turn(
    tmp_path: Path, claude_bin: Path, fake_model: FakeAnthropic, offline_env: dict[str, str]
) -> None:
    """`message_start`, then the connection closes: the CLI re-asks at once without streaming (no api_retry
    line), and the fake answers that from the next turn as a plain JSON message."""
    fake_model.set_script([Hang(after_headers=True, timeout=0.3, times=1), "after the cut"])
    work = tmp_path / "work"
    work.mkdir()

    run = run_claude(claude_bin, work, offline_env, "hi")

    assert run.returncode == 0 and run.result["result"] == "after the cut", run.describe()
    assert [(r.turn, r.body["stream"]) for r in fake_model.main_requests] == [(0, True), (1, False)]
    assert fake_model.hang_end_reason == "timeout"


# ------------------------------------------------------------------------------------------------ subagents


def test_a_subagent_is_answered_apart_from_the_script_and_the_stream_then_has_two_results(
    tmp_path: Path, claude_bin: Path, fake_model: FakeAnthropic, offline_env: dict[str, str]
) -> None:
    """The Agent tool starts a background subagent whose requests (header `x-claude-code-agent-id`) race the
    main loop's; the fake ends them with a plain answer so the script only drives the main loop. When the
    subagent finishes, the main loop gets a notification turn, and the stream carries a second `result`:
    `usage` and `num_turns` are per result, `total_cost_usd` and `modelUsage` are running totals."""
    agent_call = {"description": "look around", "prompt": "list the files", "subagent_type": "general-purpose"}
    fake_model.set_script([{"tool": "Agent", "input": agent_call}, "waiting for the agent", "all done"])
    work = tmp_path / "work"
    work.mkdir()

    run = run_claude(
        claude_bin, work, offline_env, "delegate", "--permission-mode", "dontAsk", "--allowedTools", "Agent"
    )

    assert run.returncode == 0, run.describe()
    assert [r.turn for r in fake_model.main_requests] == [0, 1, 2]
    assert fake_model.subagent_requests and fake_model.overruns == 0
    first, last = run.of_type("result")
    assert (first["result_index"], last["result_index"]) == (0, 1)
    assert (first["result"], last["result"]) == ("waiting for the agent", "all done")
    assert last["total_cost_usd"] >= first["total_cost_usd"] > 0
    assert f"output_file: {offline_env['TMPDIR']}/claude-" in fake_model.tool_result_text("toolu_fake_0_0")
    assert not last["is_error"]


# ------------------------------------------------------------------------------------------------ the fake alone


def _post(url: str, payload: dict[str, Any]) -> tuple[int, str]:
    data = json.dumps(payload).encode()
    request = urllib.request.Request(url, data=data, headers={"content-type": "application/json"})  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 (the fake, on 127.0.0.1)
            return response.status, response.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def test_the_fake_answers_plain_http_clients_the_same_way(fake_model: FakeAnthropic) -> None:
    """Without the CLI: the SSE sequence, a non-streaming answer, an error turn, side routes, an overrun."""
    tools = [{"name": "Bash", "input_schema": {"type": "object"}}]
    fake_model.set_script(
        [
            ["let me look", {"tool": "Bash", "input": {"command": "ls"}, "id": "toolu_mine"}],
            "done",
            ApiError(529),
        ]
    )
    base = fake_model.url + "/v1/messages?beta=true"

    status, sse = _post(base, {"model": "m", "stream": True, "tools": tools, "messages": []})
    events = [line.split(": ", 1)[1] for line in sse.splitlines() if line.startswith("event: ")]
    assert status == 200 and events == [
        "message_start",
        *["content_block_start", "content_block_delta", "content_block_stop"] * 2,
        "message_delta",
        "message_stop",
    ]
    data = [json.loads(line[6:]) for line in sse.splitlines() if line.startswith("data: ")]
    assert data[4]["content_block"] == {"type": "tool_use", "id": "toolu_mine", "name": "Bash", "input": {}}
    assert json.loads(data[5]["delta"]["partial_json"]) == {"command": "ls"}
    assert data[-2]["delta"]["stop_reason"] == "tool_use"

    status, plain = _post(base, {"model": "m", "stream": False, "tools": tools, "messages": []})
    message = json.loads(plain)
    assert status == 200 and message["content"] == [{"type": "text", "text": "done"}]
    assert message["stop_reason"] == "end_turn" and message["usage"]["output_tokens"] > 0

    side_status, side = _post(base, {"model": "m", "messages": [{"role": "user", "content": "title?"}]})
    assert side_status == 200 and json.loads(side)["content"][0]["text"] == "ok"

    status, error = _post(base, {"model": "m", "tools": tools, "messages": []})
    assert status == 529 and json.loads(error)["error"]["type"] == "overloaded_error"

    assert _post(fake_model.url + "/v1/messages/count_tokens", {"messages": []})[0] == 200
    assert _post(fake_model.url + "/v1/nothing", {})[0] == 404
    status, overrun = _post(base, {"model": "m", "tools": tools, "messages": []})
    assert status == 200 and "no more turns" in overrun and fake_model.overruns == 1
    assert [r.kind for r in fake_model.requests] == ["main", "main", "side", "main", "count_tokens", "other", "main"]
    assert [r.turn for r in fake_model.main_requests] == [0, 1, 2, None]
