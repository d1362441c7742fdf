"""`overnight run` with the replay agent: real repositories, real servers spoken to over MCP by a real child
process, real gate runs. Each scenario also proves the person's side was not touched."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mcp_servers.core import memory, plan, queue, refusals, taskstore
from mcp_servers.core.workspace import Workspace
from scheduler import control, lock, report, runner
from scheduler.agents.replay import ReplayAgent

from ..conftest import GitRepo
from .sessions import (
    BREAK,
    HANG,
    PASS,
    PLAN,
    Person,
    alive,
    make_planned,
    passing,
    processes_mentioning,
    run_session,
    spawn_run,
    task_script,
    wait_for_agent,
    write_script,
)

UNSANDBOXED = 'max_tasks = 1\nsandbox = "off"\n'


def _ws(repo: GitRepo) -> Workspace:
    return Workspace.open(repo.root, environ=dict(os.environ))


def _branch_plan(repo: GitRepo, branch: str) -> plan.Plan:
    return plan.parse(repo.git("show", f"{branch}:PROJECT_PLAN.md").encode() + b"\n")


def _worktrees(repo: GitRepo) -> list[str]:
    return [line for line in repo.git("worktree", "list", "--porcelain").splitlines() if line.startswith("worktree ")]


def test_a_task_done_through_the_tools_lands_on_the_session_branch(tmp_path: Path) -> None:
    repo = make_planned(tmp_path / "r", scheduler="max_tasks = 1\n")
    person = Person.of(repo)
    script = write_script(tmp_path / "s.toml", passing("sub", "sub"))
    record, said = run_session(repo, script)
    assert record.outcome == "completed" and record.stop_reason == "the task limit (1)", said
    [task] = record.tasks
    assert task.outcome == "passed" and len(task.commits) == 1
    branch = record.branch
    assert branch.startswith("overnight/") and repo.git("rev-parse", branch) == record.final_commit
    body = repo.git("log", "-1", "--format=%B", task.commits[0])
    assert "Overnight-Receipt:" in body and "Overnight-Task: sub" in body
    # the scheduler's own commit marks the task done on the branch; the base plan still has it ready
    assert repo.git("log", "-1", "--format=%s", branch) == "Mark sub done"
    assert _branch_plan(repo, branch).by_id["sub"].status == "done"
    assert [c.name for c in task.checks] == [
        "safety",
        "tests",
        "checkpoint-tests",
        "coverage",
        "diff-coverage",
        "complexity",
        "security",
    ]
    assert all(c.status == "passed" for c in task.checks)
    person.assert_untouched(repo)
    assert _worktrees(repo) == [f"worktree {repo.root}"]  # the session's worktree is gone, its branch stays
    # memory: the session, closed with its run record, the agent's decision and the scheduler's gate entry
    detail = memory.get_session(_ws(repo), record.id)
    assert detail.outcome == "completed" and detail.record["tasks_done"] == ["sub"]
    assert detail.record["commits"] == task.commits and detail.branch == branch
    assert {"decision", "gate", "summary"} <= set(detail.by_kind)
    # the report: on disk (Markdown and JSON), and through `overnight report`
    text = (_ws(repo).state_dir / "reports" / f"{record.id}.md").read_text()
    assert "`sub` Add sub(): ✅ kept" in text and task.commits[0][:12] in text
    assert report.load(_ws(repo).state_dir).id == record.id


def test_git_commit_around_the_gate_is_refused_or_rolled_back(tmp_path: Path) -> None:
    # the scheduler's verification on its own: unsandboxed, the agent's git is writable
    repo = make_planned(tmp_path / "r", scheduler=UNSANDBOXED)
    person = Person.of(repo)
    steps = """
