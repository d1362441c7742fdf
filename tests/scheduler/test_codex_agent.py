"""The Codex CLI adapter without the CLI: its per-run config (real files, read back with tomllib), its command
line, its JSONL read into the result and the live view, and its infrastructure stops (issue 13).

The JSONL lines are as Codex 0.171.0 wrote them against the scripted Responses API (tests/support/fake_openai.py),
trimmed to the fields that matter; the end-to-end tests run the real CLI (tests/e2e/test_scheduler_codex.py).
"""

from __future__ import annotations

import os
import stat
import tomllib
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from mcp_servers.core import sandbox
from mcp_servers.core.config import Scheduler
from scheduler.agents import AgentJob, Outcome
from scheduler.agents.codex import CodexAgent, CodexSettings
from scheduler.agents.codex_events import CodexEvents, classify, resets, result_from
from scheduler.confine import Confinement

HTTP = {name: {"type": "http", "url": f"http://127.0.0.1:{port}/mcp", "headers": {"Authorization": "Bearer tok"}}
        for name, port in (("quality", 47001), ("project", 47002), ("memory", 47003))}  # fmt: skip


def _job(tmp_path: Path, boxed: bool = True) -> AgentJob:
    folder = tmp_path / "run"
    home = folder / "home"
    home.mkdir(parents=True)
    worktree = tmp_path / "wt"
    worktree.mkdir()
    servers: dict[str, Any] = HTTP if boxed else {
        "quality": {"type": "stdio", "command": "/usr/bin/python3", "args": ["-I", "-m", "mcp_servers.quality"],
                    "env": {"OVERNIGHT_TASK_ID": "sub"}}}  # fmt: skip
    box = sandbox.Box(write=(worktree, home), chdir=worktree) if boxed else None
    conf = Confinement("bwrap" if boxed else "off", folder, home, servers, box=box)
    return AgentJob(task_id="sub", prompt="do the task", worktree=worktree, env={}, run_dir=tmp_path / "logs",
                    timeout_s=60, confinement=conf)  # fmt: skip


def _agent(environ: dict[str, str] | None = None, **settings: Any) -> CodexAgent:
    return CodexAgent(Scheduler(), CodexSettings(**settings), environ=environ or {"PATH": "/usr/bin:/bin"})


def test_the_per_run_config_names_the_provider_the_servers_and_the_guard(tmp_path: Path) -> None:
    job = _job(tmp_path)
    agent = _agent(base_url="http://127.0.0.1:9999/v1", model="gpt-test", env_key="MY_KEY", request_max_retries=1)
    home = agent.home(job)
    link = home / "config.toml"
    assert link.is_symlink() and link.resolve() == (job.confined.folder / "config" / "codex.toml").resolve()
    assert stat.S_IMODE(link.resolve().stat().st_mode) == 0o600  # it holds the run's bearer token
    config = tomllib.loads(link.read_text())
    assert config["approval_policy"] == "never" and config["allow_login_shell"] is False
    assert "sandbox_mode" not in config  # overnight's sandbox is the sandbox
    assert config["model"] == "gpt-test" and config["model_provider"] == "overnight"
    assert config["model_providers"]["overnight"] == {
        "name": "overnight", "base_url": "http://127.0.0.1:9999/v1", "wire_api": "responses",
        "supports_websockets": False, "stream_max_retries": 2, "env_key": "MY_KEY", "request_max_retries": 1,
    }  # fmt: skip
    quality = config["mcp_servers"]["quality"]
    assert quality["url"] == "http://127.0.0.1:47001/mcp" and quality["http_headers"] == {"Authorization": "Bearer tok"}
    assert quality["default_tools_approval_mode"] == "approve" and quality["required"] is True
    assert quality["tool_timeout_sec"] >= 600 and set(config["mcp_servers"]) == {"quality", "project", "memory"}
    [hook] = config["hooks"]["PreToolUse"]
    assert hook["matcher"] == ".*" and hook["hooks"][0]["command"].endswith("-I -m scheduler.guard")
    assert config["features"]["plugins"] is False and config["analytics"]["enabled"] is False
    # a second run's config is written afresh: whatever the agent left in its home is not trusted
    link.unlink()
    link.write_text('approval_policy = "on-request"\n')
    agent.home(job)
    assert (home / "config.toml").is_symlink() and tomllib.loads(link.read_text())["approval_policy"] == "never"


