"""Per agent of a chain (issue 13): its own `timeout_min` governs its run everywhere the scheduler counts time (the
wall clock, the claim, the run's reservation under `[limits]`), even when it is longer than `[scheduler]
task_timeout_min`; and the prompt each agent of a chain gets names the tools as that agent's CLI spells them."""

from __future__ import annotations

import os
from pathlib import Path

from mcp_servers.core.workspace import Workspace
from scheduler import runner
from scheduler.agents import registry
from scheduler.limits import EXPIRY_MARGIN_S

from ..conftest import GitRepo
from .sessions import PASS, Person, make_planned, task_script, write_script
from .test_chain import FAST, _agent, _fail
from .test_infra import MovedClock


def _ws(repo: GitRepo) -> Workspace:
    return Workspace.open(repo.root, environ=dict(os.environ))


def test_an_agents_own_timeout_longer_than_the_schedulers_is_not_cut(tmp_path: Path) -> None:
    # the scheduler's wall clock is 1.2 s, the replay agent's own 5 min: a run of 2.5 s (and its gate) is not ended
    scheduler = "max_tasks = 1\ntask_timeout_min = 0.02\n\n[agents.replay]\ntimeout_min = 5\n"
    repo = make_planned(tmp_path / "r", scheduler=scheduler)
    person = Person.of(repo)
    script = write_script(
        tmp_path / "s.toml", task_script("sub", "[[task.step]]\nsleep = 2.5\n" + PASS.format(name="sub"))
    )
    ws = _ws(repo)
    agent = registry.make("replay", ws.settings.scheduler, repo.root, script, ws.settings.agents)
    assert registry.timeout_min(agent, ws.settings.scheduler) == 5
    said: list[str] = []
    record = runner.Runner(ws, agent, say=said.append).run()
    assert record is not None, said
    [task] = record.tasks
    assert task.agent is not None and not task.agent.timed_out, (task.reasons, said)
    assert task.outcome == "passed" and task.agent.duration_s > 1.2 * 2
    with ws.db() as conn:  # the run's reservation under [limits] lasted the agent's wall clock, not the scheduler's
        [(at, expires)] = conn.execute("SELECT at, expires_at FROM limit_events WHERE kind = 'run'").fetchall()
    assert expires - at >= 5 * 60 + EXPIRY_MARGIN_S
    person.assert_untouched(repo)


def test_without_its_own_timeout_the_scheduler_wall_clock_still_ends_a_run(tmp_path: Path) -> None:
    scheduler = "max_tasks = 1\ntask_timeout_min = 0.02\n"
    repo = make_planned(tmp_path / "r", scheduler=scheduler)
    script = write_script(tmp_path / "s.toml", task_script("sub", "[[task.step]]\nsleep = 30\n"))
    ws = _ws(repo)
    agent = registry.make("replay", ws.settings.scheduler, repo.root, script, ws.settings.agents)
    record = runner.Runner(ws, agent, say=lambda _l: None).run()
    assert record is not None
    [task] = record.tasks
    assert task.outcome == "timed-out" and task.agent is not None and task.agent.duration_s < 30


def test_each_agent_of_a_chain_gets_the_prompt_in_its_own_spelling(tmp_path: Path) -> None:
    """Claude Code at its usage limit hands the task to Gemini: the Gemini run's prompt names `mcp_quality_commit`
    (as the Gemini CLI offers the tool), the Claude run's `mcp__quality__commit`. (Replay agents named after them
    play the runs; the prompt is built by the runner from the registry, per run.)"""
    repo = make_planned(tmp_path / "r", scheduler=FAST)
    first = _agent(tmp_path / "a.toml", "claude", _fail("usage-limit", resets_in=3600))
    second = _agent(tmp_path / "b.toml", "gemini", PASS.format(name="sub"), "sub")
    run = runner.Runner(_ws(repo), first, fallbacks=[second], say=lambda _l: None)
    clock = MovedClock()
    run.clock, run.sleep = clock, clock.sleep
    record = run.run()
    assert record is not None
    [task] = record.tasks
    assert [(r.agent, r.outcome) for r in task.runs] == [("claude", "infra-stop"), ("gemini", "passed")]
    runs = sorted(d for d in (_ws(repo).state_dir / "runs" / record.id).iterdir() if d.is_dir())
    assert len(runs) == 2, runs
    claude, gemini = ((d / "prompt.md").read_text() for d in runs)
    assert "mcp__quality__commit" in claude and "mcp_quality_commit" not in claude
    assert "mcp_quality_commit" in gemini and "mcp__quality__" not in gemini