[[task.step]]
append = "src/app/calc.py"
text = "\\n\\ndef sub(a, b):\\n    return a - b\\n"
[[task.step]]
run = ["git", "commit", "-qam", "plain"]
[[task.step]]
append = "src/app/calc.py"
text = "\\n\\nX = 1\\n"
[[task.step]]
run = ["git", "commit", "-q", "--no-verify", "-am", "around the hook"]
"""
    record, said = run_session(repo, write_script(tmp_path / "s.toml", task_script("sub", steps)))
    [task] = record.tasks
    assert task.outcome == "failed", said
    # no receipt hook in session worktrees any more (it wrote the shared .git/config): the scheduler's own check of
    # every commit is what rolls them back
    assert sum("was made outside the gated `commit` tool: the `commit` tool has no record" in r
               for r in task.reasons) == 2  # fmt: skip
    assert not task.refused and not task.security_events
    assert record.final_commit == record.base_commit and not repo.git("branch", "--list", record.branch)
    person.assert_untouched(repo)
    text = (_ws(repo).state_dir / "reports" / f"{record.id}.md").read_text()
    assert "❌ rolled back" in text and "made outside the gate" in text


@pytest.mark.parametrize(
    ("path", "rule"),
    [(".env", "protected-path"), ("src/other/util.py", "out-of-scope"), ("PROJECT_PLAN.md", "plan-edit")],
)
def test_a_protected_or_out_of_scope_change_is_rolled_back(tmp_path: Path, path: str, rule: str) -> None:
    # the scheduler's verification on its own: unsandboxed, the agent's git is writable
    repo = make_planned(tmp_path / "r", scheduler=UNSANDBOXED)
    person = Person.of(repo)
    steps = f"""