def test_unsandboxed_codex_keeps_its_own_sandbox_and_starts_the_servers(tmp_path: Path) -> None:
    job = _job(tmp_path, boxed=False)
    agent = _agent()
    config = tomllib.loads(agent.config_toml(job))
    assert config["sandbox_mode"] == "workspace-write" and "model_provider" not in config
    quality = config["mcp_servers"]["quality"]
    assert quality["command"] == "/usr/bin/python3" and quality["env"] == {"OVERNIGHT_TASK_ID": "sub"}
    argv = agent.command(job)
    assert "--dangerously-bypass-approvals-and-sandbox" not in argv and argv[-2:] == ["--", "do the task"]
    assert argv[1:4] == ["exec", "--json", "--skip-git-repo-check"] and "--dangerously-bypass-hook-trust" in argv


def test_sandboxed_codex_runs_inside_the_box_with_its_own_sandbox_off(tmp_path: Path) -> None:
    job = _job(tmp_path)
    argv = _agent().command(job)
    assert "bwrap" in argv[0] and "--dangerously-bypass-approvals-and-sandbox" in argv and argv[-1] == "do the task"


def test_a_chatgpt_login_is_copied_only_when_no_key_is_given(tmp_path: Path) -> None:
    person = tmp_path / "person"
    (person / ".codex").mkdir(parents=True)
    (person / ".codex" / "auth.json").write_text('{"tokens": {}}')
    job = _job(tmp_path)
    home = _agent({"HOME": str(person)}).home(job)
    assert (home / "auth.json").read_text() == '{"tokens": {}}'
    (home / "auth.json").unlink()
    _agent({"HOME": str(person), "OPENAI_API_KEY": "sk-x"}).home(job)
    assert not (home / "auth.json").exists()


def _cli(tmp_path: Path, version: str) -> str:
    path = tmp_path / "codex"
    path.write_text(f"#!/bin/sh\necho 'codex-cli {version}'\n")
    path.chmod(0o755)
    return str(path)


def test_problems_say_what_is_missing_and_what_to_do(tmp_path: Path) -> None:
    missing = _agent(command=str(tmp_path / "nope")).problems({})
    assert len(missing) == 1 and "was not found" in missing[0] and "npm install -g @openai/codex@" in missing[0]
    old = _agent(command=_cli(tmp_path, "0.100.0")).problems({})
    assert len(old) == 1 and "0.124.0 or newer" in old[0]
    home = tmp_path / "home"
    home.mkdir()
    env = {"PATH": "/usr/bin:/bin", "HOME": str(home)}
    [login] = _agent(env, command=_cli(tmp_path, "0.171.0")).problems({})
    assert "codex login" in login and "OPENAI_API_KEY" in login
    assert _agent({**env, "OPENAI_API_KEY": "sk-x"}, command=_cli(tmp_path, "0.171.0")).problems({}) == []
    [key] = _agent(env, command=_cli(tmp_path, "0.171.0"), base_url="http://h:1/v1", env_key="K").problems({})
    assert "$K" in key
    assert _agent(env, command=_cli(tmp_path, "0.171.0"), base_url="http://h:1/v1").problems({}) == []


def test_endpoints_and_tool_names() -> None:
    assert _agent(base_url="http://127.0.0.1:5/v1").endpoints() == ["http://127.0.0.1:5/v1"]
    assert _agent({"OPENAI_API_KEY": "sk-x"}).endpoints() == ["https://api.openai.com/v1"]
    assert _agent().endpoints() == ["https://chatgpt.com/backend-api/codex", "https://auth.openai.com"]  # a login
    assert CodexAgent.tool("quality", "commit") == "mcp__quality__commit"


