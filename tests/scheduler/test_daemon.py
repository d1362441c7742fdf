"""`overnight daemon`: cycles of real sessions with the replay agent, a clock the tests move, the pause and
`overnight resume`, the active window, reports, SIGTERM and SIGKILL of a real daemon process, one daemon per
repository."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mcp_servers.core import db
from mcp_servers.core.config import Daemon as DaemonSettings
from mcp_servers.core.config import parse
from mcp_servers.core.errors import ConfigError
from mcp_servers.core.workspace import Workspace
from scheduler import daemon_report, daemon_state
from scheduler.agents.replay import ReplayAgent
from scheduler.cli import main
from scheduler.daemon import Daemon, DaemonEvent
from scheduler.window import Window

from ..conftest import GitRepo
from .sessions import HANG, Person, alive, make_planned, passing, plan, task_script, wait_for_agent, write_script


class FakeClock:
    """Real time plus an offset that the daemon's sleeps move forward: nothing sleeps for real, and time still
    flows for what the sessions' own processes stamp."""

    def __init__(self, offset: float = 0.0) -> None:
        self.offset = offset
        self.slept: list[float] = []
        self.hooks: list[object] = []

    def __call__(self) -> float:
        return time.time() + self.offset

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.offset += seconds
        for hook in list(self.hooks):
            hook()  # type: ignore[operator]


DAEMON = "\n[daemon]\nbreak_min = 0\nmax_cycles_per_hour = 50\nmax_cycles_per_day = 500\n"


def _daemon(repo: GitRepo, script: Path, clock: FakeClock, **kw: object) -> tuple[Daemon, list[str]]:
    said: list[str] = []
    ws = Workspace.open(repo.root, environ=dict(os.environ))
    made = Daemon(ws, lambda _ws: ReplayAgent(script), clock=clock, sleep=clock.sleep, say=said.append, **kw)  # type: ignore[arg-type]
    return made, said


def _with_daemon(repo: GitRepo, settings: str) -> None:
    """Append `[daemon]` settings to the repository's overnight.toml, committed (the person's config)."""
    path = repo.root / "overnight.toml"
    path.write_text(path.read_text() + settings)
    repo.git("add", "overnight.toml")
    repo.git("commit", "-q", "-m", "daemon settings")


def _hhmm(when: float) -> str:
    return dt.datetime.fromtimestamp(when, dt.UTC).strftime("%H:%M")


def test_cycles_wait_for_the_window_then_run_until_every_approved_task_is_done(tmp_path: Path) -> None:
    repo = make_planned(tmp_path / "r", plan(("sub", "Add sub()"), ("mul", "Add mul()")), scheduler="max_tasks = 1\n")
    now = time.time()
    opens = now + 3 * 3600 + 120  # three hours and two minutes from now, for four hours, in UTC
    _with_daemon(repo, DAEMON + f'active_window = "{_hhmm(opens)}-{_hhmm(opens + 4 * 3600)}"\nreport_every_hours = 1\n')
    person = Person.of(repo)
    script = write_script(tmp_path / "s.toml", passing("sub", "sub"), passing("mul", "mul"))
    clock = FakeClock()
    told: list[DaemonEvent] = []
    daemon, said = _daemon(repo, script, clock, notify=told.append)
    result = daemon.run()
    assert result.outcome == "complete", said
    # it slept through the closed window (in steps), and no cycle started before it opened
    waited = sum(clock.slept)
    assert waited >= 3 * 3600 - 60, clock.slept
    assert any(e.kind == "waiting" and "active window" in (e.reason or "") for e in told)
    ws = Workspace.open(repo.root)
    with ws.db() as conn:
        cycles = daemon_state.cycles(conn, daemon=daemon.id)
    assert [c.tasks_done for c in cycles] == [1, 1], cycles
    assert all(c.started >= opens - 120 for c in cycles)
    assert all(c.outcome == "completed" and not c.error for c in cycles)
    # the final report: complete, with the totals of the cycles, and each cycle's session as its report says
    final = result.report
    assert final is not None and final.kind == "complete" and final.state == "complete"
    assert final.totals.cycles == 2 and final.totals.tasks_done == 2 and final.totals.tasks_failed == 0
    assert final.criteria == {"all-approved-done": "holds: all 2 approved task(s) done"}
    from scheduler import report

    for c in cycles:
        assert c.session is not None
        record = report.load(ws.state_dir, c.session)
        assert sum(t.outcome == "passed" for t in record.tasks) == c.tasks_done
    # progress reports were written while it waited (every hour of the fake clock), kept beside the sessions'
    kinds = [r.kind for r in daemon_report.listing(ws.state_dir)]
    assert kinds.count("progress") >= 3 and kinds[-1] == "complete"
    assert (ws.state_dir / "reports" / "daemon" / f"{final.id}.md").read_text().startswith("# overnight daemon")
    person.assert_untouched(repo)
    assert any(e.kind == "end" and e.outcome == "complete" for e in told)
    # `overnight report --daemon` shows the final report; `--list` lists them all
    assert main(["-C", str(repo.root), "report", "--daemon"]) == 0
    assert main(["-C", str(repo.root), "report", "--daemon", "--list", "--json"]) == 0


