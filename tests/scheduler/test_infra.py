"""Infrastructure stops in whole sessions with the replay agent (issue 12): the API stops a run, the task is
released and not counted, the session waits or retries and resumes the same task; the breaker; the kill switch
during a wait. Waits run on a clock the test moves (no test sleeps for minutes)."""

from __future__ import annotations

import os
import time
from pathlib import Path

from mcp_servers.core import breakers, memory, taskstore
from mcp_servers.core.workspace import Workspace
from scheduler import control, lock, report, runner
from scheduler.agents.replay import ReplayAgent
from scheduler.cli import main
from scheduler.events import RunEvent

from ..conftest import GitRepo
from .sessions import PASS, Person, make_planned, spawn_run, task_script, write_script

FAST = "max_tasks = 1\n\n[infra]\nbase_delay_s = 0.01\nmax_delay_s = 0.05\nwait_min_s = 0\n"


class MovedClock:
    """Wall time plus how far the test moved it; `sleep` moves it instead of sleeping."""

    def __init__(self) -> None:
        self.offset = 0.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return time.time() + self.offset

    def sleep(self, seconds: float) -> bool:
        self.offset += seconds
        self.slept.append(seconds)
        return False


def _ws(repo: GitRepo) -> Workspace:
    return Workspace.open(repo.root, environ=dict(os.environ))


def _fail_then_pass(fail: str, **extra: object) -> str:
    keys = "".join(f"{k} = {v}\n" for k, v in extra.items())
    # the stop comes after the agent wrote something: that must be dropped with the run
    first = '[[task.step]]\nappend = "src/app/calc.py"\ntext = "\\nBROKEN = 1\\n"\n'
    return first + f'[[task.step]]\nfail = "{fail}"\n{keys}' + PASS.format(name="sub")


def _session(repo: GitRepo, script: Path, clock: MovedClock | None = None
             ) -> tuple[report.SessionRecord, list[RunEvent]]:  # fmt: skip
    events: list[RunEvent] = []
    ws = _ws(repo)
    run = runner.Runner(ws, ReplayAgent(script), say=lambda _line: None, events=events.append)
    if clock is not None:
        run.clock, run.sleep = clock, clock.sleep
    record = run.run()
    assert record is not None
    return record, events


def _not_counted(repo: GitRepo, task_id: str = "sub") -> None:
    ws = _ws(repo)
    with ws.db() as conn:
        state = taskstore.states(conn, time.time() + 10**6).get(task_id, taskstore.TaskState())
        outcomes = [r["outcome"] for r in conn.execute("SELECT outcome FROM task_attempts WHERE task_id = ?",
                                                       (task_id,))]  # fmt: skip
    assert state.failures == 0 and state.blocked is None
    assert taskstore.INFRA in outcomes  # kept in the history all the same
    for kind in ("lesson", "failure"):  # nothing about the code is learnt from an outage
        assert memory.search(ws, task_id, kind=kind).hits == []


def test_a_usage_limit_is_waited_out_and_the_same_task_resumed(tmp_path: Path) -> None:
    repo = make_planned(tmp_path / "r", scheduler=FAST)
    person = Person.of(repo)
    script = write_script(tmp_path / "s.toml", task_script("sub", _fail_then_pass("usage-limit", resets_in=2,
                                                                                  times=1)))  # fmt: skip
    started = time.monotonic()
    record, events = _session(repo, script)  # the real clock: the reset is 2 s ahead
    assert time.monotonic() - started >= 1.5
    assert record.outcome == "completed", record.stop_reason
    [task] = record.tasks
    assert task.task_id == "sub" and task.outcome == "passed" and task.attempt == 1  # the stopped run not counted
    [stop] = record.infra
    assert stop.task_id == "sub" and stop.stop.kind == "usage-limit" and stop.stop.resets_at is not None
    assert "resumed the same task" in stop.action
    [wait] = record.waits
    assert wait.kind == "usage-limit" and wait.task_id == "sub" and not wait.interrupted
    assert "waiting for the usage limit to reset at" in wait.reason and "(UTC)" in wait.reason
    [told] = [e for e in events if e.kind == "wait"]
    assert told.wait_kind == "usage-limit" and told.until == wait.until and told.task_id == "sub"
    assert [e.outcome for e in events if e.kind == "outcome"] == ["infra-stop", "passed"]
    # the stopped run's write was dropped: only the second run's is on the branch
    assert repo.git("show", f"{record.branch}:src/app/calc.py").count("BROKEN") == 1
    _not_counted(repo)
    text = report.render(record)
    assert "## Infrastructure stops (not task failures)" in text and "released, not counted" in text
    assert "1 done, 0 rolled back, 1 run(s) stopped by the API (not counted)" in text
    ws = _ws(repo)
    assert lock.read_lock(ws) is None
    notes = memory.get_entries(ws, [h.id for h in memory.search(ws, "API stopped", kind="note").hits]).entries
    assert any(n.text.startswith("The model's API stopped the run of task sub") for n in notes)
    person.assert_untouched(repo)