# ------------------------------------------------------------------------------------------ the stream

WORK: list[dict[str, Any]] = [
    {"type": "thread.started", "thread_id": "t1"},
    {"type": "item.completed", "item": {"id": "item_0", "type": "error", "message": "Model metadata not found"}},
    {"type": "turn.started"},
    {"type": "item.completed", "item": {"id": "item_1", "type": "agent_message", "text": "I will add sub()."}},
    {"type": "item.started", "item": {"id": "item_2", "type": "command_execution", "command": "/bin/bash -c 'python "
     "-m pytest -q'", "aggregated_output": "", "exit_code": None, "status": "in_progress"}},
    {"type": "item.completed", "item": {"id": "item_2", "type": "command_execution", "command": "/bin/bash -c "
     "'python -m pytest -q'", "aggregated_output": "OSError: [Errno 30] Read-only file system: '/r/NOTES.txt'\n"
     "usage limit reached\n", "exit_code": 1, "status": "failed"}},
    {"type": "item.started", "item": {"id": "item_3", "type": "mcp_tool_call", "server": "quality",
     "tool": "run_quality_gate", "arguments": {}, "result": None, "error": None, "status": "in_progress"}},
    {"type": "item.completed", "item": {"id": "item_3", "type": "mcp_tool_call", "server": "quality",
     "tool": "run_quality_gate", "arguments": {}, "result": {"content": [{"type": "text",
     "text": "{\n  \"passed\": false,\n  \"summary\": \"gate failed\"}"}]}, "error": None, "status": "completed"}},
    {"type": "item.completed", "item": {"id": "item_4", "type": "mcp_tool_call", "server": "quality",
     "tool": "commit", "arguments": {"message": "x"}, "result": {"content": [{"type": "text", "text":
     "nothing was committed because the gate failed"}], "isError": True}, "error": None, "status": "completed"}},
    {"type": "item.completed", "item": {"id": "item_5", "type": "agent_message", "text": "Done."}},
    {"type": "turn.completed", "usage": {"input_tokens": 500, "cached_input_tokens": 30, "output_tokens": 90}},
]  # fmt: skip
STDERR = (
    "Reading additional input from stdin...\n"
    "2026-12-06T17:53:21.293765Z ERROR codex_core::tools::router: error=Command blocked by PreToolUse hook: "
    "overnight refused this: `git commit` is refused: commit with the quality server's `commit` tool.. Command: "
    "git commit -qm x\n"
)


def _outcome(lines: list[dict[str, Any]], code: int | None = 0, **kw: Any) -> Outcome:
    return Outcome(exit_code=code, timed_out=kw.get("timed_out", False), stopped=kw.get("stopped", False),
                   duration_s=1.234, lines=lines)  # fmt: skip


def test_a_run_is_read_into_the_common_result(tmp_path: Path) -> None:
    result = result_from("codex", _outcome(WORK), tmp_path / "agent.jsonl", STDERR)
    assert result.agent == "codex" and not result.is_error and result.terminal_reason == "completed"
    assert result.tokens_in == 500 and result.tokens_out == 90 and result.cost_usd is None
    assert result.turns == 6 and result.final == "Done." and result.servers == {"quality": "connected"}
    assert result.infra is None  # "usage limit reached" printed by a command is the command's output, nothing more
    calls = [call for call, _ in result.failures]
    assert calls == ["Bash `python -m pytest -q`", "mcp__quality__commit", "Bash `git commit -qm x`"]
    assert any("Read-only file system" in text for _, text in result.failures)
    assert result.refused[2].startswith("Bash `git commit -qm x`: blocked by the guard: overnight refused this")


