"""The agent registry (issue 13): adapters by name, their settings from `[agents.<name>]` over the `[scheduler]`
keys that predate them, their tool names in the prompt, their doctor lines, and an agent added by one module and
one registry entry (this module registers itself as the agent `spelled`, which names tools as Gemini CLI does)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mcp_servers.core import config
from mcp_servers.core.errors import ConfigError, UsageError
from mcp_servers.core.workspace import Workspace
from scheduler import agents, doctor_agents, prompt, runner
from scheduler.agents import registry
from scheduler.agents.adapter import Adapter, Built
from scheduler.agents.claude import GUARD, ClaudeAgent, ClaudeSettings, settings
from scheduler.agents.replay import ReplayAgent, ReplaySettings
from scheduler.cli import main

from .sessions import HANG, Person, make_planned, task_script, write_script

LEGACY = b"""
[scheduler]
claude_command = "/opt/claude/bin/claude"
model = "claude-sonnet-4-5"
fallback_model = "claude-haiku-4-5"
max_turns = 12
max_budget_usd = 1.5
task_timeout_min = 7
replay_script = "drill.toml"
"""


def _settings(text: bytes) -> config.Settings:
    return config.parse(text, Path("overnight.toml"))


# -- an agent added by one module (this one) and one registry entry -----------------------------------------------


class SpelledAgent(ReplayAgent):
    """The replay agent under another name, whose CLI names MCP tools `mcp_<server>_<tool>`."""

    name = "spelled"


def _build(own: ReplaySettings, built: Built) -> SpelledAgent:
    agent = SpelledAgent((built.root / own.script).resolve() if built.script is None else built.script)
    agent.timeout_min = own.timeout_min
    return agent


ADAPTER = Adapter(name="spelled", title="a test agent", settings=ReplaySettings, build=_build,
                  tool=lambda server, name: f"mcp_{server}_{name}")  # fmt: skip


@pytest.fixture
def spelled(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setitem(registry._MODULES, "spelled", __name__)
    return "spelled"


# -- the registry -------------------------------------------------------------------------------------------------


def test_the_registry_lists_its_agents_and_refuses_an_unknown_one_naming_them() -> None:
    assert registry.names()[:2] == ["claude", "replay"]
    assert registry.get("claude").settings is ClaudeSettings and registry.get("replay").title.startswith("replay")
    with pytest.raises(UsageError, match=r"unknown agent 'nope': the registered agents are claude, replay"):
        registry.get("nope")
    with pytest.raises(UsageError, match="the registered agents are claude, replay"):
        agents.make("nope", config.DEFAULTS.scheduler, Path.cwd())


def test_an_older_overnight_toml_gives_each_agent_its_settings_unchanged() -> None:
    found = _settings(LEGACY)
    claude = registry.settings_for("claude", found.scheduler, found.agents)
    assert claude == ClaudeSettings(command="/opt/claude/bin/claude", model="claude-sonnet-4-5",
                                    fallback_model="claude-haiku-4-5", max_turns=12, max_budget_usd=1.5,
                                    timeout_min=7)  # fmt: skip
    replay = registry.settings_for("replay", found.scheduler, found.agents)
    assert isinstance(replay, ReplaySettings)
    assert (replay.script, replay.max_turns, replay.timeout_min) == ("drill.toml", 12, 7)
    assert replay.model == "" and replay.command == ""  # Claude's CLI and model are Claude's alone
    defaults = registry.settings_for("claude", config.DEFAULTS.scheduler)
    assert (defaults.command, defaults.max_turns, defaults.timeout_min) == ("claude", 80, 30)


def test_an_agents_table_wins_over_the_scheduler_keys() -> None:
    found = _settings(LEGACY + b'\n[agents.claude]\ncommand = "claude-next"\nmax_turns = 40\ntimeout_min = 2.5\n')
    agent = agents.make("claude", found.scheduler, Path.cwd(), tables=found.agents)
    assert isinstance(agent, ClaudeAgent)
    own = agent.config
    assert (own.command, own.max_turns, own.model) == ("claude-next", 40, "claude-sonnet-4-5")
    assert registry.timeout_min(agent, found.scheduler) == 2.5
    assert registry.timeout_min(ReplayAgent(Path("x.toml")), found.scheduler) == 7  # no own timeout: [scheduler]'s


@pytest.mark.parametrize(
    ("table", "said"),
    [
        (b"[agents.claude]\nmax_turnz = 3\n", "[agents.claude] key `max_turnz`: unknown key; [agents.claude] takes "
         "command, model, max_turns, max_budget_usd, timeout_min, fallback_model"),
        (b"[agents.claude]\nmax_turns = 0\n", "[agents.claude] key `max_turns`: Input should be greater than or equal "
         "to 1 (got 0)"),
        (b'[agents.replay]\nscript = 3\n', "[agents.replay] key `script`: Input should be a valid string (got 3)"),
    ],
)  # fmt: skip
def test_invalid_agent_settings_stop_the_session_before_it_starts(table: bytes, said: str) -> None:
    found = _settings(table)
    with pytest.raises(ConfigError) as caught:  # whichever agent runs: a wrong table is never silently ignored
        agents.make("claude", found.scheduler, Path.cwd(), tables=found.agents)
    assert said in str(caught.value)
    assert registry.problems(found) == [str(caught.value)]


def test_a_table_for_an_unregistered_agent_is_refused() -> None:
    found = _settings(b'[agents.codx]\nmodel = "gpt"\n')
    assert registry.configured(found) == ["claude", "codx"]
    with pytest.raises(UsageError, match="unknown agent 'codx'"):
        agents.make("claude", found.scheduler, Path.cwd(), tables=found.agents)
    with pytest.raises(ConfigError, match=r"agent.*should match pattern"):
        _settings(b'[scheduler]\nagent = "Claude Code"\n')


def test_the_replay_agent_needs_a_script_from_the_command_line_or_its_settings(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"`script` under \[agents.replay\]"):
        agents.make("replay", config.DEFAULTS.scheduler, tmp_path)
    found = _settings(b'[agents.replay]\nscript = "s.toml"\ntimeout_min = 4\n')
    agent = agents.make("replay", found.scheduler, tmp_path, tables=found.agents)
    assert isinstance(agent, ReplayAgent) and agent.script == (tmp_path / "s.toml").resolve()
    assert agent.timeout_min == 4
    given = agents.make("replay", found.scheduler, tmp_path, tmp_path / "other.toml", found.agents)
    assert isinstance(given, ReplayAgent) and given.script == (tmp_path / "other.toml").resolve()


# -- tool names ---------------------------------------------------------------------------------------------------


def test_each_adapter_names_the_tools_in_its_prompt(tmp_path: Path, spelled: str) -> None:
    assert registry.tool_names("claude")("quality", "commit") == "mcp__quality__commit"
    assert registry.tool_names("not-registered")("quality", "commit") == "mcp__quality__commit"
    assert registry.tool_names(spelled)("project", "complete_task") == "mcp_project_complete_task"
    agent = SpelledAgent(tmp_path / "s.toml")
    assert registry.tool_names(agent)("memory", "log_event") == "mcp_memory_log_event"  # by its name

    class Own(ReplayAgent):
        name = "claude"

        def tool(self, server: str, name: str) -> str:
            return f"{server}.{name}"

    assert registry.tool_names(Own(tmp_path / "s.toml"))("quality", "commit") == "quality.commit"  # its own wins


def test_a_session_prompts_its_agent_with_its_own_tool_names_and_timeout(tmp_path: Path, spelled: str) -> None:
    """An agent added by one module and one registry entry runs a session: its prompt names the tools as its CLI
    does, and its own `timeout_min` (here 3 s, where [scheduler] gives 30 min) ends a hanging run."""
    script = write_script(tmp_path / "hang.toml", task_script("sub", HANG))
    repo = make_planned(tmp_path / "r", scheduler=f'max_tasks = 1\nagent = "{spelled}"\n[agents.{spelled}]\n'
                        f'script = "{script}"\ntimeout_min = 0.05\n')  # fmt: skip
    person = Person.of(repo)
    ws = Workspace.open(repo.root, environ=dict(os.environ))
    agent = agents.make(ws.settings.scheduler.agent, ws.settings.scheduler, repo.root, None, ws.settings.agents)
    assert isinstance(agent, SpelledAgent)
    record = runner.Runner(ws, agent, say=lambda _line: None).run()
    assert record is not None
    [task] = record.tasks
    assert task.outcome == "timed-out" and task.agent is not None and task.agent.agent == "spelled"
    [asked] = (ws.state_dir / "runs" / record.id).glob("sub-*/prompt.md")
    text = asked.read_text()
    assert "`mcp_quality_run_quality_gate`" in text and "`mcp_quality_commit`" in text
    assert "`mcp_project_complete_task`" in text and "mcp__" not in text
    person.assert_untouched(repo)


def test_the_prompt_names_claude_codes_tools_by_default(tmp_path: Path) -> None:
    from mcp_servers.core.queue_models import TaskDetail

    task = TaskDetail.model_validate(
        {
            "id": "sub",
            "title": "Add sub()",
            "section": "ready",
            "state": "ready",
            "priority": "P1",
            "depends_on": [],
            "files": ["src/app/*.py"],
        }
    )
    text = prompt.build(task, config.DEFAULTS, [], [])
    assert "`mcp__quality__commit`" in text and "`mcp__memory__log_event`" in text


# -- the guard, shared; Claude Code's hook I/O in its own module --------------------------------------------------


def test_claude_codes_hook_runs_the_shared_guard(tmp_path: Path) -> None:
    hook = settings()["hooks"]["PreToolUse"][0]["hooks"][0]["command"]
    assert hook.endswith(f"-I -m {GUARD}") and GUARD == "scheduler.guard.claude"
    event = {"tool_name": "Bash", "tool_input": {"command": "git commit -qm x"}}
    done = subprocess.run([sys.executable, "-I", "-m", GUARD], input=json.dumps(event), capture_output=True,
                          text=True, timeout=60, check=False, cwd=tmp_path)  # fmt: skip
    assert done.returncode == 2 and "`git commit` is refused" in done.stderr


# -- doctor -------------------------------------------------------------------------------------------------------


def _fake_cli(folder: Path, version: str = "2.1.330 (Claude Code)") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    exe = folder / "claude"
    exe.write_text(f"#!/bin/sh\necho '{version}'\n")
    exe.chmod(0o755)
    return exe


def test_doctor_names_each_configured_agent_its_cli_login_and_what_to_do(tmp_path: Path) -> None:
    found = _settings(b'[agents.replay]\nscript = "drill.toml"\n[agents.nope]\nmodel = "x"\n')
    home = tmp_path / "home"
    home.mkdir()
    bare = {"PATH": str(tmp_path / "empty"), "HOME": str(home)}
    lines = {f.name: f for f in doctor_agents.checks(found, bare)}
    assert list(lines) == ["agent claude", "agent replay", "agent nope"]
    missing = lines["agent claude"]
    assert missing.status == "warn" and "Claude Code (sessions use it): not installed" in missing.detail
    assert "npm install -g @anthropic-ai/claude-code" in missing.fix
    assert lines["agent replay"].status == "ok" and "plays drill.toml" in lines["agent replay"].detail
    assert lines["agent nope"].status == "error" and "registered agents: claude, replay" in lines["agent nope"].fix

    path = {**bare, "PATH": str(_fake_cli(tmp_path / "bin").parent)}
    out = doctor_agents.checks(config.DEFAULTS, path)[0]
    assert out.status == "warn" and "2.1.330 (Claude Code); not authenticated" in out.detail
    assert "claude setup-token" in out.fix
    keyed = doctor_agents.checks(config.DEFAULTS, {**path, "ANTHROPIC_API_KEY": "sk-test"})[0]
    assert keyed.status == "ok"
    assert keyed.detail == "Claude Code (sessions use it): 2.1.330 (Claude Code); authenticated"
    (home / ".claude").mkdir()
    (home / ".claude" / ".credentials.json").write_text("{}")
    assert doctor_agents.checks(config.DEFAULTS, path)[0].status == "ok"  # a subscription login


def test_overnight_doctor_and_run_refuse_an_unknown_agent(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    repo = make_planned(tmp_path / "r", scheduler='agent = "codx"\n')
    assert main(["-C", str(repo.root), "doctor", "--json"]) == 1
    findings = {f["name"]: f for f in json.loads(capsys.readouterr().out)["findings"]}
    assert findings["agent codx"]["status"] == "error"
    assert "unknown agent 'codx': the registered agents are claude, replay" in findings["agent codx"]["detail"]
    assert main(["-C", str(repo.root), "run", "--agent", "nope"]) == 2
    assert "unknown agent 'nope': the registered agents are claude, replay" in capsys.readouterr().err