def test_three_nights_one_cycle_each_inside_the_window(tmp_path: Path) -> None:
    tasks = (("sub", "Add sub()"), ("mul", "Add mul()"), ("neg", "Add neg()"))
    repo = make_planned(tmp_path / "r", plan(*tasks), scheduler="max_tasks = 1\n")
    opens = time.time() + 600  # a window of one hour, opening in ten minutes; one cycle a day
    settings = DAEMON.replace("max_cycles_per_day = 500", "max_cycles_per_day = 1")
    _with_daemon(repo, settings + f'active_window = "{_hhmm(opens)}-{_hhmm(opens + 3600)}"\n')
    person = Person.of(repo)
    script = write_script(tmp_path / "s.toml", *(passing(task, task) for task, _ in tasks))
    clock = FakeClock()
    daemon, said = _daemon(repo, script, clock)
    result = daemon.run()
    assert result.outcome == "complete", said
    ws = Workspace.open(repo.root)
    with ws.db() as conn:
        cycles = daemon_state.cycles(conn, daemon=daemon.id)
    assert [c.tasks_done for c in cycles] == [1, 1, 1]
    window = Window(ws.settings.daemon.active_window, "UTC")
    assert all(window.is_open(c.started) for c in cycles)
    nights = [dt.datetime.fromtimestamp(c.started, dt.UTC).date() for c in cycles]
    assert len(set(nights)) == 3 and 2 * 86400 - 120 <= cycles[2].started - cycles[0].started < 2 * 86400 + 3600
    assert result.report is not None and result.report.totals.tasks_done == 3
    starts = [line for line in said if " starts (" in line]  # each cycle's time limit: at most the window's rest
    assert len(starts) == 3 and all(float(line.split(" starts (")[1].split()[0]) <= 1.0 for line in starts), starts
    kinds = [r.kind for r in daemon_report.listing(ws.state_dir)]
    assert kinds.count("status") >= 7 and kinds.count("progress") >= 22  # every 6 and every 2 hours, for two days
    person.assert_untouched(repo)


