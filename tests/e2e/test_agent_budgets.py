"""`max_budget_usd` for the agents whose CLI reports tokens, not cost (issue 13), with the real `codex` and
`gemini` CLIs against scripted models on 127.0.0.1: with prices under `[agents.<name>]`, the run is ended once
the cost estimated from the usage the CLI writes after each model request reaches the budget (before the script
is spent), the result says why, the task is judged as any other (here rolled back: nothing was committed), and
its estimated cost counts in the session's cost and the report."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mcp_servers.core.workspace import Workspace
from scheduler import report, runner
from scheduler.agents import Agent
from scheduler.agents.codex import CodexAgent, CodexSettings
from scheduler.agents.gemini import GeminiAgent, GeminiSettings

from ..conftest import GitRepo
from ..scheduler.sessions import Person, make_planned
from ..support.fake_gemini import MODEL, FakeGemini
from ..support.fake_openai import FakeOpenAI
from .conftest import _client, client_environment

pytestmark = pytest.mark.e2e

# each scripted request is 100 tokens in, 20 out: $0.12 at these prices; the budget is reached on the third
PRICES: dict[str, Any] = {"input_usd_per_mtok": 1000.0, "output_usd_per_mtok": 1000.0, "max_budget_usd": 0.3}
STEPS = 8


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    home, scratch = tmp_path / "home", tmp_path / "tmp"
    home.mkdir()
    scratch.mkdir()
    return {**client_environment(home), "TMPDIR": str(scratch)}


def _session(repo: GitRepo, agent: Agent) -> tuple[report.SessionRecord, list[str]]:
    said: list[str] = []
    ws = Workspace.open(repo.root, environ=dict(os.environ))
    record = runner.Runner(ws, agent, say=said.append).run()
    assert record is not None, said
    return record, said


def _ended_by_the_budget(repo: GitRepo, record: report.SessionRecord, said: list[str]) -> None:
    [task] = record.tasks
    agent = task.agent
    assert agent is not None and agent.terminal_reason is not None, (said, task.reasons)
    assert agent.terminal_reason.startswith("budget (an estimated $0.36 reached max_budget_usd $0.30)"), agent
    assert agent.is_error and not agent.stopped and not agent.timed_out and agent.infra is None
    assert agent.cost_estimated and agent.cost_usd is not None and 0.3 <= agent.cost_usd < 0.6
    # judged as usual: nothing was committed, so it is rolled back and counted as a failure
    assert task.outcome == "failed" and task.reasons[0] == "no commit was made", task.reasons
    assert record.cost_usd == agent.cost_usd and record.final_commit == record.base_commit
    text = (Workspace.open(repo.root).state_dir / "reports" / f"{record.id}.md").read_text()
    assert "(estimated from its tokens and the prices in [agents])" in text and "agent ended: budget" in text


def test_codex_is_ended_when_its_estimated_cost_reaches_the_budget(tmp_path: Path, env: dict[str, str]) -> None:
    codex = _client("codex")
    repo = make_planned(tmp_path / "r", scheduler="max_tasks = 1\n")
    person = Person.of(repo)
    steps = [{"tool": "exec_command", "input": {"cmd": f"sleep 1; echo {n} >> steps.txt"}} for n in range(STEPS)]
    with FakeOpenAI([*steps, "done"]) as model:
        settings = CodexSettings.model_validate({"command": str(codex), "base_url": model.url, "model": "fake-model",
                                                 "request_max_retries": 0, **PRICES})  # fmt: skip
        ws = Workspace.open(repo.root)
        record, said = _session(repo, CodexAgent(ws.settings.scheduler, settings, environ=env))
        assert model.remaining >= STEPS - 4, model.remaining  # ended long before its script was spent
    _ended_by_the_budget(repo, record, said)
    person.assert_untouched(repo)


@pytest.fixture
def gemini_model() -> Iterator[FakeGemini]:
    with FakeGemini() as server:
        yield server


def test_gemini_is_ended_when_its_estimated_cost_reaches_the_budget(
    tmp_path: Path, client_env: dict[str, str], gemini_model: FakeGemini
) -> None:
    gemini = _client("gemini")
    repo = make_planned(tmp_path / "r", scheduler='agent = "gemini"\nmax_tasks = 1\n')
    person = Person.of(repo)
    steps = [{"tool": "run_shell_command", "input": {"command": f"sleep 1; echo {n} >> steps.txt"}}
             for n in range(STEPS)]  # fmt: skip
    gemini_model.set_script([*steps, "done"])
    settings = GeminiSettings.model_validate({"command": str(gemini), "model": MODEL, "base_url": gemini_model.url,
                                              "max_attempts": 1, **PRICES})  # fmt: skip
    ws = Workspace.open(repo.root)
    agent = GeminiAgent(ws.settings.scheduler, settings, environ={**client_env, **gemini_model.env()})
    record, said = _session(repo, agent)
    assert gemini_model.remaining >= STEPS - 4, gemini_model.remaining
    _ended_by_the_budget(repo, record, said)
    person.assert_untouched(repo)