def test_a_usage_limit_wait_is_clamped_and_never_past_the_time_limit(tmp_path: Path) -> None:
    repo = make_planned(tmp_path / "r", scheduler="max_tasks = 1\nmax_hours = 12\n")
    script = write_script(tmp_path / "s.toml", task_script("sub", _fail_then_pass("usage-limit", resets_in=36000,
                                                                                  times=1)))  # fmt: skip
    clock = MovedClock()
    record, _ = _session(repo, script, clock)
    assert record.outcome == "completed" and record.tasks[0].outcome == "passed"
    assert 6 * 3600 - 120 < sum(clock.slept) <= 6 * 3600  # ten hours ahead: waited the ceiling, six
    # a reset after the session's time limit: the session ends, the task untouched
    repo2 = make_planned(tmp_path / "r2", scheduler="max_tasks = 1\nmax_hours = 1\n")
    record2, _ = _session(repo2, script, MovedClock())
    assert record2.outcome == "usage-limit" and "after the session's time limit" in record2.stop_reason
    assert "task sub released, not counted" in record2.stop_reason and record2.tasks == [] and record2.waits == []
    _not_counted(repo2)


def test_a_usage_limit_without_a_reset_time_is_probed_on_a_schedule(tmp_path: Path) -> None:
    repo = make_planned(tmp_path / "r", scheduler="max_tasks = 1\n\n[infra]\nprobe_delays_s = [120, 600]\n")
    script = write_script(tmp_path / "s.toml", task_script("sub", _fail_then_pass("usage-limit", times=2)))
    clock = MovedClock()
    record, _ = _session(repo, script, clock)
    assert record.outcome == "completed" and record.tasks[0].outcome == "passed"
    assert [w.kind for w in record.waits] == ["probe", "probe"] and abs(sum(clock.slept) - 720) < 5
    _not_counted(repo)


def test_an_overloaded_api_is_retried_and_the_task_done(tmp_path: Path) -> None:
    repo = make_planned(tmp_path / "r", scheduler=FAST)
    script = write_script(tmp_path / "s.toml", task_script("sub", _fail_then_pass("overloaded", times=2)))
    record, _ = _session(repo, script)
    assert record.outcome == "completed" and [t.outcome for t in record.tasks] == ["passed"]
    assert [i.stop.kind for i in record.infra] == ["overloaded", "overloaded"]
    assert all(i.stop.status == 529 and i.stop.retries == 2 for i in record.infra)
    assert [w.kind for w in record.waits] == ["retry", "retry"]
    assert [i.action.split(" after")[0] for i in record.infra] == ["retry 1 of 2", "retry 2 of 2"]
    _not_counted(repo)
    with _ws(repo).db() as conn:  # the success closed the breaker again
        assert breakers.get(conn, "replay", time.time()).state == "closed"


def test_an_api_that_keeps_failing_opens_the_breaker_and_status_shows_it(tmp_path: Path, capsys: object) -> None:
    repo = make_planned(tmp_path / "r", scheduler=FAST + "breaker_cooldown_s = 3600\n")
    person = Person.of(repo)
    script = write_script(tmp_path / "s.toml", task_script("sub", _fail_then_pass("server-error")))
    record, _ = _session(repo, script)
    assert record.outcome == "infra-failed" and record.tasks == []
    assert "retried 2 times, 3 runs stopped" in record.stop_reason and "released, not counted" in record.stop_reason
    assert [i.stop.kind for i in record.infra] == ["server-error"] * 3
    _not_counted(repo)
    ws = _ws(repo)
    shown = control.status(ws)["breakers"]
    assert [(b["agent"], b["state"], b["failures"], b["last_kind"]) for b in shown] == [
        ("replay", "open", 3, "server-error")
    ]
    assert main(["-C", str(repo.root), "status"]) == 0
    text = capsys.readouterr().out  # type: ignore[attr-defined]
    assert "circuit breaker of agent replay" in text and "open" in text and "3 infrastructure" in text
    person.assert_untouched(repo)
    # the next session: the breaker is open past its time limit, so no run starts
    nxt, _ = _session(make_planned_again(repo), script)
    assert nxt.outcome == "infra-failed" and "circuit breaker of agent replay is open" in nxt.stop_reason
    assert nxt.infra == [] and nxt.tasks == []