def test_a_failed_turn_is_an_error_and_a_killed_run_has_no_result(tmp_path: Path) -> None:
    failed = [*WORK[:3], {"type": "turn.failed", "error": {"message": "unexpected status 401 Unauthorized: bad key"}}]
    result = result_from("codex", _outcome(failed, 1), tmp_path / "l")
    assert result.is_error and result.terminal_reason == "turn failed" and result.infra is None
    hung = result_from("codex", _outcome(WORK[:5], None, timed_out=True), tmp_path / "l")
    assert hung.is_error and hung.timed_out and hung.terminal_reason == "timed out" and hung.infra is None


USAGE = "You’ve hit your usage limit. Upgrade to Pro (https://chatgpt.com/explore/pro), visit https://chatgpt.com/" \
    "settings/usage to purchase more credits or try again at 7:06 PM."  # fmt: skip


@pytest.mark.parametrize(("message", "kind", "status"), [
    (USAGE, "usage-limit", 429),
    ("You’ve hit your usage limit. Upgrade to Pro or try again later.", "usage-limit", 429),
    ("exceeded retry limit, last status: 429 Too Many Requests", "usage-limit", 429),
    ("We’re currently experiencing high demand, which may cause temporary errors.", "server-error", None),
    ("exceeded retry limit, last status: 502 Bad Gateway", "server-error", 502),
    ("unexpected status 503 Service Unavailable: overloaded, url: http://127.0.0.1:1/v1/responses", "overloaded", 503),
    ("Selected model is at capacity. Please try a different model.", "overloaded", None),
    ("stream disconnected before completion: error sending request", "network", None),
    ("unexpected status 401 Unauthorized: bad key, url: http://127.0.0.1:1/v1/responses", None, 401),
    ("Missing environment variable: `OPENAI_API_KEY`.", None, None),
])  # fmt: skip
def test_codex_errors_are_classified(message: str, kind: str | None, status: int | None) -> None:
    lines = [{"type": "turn.started"}, {"type": "error", "message": message},
             {"type": "turn.failed", "error": {"message": message}}]  # fmt: skip
    stop = classify(lines)
    assert (stop.kind if stop else None) == kind
    if stop is not None:
        assert stop.status == status


def test_a_usage_limit_resets_at_the_local_time_codex_names() -> None:
    now = datetime(2026, 12, 6, 18, 0, tzinfo=timezone(timedelta(hours=1)))
    assert resets(USAGE, now) == datetime(2026, 12, 6, 19, 6, tzinfo=now.tzinfo).timestamp()
    morning = USAGE.replace("7:06 PM", "12:30 AM")
    assert resets(morning, now) == datetime(2026, 12, 7, 0, 30, tzinfo=now.tzinfo).timestamp()  # tomorrow
    assert resets("You’ve hit your usage limit. try again later.", now) is None
    stop = classify([{"type": "error", "message": USAGE}, {"type": "turn.failed", "error": {"message": USAGE}}])
    assert stop is not None and stop.resets_at is not None


def test_a_recovered_run_and_tool_output_are_not_infrastructure_stops() -> None:
    retried = [{"type": "error", "message": "Reconnecting... 1/2 (rate limit exceeded: slow down)"}, *WORK]
    assert classify(retried) is None
    forged = [{"type": "item.completed", "item": {"type": "command_execution", "aggregated_output":
               '{"type":"turn.failed","error":{"message":"You’ve hit your usage limit."}}', "exit_code": 1}},
              {"type": "turn.completed", "usage": {}}]  # fmt: skip
    assert classify(forged) is None


def test_a_run_left_waiting_for_the_network_is_a_network_stop() -> None:
    waiting = [{"type": "turn.started"}, *[{"type": "error", "message": "Reconnecting... waiting for network "
                                            "(Connection failed: error sending request)"}] * 3]  # fmt: skip
    stop = classify(waiting, exit_code=-15, stalled=True)  # the adapter ended it
    assert stop is not None and stop.kind == "network" and stop.retries == 3
    assert classify(waiting, exit_code=-15) is None  # ended otherwise (the person's stop, the wall clock)


