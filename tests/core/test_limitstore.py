"""The counts behind the rate limits and budgets (issue 12): rolling windows, when a limit frees up, and check and
record in one transaction against a real SQLite file, from threads and from processes."""

from __future__ import annotations

import contextlib
import json
import math
import re
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from mcp_servers.core import config, db, limitstore
from mcp_servers.core.config import Limits
from mcp_servers.core.errors import ConfigError

T0 = 1_800_000_000.0  # a fixed "now" (2027-01-15): the clock is ours


def _open(tmp_path: Path) -> contextlib.AbstractContextManager[sqlite3.Connection]:
    return db.opened(tmp_path / "state.db")


def _run(conn: sqlite3.Connection, limits: Limits, now: float, session: str = "s1") -> int | limitstore.Blocked:
    return limitstore.admit_run(conn, limits, session=session, now=now, expires_at=now + 600)


def test_agent_runs_per_hour_is_a_rolling_hour(tmp_path: Path) -> None:
    limits = Limits(max_agent_runs_per_hour=2)
    with _open(tmp_path) as conn:
        first = _run(conn, limits, T0)
        assert isinstance(first, int)
        limitstore.end_run(conn, first, now=T0 + 10, cost_usd=0)
        assert isinstance(_run(conn, limits, T0 + 1000), int)
        blocked = _run(conn, limits, T0 + 2000)
        assert isinstance(blocked, limitstore.Blocked)
        assert blocked.key == "max_agent_runs_per_hour" and blocked.count == 2 and blocked.limit == 2
        assert blocked.frees_at == T0 + 3600  # the oldest run leaves the hour then, not at the top of an hour
        reason = blocked.reason()
        assert "max_agent_runs_per_hour" in reason and "2 of 2" in reason and limitstore.iso(T0 + 3600) in reason
        assert isinstance(_run(conn, limits, T0 + 3599.5), limitstore.Blocked)
        assert isinstance(_run(conn, limits, T0 + 3600), int)  # (an event counts while at > now - window)


def test_a_blocked_run_records_nothing(tmp_path: Path) -> None:
    limits = Limits(max_agent_runs_per_hour=1)
    with _open(tmp_path) as conn:
        assert isinstance(_run(conn, limits, T0), int)
        for n in range(5):
            assert isinstance(_run(conn, limits, T0 + n), limitstore.Blocked)
        [usage] = limitstore.usage(conn, limits, T0 + 10)
    assert usage.count == 1 and usage.reached and usage.line().startswith("agent runs in the last hour: 1 of 1")


def test_commits_per_day_and_when_they_free_up(tmp_path: Path) -> None:
    limits = Limits(max_commits_per_day=5)
    with _open(tmp_path) as conn:
        limitstore.add_commits(conn, session="a", now=T0, count=2, task_id="t1")
        limitstore.add_commits(conn, session="a", now=T0 + 100, count=2, task_id="t2")
        assert isinstance(_run(conn, limits, T0 + 200), int)  # 4 of 5: a run may still start
        limitstore.add_commits(conn, session="a", now=T0 + 300, count=2, task_id="t3")
        blocked = _run(conn, limits, T0 + 400)
        assert isinstance(blocked, limitstore.Blocked) and blocked.count == 6
        # 6 of 5: the first two commits leave at T0 + 24 h, leaving 4 < 5
        assert blocked.frees_at == T0 + 86_400
        [usage] = limitstore.usage(conn, limits, T0 + 400)
        frees = limitstore.iso(T0 + 86_400)
        assert usage.line() == f"commits kept in the last 24 h: 6 of 5 (reached; frees up at {frees})"
        [later] = limitstore.usage(conn, limits, T0 + 86_400)
        assert later.count == 4 and not later.reached and later.frees_at is None


def test_another_sessions_run_in_progress_reserves_a_commit(tmp_path: Path) -> None:
    limits = Limits(max_commits_per_day=1)
    with _open(tmp_path) as conn:
        going = _run(conn, limits, T0, session="a")
        assert isinstance(going, int)
        blocked = _run(conn, limits, T0 + 1, session="b")  # a's run may make the one commit of the day
        assert isinstance(blocked, limitstore.Blocked) and blocked.key == "max_commits_per_day"
        assert blocked.frees_at == T0 + 600  # its reservation expires (a session that died) at the latest
        limitstore.end_run(conn, going, now=T0 + 50, cost_usd=0.0)  # it ended having kept nothing
        assert isinstance(_run(conn, limits, T0 + 51, session="b"), int)