def test_error_cycles_pause_and_alert_until_overnight_resume(tmp_path: Path, capsys: pytest.CaptureFixture[str]
                                                             ) -> None:  # fmt: skip
    repo = make_planned(tmp_path / "r", plan(("sub", "Add sub()")))
    _with_daemon(repo, DAEMON + "pause_after_error_cycles = 2\n")
    # a script without the task's steps: each cycle is refused at preflight, an error cycle that costs nothing
    script = write_script(tmp_path / "s.toml", task_script("other", "[[task.step]]\nsay = 'nothing'\n"))
    clock = FakeClock()
    told: list[DaemonEvent] = []
    daemon, said = _daemon(repo, script, clock, notify=told.append)
    ws = Workspace.open(repo.root)
    seen: dict[str, object] = {}

    def resume_once_paused() -> None:
        status = daemon_state.status(ws)
        if status["paused"] and "status" not in seen:
            seen["status"] = status
            assert main(["-C", str(repo.root), "status"]) == 0
            seen["shown"] = capsys.readouterr().out
            write_script(script, passing("sub", "sub"))  # the person fixes the cause, then resumes
            assert main(["-C", str(repo.root), "resume"]) == 0
            seen["resumed"] = capsys.readouterr().out

    clock.hooks.append(resume_once_paused)
    result = daemon.run()
    assert result.outcome == "complete", said
    status = seen["status"]
    assert isinstance(status, dict) and status["running"] and status["state"] == "paused"
    assert status["paused"]["reason"] == "2 error cycles in a row"  # type: ignore[index]
    assert "the daemon is paused" in str(seen["shown"]) and "daemon: paused" in str(seen["shown"])
    assert "the daemon's pause (2 error cycles in a row) cleared" in str(seen["resumed"])
    alerts = [e for e in told if e.kind == "paused"]
    assert len(alerts) == 1 and alerts[0].path and Path(alerts[0].path).exists()
    assert "`overnight resume`" in Path(alerts[0].path).read_text()
    with ws.db() as conn:
        cycles = daemon_state.cycles(conn, daemon=daemon.id)
        assert daemon_state.paused(conn) is None
    assert [c.outcome for c in cycles] == ["preflight-failed", "preflight-failed", "completed"]
    assert result.report is not None and result.report.totals.error_cycles == 2
    assert any(e.kind == "resumed" for e in told)


def test_the_kill_switch_ends_the_daemon_with_a_stopped_report(tmp_path: Path) -> None:
    repo = make_planned(tmp_path / "r", plan(("sub", "Add sub()")))
    _with_daemon(repo, DAEMON)
    ws = Workspace.open(repo.root)
    assert main(["-C", str(repo.root), "stop"]) == 0
    daemon, _said = _daemon(repo, write_script(tmp_path / "s.toml", passing("sub", "sub")), FakeClock())
    result = daemon.run()
    assert result.outcome == "stopped" and "kill switch" in result.reason
    assert result.report is not None and result.report.kind == "stopped" and result.report.totals.cycles == 0
    with ws.db() as conn:
        assert daemon_state.cycles(conn) == []


