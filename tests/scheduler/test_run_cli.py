"""`overnight cron | run | status | report | stop | resume | demo` from the shell."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from mcp_servers.core.workspace import Workspace
from scheduler import cron
from scheduler.cli import main

from ..conftest import GitRepo
from .sessions import make_planned, passing, write_script

FAKE_CRONTAB = """#!/bin/sh
# a stand-in for cron's crontab(1): the table lives in $CRONTAB_FILE
if [ "$1" = "-l" ]; then
  if [ -f "$CRONTAB_FILE" ]; then cat "$CRONTAB_FILE"; exit 0; fi
  echo "no crontab for $(id -un)" >&2; exit 1
fi
if [ "$1" = "-" ]; then
  [ -n "$CRONTAB_REFUSE" ] && { echo "bad minute" >&2; exit 1; }
  cat > "$CRONTAB_FILE"; exit 0
fi
exit 2
"""


@pytest.fixture
def crontab(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    tool = bin_dir / "crontab"
    tool.write_text(FAKE_CRONTAB)
    tool.chmod(0o755)
    table = tmp_path / "crontab.txt"
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("CRONTAB_FILE", str(table))
    return table


def _cli(repo: GitRepo, *args: str) -> int:
    return main(["-C", str(repo.root), *args])


def test_cron_install_show_remove(tmp_path: Path, crontab: Path, capsys: pytest.CaptureFixture[str]) -> None:
    repo = make_planned(tmp_path / "r")
    crontab.write_text("# the person's own entries stay\n15 3 * * * /usr/bin/backup\n")
    assert _cli(repo, "cron", "install") == 0
    out = capsys.readouterr().out
    assert "crontab line added" in out and "created (mode 0600)" in out
    lines = crontab.read_text().splitlines()
    assert lines[:2] == ["# the person's own entries stay", "15 3 * * * /usr/bin/backup"]
    [entry] = lines[2:]
    ws = Workspace.open(repo.root)
    assert entry.startswith("0 2 * * * cd ") and entry.endswith(f"# overnight: {repo.root}")
    assert f"{sys.executable} -m scheduler run --env-file {cron.env_file(ws)}" in entry
    assert f">> {cron.log_file(ws)} 2>&1" in entry and "PATH=" in entry
    assert entry.endswith(f"-m scheduler -C {repo.root} gc >> {cron.log_file(ws)} 2>&1 # overnight: {repo.root}")
    assert "ANTHROPIC_API_KEY" not in entry
    env_file = cron.env_file(ws)
    assert stat.S_IMODE(env_file.stat().st_mode) == 0o600 and "ANTHROPIC_API_KEY" in env_file.read_text()
    # again, with another schedule: replaced, not added; the env file is kept
    env_file.write_text("ANTHROPIC_API_KEY=sk-ant-test\n")
    assert _cli(repo, "cron", "install", "--schedule", "30 1 * * 1-5") == 0
    assert "crontab line replaced" in capsys.readouterr().out
    lines = crontab.read_text().splitlines()
    assert len(lines) == 3 and lines[2].startswith("30 1 * * 1-5 cd ")
    assert env_file.read_text() == "ANTHROPIC_API_KEY=sk-ant-test\n"
    assert _cli(repo, "cron", "install", "--schedule", "30 1 * * 1-5") == 0
    assert "crontab line unchanged" in capsys.readouterr().out
    assert _cli(repo, "cron", "show") == 0
    assert lines[2] in capsys.readouterr().out
    assert _cli(repo, "cron", "remove") == 0
    assert crontab.read_text().splitlines() == lines[:2]
    assert _cli(repo, "cron", "show") == 1
    assert _cli(repo, "cron", "remove") == 0
    assert "there was no crontab line" in capsys.readouterr().out


def test_cron_refuses_bad_input_and_changes_nothing(
    tmp_path: Path, crontab: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    repo = make_planned(tmp_path / "r")
    assert _cli(repo, "cron", "install", "--schedule", "every night") == 2
    assert "is not a cron schedule" in capsys.readouterr().err and not crontab.exists()
    assert _cli(repo, "cron", "install", "--schedule", "0 2 * * * rm -rf /") == 2
    monkeypatch.setenv("CRONTAB_REFUSE", "1")
    assert _cli(repo, "cron", "install") == 2
    assert "refused the new table (nothing changed)" in capsys.readouterr().err and not crontab.exists()
    only_git = tmp_path / "only-git"
    only_git.mkdir()
    (only_git / "git").symlink_to(str(shutil.which("git")))
    monkeypatch.setenv("PATH", str(only_git))
    assert _cli(repo, "cron", "install") == 2
    assert "`crontab` was not found: install cron" in capsys.readouterr().err
    assert not cron.env_file(Workspace.open(repo.root)).exists()  # nothing half-done


def test_the_cron_line_run_by_a_shell_runs_the_night_then_keeps_the_state_bounded(tmp_path: Path, crontab: Path
                                                                                  ) -> None:  # fmt: skip
    from scheduler import gc

    repo = make_planned(tmp_path / "r")
    assert _cli(repo, "cron", "install") == 0
    [entry] = crontab.read_text().splitlines()
    ws = Workspace.open(repo.root)
    log = cron.log_file(ws)
    log.write_text("an old night's line\n" * (gc.LOG_MAX_BYTES // 20 + 100))
    # as cron runs it: sh, a bare environment, another working directory; the schedule's five fields dropped
    command = entry.split(" ", 5)[5]
    env = {"HOME": os.environ["HOME"], "PATH": "/usr/bin:/bin", "GIT_CONFIG_GLOBAL": os.environ["GIT_CONFIG_GLOBAL"]}
    done = subprocess.run(["/bin/sh", "-c", command], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=300, check=False)  # fmt: skip
    assert done.returncode == 0 and done.stdout == done.stderr == "", done
    text = log.read_text()
    assert text.startswith("overnight gc: the ") and len(text) < gc.LOG_KEEP_BYTES + 4096
    night = text.split("an old night's line\n")[-1]
    assert "overnight: " in night  # what `overnight run` said (here: why no session could start) ...
    assert "removed logs/cron.log (log-head" in night  # ... then what gc removed


def test_cron_show_without_crontab_prints_the_line_it_would_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    repo = make_planned(tmp_path / "r")
    only_git = tmp_path / "only-git"
    only_git.mkdir()
    (only_git / "git").symlink_to(str(shutil.which("git")))
    monkeypatch.setenv("PATH", str(only_git))
    assert _cli(repo, "cron", "show") == 0
    out = capsys.readouterr().out
    assert "`crontab` was not found" in out and "the line `overnight cron install` would add:" in out
    expected = cron.line(Workspace.open(repo.root), cron.DEFAULT_SCHEDULE)
    assert expected in out.splitlines()


def test_an_env_file_others_can_read_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    repo = make_planned(tmp_path / "r")
    secrets = tmp_path / "cron.env"
    secrets.write_text("ANTHROPIC_API_KEY=sk-ant-xyz\n")
    secrets.chmod(0o644)
    assert _cli(repo, "run", "--env-file", str(secrets)) == 2
    assert "has mode 0644, so others may read its secrets: `chmod 600" in capsys.readouterr().err
    assert _cli(repo, "run", "--env-file", str(tmp_path / "missing.env")) == 2
    secrets.chmod(0o600)
    assert cron.load_env_file(secrets) == {"ANTHROPIC_API_KEY": "sk-ant-xyz"}


def test_run_status_report_and_the_kill_switch(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    repo = make_planned(tmp_path / "r", scheduler="max_tasks = 1\n")
    script = write_script(tmp_path / "s.toml", passing("sub", "sub"))
    assert _cli(repo, "run", "--agent", "replay", "--script", str(script)) == 0
    out = capsys.readouterr().out
    assert "`sub` Add sub(): ✅ kept" in out and "(kept as " in out
    assert _cli(repo, "status", "--json") == 0
    status = json.loads(capsys.readouterr().out)
    assert status["running"] is None and status["kill_switch"] is False
    [last] = status["sessions"]
    assert last["outcome"] == "completed" and last["tasks_done"] == 1 and last["branch"].startswith("overnight/")
    assert _cli(repo, "report") == 0
    assert f"# overnight session {last['id']}" in capsys.readouterr().out
    assert _cli(repo, "report", last["id"], "--json") == 0
    assert json.loads(capsys.readouterr().out)["tasks"][0]["outcome"] == "passed"
    assert _cli(repo, "report", "nope") == 2
    assert "no report for session 'nope'" in capsys.readouterr().err
    assert _cli(repo, "stop") == 0
    assert "kill switch set; no session is running" in capsys.readouterr().out
    assert _cli(repo, "status") == 0
    assert "the kill switch is set" in capsys.readouterr().out
    assert _cli(repo, "run", "--agent", "replay", "--script", str(script)) == 2  # preflight refuses
    out = capsys.readouterr().out
    assert "refused at preflight, so no session started: preflight failed" in out and "kill switch" in out
    assert "(kept as " not in out  # no report: it was never a session (issue 11)
    assert _cli(repo, "status", "--json") == 0
    status = json.loads(capsys.readouterr().out)
    assert [s["id"] for s in status["sessions"]] == [last["id"]]
    assert "kill switch" in status["last_refusal"]["problems"][0]
    assert _cli(repo, "status") == 0
    lines = capsys.readouterr().out.splitlines()
    [said] = [line for line in lines if line.startswith("last run refused at preflight: preflight failed (")]
    assert "kill switch" in said and said.endswith(status["last_refusal"]["at"])
    assert _cli(repo, "resume") == 0
    assert "kill switch cleared" in capsys.readouterr().out


def test_run_needs_a_script_for_the_replay_agent(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    repo = make_planned(tmp_path / "r")
    assert _cli(repo, "run", "--agent", "replay") == 2
    assert "the replay agent needs a script" in capsys.readouterr().err


def test_demo_keeps_one_task_and_rolls_two_back(tmp_path: Path) -> None:
    where = tmp_path / "demo"
    done = subprocess.run([sys.executable, "-m", "scheduler", "demo", "--dir", str(where)], capture_output=True,
                          text=True, timeout=600, check=False)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert "`add_sub` Add sub() to the calculator, with a test: ✅ kept" in out
    assert "`api_client` Add a client for the pricing API, with a test: ❌ rolled back" in out
    assert "src/calc/pricing.py [secret]" in out
    # the commit around the gate is refused by the sandbox: the agent's view of git is read-only
    assert "Refused: git commit -q --no-verify" in out and "Read-only file system" in out
    assert "`faster_add` Make add() faster, keeping its behaviour: ❌ rolled back" in out
    assert "test_add" in out
    repo = where / "calc"
    log = subprocess.run(["git", "log", "--format=%s", "--branches=overnight/*"], cwd=repo, capture_output=True,
                         text=True, check=True).stdout.splitlines()  # fmt: skip
    assert log[:2] == ["Mark add_sub done", "Add sub() to the calculator"]
    main_log = subprocess.run(["git", "log", "--format=%s", "main"], cwd=repo, capture_output=True, text=True,
                              check=True).stdout.splitlines()  # fmt: skip
    assert main_log == ["Set up overnight", "calc"]
    assert subprocess.run([sys.executable, "-m", "scheduler", "demo", "--dir", str(where)], capture_output=True,
                          text=True, timeout=60, check=False).returncode == 2  # fmt: skip


def test_demo_on_a_machine_without_bubblewrap_runs_unsandboxed_and_says_so_first(tmp_path: Path) -> None:
    tools = tmp_path / "bin"  # a fresh machine: git and python, no bubblewrap
    tools.mkdir()
    for name in ("git", "python3", "sh"):
        found = shutil.which(name)
        assert found is not None
        (tools / name).symlink_to(found)
    where = tmp_path / "demo"
    done = subprocess.run([sys.executable, "-m", "scheduler", "demo", "--dir", str(where)], capture_output=True,
                          text=True, timeout=600, check=False, env={**os.environ, "PATH": str(tools)})  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "the demo runs unsandboxed" in done.stdout and "bubblewrap" in done.stdout
    report_text = done.stdout[done.stdout.index("\n**This night ran unsandboxed**"):]  # the report's first line
    assert report_text.index("# overnight session") < report_text.index("## `add_sub`")
    assert "`add_sub` Add sub() to the calculator, with a test: ✅ kept" in done.stdout
