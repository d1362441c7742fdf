"""The prompt per agent of a chain (issue 13), with the real CLIs: Claude Code at its usage limit hands the task to
the Gemini CLI, and the prompt the Gemini run gets (its `prompt.md`, and what the CLI sent the model) names the
servers' tools as Gemini offers them (`mcp_quality_commit`), while Claude Code's named them its way
(`mcp__quality__commit`)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from mcp_servers.core.workspace import Workspace
from scheduler import runner
from scheduler.agents.claude import ClaudeAgent

from ..scheduler.sessions import Person, make_planned
from ..support.fake_anthropic import FakeAnthropic
from ..support.fake_gemini import MODEL, FakeGemini
from .conftest import _client
from .test_infra_claude import _limit

pytestmark = pytest.mark.e2e


def test_a_task_handed_from_claude_to_gemini_gets_gemini_tool_names(
    tmp_path: Path,
    claude_bin: Path,
    fake_model: FakeAnthropic,
    offline_env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    gemini = _client("gemini")
    with FakeGemini(["I give up."]) as model:
        repo = make_planned(tmp_path / "r", scheduler=f'claude_command = "{claude_bin}"\nmax_tasks = 1\n'
                            'agents = ["claude", "gemini"]\n\n[agents.gemini]\n'
                            f'command = "{gemini}"\nbase_url = "{model.url}"\nmodel = "{MODEL}"\n'
                            "max_attempts = 1\n")  # fmt: skip
        person = Person.of(repo)
        env = {k: v for k, v in offline_env.items() if k != "ANTHROPIC_API_KEY"}
        env["CLAUDE_CODE_OAUTH_TOKEN"] = "sk-ant-oat01-fake-offline-token"
        fake_model.set_script([_limit(7200)])
        for key, value in model.env().items():  # (the Gemini CLI's key and base URL, as a person's env file gives)
            monkeypatch.setenv(key, value)
        ws = Workspace.open(repo.root, environ=dict(os.environ))
        said: list[str] = []
        record = runner.Runner(ws, ClaudeAgent(ws.settings.scheduler, environ=env), say=said.append).run()
        assert record is not None and model.remaining == 0, said
        sent = json.dumps([r.contents for r in model.requests if r.kind == "main"])
    [task] = record.tasks
    assert [(r.agent, r.outcome) for r in task.runs] == [("claude", "infra-stop"), ("gemini", "failed")], said
    claude_dir, gemini_dir = sorted(d for d in (ws.state_dir / "runs" / record.id).iterdir() if d.is_dir())
    claude, gemini_prompt = (d.joinpath("prompt.md").read_text() for d in (claude_dir, gemini_dir))
    assert "mcp__quality__commit" in claude and "mcp_quality_commit" not in claude
    assert "mcp_quality_commit" in gemini_prompt and "mcp__quality__" not in gemini_prompt
    assert "mcp_quality_commit" in sent and "mcp__quality__commit" not in sent  # what the model was told
    person.assert_untouched(repo)