def test_a_second_daemon_exits_at_once(tmp_path: Path) -> None:
    repo = make_planned(tmp_path / "r")
    ws = Workspace.open(repo.root)
    with daemon_state.daemon_lock(ws) as taken:
        assert taken
        daemon_state.write_status(ws, {"pid": os.getpid(), "state": "running"})
        started = time.monotonic()
        argv = [sys.executable, "-m", "scheduler", "-C", str(repo.root), "daemon", "--agent", "replay", "--script",
                str(write_script(tmp_path / "s.toml", passing("sub", "sub")))]  # fmt: skip
        done = subprocess.run(argv, check=False, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        assert f"another daemon (pid {os.getpid()}) runs for this repository" in done.stderr
        assert time.monotonic() - started < 30
        assert daemon_state.running(ws)
    assert not daemon_state.running(ws)


def _spawn_daemon(repo: GitRepo, script: Path, *extra: str) -> subprocess.Popen[str]:
    argv = [sys.executable, "-m", "scheduler", "-C", str(repo.root), "daemon", "--agent", "replay", "--script",
            str(script), *extra]  # fmt: skip
    return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_sigterm_ends_the_cycle_cleanly_with_its_report(tmp_path: Path) -> None:
    repo = make_planned(tmp_path / "r", plan(("sub", "Add sub()")))
    _with_daemon(repo, DAEMON)
    person = Person.of(repo)
    proc = _spawn_daemon(repo, write_script(tmp_path / "s.toml", task_script("sub", HANG)))
    try:
        held = wait_for_agent(repo, proc)  # type: ignore[arg-type]
        assert held["pid"] == proc.pid  # the cycle runs in the daemon's own process
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert "overnight daemon" in out and "stopped" in out
    ws = Workspace.open(repo.root)
    with ws.db() as conn:
        [cycle] = daemon_state.cycles(conn)
    assert cycle.outcome == "stopped" and cycle.ended is not None
    from scheduler import report

    record = report.load(ws.state_dir, cycle.session)
    assert record.outcome == "stopped" and [t.outcome for t in record.tasks] == ["stopped"]
    final = daemon_report.load(ws.state_dir)
    assert final.kind == "stopped" and "SIGTERM" in final.reason
    assert not daemon_state.running(ws) and daemon_state.read_status(ws) is None
    person.assert_untouched(repo)


def test_overnight_stop_wakes_a_daemon_waiting_for_its_window(tmp_path: Path, capsys: pytest.CaptureFixture[str]
                                                              ) -> None:  # fmt: skip
    repo = make_planned(tmp_path / "r", plan(("sub", "Add sub()")))
    opens = time.time() + 3 * 3600
    _with_daemon(repo, DAEMON + f'active_window = "{_hhmm(opens)}-{_hhmm(opens + 3600)}"\n')
    proc = _spawn_daemon(repo, write_script(tmp_path / "s.toml", passing("sub", "sub")))
    ws = Workspace.open(repo.root)
    try:
        deadline = time.monotonic() + 60
        while (daemon_state.read_status(ws) or {}).get("state") != "waiting":
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
            time.sleep(0.2)
        assert main(["-C", str(repo.root), "status"]) == 0
        shown = capsys.readouterr().out
        assert "daemon: waiting (for the active window" in shown and "0 cycle(s) this run, next cycle" in shown
        started = time.monotonic()
        assert main(["-C", str(repo.root), "stop"]) == 0
        out, err = proc.communicate(timeout=60)
        assert time.monotonic() - started < 20  # woken by the signal, not at the end of a 30 s step
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    final = daemon_report.load(ws.state_dir)
    assert final.kind == "stopped" and "kill switch" in final.reason and final.totals.cycles == 0
    assert "stopped" in out and not daemon_state.running(ws)


def test_sigkill_mid_cycle_then_a_restart_recovers(tmp_path: Path) -> None:
    repo = make_planned(tmp_path / "r", plan(("sub", "Add sub()")))
    _with_daemon(repo, DAEMON)
    person = Person.of(repo)
    script = write_script(tmp_path / "s.toml", task_script("sub", HANG))
    proc = _spawn_daemon(repo, script)
    try:
        held = wait_for_agent(repo, proc)  # type: ignore[arg-type]
        proc.send_signal(signal.SIGKILL)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=30)  # (and its pipes closed)
    ws = Workspace.open(repo.root)
    assert not daemon_state.running(ws)  # the kernel released the daemon lock with the process
    person.assert_untouched(repo)
    write_script(script, passing("sub", "sub"))
    again = _spawn_daemon(repo, script)
    _out, err = again.communicate(timeout=300)
    assert again.returncode == 0, err
    assert "released sub (attempt recorded as interrupted)" in err
    assert "closed 1 cycle(s) a dead daemon left open" in err
    assert not alive(int(str(held["agent_pid"])))  # (the sandbox ends the agent with its parent)
    with ws.db() as conn:
        cycles = daemon_state.cycles(conn)
    assert [c.outcome for c in cycles] == ["crashed", "completed"]
    assert cycles[1].tasks_done == 1
    final = daemon_report.load(ws.state_dir)
    assert final.kind == "complete"
    person.assert_untouched(repo)
    from scheduler import report

    assert report.load(ws.state_dir, str(held["session"])).outcome == "crashed"


