"""The command agent (issue 13): a real script as the agent, under the documented contract (docs/command-agent.md):
the prompt on stdin and in a file, the MCP configuration as a file, the OVERNIGHT_* variables, the exit code, and
a result file that is the command's word only."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from mcp_servers.core import config, memory
from mcp_servers.core.workspace import Workspace
from scheduler import agents, runner
from scheduler.agents import Outcome
from scheduler.agents.command import CommandAgent, CommandSettings, result_of

from .sessions import PASS, Person, make_planned

# A team's own agent: reads its prompt, then does the task through the three servers (the replay agent's steps,
# spoken over the MCP configuration it was given), and writes its result file.
AGENT = """
import json, os, sys, tomllib
from pathlib import Path

import anyio

from scheduler.agents.replay import _replay

prompt = sys.stdin.read()
assert prompt and prompt == Path(os.environ["OVERNIGHT_PROMPT_FILE"]).read_text(), "the prompt is on stdin"
assert sys.argv[1] == os.environ["OVERNIGHT_MCP_CONFIG"], "{mcp_config} is filled in"
assert Path.cwd() == Path(os.environ["OVERNIGHT_REPO"]), "it runs in its worktree"
seen = {k: os.environ.get(k, "") for k in ("OVERNIGHT_TASK_ID", "OVERNIGHT_SESSION_ID", "TEAM_TOKEN", "SECRET_KEY")}
print("agent saw", json.dumps(seen), flush=True)
steps = tomllib.loads(Path(sys.argv[2]).read_text())["step"]
servers = json.loads(Path(sys.argv[1]).read_text())["mcpServers"]
result = anyio.run(_replay, steps, os.environ["OVERNIGHT_TASK_ID"], servers)
Path(os.environ["OVERNIGHT_RESULT_FILE"]).write_text(json.dumps(
    {"turns": 6, "tokens_in": 1200, "tokens_out": 300, "cost_usd": 0.05, "summary": "sub() added"}))