def test_cost_per_day_and_week(tmp_path: Path) -> None:
    limits = Limits(max_cost_usd_per_day=5.0, max_cost_usd_per_week=8.0)
    with _open(tmp_path) as conn:
        run = _run(conn, limits, T0)
        assert isinstance(run, int)
        limitstore.end_run(conn, run, now=T0 + 60, cost_usd=4.2, task_id="t1")
        run = _run(conn, limits, T0 + 100)
        assert isinstance(run, int)
        limitstore.end_run(conn, run, now=T0 + 160, cost_usd=1.0, task_id="t2")
        blocked = _run(conn, limits, T0 + 200)
        assert isinstance(blocked, limitstore.Blocked) and blocked.key == "max_cost_usd_per_day"
        assert blocked.frees_at == T0 + 60 + 86_400 and "$5.20 of $5.00" in blocked.reason()
        run = _run(conn, limits, T0 + 86_500)  # a day later: under the day's budget, the week has $5.20 of $8
        assert isinstance(run, int)
        limitstore.end_run(conn, run, now=T0 + 86_600, cost_usd=3.0)
        blocked = _run(conn, limits, T0 + 86_700)
        assert isinstance(blocked, limitstore.Blocked) and blocked.key == "max_cost_usd_per_week"
        assert blocked.frees_at == T0 + 60 + 604_800  # dropping the $4.20 leaves $4.00 < $8.00
        lines = [u.line() for u in limitstore.usage(conn, limits, T0 + 86_700)]
    assert lines[0] == "cost in the last 24 h: $3.00 of $5.00"
    assert lines[1].startswith("cost in the last 7 days: $8.20 of $8.00 (reached; frees up at ")


@pytest.mark.parametrize("reported", [-5.0, math.nan, math.inf, "3", True])
def test_a_reported_cost_that_is_not_an_amount_counts_as_zero_and_is_said(reported: object) -> None:
    cost, note = limitstore.clean_cost(reported)  # type: ignore[arg-type]
    assert cost == 0.0 and note is not None and "not a usable amount" in note


def test_the_cooldown_counts_from_the_last_run_that_ended(tmp_path: Path) -> None:
    limits = Limits(cooldown_between_tasks_s=300)
    with _open(tmp_path) as conn:
        assert limitstore.usage(conn, limits, T0)[0].line() == "cooldown between tasks: 300 s (not cooling down)"
        run = _run(conn, limits, T0)
        assert isinstance(run, int)
        limitstore.end_run(conn, run, now=T0 + 100, cost_usd=0)
        blocked = _run(conn, limits, T0 + 200, session="another")
        assert isinstance(blocked, limitstore.Blocked) and blocked.key == "cooldown_between_tasks_s"
        assert blocked.frees_at == T0 + 400 and "cooldown between tasks (300 s)" in blocked.reason()
        assert isinstance(_run(conn, limits, T0 + 400), int)


def test_the_latest_limit_to_free_up_is_the_one_said(tmp_path: Path) -> None:
    limits = Limits(max_agent_runs_per_hour=1, cooldown_between_tasks_s=60, max_commits_per_day=1)
    with _open(tmp_path) as conn:
        run = _run(conn, limits, T0)
        assert isinstance(run, int)
        limitstore.end_run(conn, run, now=T0 + 10, cost_usd=0)
        limitstore.add_commits(conn, session="s1", now=T0 + 10, count=1, task_id="t")
        blocked = _run(conn, limits, T0 + 20)
    assert isinstance(blocked, limitstore.Blocked) and blocked.key == "max_commits_per_day"


def test_pull_requests_per_hour_and_day_and_a_release(tmp_path: Path) -> None:
    limits = Limits(max_prs_per_hour=1, max_prs_per_day=2)
    with _open(tmp_path) as conn:
        first = limitstore.admit_pr(conn, limits, session="a", now=T0)
        assert isinstance(first, int)
        blocked = limitstore.admit_pr(conn, limits, session="b", now=T0 + 10)
        assert isinstance(blocked, limitstore.Blocked) and blocked.key == "max_prs_per_hour"
        limitstore.release(conn, first)  # `gh pr create` failed: not counted
        second = limitstore.admit_pr(conn, limits, session="b", now=T0 + 20)
        assert isinstance(second, int)
        assert isinstance(limitstore.admit_pr(conn, limits, session="c", now=T0 + 3700), int)
        blocked = limitstore.admit_pr(conn, limits, session="d", now=T0 + 7400)
        assert isinstance(blocked, limitstore.Blocked) and blocked.key == "max_prs_per_day"
        assert blocked.frees_at == T0 + 20 + 86_400


def test_no_limit_set_counts_nothing_against_anything(tmp_path: Path) -> None:
    with _open(tmp_path) as conn:
        for n in range(20):
            run = _run(conn, Limits(), T0 + n)
            assert isinstance(run, int)
            limitstore.end_run(conn, run, now=T0 + n, cost_usd=100.0)
        assert limitstore.usage(conn, Limits(), T0 + 20) == []