# -- the parts, one by one ---------------------------------------------------------------------------------------


def test_the_window_runs_across_midnight_in_its_time_zone() -> None:
    berlin = Window("22:00-07:00", "Europe/Berlin")
    noon = dt.datetime(2026, 12, 6, 12, 0, tzinfo=dt.UTC).timestamp()
    assert not berlin.is_open(noon)
    assert berlin.opens_at(noon) == dt.datetime(2026, 12, 6, 21, 0, tzinfo=dt.UTC).timestamp()
    late = dt.datetime(2026, 12, 6, 23, 30, tzinfo=dt.UTC).timestamp()  # 00:30 in Berlin
    assert berlin.is_open(late) and berlin.opens_at(late) == late
    assert berlin.closes_at(late) == dt.datetime(2026, 12, 7, 6, 0, tzinfo=dt.UTC).timestamp()
    day = Window("09:00-17:00")
    assert day.is_open(noon) and not day.is_open(late)
    assert Window("").is_open(noon) and Window("").closes_at(noon) is None


def test_the_limits_per_hour_and_day_say_when_the_next_cycle_may_start(tmp_path: Path) -> None:
    conn = db.connect(tmp_path / "state.db")
    for started in (1000.0, 1100.0, 1200.0):
        cycle = daemon_state.begin_cycle(conn, "d", started)
        daemon_state.end_cycle(conn, cycle, started + 10, session="s", outcome="failed", stop_reason="x",
                               tasks_done=0, tasks_failed=1, cost_usd=0.5)  # fmt: skip
    assert daemon_state.next_start(conn, 1300.0, per_hour=3, per_day=10) == 1000.0 + 3600
    assert daemon_state.next_start(conn, 1300.0, per_hour=4, per_day=10) == 1300.0
    assert daemon_state.next_start(conn, 1300.0, per_hour=5, per_day=2) == 1100.0 + 86400
    assert daemon_state.errors_in_row(conn) == 3
    open_cycle = daemon_state.begin_cycle(conn, "d", 1400.0)
    assert daemon_state.close_dead_cycles(conn, 1500.0) == 1
    assert [c.outcome for c in daemon_state.cycles(conn) if c.id == open_cycle] == ["crashed"]


@pytest.mark.parametrize(("text", "message"), [
    ('active_window = "22:00-7:00"', "is not a window"),
    ('active_window = "22:00-22:00"', "is not a window"),
    ('timezone = "Mars/Olympus"', "is not a time zone"),
    ('complete_when = ["coverage>85"]', "is not a completion criterion"),
    ('complete_when = ["coverage>=185"]', "at most 100"),
    ("cycle_hours = 0", "greater than 0"),
])  # fmt: skip
def test_bad_daemon_settings_are_refused_with_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse(f"[daemon]\n{text}\n".encode(), Path("overnight.toml"))
    assert message in str(caught.value) and "overnight.toml:2" in str(caught.value)


def test_good_daemon_settings_are_read() -> None:
    text = '[daemon]\nactive_window = "22:00-07:00"\ntimezone = "Europe/Berlin"\n'
    text += 'complete_when = ["all-approved-done", "Coverage >= 85", "tests-pass-on-base", "no-open-p0"]\n'
    settings = parse(text.encode(), Path("overnight.toml")).daemon
    assert settings.complete_when == ["all-approved-done", "coverage>=85", "tests-pass-on-base", "no-open-p0"]
    assert DaemonSettings().complete_when == ["all-approved-done"] and DaemonSettings().report_every_hours == 2


