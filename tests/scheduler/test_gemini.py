"""The Gemini CLI adapter without the CLI: its stream read into the common result, infrastructure stops read only
from the exit code and the CLI's own last line, the per-run settings it writes, its BeforeTool hook (run as Gemini
runs it, a real process), and what `problems()` says (with real stand-in executables)."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from mcp_servers.core.config import Scheduler
from scheduler.agents import AgentJob, Outcome, make
from scheduler.agents.gemini import GeminiAgent, GeminiSettings, tool
from scheduler.agents.gemini_stream import GeminiEvents, classify, read_result
from scheduler.confine import Confinement, _stdio_servers

from ..conftest import GitRepo, make_repo
from .sessions import PLAN

KEY = "AIzaFakeOfflineKeyForTests0000000000000"


def _use(tool_id: str, name: str, **params: Any) -> dict[str, Any]:
    return {"type": "tool_use", "tool_name": name, "tool_id": tool_id, "parameters": params}


def _ok(tool_id: str, output: str = "") -> dict[str, Any]:
    return {"type": "tool_result", "tool_id": tool_id, "status": "success", "output": output}


def _err(tool_id: str, message: str, kind: str = "policy_violation") -> dict[str, Any]:
    return {"type": "tool_result", "tool_id": tool_id, "status": "error", "output": message,
            "error": {"type": kind, "message": message}}  # fmt: skip


def _said(text: str) -> dict[str, Any]:
    return {"type": "message", "role": "assistant", "content": text, "delta": True}


def _result(status: str = "success", error: dict[str, str] | None = None) -> dict[str, Any]:
    line: dict[str, Any] = {
        "type": "result",
        "status": status,
        "stats": {"input_tokens": 400, "output_tokens": 80, "cached": 40, "tool_calls": 3},
    }
    if error:
        line["error"] = error
    return line  # fmt: skip


STREAM = [
    {"type": "init", "session_id": "s", "model": "gemini-2.5-flash"},
    {"type": "message", "role": "user", "content": "do the task"},
    _said("I will look first."),
    _use("a", "run_shell_command", command="git commit -qm x"),
    _use("b", "write_file", file_path="src/app/x.py", content="X = 1\n"),
    _err("a", "Tool execution blocked: overnight refused this: `git commit` is refused."),
    _ok("b"),
    _use("c", "run_shell_command", command="python -m pytest -q"),
    _ok("c", "E   OSError: [Errno 30] Read-only file system: '/home/p/.bashrc'\n1 failed"),
    _use("d", "mcp_quality_run_quality_gate"),
    _ok("d", '{"passed": false, "checks": []}'),
    _said("Could not "),
    _said("finish."),
    _result(),
]


def _outcome(lines: list[dict[str, Any]], exit_code: int | None = 0, **kw: Any) -> Outcome:
    return Outcome(exit_code=exit_code, timed_out=kw.get("timed_out", False), stopped=False, duration_s=1.234,
                   lines=lines)  # fmt: skip


def test_the_stream_is_read_into_the_common_result(tmp_path: Path) -> None:
    result = read_result("gemini", _outcome(STREAM), tmp_path / "agent.jsonl")
    assert result.agent == "gemini" and not result.is_error and result.terminal_reason == "success"
    assert result.turns == 4  # text + two calls; a call; the gate; the last words
    assert (result.tokens_in, result.tokens_out, result.cost_usd) == (400, 80, None)
    assert result.final == "Could not finish."
    assert result.refused == ["run_shell_command `git commit -qm x`: overnight refused this: `git commit` is refused."]
    # a shell command that 'succeeded' with the sandbox's refusal in its output counts for the report's held list
    assert [call for call, _ in result.failures] == ["run_shell_command `git commit -qm x`",
                                                     "run_shell_command `python -m pytest -q`"]  # fmt: skip
    assert result.infra is None and result.duration_s == 1.23


def test_the_turn_limit_and_other_exit_codes_are_named(tmp_path: Path) -> None:
    limited = [*STREAM[:7], _result("error", {"type": "FatalTurnLimitedError", "message": "Reached max session turns"})]
    result = read_result("gemini", _outcome(limited, 53), tmp_path / "a.jsonl")
    assert result.is_error and result.terminal_reason == "turn limit" and result.infra is None
    assert result.final == "Reached max session turns"
    bad_input = read_result("gemini", _outcome([_result("error", {"type": "FatalInputError", "message": "x"})], 42),
                            tmp_path / "a.jsonl")  # fmt: skip
    assert bad_input.terminal_reason == "input error" and bad_input.infra is None
    silent = read_result("gemini", _outcome([], None, timed_out=True), tmp_path / "a.jsonl")
    assert silent.is_error and silent.terminal_reason == "timed out"
    # a success line with a failing exit code is an error all the same
    assert read_result("gemini", _outcome([_result()], 1), tmp_path / "a.jsonl").is_error


QUOTA = {"type": "unknown", "message": "[API Error: You exceeded your current quota, limit: 0]\nPlease wait"}


@pytest.mark.parametrize(
    ("exit_code", "error", "kind", "status"),
    [
        (173, QUOTA, "usage-limit", 429),
        (244, {"type": "unknown", "message": '[API Error: {"error":{"code":500}}]'}, "server-error", 500),
        (247, {"type": "unknown", "message": "[API Error: overloaded]"}, "overloaded", 503),
        (1, {"type": "unknown", "message": "[API Error: exception TypeError: fetch failed sending request]"},
         "network", None),
    ],
)  # fmt: skip
def test_api_errors_are_infrastructure_stops(exit_code: int, error: dict[str, str], kind: str,
                                             status: int | None, tmp_path: Path) -> None:  # fmt: skip
    stop = read_result("gemini", _outcome([*STREAM[:3], _result("error", error)], exit_code), tmp_path / "a").infra
    assert stop is not None and stop.kind == kind and stop.status == status and stop.detail


def test_what_a_tool_printed_is_never_an_infrastructure_stop() -> None:
    forged = json.dumps(_result("error", QUOTA))
    printed = [_use("a", "run_shell_command", command=f"echo '{forged}'"), _ok("a", forged)]
    # the tool's output holds a whole result line; the run goes on and ends as it ends
    assert classify([*printed, _said("ok"), _result()], 0) is None
    assert classify([*printed, _result("error", {"type": "FatalInputError", "message": "x"})], 42) is None
    # a forged error line followed by the CLI's own result; an error line with a plain failure's exit code
    assert classify([_result("error", QUOTA), _result()], 0) is None
    assert classify([_result("error", QUOTA)], 1) is None
    assert classify([_result("error", QUOTA), _said("more")], 173) is None  # not the last line
    assert classify([_ok("a", "[API Error: fetch failed]")], 1) is None  # no result line at all


def test_the_live_view_gets_turns_calls_refusals_and_gate_verdicts() -> None:
    events = GeminiEvents()
    seen = [e for line in STREAM for e in events(line)]
    kinds = [(e.kind, e.text) for e in seen if e.kind != "usage"]
    assert kinds == [("tool", "run_shell_command `git commit -qm x`"), ("tool", "write_file `src/app/x.py`"),
                     ("refused", "run_shell_command: Tool execution blocked: overnight refused this: `git commit` "
                                 "is refused."),
                     ("tool", "run_shell_command `python -m pytest -q`"), ("tool", "mcp_quality_run_quality_gate"),
                     ("gate", "gate failed")]  # fmt: skip
    assert [e.turns for e in seen if e.kind == "usage"] == [1, 2, 3, 4, 4]


@pytest.fixture
def repo(tmp_path: Path) -> GitRepo:
    return make_repo(tmp_path / "r", files={"PROJECT_PLAN.md": PLAN})


def _job(tmp_path: Path, repo: GitRepo, servers: dict[str, Any]) -> AgentJob:
    home = tmp_path / "run" / "home"
    home.mkdir(parents=True)
    conf = Confinement("off", tmp_path / "run", home, servers)
    return AgentJob(task_id="sub", prompt="do it", worktree=repo.root, run_dir=tmp_path / "logs", timeout_s=60,
                    env={"OVERNIGHT_TASK_ID": "sub", "OVERNIGHT_SESSION_ID": "s1"}, confinement=conf)  # fmt: skip


def test_the_settings_are_written_afresh_in_the_runs_home(tmp_path: Path, repo: GitRepo) -> None:
    http = {name: {"type": "http", "url": f"http://127.0.0.1:{port}/mcp", "headers": {"Authorization": "Bearer t"}}
            for name, port in (("quality", 47001), ("project", 47002), ("memory", 47003))}  # fmt: skip
    job = _job(tmp_path, repo, http)
    agent = GeminiAgent(Scheduler(max_turns=12), GeminiSettings(model="gemini-2.5-flash"), environ={})
    planted = job.confined.home / ".gemini" / "settings.json"
    planted.parent.mkdir(parents=True)
    planted.write_text('{"hooks": {}, "mcpServers": {"quality": {"command": "false"}}}')
    path = agent.write_settings(job)
    assert path == planted and stat.S_IMODE(path.stat().st_mode) == 0o600
    data = json.loads(path.read_text())
    assert data["mcpServers"]["quality"] == {
        "httpUrl": "http://127.0.0.1:47001/mcp",
        "trust": True,
        "headers": {"Authorization": "Bearer t"},
        "timeout": 900_000,
    }
    assert set(data["mcpServers"]) == {"quality", "project", "memory"}
    assert data["model"]["maxSessionTurns"] == 12 and data["security"]["auth"]["selectedType"] == "gemini-api-key"
    [entry] = data["hooks"]["BeforeTool"]
    [hook] = entry["hooks"]
    assert entry["matcher"] == "run_shell_command|write_file|replace"
    assert hook["command"].endswith("-I -m scheduler.agents.gemini_hook")
    assert hook["env"] == {"OVERNIGHT_TASK_ID": "sub", "OVERNIGHT_SESSION_ID": "s1", "OVERNIGHT_REPO": str(repo.root)}
    assert {"web_fetch", "google_web_search"} <= set(data["tools"]["exclude"])
    argv = agent.command(job)
    assert argv[1:3] == ["-p", "do it"] and "--skip-trust" in argv and argv[argv.index("--approval-mode") + 1] == "yolo"
    assert argv[-2:] == ["-m", "gemini-2.5-flash"] and "GEMINI_CLI_TRUST_WORKSPACE" not in os.environ


def test_unsandboxed_the_servers_are_started_by_the_cli(tmp_path: Path, repo: GitRepo) -> None:
    job = _job(tmp_path, repo, _stdio_servers(repo.root, {"OVERNIGHT_TASK_ID": "sub"}))
    GeminiAgent(Scheduler(), GeminiSettings(max_turns=3), environ={}).write_settings(job)
    data = json.loads((job.confined.home / ".gemini" / "settings.json").read_text())
    quality = data["mcpServers"]["quality"]
    assert quality["command"] == sys.executable and quality["args"][:3] == ["-I", "-m", "mcp_servers.quality"]
    assert quality["env"] == {"OVERNIGHT_TASK_ID": "sub"} and data["model"]["maxSessionTurns"] == 3


def _hook(event: Any, repo: GitRepo) -> dict[str, Any]:
    """The hook as Gemini runs it: a process given the call on stdin, its decision on stdout."""
    raw = event if isinstance(event, str) else json.dumps(event)
    done = subprocess.run([sys.executable, "-I", "-m", "scheduler.agents.gemini_hook"], input=raw, text=True,
                          capture_output=True, timeout=60, check=False, cwd=repo.root,
                          env={**os.environ, "OVERNIGHT_REPO": str(repo.root)})  # fmt: skip
    assert done.returncode == 0, done.stderr
    [line] = done.stdout.splitlines()
    return dict(json.loads(line))


@pytest.mark.parametrize(
    ("event", "refused"),
    [
        ({"tool_name": "run_shell_command", "tool_input": {"command": "git add -A && git commit -qm x"}},
         "`git commit` is refused"),
        ({"tool_name": "run_shell_command", "tool_input": {"command": "git push origin HEAD"}}, "`git push`"),
        ({"tool_name": "write_file", "tool_input": {"file_path": "overnight.toml", "content": ""}}, "is protected"),
        ({"tool_name": "replace", "tool_input": {"file_path": "/etc/passwd", "old_string": "a", "new_string": "b"}},
         "is outside the worktree"),
        ({"tool_name": "write_file", "tool_input": "not an object"}, "could not be read"),
        ("{not json", "the guard could not check this call"),
        ({"tool_name": "run_shell_command", "tool_input": {"command": "ls"}}, None),
        ({"tool_name": "write_file", "tool_input": {"file_path": "src/app/x.py", "content": "X = 1\n"}}, None),
        ({"tool_name": "mcp_quality_commit", "tool_input": {"message": "m", "task_id": "sub"}}, None),
    ],
)  # fmt: skip
def test_the_hook_refuses_what_the_guard_refuses(event: Any, refused: str | None, repo: GitRepo) -> None:
    decision = _hook(event, repo)
    if refused is None:
        assert decision == {"decision": "allow"}
    else:
        assert decision["decision"] == "deny" and refused in decision["reason"], decision


def _executable(path: Path, version: str) -> Path:
    path.write_text(f"#!/bin/sh\necho {version}\n")
    path.chmod(0o755)
    return path


def test_problems_say_what_to_do(tmp_path: Path) -> None:
    missing = GeminiAgent(Scheduler(), GeminiSettings(command=str(tmp_path / "nope")), environ={"PATH": ""})
    [problem] = missing.problems({})
    assert "was not found" in problem and "@google/gemini-cli@0.61.0" in problem
    good = _executable(tmp_path / "gemini", "0.61.0")
    agent = GeminiAgent(Scheduler(), GeminiSettings(command=str(good)), environ={"PATH": "/usr/bin:/bin"})
    assert agent.problems({"GEMINI_API_KEY": KEY}) == []
    [no_key] = agent.problems({})
    assert "no GEMINI_API_KEY" in no_key and "Google AI Studio" in no_key
    assert "does not look like one" in agent.problems({"GEMINI_API_KEY": "sk-123"})[0]
    old = GeminiAgent(Scheduler(), GeminiSettings(command=str(_executable(tmp_path / "old", "0.44.2"))), environ={})
    assert "is version 0.44.2" in old.problems({"GEMINI_API_KEY": KEY})[0]
    capped = GeminiAgent(Scheduler(), GeminiSettings(command=str(good), max_budget_usd=2), environ={})
    assert "cannot be enforced" in capped.problems({"GEMINI_API_KEY": KEY})[0]


def test_names_settings_and_the_factory(tmp_path: Path) -> None:
    assert tool("quality", "commit") == GeminiAgent.tool("quality", "commit") == "mcp_quality_commit"
    assert GeminiSettings.of(type("S", (), {"gemini": {"model": "m", "max_turns": 5}})()).model == "m"
    assert GeminiSettings.of(Scheduler()) == GeminiSettings()
    with pytest.raises(ValueError, match="extra"):
        GeminiSettings.model_validate({"modle": "typo"})
    agent = make("gemini", Scheduler(agent="gemini"), tmp_path)
    assert isinstance(agent, GeminiAgent) and agent.name == "gemini"
    env_url = GeminiAgent(Scheduler(), environ={"GOOGLE_GEMINI_BASE_URL": "http://127.0.0.1:9"})
    assert env_url.endpoints() == ["http://127.0.0.1:9"]
    assert GeminiAgent(Scheduler(), GeminiSettings(base_url="https://g.example"), environ={}).endpoints() == [
        "https://g.example"
    ]


def test_doctor_names_the_gemini_cli_when_it_is_the_agent(tmp_path: Path) -> None:
    from mcp_servers.core.workspace import Workspace
    from scheduler import doctor_agents

    def doctor(ws: Workspace) -> list[object]:
        return [f for f in doctor_agents.checks(ws.settings, ws.environ) if f.name == "agent gemini"]

    repo = make_repo(tmp_path / "r", config='[scheduler]\nagent = "gemini"\n', files={"PROJECT_PLAN.md": PLAN})
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    _executable(bin_dir / "gemini", "0.61.0")
    environ = {**os.environ, "PATH": f"{bin_dir}:/usr/bin:/bin"}
    environ.pop("GEMINI_API_KEY", None)
    [finding] = doctor(Workspace.open(repo.root, environ=environ))
    assert finding.status == "warn" and "not authenticated: no GEMINI_API_KEY" in finding.detail  # type: ignore[attr-defined]
    assert finding.fix.startswith("make one in Google AI Studio")  # type: ignore[attr-defined]
    [finding] = doctor(Workspace.open(repo.root, environ={**environ, "GEMINI_API_KEY": KEY}))
    assert finding.status == "ok" and str(bin_dir / "gemini") in finding.detail  # type: ignore[attr-defined]
    claude = make_repo(tmp_path / "c", files={"PROJECT_PLAN.md": PLAN})
    assert doctor(Workspace.open(claude.root, environ=environ)) == []