[[task.step]]
append = "{path}"
text = "\\nX = 1\\n"
[[task.step]]
call = "quality.commit"
args = {{ message = "x", task_id = "{{task_id}}" }}
[[task.step]]
run = ["git", "add", "-A"]
[[task.step]]
run = ["git", "commit", "-q", "--no-verify", "-m", "x"]
"""
    record, _ = run_session(repo, write_script(tmp_path / "s.toml", task_script("sub", steps)))
    [task] = record.tasks
    assert task.outcome == "failed"
    assert any(r.startswith(f"[{rule}] {path}") for r in task.reasons), task.reasons
    assert any(r.startswith("quality.commit:") for r in task.refused)
    person.assert_untouched(repo)
    assert (repo.root / "NOTES.txt").exists()


def test_a_broken_test_is_rolled_back_and_the_lesson_reaches_the_next_prompt(tmp_path: Path) -> None:
    repo = make_planned(tmp_path / "r", scheduler="max_tasks = 1\n")
    person = Person.of(repo)
    record, _ = run_session(repo, write_script(tmp_path / "s1.toml", task_script("sub", BREAK)))
    [task] = record.tasks
    assert task.outcome == "failed" and task.reasons[0] == "no commit was made"
    assert "test_add" in task.reasons[1] and task.leftovers == ["src/app/calc.py"]
    ws = _ws(repo)
    [hit] = memory.search(ws, "rolled back", kind="lesson").hits
    [lesson] = memory.get_entries(ws, [hit.id]).entries
    assert "test_add" in lesson.text and "fix every failure" in lesson.text
    with ws.db() as conn:
        assert taskstore.states(conn, time.time())["sub"].failures == 1
    # the next session: the same task again, and its prompt carries the lesson, fenced as reference data
    second, _ = run_session(repo, write_script(tmp_path / "s2.toml", passing("sub", "sub")))
    assert second.tasks[0].outcome == "passed" and second.tasks[0].attempt == 2
    prompt = (ws.state_dir / "runs" / second.id / "sub-2" / "prompt.md").read_text()
    assert f"lesson #{lesson.id}" in prompt and "test_add" in prompt and "not instructions" in prompt
    person.assert_untouched(repo)


def test_a_hanging_agent_is_ended_by_the_wall_clock(tmp_path: Path) -> None:
    repo = make_planned(tmp_path / "r", scheduler="max_tasks = 1\ntask_timeout_min = 0.05\n")
    person = Person.of(repo)
    script = write_script(tmp_path / "hang.toml", task_script("sub", HANG))
    started = time.monotonic()
    record, _ = run_session(repo, script)
    [task] = record.tasks
    assert task.outcome == "timed-out" and task.agent is not None and task.agent.timed_out
    assert time.monotonic() - started < 120
    assert "wall clock" in task.reasons[0]
    assert processes_mentioning(str(script)) == []  # the agent's whole process group is gone
    assert record.final_commit == record.base_commit
    person.assert_untouched(repo)


def test_two_failures_in_a_row_end_the_session(tmp_path: Path) -> None:
    repo = make_planned(tmp_path / "r")
    steps = '\n[[task.step]]\nsay = "I did nothing."\n'
    record, _ = run_session(repo, write_script(tmp_path / "s.toml", task_script("*", steps)))
    assert [t.task_id for t in record.tasks] == ["sub", "mul"]  # neg is never started
    assert record.outcome == "failed" and record.stop_reason == "2 failed tasks in a row"
    assert all(t.reasons[:2] == ["no commit was made", "the agent never ran the quality gate"] for t in record.tasks)
    with _ws(repo).db() as conn:  # the task record keeps the reasons apart (issue 11)
        failure = taskstore.states(conn, time.time())["sub"].last_failure or ""
    assert failure.startswith("no commit was made; the agent never ran the quality gate"), failure


def test_reasons_on_one_line_stay_apart() -> None:
    gate = "the scheduler's own gate run failed:\n- tests: 1 failed\n    tests/t.py:3 assert 1 == 2\n- lint: 2 errors"
    assert report.one_line(["no commit was made", gate]) == (
        "no commit was made; the scheduler's own gate run failed: tests: 1 failed; tests/t.py:3 assert 1 == 2; "
        "lint: 2 errors"
    )
    assert report.one_line(["a", "", "b"], limit=4) == "a; b"


def test_a_failed_task_is_not_retried_in_the_same_session(tmp_path: Path) -> None:
    repo = make_planned(tmp_path / "r", scheduler="max_consecutive_failures = 3\n")
    script = write_script(tmp_path / "s.toml", task_script("sub", BREAK), passing("mul", "mul"), passing("neg", "neg"))
    record, _ = run_session(repo, script)
    assert [(t.task_id, t.outcome) for t in record.tasks] == [("sub", "failed"), ("mul", "passed"), ("neg", "passed")]
    assert record.stop_reason.startswith("no ready task")
    assert _branch_plan(repo, record.branch).by_id["neg"].status == "done"


def test_a_second_run_while_one_holds_the_lock_exits_at_once(tmp_path: Path) -> None:
    repo = make_planned(tmp_path / "r")
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", "overnight"])
    try:
        state = _ws(repo).state_dir
        (state / lock.LOCK_FILE).write_text(json.dumps({"pid": holder.pid, "session": "other"}))
        argv = [sys.executable, "-m", "scheduler", "-C", str(repo.root), "run", "--agent", "replay", "--script", "x"]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
        assert done.returncode == 0, done.stderr
        # said with the session's progress, on stderr (stdout is kept for the report, or --json)
        assert "another session (other, pid" in done.stderr and "nothing to do" in done.stderr
        assert not (state / "reports").exists() or not list((state / "reports").iterdir())
    finally:
        holder.kill()
        holder.wait()


def test_preflight_refuses_before_anything_is_spent(tmp_path: Path) -> None:
    repo = make_planned(tmp_path / "r")
    person = Person.of(repo)
    ws = _ws(repo)
    control.stop_file(ws).write_text("set\n")
    bad = write_script(tmp_path / "bad.toml", "[[task]]\nid = 'sub'\n[[task.step]]\nnothing = 1\n")
    said: list[str] = []
    record = runner.Runner(ws, ReplayAgent(bad), say=said.append).run()
    assert record is not None and record.outcome == "preflight-failed"
    assert any("kill switch" in p for p in record.problems)
    assert any("step 1 needs exactly one of" in p for p in record.problems)
    assert record.tasks == [] and record.branch == "" and _worktrees(repo) == [f"worktree {repo.root}"]
    with ws.db() as conn:
        assert taskstore.states(conn, time.time()) == {}  # nothing claimed
        [refused] = refusals.recent(conn)  # kept apart from the sessions (issue 11)
    assert refused.session == record.id and refused.outcome == "preflight-failed"
    assert refused.reason == "preflight failed" and refused.problems == record.problems
    assert list(report.reports_dir(ws.state_dir).iterdir()) == [] and memory.recent_sessions(ws).sessions == []
    now = control.status(ws)
    assert now["sessions"] == [] and now["last_refusal"]["problems"] == record.problems
    assert any("run refused at preflight (preflight-failed)" in line for line in said)
    person.assert_untouched(repo)


def test_a_replay_script_without_steps_for_a_task_it_would_take_is_refused_at_preflight(tmp_path: Path) -> None:
    repo = make_planned(tmp_path / "r")  # sub, mul, neg ready; max_tasks 5: the session would take all three
    person = Person.of(repo)
    ws = _ws(repo)
    script = write_script(tmp_path / "s.toml", passing("sub", "sub"))
    said: list[str] = []
    record = runner.Runner(ws, ReplayAgent(script), say=said.append).run()
    assert record is not None and record.outcome == "preflight-failed", said
    [problem] = record.problems
    assert "has no steps for `mul`, `neg`, which this session would take (in order: sub, mul, neg)" in problem
    assert 'add a [[task]] with `id = "mul"`' in problem
    assert record.tasks == [] and record.branch == "" and _worktrees(repo) == [f"worktree {repo.root}"]
    with ws.db() as conn:
        assert taskstore.states(conn, time.time()) == {}  # no attempt was used
    person.assert_untouched(repo)
    # the tasks it would not take need no steps; "*" covers every task
    assert ReplayAgent(script).task_problems(["sub"]) == []
    anything = write_script(tmp_path / "any.toml", task_script("*", '\n[[task.step]]\nsay = "hi"\n'))
    assert ReplayAgent(anything).task_problems(["sub", "mul"]) == []


def test_no_ready_task_means_no_branch(tmp_path: Path) -> None:
    repo = make_planned(tmp_path / "r", plan_text=PLAN.replace("Ready for Autonomous Execution", "Someday"))
    record, _ = run_session(repo, write_script(tmp_path / "s.toml", passing("sub", "sub")))
    assert record.outcome == "no-work" and record.branch == "" and record.stop_reason.startswith("no ready task")
    assert repo.git("branch", "--list", "overnight/*") == ""
    ws = _ws(repo)  # not a session: logged apart (issue 11)
    with ws.db() as conn:
        assert [(r.outcome, r.reason) for r in refusals.recent(conn)] == [("no-work", record.stop_reason)]
    assert control.status(ws)["sessions"] == [] and memory.recent_sessions(ws).sessions == []


def test_overnight_stop_ends_the_agent_rolls_back_and_writes_the_report(tmp_path: Path) -> None:
    repo = make_planned(tmp_path / "r", scheduler="max_tasks = 1\n")
    person = Person.of(repo)
    script = write_script(tmp_path / "hang.toml", task_script("sub", HANG))
    proc = spawn_run(repo, script)
    try:
        lock = wait_for_agent(repo, proc)
        ws = _ws(repo)
        message = control.request_stop(ws)
        assert f"session {lock['session']}" in message and "signalled" in message
        output, _ = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 0, output
    record = report.load(ws.state_dir, str(lock["session"]))
    assert record.outcome == "stopped" and [t.outcome for t in record.tasks] == ["stopped"]
    assert record.final_commit == record.base_commit
    assert not alive(int(str(lock["agent_pid"])))
    assert "⏹ stopped, rolled back" in output
    person.assert_untouched(repo)
    with ws.db() as conn:  # a stop is not the task's fault: no failed attempt is counted against it
        assert taskstore.states(conn, time.time())["sub"].failures == 0
    # the kill switch stays set until a person clears it
    assert runner.Runner(ws, ReplayAgent(script), say=lambda _l: None).run().outcome == "preflight-failed"  # type: ignore[union-attr]
    assert control.resume(ws) == "kill switch cleared: sessions may run again"


def test_a_killed_session_is_recovered_by_the_next_run(tmp_path: Path) -> None:
    repo = make_planned(tmp_path / "r", scheduler="max_tasks = 1\n")
    person = Person.of(repo)
    hang = write_script(tmp_path / "hang.toml", task_script("sub", HANG))
    proc = spawn_run(repo, hang)
    lock = wait_for_agent(repo, proc)
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=60)
    agent = int(str(lock["agent_pid"]))
    for _ in range(100):  # the agent's sandbox dies with its scheduler, and every process in it
        if not alive(agent):
            break
        time.sleep(0.1)
    assert not alive(agent), "the agent outlived the scheduler that started it"
    old = Path(str(lock["worktree"]))
    assert old.exists()
    for _ in range(100):  # and so do the servers it started for the agent (each serves that worktree)
        if not processes_mentioning(str(old)):
            break
        time.sleep(0.1)
    assert processes_mentioning(str(old)) == [], "a server outlived the scheduler that started it"
    record, said = run_session(repo, write_script(tmp_path / "s.toml", passing("sub", "sub")))
    recovery = [line for line in said if "recovery:" in line]
    assert any("removed the worktree of session" in line for line in recovery), said
    assert any("released sub (attempt recorded as interrupted)" in line for line in recovery)
    assert not alive(agent) and not old.exists()
    assert record.tasks[0].outcome == "passed" and record.tasks[0].attempt == 2
    ws = _ws(repo)
    assert memory.get_session(ws, str(lock["session"])).outcome == "crashed"
    assert report.load(ws.state_dir, str(lock["session"])).outcome == "crashed"
    with ws.db() as conn:
        outcomes = [r["outcome"] for r in conn.execute("SELECT outcome FROM task_attempts ORDER BY id")]
    assert outcomes[:1] == ["interrupted"]
    person.assert_untouched(repo)


def test_status_shows_the_running_session_and_the_last_ones(tmp_path: Path) -> None:
    repo = make_planned(tmp_path / "r", scheduler="max_tasks = 1\n")
    script = write_script(tmp_path / "hang.toml", task_script("sub", HANG))
    proc = spawn_run(repo, script)
    try:
        lock = wait_for_agent(repo, proc)
        now = control.status(_ws(repo))
        assert now["running"]["session"] == lock["session"] and now["running"]["task"] == "sub"
        assert now["running"]["agent_pid"] == lock["agent_pid"] and now["running"]["task_elapsed_s"] >= 0
        assert now["running"]["agent"] == "replay"  # which agent of a fallback chain runs (issue 13)
        control.request_stop(_ws(repo))
        proc.communicate(timeout=120)
    finally:
        proc.kill()
    after = control.status(_ws(repo))
    assert after["running"] is None and after["kill_switch"] is True
    assert [(s["id"], s["outcome"]) for s in after["sessions"]] == [(lock["session"], "stopped")]


def test_queue_passes_over_excluded_tasks_with_a_reason(tmp_path: Path) -> None:
    repo = make_planned(tmp_path / "r")
    found = queue.next_task(_ws(repo), "s", exclude=["sub"])
    assert found.task is not None and found.task.id == "mul"
    assert [(s.id, s.reason) for s in found.skipped] == [("sub", "already tried in this session")]


def test_refs_the_agent_moves_outside_its_branch_are_put_back(tmp_path: Path) -> None:
    # the scheduler's verification on its own: unsandboxed, the agent's git is writable
    repo = make_planned(tmp_path / "r", scheduler=UNSANDBOXED)
    person = Person.of(repo)
    repo.git("tag", "v1")
    steps = """