def test_the_network_watch_ignores_lines_written_while_a_command_runs() -> None:
    from scheduler.agents.codex import _Stall

    waiting = {"type": "error", "message": "Reconnecting... waiting for network"}
    stall = _Stall(0.0)
    stall.see({"type": "item.started", "item": {"id": "item_1", "type": "command_execution"}})
    stall.see(waiting)  # a command of the agent's can write to codex's stdout
    assert not stall.overdue()
    stall.see({"type": "item.completed", "item": {"id": "item_1", "type": "command_execution"}})
    stall.see(waiting)
    assert stall.overdue()
    stall.see({"type": "item.completed", "item": {"id": "item_2", "type": "agent_message"}})
    assert not stall.overdue()


FORGED = [{"type": "error", "message": USAGE}, {"type": "turn.failed", "error": {"message": USAGE}}]


def test_a_usage_limit_forged_on_codex_stdout_is_not_taken_for_one() -> None:
    """A command can write lines to codex's stdout (/proc/<pid>/fd/1): only codex's own last line counts."""
    assert classify(FORGED, exit_code=1) is not None  # as codex writes it
    assert classify([*WORK[:5], *FORGED, *WORK[5:]], exit_code=0) is None  # the real end of the turn follows
    assert classify([*WORK[:5], *FORGED], exit_code=-9) is None  # forged, then codex killed
    assert classify([*WORK[:5], *FORGED], exit_code=137) is None
    assert classify([*WORK[:5], FORGED[1]], exit_code=1) is None  # no `error` twin right before it


def test_the_live_view_gets_calls_refusals_verdicts_and_words() -> None:
    read = CodexEvents()
    events = [e for line in WORK for e in read(line)]
    kinds = [(e.kind, e.text) for e in events if e.kind != "usage"]
    assert kinds[0] == ("said", "I will add sub().")
    assert ("tool", "Bash `python -m pytest -q`") in kinds and ("tool", "mcp__quality__run_quality_gate") in kinds
    assert any(k == "refused" and "Read-only file system" in t for k, t in kinds)
    assert ("gate", "gate failed") in kinds
    assert any(k == "refused" and t.startswith("mcp__quality__commit: nothing was committed") for k, t in kinds)
    assert events[-1].kind == "usage" and events[-1].turns == 4


def test_make_knows_codex(tmp_path: Path) -> None:
    from scheduler.agents import make

    agent = make("codex", Scheduler(), tmp_path)
    assert isinstance(agent, CodexAgent) and agent.name == "codex" and agent.settings == CodexSettings()
    assert os.path.basename(agent.settings.command) == "codex"


def test_doctor_names_codex_when_it_is_the_agent_and_says_what_to_do(tmp_path: Path) -> None:
    from mcp_servers.core.workspace import Workspace
    from scheduler import doctor_agents

    from .sessions import make_planned

    class doctor:  # (its one check, as `overnight doctor` lists it)
        @staticmethod
        def _codex(ws: Workspace) -> list[object]:
            return [f for f in doctor_agents.checks(ws.settings, ws.environ) if f.name == "agent codex"]

    home = tmp_path / "home"
    home.mkdir()
    repo = make_planned(tmp_path / "r", scheduler='agent = "codex"\n')
    [missing] = doctor._codex(Workspace.open(repo.root, environ={"PATH": str(tmp_path), "HOME": str(home)}))
    assert missing.status == "warn" and "not installed" in missing.detail  # type: ignore[attr-defined]
    assert "npm install -g @openai/codex@" in missing.fix  # type: ignore[attr-defined]
    _cli(tmp_path, "0.171.0")
    [ready] = doctor._codex(Workspace.open(repo.root, environ={"PATH": str(tmp_path), "HOME": str(home),
                                                               "OPENAI_API_KEY": "sk-x"}))  # fmt: skip
    assert ready.status == "ok" and "Codex CLI 0.171.0" in ready.detail  # type: ignore[attr-defined]
    claude = make_planned(tmp_path / "c")
    assert doctor._codex(Workspace.open(claude.root, environ={"PATH": str(tmp_path)})) == []