def test_prune_drops_only_what_no_window_counts(tmp_path: Path) -> None:
    limits = Limits(max_cost_usd_per_week=100.0)
    with _open(tmp_path) as conn:
        old = _run(conn, limits, T0)
        assert isinstance(old, int)
        limitstore.end_run(conn, old, now=T0 + 1, cost_usd=1.0)
        new = _run(conn, limits, T0 + 700_000)
        assert isinstance(new, int)
        limitstore.end_run(conn, new, now=T0 + 700_001, cost_usd=2.0)
        assert limitstore.prune(conn, T0 + 700_000 - limitstore.WEEK) == 2  # the old run and its cost
        [usage] = limitstore.usage(conn, limits, T0 + 700_002)
    assert usage.count == 2.0


def test_threads_admitting_at_once_pass_a_limit_of_one_once(tmp_path: Path) -> None:
    limits = Limits(max_agent_runs_per_hour=1)
    db.connect(tmp_path / "state.db").close()  # created and migrated before the race
    got: list[object] = []
    barrier = threading.Barrier(8)

    def admit(n: int) -> None:
        with _open(tmp_path) as conn:
            barrier.wait()
            got.append(_run(conn, limits, T0, session=f"s{n}"))

    threads = [threading.Thread(target=admit, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert len(got) == 8 and sum(isinstance(g, int) for g in got) == 1


RACER = """
import json, sys
from pathlib import Path
from mcp_servers.core import db, limitstore
from mcp_servers.core.config import Limits
path, session, kind = sys.argv[1], sys.argv[2], sys.argv[3]
limits = Limits(max_agent_runs_per_hour=1, max_prs_per_hour=1)
with db.opened(Path(path)) as conn:
    print("ready", flush=True)
    sys.stdin.readline()
    if kind == "run":
        got = limitstore.admit_run(conn, limits, session=session, now=1_800_000_000.0, expires_at=1_800_000_600.0)
    else:
        got = limitstore.admit_pr(conn, limits, session=session, now=1_800_000_000.0)
print(json.dumps(got if isinstance(got, int) else None), flush=True)
"""


@pytest.mark.parametrize("kind", ["run", "pr"])
def test_processes_admitting_at_once_pass_a_limit_of_one_once(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "state.db"
    db.connect(path).close()
    procs = [subprocess.Popen([sys.executable, "-c", RACER, str(path), f"s{n}", kind], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True) for n in range(6)]  # fmt: skip
    for proc in procs:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    for proc in procs:  # as close to the same moment as processes get
        assert proc.stdin is not None
        proc.stdin.write("go\n")
        proc.stdin.flush()
    answers = [json.loads(proc.communicate(timeout=60)[0].strip().splitlines()[-1]) for proc in procs]
    assert sum(a is not None for a in answers) == 1, answers
    with _open(tmp_path) as conn:
        kinds = [row[0] for row in conn.execute("SELECT kind FROM limit_events")]
    assert kinds == [kind]


def test_config_limits_are_validated(tmp_path: Path) -> None:
    path = tmp_path / "overnight.toml"
    settings = config.parse(b"[limits]\nmax_commits_per_day = 10\n", path)
    assert settings.limits.max_commits_per_day == 10 and settings.limits.max_prs_per_hour == 0
    for bad, says in [
        (b"[limits]\nmax_commits_per_day = -1\n", "max_commits_per_day"),
        (b"[limits]\nmax_cost_usd_per_day = nan\n", "max_cost_usd_per_day"),
        (b"[limits]\nmax_prs_per_hour = 5\nmax_prs_per_day = 2\n", "max_prs_per_hour (5) is more than max_prs_per_day"),
        (b"[limits]\nmax_cost_usd_per_day = 9\nmax_cost_usd_per_week = 5\n", "raise max_cost_usd_per_week"),
        (b"[limits]\nmax_commits_a_day = 3\n", "unknown key"),
        (b"[limits]\ncooldown_between_tasks_s = 100000\n", "cooldown_between_tasks_s"),
    ]:
        with pytest.raises(ConfigError, match=r"(?s)nothing was run.*" + re.escape(says)):
            config.parse(bad, path)


def test_a_run_not_admitted_first_is_counted_with_its_cost(tmp_path: Path) -> None:
    limits = Limits(max_agent_runs_per_hour=1, max_cost_usd_per_day=1.0, cooldown_between_tasks_s=10)
    with _open(tmp_path) as conn:
        limitstore.add_run(conn, session="s", now=T0, cost_usd=1.5, task_id="t")
        blocked = limitstore.blocking(conn, limits, T0 + 20, limitstore.RUN_RULES, cooldown=True)
        keys = {u.key: u for u in limitstore.usage(conn, limits, T0 + 5)}
    assert blocked is not None and blocked.key == "max_cost_usd_per_day"  # (frees up last: a day after)
    assert keys["max_agent_runs_per_hour"].count == 1 and keys["max_cost_usd_per_day"].count == 1.5
    assert keys["cooldown_between_tasks_s"].reached