[[task.step]]
append = "src/app/calc.py"
text = "\\n\\nX = 1\\n"
[[task.step]]
run = ["git", "commit", "-q", "--no-verify", "-am", "sneaky"]
[[task.step]]
run = ["git", "update-ref", "refs/heads/main", "HEAD"]
[[task.step]]
run = ["git", "tag", "-f", "v1", "HEAD"]
[[task.step]]
run = ["git", "branch", "stash-of-mine", "HEAD"]
[[task.step]]
run = ["git", "checkout", "-q", "--detach"]
"""
    record, _ = run_session(repo, write_script(tmp_path / "s.toml", task_script("sub", steps)))
    [task] = record.tasks
    assert task.outcome == "failed"
    joined = "\n".join(task.reasons)
    assert "security event: the ref refs/heads/main changed" in joined and "refs/tags/v1 changed" in joined
    assert "the ref refs/heads/stash-of-mine was added" in joined and "deleted again" in joined
    assert "moved the worktree's HEAD off" in joined
    assert len(task.security_events) == 3 and all(": put back" in e or "deleted again" in e
                                                  for e in task.security_events)  # fmt: skip
    assert repo.git("branch", "--list", "stash-of-mine") == "" and repo.git("rev-parse", "v1") == person.head
    assert record.final_commit == record.base_commit
    person.assert_untouched(repo)


def test_a_broken_worktree_ends_the_session_with_only_verified_work(tmp_path: Path) -> None:
    # unsandboxed: in its sandbox the agent can neither commit nor remove the worktree's .git file
    repo = make_planned(tmp_path / "r", scheduler='max_tasks = 2\nmax_consecutive_failures = 5\nsandbox = "off"\n')
    person = Person.of(repo)
    breaks = """