sys.exit(0)
"""


def _agent(tmp_path: Path) -> Path:
    folder = tmp_path / "team-agent"
    folder.mkdir()
    (folder / "agent.py").write_text(AGENT)
    (folder / "steps.toml").write_text(PASS.format(name="sub").replace("[[task.step]]", "[[step]]"))
    return folder


def _config(folder: Path, extra: str = "") -> str:
    argv = [sys.executable, "-I", str(folder / "agent.py"), "{mcp_config}", str(folder / "steps.toml")]
    return (f'max_tasks = 1\nagent = "command"\n{extra}\n[agents.command]\nargv = {json.dumps(argv)}\n'
            f'env = ["TEAM_TOKEN"]\nreads = [{json.dumps(str(folder))}]\n')  # fmt: skip


def test_a_script_under_the_contract_makes_a_gated_commit(tmp_path: Path) -> None:
    folder = _agent(tmp_path)
    repo = make_planned(tmp_path / "r", scheduler=_config(folder))
    person = Person.of(repo)
    environ = {**os.environ, "TEAM_TOKEN": "t-123", "SECRET_KEY": "not for the agent"}
    ws = Workspace.open(repo.root, environ=environ)
    agent = agents.make("command", ws.settings.scheduler, repo.root, tables=ws.settings.agents)
    agent.environ = environ  # type: ignore[attr-defined]
    said: list[str] = []
    record = runner.Runner(ws, agent, say=said.append).run()
    assert record is not None and record.outcome == "completed", said
    [task] = record.tasks
    assert task.outcome == "passed", (task.reasons, said)
    assert "Overnight-Receipt:" in repo.git("log", "-1", "--format=%B", task.commits[0])
    assert task.agent is not None and task.agent.agent == "command" and task.agent.exit_code == 0
    assert (task.agent.turns, task.agent.cost_usd, task.agent.final) == (6, 0.05, "sub() added")
    assert record.cost_usd == 0.05
    log = Path(task.agent.log).read_text()
    seen = json.loads(log.split("agent saw ", 1)[1].splitlines()[0])
    # its own variables and the one it was given; nothing else of the person's
    assert seen == {"OVERNIGHT_TASK_ID": "sub", "OVERNIGHT_SESSION_ID": record.id, "TEAM_TOKEN": "t-123",
                    "SECRET_KEY": ""}  # fmt: skip
    person.assert_untouched(repo)
    detail = memory.get_session(Workspace.open(repo.root), record.id)
    assert detail.record["agents"] == {"sub": "command"}


def _outcome(code: int | None, timed_out: bool = False) -> Outcome:
    return Outcome(exit_code=code, timed_out=timed_out, stopped=False, duration_s=1.0, lines=[])


def _read(tmp_path: Path, data: object, code: int | None = 1, timed_out: bool = False) -> agents.AgentResult:
    path = tmp_path / "result.json"
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return result_of("command", _outcome(code, timed_out), tmp_path / "log", path)


def test_the_result_file_can_claim_a_stop_only_for_a_run_that_failed(tmp_path: Path) -> None:
    stop = {"infra": {"kind": "usage-limit", "resets_at": 2e9, "detail": "quota"}, "cost_usd": 0.2}
    failed = _read(tmp_path, stop, code=1)
    assert failed.infra is not None and failed.infra.kind == "usage-limit" and failed.infra.resets_at == 2e9
    assert failed.infra.detail == "the command said: quota" and failed.is_error and failed.cost_usd == 0.2
    done = _read(tmp_path, stop, code=0)  # a run that exited 0 was not stopped, whatever it says
    assert done.infra is None and not done.is_error and done.terminal_reason == "completed"
    assert _read(tmp_path, stop, code=None, timed_out=True).infra is None  # the wall clock ended it: not the API


def test_a_result_file_that_is_not_valid_is_ignored_and_said(tmp_path: Path) -> None:
    negative = _read(tmp_path, {"cost_usd": -5, "infra": {"kind": "usage-limit"}})  # no spend taken off
    assert negative.cost_usd is None and negative.infra is None
    assert negative.terminal_reason == "exit code 1 (its result file was ignored: cost_usd: Input should be " \
        "greater than or equal to 0)"  # fmt: skip
    unknown = _read(tmp_path, {"infra": {"kind": "weather"}})
    assert unknown.infra is None and "infra.kind" in (unknown.terminal_reason or "")
    assert "(its result file was ignored: the file: Invalid JSON" in (_read(tmp_path, "{").terminal_reason or "")
    assert "larger than 64 KB" in (_read(tmp_path, {"summary": "x" * 70000}).terminal_reason or "")
    (tmp_path / "secret").write_text('{"cost_usd": 1}')
    link = tmp_path / "link.json"
    link.symlink_to(tmp_path / "secret")
    linked = result_of("command", _outcome(1), tmp_path / "log", link)
    assert linked.cost_usd is None and "not a regular file" in (linked.terminal_reason or "")
    missing = result_of("command", _outcome(0), tmp_path / "log", tmp_path / "none.json")
    assert missing.terminal_reason == "completed" and not missing.is_error  # writing one is optional


def test_a_command_that_cannot_run_is_said_before_a_session(tmp_path: Path) -> None:
    def problems(command: dict[str, object]) -> list[str]:
        return CommandAgent(config.Scheduler(agent="command"), CommandSettings(**command), root=tmp_path).problems({})

    assert "set `argv` under [agents.command]" in problems({})[0]
    assert "{prompt} which is not filled in" in problems({"argv": ["x", "{prompt}"]})[0].replace(",", "")
    assert "`no-such-agent-cli` was not found" in problems({"argv": ["no-such-agent-cli"]})[0]
    assert "`bin/agent` was not found" in problems({"argv": ["bin/agent"]})[0]
    assert problems({"argv": [sys.executable, "{prompt_file}"]}) == []
    # a script of the repository runs from the session's worktree: your checkout is never made readable for it
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "agent").write_text("#!/bin/sh\n")
    (tmp_path / "bin" / "agent").chmod(0o755)
    in_repo = CommandAgent(config.Scheduler(), CommandSettings(argv=["bin/agent"], reads=["/opt/tool"]), root=tmp_path)
    assert in_repo.problems({}) == [] and in_repo.reads() == [Path("/opt/tool")]
    installed = CommandAgent(config.Scheduler(), CommandSettings(argv=[sys.executable]))
    assert installed.reads() == [Path(sys.executable).resolve().parent]
