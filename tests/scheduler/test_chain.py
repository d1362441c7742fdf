"""Fallback chains in whole sessions (issue 13): the replay agent's `fail` steps stop one agent of the chain, the
task goes to the next; only when every agent is stopped does the session wait or end as it does for one; an open
breaker skips its agent; each agent has its own breaker. Waits run on a clock the test moves."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from mcp_servers.core import breakers, config, memory
from mcp_servers.core.errors import OvernightError
from mcp_servers.core.workspace import Workspace
from scheduler import agents, chain, control, report, runner
from scheduler.agents import registry
from scheduler.agents.replay import ReplayAgent
from scheduler.cli import main
from scheduler.events import RunEvent

from ..conftest import GitRepo
from .sessions import PASS, Person, make_planned, task_script, write_script
from .test_infra import MovedClock, _not_counted

FAST = "max_tasks = 1\n\n[infra]\nbase_delay_s = 0.01\nmax_delay_s = 0.05\nwait_min_s = 0\n"
QUICK = '[[task.step]]\nsay = "gave up"\n'  # a run that ends at once, without a commit (no gate run)


def _ws(repo: GitRepo) -> Workspace:
    return Workspace.open(repo.root, environ=dict(os.environ))


def _agent(path: Path, name: str, steps: str, task_id: str = "*") -> ReplayAgent:
    agent = ReplayAgent(write_script(path, task_script(task_id, steps)))
    agent.name = name
    return agent


def _fail(kind: str, **extra: object) -> str:
    keys = "".join(f"{k} = {v}\n" for k, v in extra.items())
    broken = '[[task.step]]\nappend = "src/app/calc.py"\ntext = "\\nBROKEN = 1\\n"\n'
    return f'{broken}[[task.step]]\nfail = "{kind}"\n{keys}'


def _session(repo: GitRepo, *chain: ReplayAgent, clock: MovedClock | None = None
             ) -> tuple[report.SessionRecord, list[RunEvent]]:  # fmt: skip
    events: list[RunEvent] = []
    backups = list(chain[1:]) or None  # (None: from the configuration)
    run = runner.Runner(_ws(repo), chain[0], fallbacks=backups, say=lambda _l: None, events=events.append)
    if clock is not None:
        run.clock, run.sleep = clock, clock.sleep
    record = run.run()
    assert record is not None
    return record, events


def test_a_usage_limit_hands_the_task_to_the_next_agent(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    repo = make_planned(tmp_path / "r", scheduler=FAST.replace("max_tasks = 1", "max_tasks = 2"))
    person = Person.of(repo)
    first = _agent(tmp_path / "a.toml", "replay", _fail("usage-limit", resets_in=3600) + PASS.format(name="sub"))
    backup = _agent(tmp_path / "b.toml", "backup", PASS.format(name="sub"), "sub")
    backup.script.write_text(backup.script.read_text() + "\n" + task_script("mul", QUICK))
    record, events = _session(repo, first, backup, clock=MovedClock())
    assert record.waits == [] and record.agents == ["replay", "backup"]  # no wait: the next agent took it
    done, mul = record.tasks
    assert done.task_id == "sub" and done.outcome == "passed" and done.attempt == 1  # the stopped run not counted
    assert done.agent is not None and done.agent.agent == "backup"
    assert [(r.agent, r.outcome, r.infra.kind if r.infra else None) for r in done.runs] == [
        ("replay", "infra-stop", "usage-limit"), ("backup", "passed", None)]  # fmt: skip
    [stop] = record.infra  # the next task went straight to the backup: the first agent waits for its reset
    assert stop.agent == "replay" and stop.action.startswith("handed the task to agent backup")
    assert mul.agent is not None and mul.agent.agent == "backup" and first.runs == {"sub": 1}
    # the stopped run's write was dropped: only the backup's work is on the branch
    assert "BROKEN" not in repo.git("show", f"{record.branch}:src/app/calc.py")
    assert any(e.kind == "task" and "agent backup takes it over" in e.line for e in events)
    text = report.render(record)
    assert "agents `replay` → `backup`" in text and "agent `backup`" in text
    assert "- Runs: `replay` stopped by the API (the usage limit was reached" in text and "→ `backup` passed" in text
    assert "task `sub` (agent `replay`): the usage limit was reached" in text
    capsys.readouterr()
    assert main(["-C", str(repo.root), "report"]) == 0  # `overnight report` shows the same
    shown = capsys.readouterr().out
    assert "- Runs: `replay` stopped by the API" in shown and "Cost by agent: `replay` $0.00, `backup` $0.00" in shown
    [last] = control.status(_ws(repo))["sessions"]  # `overnight status`: the chain and each agent's cost
    assert last["agents"] == ["replay", "backup"] and list(last["cost_by_agent"]) == ["replay", "backup"]
    detail = memory.get_session(_ws(repo), record.id)
    assert detail.record["agents"] == {"sub": "backup", "mul": "backup"}
    assert [r["agent"] for r in detail.record["agent_runs"]] == ["replay", "backup"]
    assert set(detail.record["cost_by_agent"]) == {"replay", "backup"}
    found = memory.search(_ws(repo), "passed verification", kind="gate").hits
    assert any("agent backup." in e.text for e in memory.get_entries(_ws(repo), [h.id for h in found]).entries)
    _not_counted(repo)
    person.assert_untouched(repo)


def test_when_every_agent_is_stopped_the_session_waits_then_starts_from_the_head(tmp_path: Path) -> None:
    repo = make_planned(tmp_path / "r", scheduler=FAST)
    first = _agent(tmp_path / "a.toml", "replay", _fail("usage-limit", resets_in=600, times=1) + QUICK)
    backup = _agent(tmp_path / "b.toml", "backup", _fail("usage-limit", resets_in=900) + QUICK)
    clock = MovedClock()
    record, _ = _session(repo, first, backup, clock=clock)
    [wait] = record.waits  # as for one agent: the guard of the one stopped last waits for its reset
    assert wait.kind == "usage-limit" and 880 < sum(clock.slept) <= 900
    assert [(i.agent, i.action.split(" ")[0]) for i in record.infra] == [("replay", "handed"), ("backup", "waited")]
    [task] = record.tasks  # then the head of the chain again, whose limit has reset
    assert task.agent is not None and task.agent.agent == "replay" and task.outcome == "failed"
    assert [r.agent for r in task.runs] == ["replay", "backup", "replay"]
    assert first.runs == {"sub": 2} and backup.runs == {"sub": 1}
    # the head still stopped after the wait (its reset is further off): passed over, not run again
    repo2 = make_planned(tmp_path / "r2", scheduler=FAST)
    far = _agent(tmp_path / "c.toml", "replay", _fail("usage-limit", resets_in=36000) + QUICK)
    near = _agent(tmp_path / "d.toml", "backup", _fail("usage-limit", resets_in=60, times=1) + QUICK)
    record2, _ = _session(repo2, far, near, clock=MovedClock())
    [task2] = record2.tasks
    assert [r.agent for r in task2.runs] == ["replay", "backup", "backup"] and len(record2.waits) == 1
    assert far.runs == {"sub": 1} and near.runs == {"sub": 2}


def test_when_every_agent_stays_stopped_the_session_ends_and_the_task_is_released(tmp_path: Path) -> None:
    repo = make_planned(tmp_path / "r", scheduler=FAST + "max_waits = 1\n")
    first = _agent(tmp_path / "a.toml", "replay", _fail("usage-limit", resets_in=60))
    backup = _agent(tmp_path / "b.toml", "backup", _fail("limit-disabled"))
    record, _ = _session(repo, first, backup, clock=MovedClock())
    # the backup's allowance is disabled: the chain has no one left, so its guard ends the session
    assert record.outcome == "limit-disabled" and "task sub released, not counted" in record.stop_reason
    assert record.tasks == [] and [(i.agent, i.stop.kind) for i in record.infra] == [
        ("replay", "usage-limit"), ("backup", "limit-disabled")]  # fmt: skip
    _not_counted(repo)  # not set aside: released, and nothing learnt about the code
    # both limited: the waits of the last one's guard, then the session ends as for one agent
    repo2 = make_planned(tmp_path / "r2", scheduler=FAST + "max_waits = 1\n")
    again = _agent(tmp_path / "c.toml", "backup", _fail("usage-limit", resets_in=60))
    record2, _ = _session(repo2, first, again, clock=MovedClock())
    assert record2.outcome == "usage-limit" and "1 waits for it in this session already" in record2.stop_reason
    assert len(record2.waits) == 1 and record2.tasks == []


def test_an_open_breaker_skips_its_agent_and_each_agent_has_its_own(tmp_path: Path) -> None:
    repo = make_planned(tmp_path / "r", scheduler=FAST.replace("max_tasks = 1", "max_tasks = 2")
                        + "breaker_failures = 1\nbreaker_cooldown_s = 3600\n")  # fmt: skip
    first = _agent(tmp_path / "a.toml", "replay", _fail("overloaded") + QUICK)
    backup = _agent(tmp_path / "b.toml", "backup", QUICK)
    clock = MovedClock()
    record, _ = _session(repo, first, backup, clock=clock)
    # the first run overloaded: counted by the first agent's breaker alone (now open), the task handed over; the
    # next task skips the first agent (its breaker is open) without a wait
    assert record.waits == [] and first.runs == {"sub": 1} and clock.slept == []
    by = [(t.task_id, t.agent.agent if t.agent else None) for t in record.tasks]
    assert by == [("sub", "backup"), ("mul", "backup")]
    with _ws(repo).db() as conn:
        assert breakers.get(conn, "replay", clock()).state == "open"
        assert breakers.get(conn, "backup", clock()).state == "closed"
        assert breakers.get(conn, "backup", clock()).failures == 0


def test_a_chain_is_configured_once_per_agent_and_its_fallbacks_come_from_the_config(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="replay named more than once"):
        config.Scheduler.model_validate({"agents": ["replay", "claude", "replay"]})
    unknown = config.Settings.model_validate({"scheduler": {"agents": ["claude", "aider"]}})
    assert any("unknown agent 'aider'" in p for p in registry.problems(unknown))  # (the registry knows the names)
    with pytest.raises(ValueError, match="agent 'claude' is not in agents"):
        config.Scheduler.model_validate({"agents": ["command"], "agent": "claude"})
    assert config.Scheduler.model_validate({"agents": ["command", "claude"]}).agent == "command"  # its head
    script = write_script(tmp_path / "s.toml", task_script("*", QUICK))
    argv = json.dumps(["no-such-agent-cli"])
    repo = make_planned(tmp_path / "r", scheduler=f'max_tasks = 1\nagents = ["replay", "command"]\nreplay_script = '
                        f'"{script}"\n[agents.command]\nargv = {argv}\n')  # fmt: skip
    record, _ = _session(repo, ReplayAgent(script))
    # the command agent cannot run here: said, and the session goes on with the rest of the chain
    assert record.outcome == "completed" and record.agents == []
    assert any("agent command was left out of the fallback chain" in w and "no-such-agent-cli" in w
               for w in record.warnings)  # fmt: skip
    ws = Workspace.open(make_planned(tmp_path / "r2", scheduler='agents = ["claude", "replay"]\n').root)
    with pytest.raises(OvernightError, match="the replay agent needs a script"):  # refused before a session
        chain.fallbacks(ws, agents.make("claude", ws.settings.scheduler, ws.repo.root))


class _Named:
    """An agent of the chain as `Chain.pick` sees it: its name (its breaker's key)."""

    def __init__(self, name: str) -> None:
        self.name = name


def test_the_chain_takes_the_first_agent_that_may_run_else_the_breaker_that_closes_first(tmp_path: Path) -> None:
    ws = Workspace.open(make_planned(tmp_path / "r").root)
    clock = MovedClock()
    members = [_Named("a"), _Named("b"), _Named("c")]
    agents_of = chain.Chain.of(ws, members, "s", clock, clock.sleep, lambda _e: None, ws.settings.infra)  # type: ignore[arg-type]
    assert agents_of.pick().name == "a"
    with ws.db() as conn:
        breakers.failed(conn, "a", clock(), kind="overloaded", detail="", threshold=1, cooldown_s=600)
    assert agents_of.pick().name == "b"  # a's breaker is open: skipped, no wait
    agents_of.members[1].out_until = clock() + 60  # b passed over (its usage limit)
    assert agents_of.pick().name == "c"
    with ws.db() as conn:
        breakers.failed(conn, "c", clock(), kind="network", detail="", threshold=1, cooldown_s=300)
    assert agents_of.pick().name == "c"  # none may run: the breaker that closes first (its guard waits for it)
    clock.sleep(601)
    assert agents_of.pick().name == "a"  # half-open again: the head of the chain is taken back first