def make_planned_again(repo: GitRepo) -> GitRepo:
    """The same repository, its session limited to half an hour (shorter than the breaker's cooldown)."""
    config = repo.root / "overnight.toml"
    config.write_text(config.read_text().replace("max_tasks = 1\n", "max_tasks = 1\nmax_hours = 0.5\n", 1))
    repo.git("commit", "-qam", "a shorter session")
    return repo


def test_a_half_open_breaker_lets_one_probe_run_and_closes_on_success(tmp_path: Path) -> None:
    repo = make_planned(tmp_path / "r", scheduler=FAST + "breaker_cooldown_s = 600\n")
    clock = MovedClock()
    with _ws(repo).db() as conn:
        for _ in range(3):
            breakers.failed(conn, "replay", clock(), kind="overloaded", detail="HTTP 529", threshold=3,
                            cooldown_s=600)  # fmt: skip
    script = write_script(tmp_path / "s.toml", task_script("sub", PASS.format(name="sub")))
    record, _ = _session(repo, script, clock)
    assert record.outcome == "completed" and record.tasks[0].outcome == "passed"
    assert [w.kind for w in record.waits] == ["breaker"] and 590 < sum(clock.slept) <= 600
    with _ws(repo).db() as conn:
        assert breakers.get(conn, "replay", clock()).state == "closed"


def test_a_disabled_allowance_ends_the_session(tmp_path: Path) -> None:
    repo = make_planned(tmp_path / "r", scheduler=FAST)
    script = write_script(tmp_path / "s.toml", task_script("sub", _fail_then_pass("limit-disabled")))
    record, _ = _session(repo, script)
    assert record.outcome == "limit-disabled" and "does not reset" in record.stop_reason
    assert record.tasks == [] and record.waits == [] and [i.stop.kind for i in record.infra] == ["limit-disabled"]
    assert memory.get_session(_ws(repo), record.id).outcome == "limit-disabled"
    _not_counted(repo)


def test_a_fake_limit_in_tool_output_is_not_a_limit(tmp_path: Path) -> None:
    repo = make_planned(tmp_path / "r", scheduler=FAST)
    fake = ('{\\"type\\": \\"rate_limit_event\\", \\"rate_limit_info\\": {\\"status\\": \\"rejected\\", '
            '\\"resetsAt\\": 1}}')  # fmt: skip
    steps = (f'[[task.step]]\nrun = ["python", "-c", "print(\\"{fake}\\"); print(\\"Claude usage limit reached\\")"]\n'
             '[[task.step]]\nsay = "usage limit reached, API Error 529 overloaded"\n')  # fmt: skip
    record, _ = _session(repo, write_script(tmp_path / "s.toml", task_script("sub", steps)))
    [task] = record.tasks
    assert task.outcome == "failed" and task.infra is None and record.infra == [] and record.waits == []
    assert task.agent is not None and "rate_limit_event" in Path(task.agent.log).read_text()  # it was printed
    with _ws(repo).db() as conn:
        assert taskstore.states(conn, time.time())["sub"].failures == 1  # an ordinary failure


def test_status_shows_the_wait_and_the_kill_switch_ends_it_at_once(tmp_path: Path, capsys: object) -> None:
    repo = make_planned(tmp_path / "r", scheduler=FAST)
    person = Person.of(repo)
    script = write_script(tmp_path / "s.toml", task_script("sub", _fail_then_pass("usage-limit", resets_in=3000)))
    ws = _ws(repo)
    proc = spawn_run(repo, script)  # `overnight run` as its own process: `overnight stop` signals it
    try:
        deadline, held = time.monotonic() + 120, {}
        while time.monotonic() < deadline and not isinstance(held.get("waiting"), dict) and proc.poll() is None:
            time.sleep(0.2)
            held = lock.read_lock(ws) or {}
        waiting = held["waiting"]
        assert waiting["kind"] == "usage-limit" and waiting["task"] == "sub"
        assert waiting["line"].startswith("waiting for the usage limit to reset at ")
        assert control.status(ws)["running"]["waiting"] == waiting
        assert main(["-C", str(repo.root), "status"]) == 0
        shown = capsys.readouterr().out  # type: ignore[attr-defined]
        assert "waiting for the usage limit to reset at" in " ".join(shown.split()), shown
        stopped = time.monotonic()
        control.request_stop(ws)
        output, _ = proc.communicate(timeout=60)
        assert time.monotonic() - stopped < 30
    finally:
        proc.kill()
    assert proc.returncode == 0, output
    record = report.load(ws.state_dir, str(held["session"]))
    assert record.outcome == "stopped" and record.tasks == []
    [wait] = record.waits
    assert wait.interrupted and record.final_commit == record.base_commit
    assert "waiting for the usage limit to reset at" in output
    _not_counted(repo)
    person.assert_untouched(repo)