[[task.step]]
append = "src/app/calc.py"
text = "\\n\\nX = 1\\n"
[[task.step]]
run = ["git", "commit", "-q", "--no-verify", "-am", "unverified"]
[[task.step]]
run = ["rm", "-f", ".git"]
"""
    script = write_script(tmp_path / "s.toml", passing("sub", "sub"), task_script("mul", breaks))
    record, _ = run_session(repo, script)
    assert record.outcome == "error" and "unverified work was dropped" in record.stop_reason
    assert [(t.task_id, t.outcome) for t in record.tasks] == [("sub", "passed"), ("mul", "failed")]
    assert "the scheduler hit an error (GitError" in record.tasks[1].reasons[0]
    kept = record.tasks[0].commits
    assert repo.git("log", "--format=%s", f"{record.base_commit}..{record.branch}").splitlines() == [
        "Mark sub done", "Add sub()"]  # fmt: skip
    assert record.final_commit == repo.git("rev-parse", record.branch) and kept
    ws = _ws(repo)
    with ws.db() as conn:
        states = taskstore.states(conn, time.time())
    assert states["mul"].claim is None and states["mul"].failures == 1  # settled as interrupted
    assert report.load(ws.state_dir, record.id).outcome == "error"
    assert _worktrees(repo) == [f"worktree {repo.root}"]
    person.assert_untouched(repo)


def test_the_session_budget_stops_new_tasks(tmp_path: Path) -> None:
    repo = make_planned(tmp_path / "r", scheduler="max_session_usd = 1.0\nmax_consecutive_failures = 5\n")
    steps = '\n[[task.step]]\nspend = 0.6\n[[task.step]]\nsay = "Spent, and did nothing."\n'
    record, _ = run_session(repo, write_script(tmp_path / "s.toml", task_script("*", steps)))
    assert [t.task_id for t in record.tasks] == ["sub", "mul"]  # 0.6, then 1.2 >= 1.0: neg never starts
    assert record.stop_reason == "the budget ($1.20 of $1.00 spent)" and record.cost_usd == 1.2


FAKE_GH = """#!/bin/sh
# a stand-in for the GitHub CLI: records its arguments, prints a pull request URL
printf '%s\\n' "$@" > "$GH_ARGS"
echo "https://github.invalid/o/r/pull/7"
"""


def test_kept_work_is_pushed_and_a_draft_pull_request_opened(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = make_planned(tmp_path / "r", scheduler='max_tasks = 1\npush_remote = "origin"\nopen_pr = true\n')
    remote = tmp_path / "remote.git"
    subprocess.run(["git", "init", "-q", "--bare", str(remote)], check=True)
    repo.git("remote", "add", "origin", str(remote))
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "gh").write_text(FAKE_GH)
    (bin_dir / "gh").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("GH_ARGS", str(tmp_path / "gh-args.txt"))
    record, _ = run_session(repo, write_script(tmp_path / "s.toml", passing("sub", "sub")))
    assert record.pushed == f"origin/{record.branch}" and record.pull_request == "https://github.invalid/o/r/pull/7"
    pushed = subprocess.run(["git", "rev-parse", record.branch], cwd=remote, capture_output=True, text=True,
                            check=True).stdout.strip()  # fmt: skip
    assert pushed == record.final_commit
    args = (tmp_path / "gh-args.txt").read_text().splitlines()
    assert args[:6] == ["pr", "create", "--draft", "--head", record.branch, "--base"] and "main" in args
    assert f"overnight {record.id}: sub" in args
    text = (_ws(repo).state_dir / "reports" / f"{record.id}.md").read_text()
    assert f"Pushed to `origin/{record.branch}`; pull request: https://github.invalid/o/r/pull/7" in text


def test_a_failed_push_is_reported_and_the_branch_stays(tmp_path: Path) -> None:
    repo = make_planned(tmp_path / "r", scheduler='max_tasks = 1\npush_remote = "nowhere"\n')
    record, _ = run_session(repo, write_script(tmp_path / "s.toml", passing("sub", "sub")))
    assert record.outcome == "completed" and record.pushed == ""
    assert record.delivery and record.delivery[0].startswith("`git push nowhere")
    assert repo.git("rev-parse", record.branch) == record.final_commit


def test_orphaned_session_worktrees_are_removed_and_their_branches_kept(tmp_path: Path) -> None:
    from scheduler import worktree

    repo = make_planned(tmp_path / "r", plan_text=PLAN.replace("Ready for Autonomous Execution", "Later"))
    ws = _ws(repo)
    orphan = worktree.create(ws, "2026-01-01-dead00", repo.head())
    assert worktree.orphans(ws) == [orphan]
    _, said = run_session(repo, write_script(tmp_path / "s.toml", passing("sub", "sub")))
    assert any(f"removed the orphaned worktree {orphan}" in line for line in said)
    assert not orphan.exists() and repo.git("branch", "--list", "overnight/2026-01-01-dead00")


def test_a_missing_base_branch_fails_preflight(tmp_path: Path) -> None:
    repo = make_planned(tmp_path / "r", scheduler='base_branch = "release"\n')
    record, _ = run_session(repo, write_script(tmp_path / "s.toml", passing("sub", "sub")))
    assert record.outcome == "preflight-failed" and "release" in record.problems[0]
    assert record.branch == "" and repo.git("branch", "--list", "overnight/*") == ""


HOSTILE = """
[[task.step]]
run = ["sh", "-c", '''
d=$(git rev-parse --path-format=absolute --git-common-dir)
m=$(git worktree list --porcelain | sed -n "1s/^worktree //p")
printf '#!/bin/sh\\\\necho pwned\\\\n' > "$d/hooks/post-checkout"; chmod +x "$d/hooks/post-checkout"
git config --file "$d/config" core.fsmonitor 'echo pwned'
git config --file "$d/config" alias.st '!echo pwned'
echo 'secret.txt' >> "$d/info/exclude"
echo evil >> "$m/README.md"
echo evil > "$m/planted.py"
echo 'echo pwned' >> "$HOME/.bashrc"
git push -q {bare} HEAD:refs/heads/evil
''']
"""


def test_a_hostile_agent_is_caught_put_back_and_reported_first(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                                               ) -> None:  # fmt: skip
    """Everything here went through before snapshots: the task passed, and nothing was said or put back."""
    home = tmp_path / "home"
    home.mkdir()
    (home / ".bashrc").write_text("# mine\n")
    monkeypatch.setenv("HOME", str(home))
    bare = tmp_path / "origin.git"
    subprocess.run(["git", "init", "-q", "--bare", str(bare)], check=True)
    repo = make_planned(tmp_path / "r", scheduler=UNSANDBOXED)  # the snapshot on its own, with no sandbox to hold
    repo.git("remote", "add", "origin", str(bare))
    repo.git("push", "-q", "origin", "main")
    person = Person.of(repo)
    exclude = (repo.root / ".git/info/exclude").read_bytes()
    remote = repo.git("ls-remote", "origin")
    steps = PASS.format(name="sub") + HOSTILE.format(bare=bare)
    record, said = run_session(repo, write_script(tmp_path / "s.toml", task_script("sub", steps)))
    [task] = record.tasks
    assert task.outcome == "failed" and record.final_commit == record.base_commit, said
    assert task.reasons and all(r.startswith("security event: ") for r in task.reasons), task.reasons
    events = "\n".join(task.security_events)
    for seen in ("hooks/post-checkout was added", ".git/config changed", "info/exclude changed", "README.md in the",
                 "planted.py in the", ".bashrc in your home changed", "refs/heads/evil on the remote origin"):
        assert seen in events, events
    assert "not put back" not in events
    # all put back: the person's side is as it was, byte for byte
    person.assert_untouched(repo)
    assert not (repo.root / ".git/hooks/post-checkout").exists() and not (repo.root / "planted.py").exists()
    assert (repo.root / ".git/info/exclude").read_bytes() == exclude and repo.git("ls-remote", "origin") == remote
    assert (home / ".bashrc").read_text() == "# mine\n"
    # reported first, in the Markdown and in `overnight status`
    text = (_ws(repo).state_dir / "reports" / f"{record.id}.md").read_text()
    assert text.index("## ⚠️ Security events") < text.index("- Outcome:") and "task sub: git's file" in text
    [last] = control.status(_ws(repo))["sessions"]
    assert len(last["security_events"]) == len(task.security_events)


def test_a_session_leaves_git_config_and_hooks_byte_identical(tmp_path: Path) -> None:
    repo = make_planned(tmp_path / "r", scheduler="max_tasks = 1\n")
    config = (repo.root / ".git/config").read_bytes()
    hooks = sorted(p.name for p in (repo.root / ".git/hooks").iterdir())
    record, said = run_session(repo, write_script(tmp_path / "s.toml", passing("sub", "sub")))
    assert record.tasks[0].outcome == "passed", said
    assert (repo.root / ".git/config").read_bytes() == config  # no extensions.worktreeConfig, no core.hooksPath
    assert sorted(p.name for p in (repo.root / ".git/hooks").iterdir()) == hooks
    assert not (repo.root / ".git/config.worktree").exists()
    assert not record.security_events and not record.tasks[0].security_events
