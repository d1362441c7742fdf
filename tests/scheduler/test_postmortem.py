"""Reports that stay true (issue 12, item 5): a session SIGKILLed mid-task is written up by the next run (the
task in hand, what its branch kept, when it died), and a timed-out task's report lists what its agent did."""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import time
from pathlib import Path

from mcp_servers.core import memory
from mcp_servers.core.workspace import Workspace
from scheduler import lock, report

from .sessions import (
    HANG,
    PASS,
    Person,
    make_planned,
    passing,
    plan,
    run_session,
    spawn_run,
    task_script,
    write_script,
)

# mul's work committed through the tools (so the branch moves past its last verified commit), then a hang
COMMIT_THEN_HANG = PASS.format(name="mul").split('[[task.step]]\ncall = "project.complete_task"')[0] + (
    "[[task.step]]\nsleep = 600\n"
)


def _ws(root: Path) -> Workspace:
    return Workspace.open(root, environ=dict(os.environ))


def _when(text: str) -> float:
    return dt.datetime.fromisoformat(text).timestamp()


def _wait_for_commit(ws: Workspace, proc: subprocess.Popen[str], task: str, timeout: float = 180) -> dict[str, object]:
    """The lock once the agent on `task` has committed through the quality server (its log says so)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, "the session ended early"
        held = lock.read_lock(ws) or {}
        if held.get("task") == task:
            logs = list((ws.state_dir / "runs" / str(held["session"])).glob(f"{task}-*/agent.jsonl"))
            lines = [json.loads(x) for p in logs for x in p.read_text().splitlines() if x.strip()]
            if any(x.get("tool") == "quality.commit" and x.get("ok") for x in lines):
                return held
        time.sleep(0.2)
    raise AssertionError(f"the agent on {task} never committed")


def test_a_sigkilled_session_s_report_and_memory_say_the_task_the_commit_and_the_time(tmp_path: Path) -> None:
    repo = make_planned(tmp_path / "r", plan(("sub", "Add sub()"), ("mul", "Add mul()")))
    person = Person.of(repo)
    script = write_script(tmp_path / "s.toml", passing("sub", "sub"), task_script("mul", COMMIT_THEN_HANG))
    ws = _ws(repo.root)
    started = time.time()
    proc = spawn_run(repo, script)
    try:
        held = _wait_for_commit(ws, proc, "mul")
        session, branch = str(held["session"]), str(held["branch"])
        kept = str(held["kept"])  # sub's work and the plan's update: verified
        tip = repo.git("rev-parse", branch)
        assert tip != kept and repo.git("rev-parse", f"{tip}^") == kept  # mul's commit, not verified
        os.kill(proc.pid, signal.SIGKILL)
        killed = time.time()
        proc.communicate(timeout=60)
    finally:
        proc.kill()
    _, said = run_session(repo, write_script(tmp_path / "t.toml", task_script("*", 'say = "nothing"\n')))
    old = report.load(ws.state_dir, session)
    assert old.outcome == "crashed" and old.crash is not None, said
    crash = old.crash
    assert crash.task == "mul" and crash.final_commit == kept and old.final_commit == kept
    assert crash.dropped == [tip]  # the unverified commit is off the branch
    assert repo.git("rev-parse", branch) == kept
    assert started - 1 <= _when(crash.died_at) <= killed + 1, (crash.died_at, started, killed)
    assert any(sign in crash.evidence for sign in ("agent.jsonl", "events.jsonl", "lock")), crash.evidence
    assert "task mul in hand" in old.stop_reason and kept[:12] in old.stop_reason
    [sub, mul] = old.tasks
    assert sub.outcome == "passed" and mul.outcome == "interrupted" and mul.title == "Add mul()"
    assert mul.activity is not None and "src/app/calc.py" in mul.activity.files_changed
    assert any("quality.commit" in c for c in mul.activity.tool_calls)
    text = (ws.state_dir / "reports" / f"{session}.md").read_text()
    assert "## The session died" in text and "Task in hand: mul" in text and kept[:12] in text
    assert crash.died_at in text
    detail = memory.get_session(ws, session)
    assert detail.outcome == "crashed" and detail.final_commit == kept
    assert detail.record["task_in_hand"] == "mul" and detail.record["died_at"] == crash.died_at
    assert detail.record["dropped_commits"] == [tip]
    assert "mul" in (detail.stop_reason or "") and crash.died_at in (detail.stop_reason or "")
    assert any("wrote what session" in line for line in said), said
    person.assert_untouched(repo)


def test_a_session_killed_before_it_kept_anything_loses_its_branch(tmp_path: Path) -> None:
    repo = make_planned(tmp_path / "r", plan(("mul", "Add mul()")))
    script = write_script(tmp_path / "s.toml", task_script("mul", COMMIT_THEN_HANG))
    ws = _ws(repo.root)
    proc = spawn_run(repo, script)
    try:
        held = _wait_for_commit(ws, proc, "mul")
        os.kill(proc.pid, signal.SIGKILL)
        proc.communicate(timeout=60)
    finally:
        proc.kill()
    run_session(repo, write_script(tmp_path / "t.toml", task_script("*", 'say = "nothing"\n')))
    old = report.load(ws.state_dir, str(held["session"]))
    assert old.crash is not None and old.crash.final_commit == old.base_commit and len(old.crash.dropped) == 1
    assert repo.git("branch", "--list", str(held["branch"])) == ""  # kept nothing: no branch left
    assert "(the base: nothing was kept)" in (ws.state_dir / "reports" / f"{old.id}.md").read_text()


def test_a_timed_out_task_s_report_lists_what_the_agent_did(tmp_path: Path) -> None:
    repo = make_planned(tmp_path / "r", scheduler="max_tasks = 1\ntask_timeout_min = 0.15\n")
    run = '[[task.step]]\nrun = ["git", "status", "--short"]\n'
    steps = HANG.replace("[[task.step]]\nsleep", run + "[[task.step]]\nsleep")
    record, _ = run_session(repo, write_script(tmp_path / "hang.toml", task_script("sub", steps)))
    [task] = record.tasks
    assert task.outcome == "timed-out" and task.activity is not None
    assert task.activity.turns == 2 and task.activity.tool_calls_total == 2
    assert task.activity.tool_calls == ["write src/app/calc.py", "run `git status --short`"]
    assert task.activity.files_changed == ["src/app/calc.py"]  # from git, before the rollback
    assert task.activity.log.endswith("sub-1/agent.jsonl")
    text = (_ws(repo.root).state_dir / "reports" / f"{record.id}.md").read_text()
    assert "Before it was stopped: 2 turns, 2 tool calls: write src/app/calc.py; run `git status --short`" in text
    assert "Files it changed (git, before the rollback): src/app/calc.py" in text


def test_a_report_left_running_without_a_lock_gets_its_last_sign_of_life(tmp_path: Path) -> None:
    repo = make_planned(tmp_path / "r")
    state = _ws(repo.root).state_dir
    dead = report.SessionRecord(id="2026-01-01-dead00", repo=str(repo.root), started="2026-01-01T00:00:00+00:00")
    report.save(state, dead)
    log = state / "runs" / dead.id / "sub-1" / "agent.jsonl"
    log.parent.mkdir(parents=True)
    log.write_text("{}\n")
    at = time.time() - 3600
    os.utime(state / "reports" / f"{dead.id}.json", (at - 60, at - 60))
    os.utime(log, (at, at))
    assert report.close_dead(state, "2026-12-06-live00")
    closed = report.load(state, dead.id)
    assert closed.outcome == "crashed" and closed.crash is not None and not closed.crash.lock_found
    assert closed.ended == closed.crash.died_at and abs(_when(closed.crash.died_at) - at) < 1
    assert closed.crash.evidence == f"the last write to runs/{dead.id}/sub-1/agent.jsonl"
    assert "the task in hand is not known" in closed.stop_reason


def test_activity_reads_claude_code_s_stream(tmp_path: Path) -> None:
    from scheduler import activity

    root = tmp_path / "wt"
    lines = [
        {"type": "system", "subtype": "init", "cwd": str(root)},
        {"type": "assistant", "message": {"content": [
            {"type": "tool_use", "id": "1", "name": "Write", "input": {"file_path": f"{root}/src/a.py"}},
            {"type": "tool_use", "id": "2", "name": "Bash", "input": {"command": "pytest -q"}}]}},
        {"type": "user", "message": {"content": [{"type": "tool_result", "tool_use_id": "2", "content": "ok"}]}},
        {"type": "assistant", "message": {"content": [
            {"type": "tool_use", "id": "3", "name": "mcp__quality__run_quality_gate", "input": {}}]}},
    ]  # fmt: skip
    log = tmp_path / "agent.jsonl"
    log.write_text("\n".join(json.dumps(x) for x in lines) + "\nnot json\n")
    found = activity.read(log, ["src/b.py"])
    assert found.turns == 2 and found.tool_calls_total == 3
    assert found.tool_calls == ["Write `" + f"{root}/src/a.py`", "Bash `pytest -q`", "mcp__quality__run_quality_gate"]
    assert found.files_changed == ["src/b.py"] and found.files_named == ["src/a.py"]
    assert activity.read("", []).turns == 0  # no log: nothing claimed


def test_activity_keeps_each_name_on_its_line(tmp_path: Path) -> None:
    from scheduler import activity

    log = tmp_path / "agent.jsonl"
    log.write_text(json.dumps({"type": "step", "n": 1, "action": "write", "path": "a\n## ✅ all verified", "ok": True}))
    found = activity.read(log, ["b\n## ✅ kept"])
    assert all("\n" not in line for line in found.lines())
    assert found.files_changed == ["b ## ✅ kept"] and found.tool_calls == ["write a ## ✅ all verified"]