def test_status_json_names_the_daemon(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    repo = make_planned(tmp_path / "r")
    assert main(["-C", str(repo.root), "status", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["daemon"]["running"] is False and data["daemon"]["paused"] is None


# -- `overnight service` ------------------------------------------------------------------------------------------

FAKE_SYSTEMCTL = """#!/bin/sh
# a stand-in for systemctl(1): logs its arguments; `is-enabled` and `is-active` answer from $SYSTEMCTL_SAYS
echo "$@" >> "$SYSTEMCTL_LOG"
case "$2" in
  is-enabled) echo enabled ;;
  is-active) echo "${SYSTEMCTL_SAYS:-active}" ;;
  enable) [ -n "$SYSTEMCTL_REFUSE" ] && { echo "Failed to connect to bus" >&2; exit 1; } ;;
esac
exit 0
"""


@pytest.fixture
def systemd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fake `systemctl` on PATH (its calls logged) and a config home of the test's own."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    tool = bin_dir / "systemctl"
    tool.write_text(FAKE_SYSTEMCTL)
    tool.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    log = tmp_path / "systemctl.log"
    monkeypatch.setenv("SYSTEMCTL_LOG", str(log))
    return log


def test_service_install_writes_a_unit_systemd_accepts_then_remove_deletes_it(
    tmp_path: Path, systemd: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from scheduler import cron, service

    repo = make_planned(tmp_path / "my repo%1")  # a space and a `%` (a systemd specifier) in the path
    ws = Workspace.open(repo.root)
    assert main(["-C", str(repo.root), "service", "install"]) == 0
    said = capsys.readouterr().out
    path = service.unit_path(ws)
    assert path.parent == tmp_path / "config" / "systemd" / "user"
    assert path.name.startswith("overnight-my-repo-1-") and path.name.endswith(".service")
    assert f"unit written: {path}" in said.replace("\n", "") or "unit written" in said
    text = path.read_text()
    lines = text.splitlines()
    assert "Restart=on-failure" in lines and "[Install]" in lines and "WantedBy=default.target" in lines
    assert f"WorkingDirectory={str(repo.root).replace('%', '%%')}" in lines
    assert f"EnvironmentFile={str(cron.env_file(ws)).replace('%', '%%')}" in lines
    root = str(repo.root).replace("%", "%%")
    assert f'ExecStart="{sys.executable}" "-m" "scheduler" "-C" "{root}" "daemon"' in lines
    assert "ANTHROPIC_API_KEY" not in text  # secrets stay in the env file
    env = cron.env_file(ws)
    assert env.exists() and (env.stat().st_mode & 0o777) == 0o600
    assert systemd.read_text().splitlines() == ["--user daemon-reload", f"--user enable --now {path.name}"]
    verifier = shutil.which("systemd-analyze")
    if verifier is not None:  # the unit as systemd reads it: no unknown key, no bad value, a valid ExecStart
        checked = subprocess.run([verifier, "verify", str(path)], check=False, capture_output=True, text=True,
                                 timeout=60)  # fmt: skip
        assert checked.returncode == 0, checked.stderr
        assert path.name not in checked.stderr, checked.stderr  # (no warning about our file)
    # again: unchanged; status says installed, enabled, active
    assert main(["-C", str(repo.root), "service", "install"]) == 0
    assert "unit unchanged" in capsys.readouterr().out
    assert main(["-C", str(repo.root), "service", "status", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["installed"] is True and data["enabled"] == "enabled" and data["active"] == "active"
    assert main(["-C", str(repo.root), "service", "remove"]) == 0
    assert "unit removed" in capsys.readouterr().out and not path.exists()
    assert f"--user disable --now {path.name}" in systemd.read_text()
    assert main(["-C", str(repo.root), "service", "status"]) == 1


def test_service_without_systemd_still_writes_the_unit_and_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from scheduler import service

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "git").symlink_to(shutil.which("git") or "/usr/bin/git")
    monkeypatch.setenv("PATH", str(bin_dir))  # git, and no systemctl
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    repo = make_planned(tmp_path / "r")
    assert main(["-C", str(repo.root), "service", "install"]) == 0
    assert "`systemctl` was not found" in capsys.readouterr().out
    assert service.unit_path(Workspace.open(repo.root)).exists()
    assert main(["-C", str(repo.root), "service", "status", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["installed"] is True and data["systemctl"] is False and "not found" in data["problem"]


def test_service_install_says_plainly_when_the_user_manager_refuses(
    tmp_path: Path, systemd: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SYSTEMCTL_REFUSE", "1")
    repo = make_planned(tmp_path / "r")
    assert main(["-C", str(repo.root), "service", "install"]) == 0
    said = capsys.readouterr().out
    assert "enable --now" in said and "failed" in said and "Failed to connect to bus" in said


def test_a_word_systemd_would_read_otherwise_is_quoted_or_refused() -> None:
    from mcp_servers.core.errors import UsageError
    from scheduler import service

    assert service._quote('a "b" $HOME %h \\') == '"a \\"b\\" $$HOME %%h \\\\"'
    with pytest.raises(UsageError, match="cannot be written into a systemd unit"):
        service._quote("two\nlines")


def test_the_daemon_tells_its_channels_what_it_kept_and_that_the_project_is_complete(tmp_path: Path) -> None:
    """Without a `notify` hook of its own, the daemon's alerts go to the `[notify]` channels (signed webhook on
    127.0.0.1 here), beside each cycle's session events; and it prunes the state directory as it starts."""
    from tests.support.receivers import webhook_server

    with webhook_server() as hook:
        repo = make_planned(tmp_path / "r", plan(("sub", "Add sub()")))
        _with_daemon(repo, DAEMON + f'\n[[notify.channels]]\nname = "hook"\nurl = "hmac://127.0.0.1:{hook.port}/h'
                     '?secret={HOOK_SECRET}"\nevents = ["task-kept", "complete", "paused"]\n')  # fmt: skip
        stale = Workspace.open(repo.root).state_dir / "runs" / "2020-01-01-old"
        stale.mkdir(parents=True)
        (stale / "agent.log").write_text("an old log\n")
        os.utime(stale / "agent.log", (0, 0))
        script = write_script(tmp_path / "s.toml", passing("sub", "sub"))
        clock = FakeClock()
        said: list[str] = []
        ws = Workspace.open(repo.root, environ={**os.environ, "HOOK_SECRET": "whsec-0123456789abcdef"})
        daemon = Daemon(ws, lambda _ws: ReplayAgent(script), clock=clock, sleep=clock.sleep, say=said.append)
        assert daemon.run().outcome == "complete", said
    sent = [json.loads(body) for _headers, body in hook.requests]
    assert [m["event"] for m in sent] == ["task-kept", "complete"], sent
    assert "sub" in sent[0]["title"] and "complete" in sent[1]["title"]
    assert not stale.exists() and any("gc removed" in line for line in said), said


def test_the_daemon_waits_out_a_rate_limit_instead_of_starting_cycles_that_cannot_run(tmp_path: Path) -> None:
    repo = make_planned(tmp_path / "r", plan(("sub", "Add sub()"), ("mul", "Add mul()")), scheduler="max_tasks = 1\n")
    _with_daemon(repo, DAEMON + "\n[limits]\nmax_agent_runs_per_hour = 1\n")
    script = write_script(tmp_path / "s.toml", passing("sub", "sub"), passing("mul", "mul"))
    clock = FakeClock()
    told: list[DaemonEvent] = []
    daemon, said = _daemon(repo, script, clock, notify=told.append)
    assert daemon.run().outcome == "complete", said
    ws = Workspace.open(repo.root)
    with ws.db() as conn:
        cycles = daemon_state.cycles(conn, daemon=daemon.id)
    # the second task waited for the hour's run to free up: in the daemon, not in a cycle that ended at once
    assert [c.tasks_done for c in cycles] == [1, 1] and all(c.outcome == "completed" for c in cycles), cycles
    assert any(e.kind == "waiting" and "max_agent_runs_per_hour" in (e.reason or "") for e in told), told
    assert sum(clock.slept) >= 3000, clock.slept
