"""A fallback chain with the real `claude` CLI (issue 13): the scripted model answers Claude Code with a usage-limit
rejection, so the task goes to the next agent of `[scheduler] agents`, here the real Codex CLI, which does it through
the three servers. The report says which agent did it, at what cost, and that Claude Code was stopped by the usage
limit; the task was not set aside, and nothing of the person's changed. (The hand-over is the same whatever the next
agent: tests/scheduler/test_chain.py; the command agent's own gated commit: tests/scheduler/test_command_agent.py.)"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from mcp_servers.core import memory
from mcp_servers.core.workspace import Workspace
from scheduler import report, runner
from scheduler.agents.claude import ClaudeAgent

from ..scheduler.sessions import Person, make_planned
from ..support.fake_anthropic import FakeAnthropic
from .test_infra_claude import _limit, _not_counted

pytestmark = pytest.mark.e2e


def test_a_usage_limit_of_claude_code_hands_the_task_to_codex(
    tmp_path: Path, claude_bin: Path, fake_model: FakeAnthropic, offline_env: dict[str, str]
) -> None:
    """The issue's own case: `agents = ["claude", "codex"]`, Claude Code at its usage limit, the real Codex CLI
    (its `[agents.codex]` settings: the scripted Responses API) does the task."""
    from ..support.fake_openai import FakeOpenAI
    from .conftest import _client
    from .test_scheduler_codex import done_properly

    codex = _client("codex")
    with FakeOpenAI() as openai:
        repo = make_planned(tmp_path / "r", scheduler=f'claude_command = "{claude_bin}"\nmax_tasks = 1\n'
                            'agents = ["claude", "codex"]\n\n[agents.codex]\n'
                            f'command = "{codex}"\nbase_url = "{openai.url}"\nmodel = "fake-model"\n'
                            "request_max_retries = 0\n")  # fmt: skip
        person = Person.of(repo)
        env = {k: v for k, v in offline_env.items() if k != "ANTHROPIC_API_KEY"}
        env["CLAUDE_CODE_OAUTH_TOKEN"] = "sk-ant-oat01-fake-offline-token"
        fake_model.set_script([_limit(7200)])
        openai.set_script(done_properly())
        ws = Workspace.open(repo.root, environ=dict(os.environ))
        said: list[str] = []
        record = runner.Runner(ws, ClaudeAgent(ws.settings.scheduler, environ=env), say=said.append).run()
        assert record is not None and record.outcome == "completed", said
        assert openai.remaining == 0 and fake_model.remaining == 0
    assert record.agents == ["claude", "codex"] and record.waits == []  # (two hours to the reset: not waited for)
    [task] = record.tasks
    assert task.outcome == "passed" and task.attempt == 1, (task.reasons, said)
    assert task.agent is not None and task.agent.agent == "codex", (task.reasons, said)
    assert "Overnight-Receipt:" in repo.git("log", "-1", "--format=%B", task.commits[0])
    [stop] = record.infra
    assert stop.agent == "claude" and stop.stop.kind == "usage-limit" and stop.stop.limit_type == "five_hour"
    assert stop.action.startswith("handed the task to agent codex"), stop.action
    assert [(r.agent, r.outcome) for r in task.runs] == [("claude", "infra-stop"), ("codex", "passed")]
    text = (ws.state_dir / "reports" / f"{record.id}.md").read_text()
    assert "agents `claude` → `codex`" in text and "→ `codex` passed" in text
    assert "Cost by agent: `claude` $0.00, `codex` $0.00" in text, text  # (codex's stream gives tokens, no cost)
    assert "- Runs: `claude` stopped by the API (the usage limit was reached (HTTP 429)" in text, text
    assert report.load(ws.state_dir).tasks[0].agent.agent == "codex"  # type: ignore[union-attr]
    assert memory.get_session(ws, record.id).record["agents"] == {"sub": "codex"}
    _not_counted(repo)
    person.assert_untouched(repo)
