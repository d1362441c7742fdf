"""Thirty nights in a row (issue 12's proof): `overnight daemon` through thirty simulated nights, one cycle a night,
with the faults a month brings, then a checker that recomputes every report from git and `state.db`.

The clock is moved, never slept on: the daemon sleeps from one night to the next in an instant, and the sessions'
waits (a usage limit's reset, a retry's backoff) move the same clock. The agents are real: the replay agent as its
own process in the sandbox, and for three nights the real `claude` CLI against the scripted model server. Faults:
a SIGKILL of the daemon mid-cycle and a restart; usage limits with a reset seconds ahead, overloads (529), server
errors (500) and a lost network, from the replay agent's stream and from Claude Code's; a spend limit that does
not reset; a hanging agent; an agent killed mid-run; the kill switch; a full disk under the worktrees (a small
tmpfs). Afterwards: the base branch never moved; no acknowledged write lost (task states, memory entries, limit
counters); each report's claims match git and the database; no task was set aside for an infrastructure failure;
and every task the scripts could do was done.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import pytest

from mcp_servers.core import taskstore
from mcp_servers.core.workspace import Workspace
from scheduler import daemon_report, daemon_state, report
from scheduler.agents import AgentJob, AgentResult
from scheduler.agents.claude import ClaudeAgent
from scheduler.agents.replay import ReplayAgent
from scheduler.cli import main
from scheduler.daemon import Daemon, DaemonEvent

from ..conftest import GitRepo
from ..scheduler.sessions import HANG, Person, make_planned, passing, plan, task_script, wait_for_agent, write_script
from ..scheduler.test_daemon import FakeClock
from ..support.fake_anthropic import ApiError, FakeAnthropic, TurnLike
from .test_infra_claude import _limit
from .test_scheduler_claude import in_worktree

pytestmark = [pytest.mark.e2e, pytest.mark.skipif(os.geteuid() != 0, reason="mounts a tmpfs: needs root")]

TASKS = [f"t{n:02d}" for n in range(1, 25)]  # 24 tasks, 6 nights lost to faults: 30 nights
# the replay agent's faults, by task: the model's API stops the first run(s), the retry or the wait carries on
FAULTS = {
    "t03": 'fail = "usage-limit"\nresets_in = 5\ntimes = 1',
    "t05": 'fail = "overloaded"\ntimes = 2',
    "t07": 'fail = "server-error"\ntimes = 1',
    "t09": 'fail = "network"\ntimes = 1',
    "t11": 'fail = "limit-disabled"\ntimes = 1',  # a limit that does not reset: the night ends, the task waits
}
CLAUDE = {"t13": ApiError(529), "t15": ApiError(500, "api_error", "Internal server error"), "t17": None}
HANGS, KILLED, STOPPED = "t19", "t21", "t23"  # the agent hangs; the agent is killed; the kill switch is set
HANG_TIMEOUT_S = 4  # the hanging agent's own timeout (as its `[agents.<name>] timeout_min` gives it): the wall clock
# ends it all the same, without a real minute of waiting (the task timeout of the others stays a minute)
DISK_AFTER = "t22"  # once it is done, the disk under the worktrees fills up for a night


def _replay_script(path: Path) -> Path:
    parts = []
    for task in TASKS:
        steps = passing(task, task).split("\n", 2)[2]  # (its [[task]] header dropped: the fault goes first)
        fault = f"[[task.step]]\n{FAULTS[task]}\n" if task in FAULTS else ""
        parts.append(task_script(task, fault + steps))
    return write_script(path, *parts)


def _claude_turns(task: str) -> list[TurnLike]:
    return [
        in_worktree(lambda wt: [
            f"I will add {task}() with its test.",
            {"tool": "Write", "input": {"file_path": f"{wt}/src/app/{task}.py",
                                        "content": f"def {task}(a, b):\n    return a - b\n"}},
            {"tool": "Write", "input": {"file_path": f"{wt}/tests/test_{task}.py",
                                        "content": f"from app.{task} import {task}\n\n\ndef test_{task}():\n"
                                                   f"    assert {task}(3, 1) == 2\n"}},
        ]),
        {"tool": "mcp__quality__run_quality_gate", "input": {}},
        {"tool": "mcp__quality__commit", "input": {"message": f"Add {task}()", "task_id": task}},
        {"tool": "mcp__project__complete_task", "input": {"task_id": task}},
        {"tool": "mcp__memory__log_event", "input": {"kind": "decision", "text": f"{task}() written like add()",
                                                     "task_id": task}},
        f"Done: {task}() is added and tested.",
    ]  # fmt: skip


class Month:
    """The agent of every night: the replay agent, Claude Code for its tasks, and the first run of two tasks
    sabotaged (a hang; a SIGKILL of the agent mid-run). Both agents are real and run in the sandbox; this only
    picks which one a task gets, and does what a bad night does to it."""

    name = "replay"

    def __init__(self, replay: ReplayAgent, claude: ClaudeAgent, fake: FakeAnthropic, hang: ReplayAgent,
                 root: Path) -> None:  # fmt: skip
        self.replay, self.claude, self.fake, self.hang, self.root = replay, claude, fake, hang, root
        self.runs: dict[str, int] = {}
        self.killed: list[int] = []

    def _agents(self) -> tuple[ReplayAgent, ClaudeAgent]:
        return self.replay, self.claude

    def problems(self, environ: Mapping[str, str]) -> list[str]:
        return [p for agent in self._agents() for p in agent.problems(environ)]

    def task_problems(self, task_ids: Sequence[str]) -> list[str]:
        return self.replay.task_problems([t for t in task_ids if t not in CLAUDE])

    def endpoints(self) -> list[str]:
        return [e for agent in self._agents() for e in agent.endpoints()]

    def reads(self) -> list[Path]:
        return [p for agent in self._agents() for p in agent.reads()]

    def run(self, job: AgentJob) -> AgentResult:
        task = job.task_id
        first = self.runs.get(task, 0) == 0
        self.runs[task] = self.runs.get(task, 0) + 1
        if task in CLAUDE:
            error = CLAUDE[task]
            fault: list[TurnLike] = [_limit(4) if error is None else error]
            self.fake.set_script([*fault, *_claude_turns(task)] if first else _claude_turns(task))
            return self.claude.run(job)
        if task == HANGS and first:
            job.timeout_s = min(job.timeout_s, HANG_TIMEOUT_S)
            return self.hang.run(job)
        if task == KILLED and first:
            started = job.on_start

            def kill_soon(pid: int) -> None:
                if started is not None:
                    started(pid)
                self.killed.append(pid)
                threading.Timer(1.5, lambda: _kill(pid)).start()

            job.on_start = kill_soon
            return self.hang.run(job)
        if task == STOPPED and first:  # `overnight stop`, from another shell, while the task is in hand
            stop = subprocess.run([sys.executable, "-m", "scheduler", "-C", str(self.root), "stop"], check=False,
                                  capture_output=True, text=True, timeout=60)  # fmt: skip
            assert stop.returncode == 0, stop.stderr
        return self.replay.run(job)


def _kill(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


@contextlib.contextmanager
def _tmpfs(path: Path, size: str = "16m") -> Iterator[Path]:
    path.mkdir(parents=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], check=True)
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


class Disk:
    """Fills the tmpfs under the worktrees for one cycle once `DISK_AFTER` is done (told by the clock's hooks).

    It looks once an hour of the clock: the daemon waits in steps of 30 s (2,880 a night), and a look at the
    database at each would be most of this test's time; the cycles are a day apart."""

    def __init__(self, ws: Workspace, folder: Path, clock: FakeClock) -> None:
        self.ws, self.folder, self.clock, self.state, self.at = ws, folder, clock, "waiting", 0
        self.filler = folder / "filler"
        self.hour = -1

    def __call__(self) -> None:
        hour = int(self.clock() // 3600)
        if hour == self.hour:
            return
        self.hour = hour
        with self.ws.db() as conn:
            cycles = len(daemon_state.cycles(conn))
            done = {row[0] for row in conn.execute("SELECT task_id FROM task_completions WHERE cleared = 0")}
        if self.state == "waiting" and DISK_AFTER in done:
            with self.filler.open("wb") as out, contextlib.suppress(OSError):
                while True:
                    out.write(b"\0" * 65536)
            self.state, self.at = "full", cycles
        elif self.state == "full" and cycles > self.at:
            self.filler.unlink()
            self.state = "freed"


def test_thirty_nights(tmp_path: Path, claude_bin: Path, fake_model: FakeAnthropic, offline_env: dict[str, str]
                       ) -> None:  # fmt: skip
    with _tmpfs(tmp_path / "worktrees") as worktrees:
        _thirty_nights(tmp_path, worktrees, claude_bin, fake_model, offline_env)


def _thirty_nights(tmp_path: Path, worktrees: Path, claude_bin: Path, fake: FakeAnthropic, offline_env: dict[str, str]
                   ) -> None:  # fmt: skip
    now = time.time()
    opens, closes = time.strftime("%H:%M", time.gmtime(now - 1800)), time.strftime("%H:%M", time.gmtime(now + 8 * 3600))
    # (the daemon's reports twice a night, not twelve times: each reads every cycle so far)
    scheduler = (f'max_tasks = 1\ntask_timeout_min = 1\nclaude_command = "{claude_bin}"\n'
                 f'worktree_dir = "{worktrees}/r"\n'  # (…/worktrees/<repo>/<session>, as by default)
                 "\n[infra]\nbase_delay_s = 2\nmax_delay_s = 10\nprobe_delays_s = [60]\n"
                 "\n[plan]\nmax_attempts = 3\n\n[state]\nkeep_days = 365\n"
                 f'\n[daemon]\nbreak_min = 0\nmax_cycles_per_hour = 1\nmax_cycles_per_day = 1\n'
                 f'active_window = "{opens}-{closes}"\npause_after_error_cycles = 3\n'
                 "report_every_hours = 12\nstatus_every_hours = 24\n")  # fmt: skip
    repo = make_planned(tmp_path / "r", plan(*((t, f"Add {t}()") for t in TASKS)), scheduler=scheduler)
    person = Person.of(repo)
    script = _replay_script(tmp_path / "month.toml")
    hang = write_script(tmp_path / "hang.toml", task_script("*", HANG))

    # night 1: the daemon as its own process, SIGKILLed while its agent hangs on the first task
    argv = [sys.executable, "-m", "scheduler", "-C", str(repo.root), "daemon", "--agent", "replay", "--script",
            str(hang)]  # fmt: skip
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        killed_session = str(wait_for_agent(repo, proc)["session"])  # type: ignore[arg-type]
        proc.send_signal(signal.SIGKILL)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=60)
    person.assert_untouched(repo)

    # nights 2-30: the daemon restarted in this process, on a clock the tests move
    env = {k: v for k, v in offline_env.items() if k != "ANTHROPIC_API_KEY"}
    env["CLAUDE_CODE_OAUTH_TOKEN"] = "sk-ant-oat01-fake-offline-token"  # a subscription: rate_limit_event lines
    env["CLAUDE_CODE_MAX_RETRIES"] = "0"  # its own retries off: the scheduler's are tested
    ws = Workspace.open(repo.root, environ=dict(os.environ))
    month = Month(ReplayAgent(script), ClaudeAgent(ws.settings.scheduler, environ=env), fake,
                  ReplayAgent(hang), repo.root)  # fmt: skip
    clock = FakeClock()
    disk = Disk(ws, worktrees, clock)
    clock.hooks.append(disk)
    said: list[str] = []
    told: list[DaemonEvent] = []
    results = []
    for _restart in range(3):
        daemon = Daemon(Workspace.open(repo.root, environ=dict(os.environ)), lambda _ws: month, clock=clock,  # type: ignore[arg-type,return-value]
                        sleep=clock.sleep, say=said.append, notify=told.append, max_cycles=40)  # fmt: skip
        result = daemon.run()
        results.append(result)
        if result.outcome == "complete":
            break
        assert result.outcome == "stopped" and "kill switch" in result.reason, (result, said[-30:])
        assert main(["-C", str(repo.root), "resume"]) == 0  # the person clears the kill switch, starts it again
    assert [r.outcome for r in results] == ["stopped", "complete"], said[-40:]
    assert disk.state == "freed"
    assert month.killed and not any(_alive(pid) for pid in month.killed)

    with ws.db() as conn:
        cycles = daemon_state.cycles(conn)
    nights = {time.strftime("%Y-%m-%d", time.gmtime(c.started)) for c in cycles}
    assert len(cycles) == len(nights) == 30, [(c.outcome, c.stop_reason) for c in cycles]
    outcomes = [c.outcome for c in cycles]
    assert outcomes[0] == "crashed" and report.load(ws.state_dir, killed_session).outcome == "crashed"
    with ws.db() as conn:  # the killed night's task: its attempt recorded as interrupted, not as a failure
        [killed] = conn.execute("SELECT task_id, outcome FROM task_attempts WHERE session = ?", (killed_session,))
    assert tuple(killed) == ("t01", "interrupted")

    # the base branch never moved, the person's checkout and plan untouched
    person.assert_untouched(repo)
    # every task the scripts could do was done, none set aside (for an infrastructure failure or any other)
    with ws.db() as conn:
        states = taskstore.states(conn, clock())
        done = {row[0] for row in conn.execute("SELECT task_id FROM task_completions WHERE cleared = 0")}
    assert done == set(TASKS)
    # what counted against a task: the hang, the killed agent, and the night the daemon died with t01 in hand (a
    # task that takes its session down every time must not be retried forever); no API stop, no full disk, no
    # kill switch; and nothing reached `max_attempts` (3): no task was set aside
    assert {t: s.failures for t, s in states.items() if s.failures} == {"t01": 1, HANGS: 1, KILLED: 1}, states
    final = results[-1].report
    assert final is not None and final.kind == "complete"
    assert daemon_report.load(ws.state_dir).kind == "complete"
    # what each fault did, as the reports tell it
    records = {c.session: report.load(ws.state_dir, c.session) for c in cycles if c.session}
    infra = [(s.task_id, s.stop.kind) for r in records.values() for s in r.infra]
    expected = [("t03", "usage-limit"), ("t05", "overloaded"), ("t05", "overloaded"), ("t07", "server-error"),
                ("t09", "network"), ("t11", "limit-disabled"), ("t13", "overloaded"), ("t15", "server-error"),
                ("t17", "usage-limit")]  # fmt: skip
    assert sorted(infra) == sorted(expected), infra
    # Claude Code's usage limit, with a subscription's login: its `rate_limit_event` read (the five-hour limit and
    # its reset), the reset waited out, the task done after it (tests/e2e/test_infra_claude.py: with an API key)
    [(night, limit)] = [(r, s) for r in records.values() for s in r.infra if s.task_id == "t17"]
    assert limit.stop.limit_type == "five_hour" and limit.stop.resets_at, limit
    assert any(w.kind == "usage-limit" and "waiting for the usage limit to reset at" in w.reason
               for w in night.waits), night.waits  # fmt: skip
    assert all(r.headers.get("authorization", "").startswith("Bearer ") for r in fake.main_requests)
    assert fake.remaining == 0
    by_task = {t.task_id: t for r in records.values() for t in r.tasks if t.outcome != "passed"}
    assert by_task[HANGS].outcome == "timed-out" and by_task[KILLED].outcome == "failed", by_task
    disk_cycles = [c for c in cycles if "No space left on device" in c.stop_reason or "disk" in c.stop_reason]
    assert len(disk_cycles) == 1, [(c.outcome, c.stop_reason) for c in cycles]
    assert any(e.kind == "end" and e.outcome == "complete" for e in told)

    # the checker: each report recomputed from the branch and the database
    with ws.db() as conn:
        branch_commits = sum(_check(repo, conn, records[c.session], c, person.head) for c in cycles if c.session)
        # no acknowledged write lost: a decision per task in memory, a commit counted per commit kept
        decisions = {row[0] for row in conn.execute("SELECT task_id FROM entries WHERE kind = 'decision'")}
        counted = conn.execute("SELECT COALESCE(SUM(amount), 0) FROM limit_events WHERE kind = 'commit'").fetchone()
    assert decisions == set(TASKS)
    kept = sum(len(t.commits) for r in records.values() for t in r.tasks if t.outcome == "passed")
    assert kept == len(TASKS) and counted[0] == branch_commits == 2 * kept  # (each task's commit, its plan update)


def _check(repo: GitRepo, conn: object, record: report.SessionRecord, cycle: daemon_state.Cycle, base: str) -> int:
    """Recompute what a session's report claims from git and `state.db`, and compare; the commits its branch
    kept."""
    import sqlite3

    assert isinstance(conn, sqlite3.Connection)
    where = f"session {record.id} ({record.outcome}: {record.stop_reason})"
    assert not record.base_commit or record.base_commit == base, where
    passed = [t for t in record.tasks if t.outcome == "passed"]
    kept = [c for t in passed for c in t.commits]
    assert all(not t.commits for t in record.tasks if t.outcome != "passed"), where
    # git: the branch holds exactly the commits the report lists, and its tip is the report's final commit
    branch = record.branch and repo.git("branch", "--list", record.branch).strip()
    on_branch: list[str] = []
    if kept:
        assert branch, where
        on_branch = repo.git("rev-list", "--reverse", f"{base}..{record.branch}").split()
        assert record.final_commit == on_branch[-1], where
        # the agent's commits the report lists, then the scheduler's own: the plan marked done, after verifying
        assert [c for c in on_branch if c in kept] == kept, where
        for commit in (c for c in on_branch if c not in kept):
            body = repo.git("log", "-1", "--format=%B", commit)
            assert "Overnight-Plan-Update: by the scheduler" in body, (where, body)
            assert repo.git("show", "--format=", "--name-only", commit).split() == ["PROJECT_PLAN.md"], where
            assert any(f"Overnight-Task: {t.task_id}" in body for t in passed), (where, body)
        for task in passed:
            for commit in task.commits:
                row = conn.execute("SELECT receipt_id, session, task_id FROM commits WHERE commit_id = ?",
                                   (commit,)).fetchone()  # fmt: skip
                assert row is not None and (row[1], row[2]) == (record.id, task.task_id), where
                assert row[0] in repo.git("log", "-1", "--format=%B", commit), where  # the receipt trailer
    else:
        assert not branch or repo.git("rev-parse", record.branch) == base, where
    # the database: completions, attempts and infrastructure stops of this session, as the report says
    completed = sorted({r[0] for r in conn.execute(
        "SELECT task_id FROM task_completions WHERE session = ? AND cleared = 0", (record.id,))})  # fmt: skip
    assert completed == sorted(t.task_id for t in passed), where
    attempts = [tuple(r) for r in conn.execute(
        "SELECT task_id, outcome FROM task_attempts WHERE session = ? ORDER BY id", (record.id,))]  # fmt: skip
    assert sum(o == taskstore.INFRA for _t, o in attempts) == len(record.infra), (where, attempts)
    # the scheduler's verdict is the last attempt of the session at a task (an agent's own `complete_task` of work
    # that was then rolled back stays in the history, followed by the verdict)
    verdicts = {t: o for t, o in attempts if o != taskstore.INFRA}
    assert sorted(verdicts) == sorted(t.task_id for t in record.tasks), (where, attempts)
    assert all((verdicts[t.task_id] == "done") == (t.outcome == "passed") for t in record.tasks), (where, attempts)
    commits = conn.execute("SELECT COALESCE(SUM(amount), 0) FROM limit_events WHERE kind = 'commit' AND session = ?",
                           (record.id,)).fetchone()[0]  # fmt: skip
    assert commits == len(on_branch), where  # (the rate limit counts every commit the branch kept)
    # the daemon's cycle: the session's outcome and counts
    assert (cycle.outcome, cycle.tasks_done, cycle.tasks_failed) == (
        record.outcome, len(passed), len(record.tasks) - len(passed)), where  # fmt: skip
    # memory: the session's record closed with the report's outcome
    row = conn.execute("SELECT outcome, final_commit FROM sessions WHERE id = ?", (record.id,)).fetchone()
    assert row is not None and row[0] == record.outcome, (where, tuple(row) if row else None)
    if kept:
        assert row[1] == record.final_commit, where
    return len(on_branch)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    status = Path(f"/proc/{pid}/status")
    return status.exists() and "State:\tZ" not in status.read_text()
