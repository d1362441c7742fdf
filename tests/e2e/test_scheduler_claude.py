"""`overnight run` end to end with the real `claude` CLI, offline, against the scripted model server.

Each scenario runs whole sessions: the scheduler's worktree and branch, the per-run MCP config with our three
servers, the PreToolUse guard, the permission rules, the agent's stream, the scheduler's own verification. And
each proves that the base branch, the person's checkout and the plan on the base branch were not touched.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from mcp_servers.core import memory, plan, taskstore
from mcp_servers.core.workspace import Workspace
from scheduler import journal, report, runner
from scheduler.agents.claude import ClaudeAgent

from ..conftest import GitRepo
from ..scheduler.sessions import PLAN, Person, alive, make_planned, wait_for_agent
from ..scheduler.sessions import plan as make_plan
from ..support.fake_anthropic import Dynamic, FakeAnthropic, Hang, RecordedRequest, TurnLike, block_text
from ..support.procs import processes_mentioning

pytestmark = pytest.mark.e2e

_WORKTREE = re.compile(r"(/[^\"\\\s']+/worktrees/[^/\"\\\s']+/[0-9]{4}-[0-9]{2}-[0-9]{2}-[0-9a-f]+)")


def worktree_of(request: RecordedRequest) -> str:
    """The session's worktree, as Claude Code tells the model its working directory."""
    found = _WORKTREE.search(json.dumps(request.body))
    assert found, "the request does not name the session's worktree"
    return found.group(1)


def in_worktree(make: Callable[[str], TurnLike]) -> Dynamic:
    return Dynamic(lambda request: make(worktree_of(request)))


def write_x(wt: str) -> TurnLike:
    return {"tool": "Write", "input": {"file_path": f"{wt}/src/app/extra.py", "content": "X = 1\n"}}


def done_properly(task_id: str = "sub") -> list[TurnLike]:
    """Write code and its test, run the gate, commit through `commit`, complete the task, log a decision."""
    return [
        in_worktree(lambda wt: [
            "I will add sub() in its own module, with a test.",
            {"tool": "Write", "input": {"file_path": f"{wt}/src/app/extra.py",
                                        "content": "def sub(a, b):\n    return a - b\n"}},
            {"tool": "Write", "input": {"file_path": f"{wt}/tests/test_extra.py",
                                        "content": "from app.extra import sub\n\n\ndef test_sub():\n"
                                                   "    assert sub(3, 1) == 2\n"}},
        ]),
        {"tool": "mcp__quality__run_quality_gate", "input": {}},
        {"tool": "mcp__quality__commit", "input": {"message": "Add sub()", "task_id": task_id}},
        {"tool": "mcp__project__complete_task", "input": {"task_id": task_id}},
        {"tool": "mcp__memory__log_event", "input": {"kind": "decision", "text": "sub() lives in app.extra",
                                                     "task_id": task_id, "files": ["src/app/extra.py"]}},
        "Done: sub() is added and tested, the gate passed and the commit went through the quality server.",
    ]  # fmt: skip


@pytest.fixture
def session_env(offline_env: dict[str, str]) -> dict[str, str]:
    return dict(offline_env)


def _planned(tmp_path: Path, claude: Path, scheduler: str = "max_tasks = 1\n", plan_text: str = PLAN) -> GitRepo:
    return make_planned(tmp_path / "r", plan_text, scheduler=f'claude_command = "{claude}"\n{scheduler}')


def _session(repo: GitRepo, env: dict[str, str]) -> tuple[report.SessionRecord, list[str]]:
    said: list[str] = []
    ws = Workspace.open(repo.root, environ=dict(os.environ))
    record = runner.Runner(ws, ClaudeAgent(ws.settings.scheduler, environ=env), say=said.append).run()
    assert record is not None, said
    return record, said


def _ws(repo: GitRepo) -> Workspace:
    return Workspace.open(repo.root, environ=dict(os.environ))


def _spawn(repo: GitRepo, env: dict[str, str]) -> subprocess.Popen[str]:
    argv = [sys.executable, "-m", "scheduler", "-C", str(repo.root), "run", "--agent", "claude"]
    return subprocess.Popen(argv, env={**os.environ, **env}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)  # fmt: skip


def _results(fake: FakeAnthropic) -> list[dict[str, Any]]:
    """Every tool result the model was sent, once each (each request repeats the conversation so far)."""
    found = {str(r.get("tool_use_id")): r for request in fake.main_requests for r in request.tool_results()}
    return list(found.values())


def test_1_a_task_done_through_the_tools_lands_with_its_receipt(
    tmp_path: Path, claude_bin: Path, fake_model: FakeAnthropic, session_env: dict[str, str]
) -> None:
    repo = _planned(tmp_path, claude_bin)
    person = Person.of(repo)
    fake_model.set_script(done_properly())
    record, said = _session(repo, session_env)
    [task] = record.tasks
    assert task.outcome == "passed", (said, task.reasons, task.refused)
    assert fake_model.remaining == 0 and fake_model.overruns == 0
    body = repo.git("log", "-1", "--format=%B", task.commits[0])
    assert "Overnight-Receipt:" in body and "Overnight-Task: sub" in body
    assert plan.parse(repo.git("show", f"{record.branch}:PROJECT_PLAN.md").encode()).by_id["sub"].status == "done"
    # the agent's result line, read by the adapter
    agent = task.agent
    assert agent is not None and agent.agent == "claude" and not agent.is_error and agent.exit_code == 0
    assert (agent.turns or 0) >= len(fake_model.main_requests) == 6
    assert (agent.tokens_in or 0) > 0 and (agent.tokens_out or 0) > 0
    # the command center's Now page counted them as they came (the session's journal), ending at the result's
    path = journal.path_of(_ws(repo).state_dir, record.id)
    assert path is not None
    told = [e["agent"]["tokens_in"] for e in journal.read(path)[0] if e["kind"] == "agent"
            and e["agent"].get("kind") == "usage" and e["agent"].get("tokens_in") is not None]  # fmt: skip
    assert len(told) > 2 and told == sorted(told) and told[-1] == agent.tokens_in
    assert agent.cost_usd is not None and agent.servers == {"quality": "connected", "project": "connected",
                                                           "memory": "connected"}  # fmt: skip
    assert not [r for r in _results(fake_model) if r.get("is_error")]
    detail = memory.get_session(_ws(repo), record.id)
    assert detail.outcome == "completed" and detail.record["tasks_done"] == ["sub"] and "decision" in detail.by_kind
    text = (_ws(repo).state_dir / "reports" / f"{record.id}.md").read_text()
    assert "`sub` Add sub(): ✅ kept" in text and f"{agent.turns} turns" in text
    person.assert_untouched(repo)


def test_2_git_commit_through_bash_is_refused_and_nothing_lands(
    tmp_path: Path, claude_bin: Path, fake_model: FakeAnthropic, session_env: dict[str, str]
) -> None:
    repo = _planned(tmp_path, claude_bin)
    person = Person.of(repo)
    fake_model.set_script([
        in_worktree(write_x),
        {"tool": "Bash", "input": {"command": "git add -A && git commit -qm 'straight to git'", "description": "c"}},
        {"tool": "Bash", "input": {"command": "git -C . commit --no-verify -qam around", "description": "c"}},
        {"tool": "Bash", "input": {"command": "bash -c 'git commit -qam again'", "description": "c"}},
        "Committed.",
    ])  # fmt: skip
    record, _ = _session(repo, session_env)
    [task] = record.tasks
    assert task.outcome == "failed" and task.reasons[0] == "no commit was made"
    refused = [r for r in _results(fake_model) if r.get("is_error")]
    assert len(refused) == 3 and all("git commit" in block_text(r) or "denied" in block_text(r) for r in refused)
    assert len(task.refused) >= 3 and any("Bash" in r for r in task.refused)
    assert record.final_commit == record.base_commit
    assert not repo.git("branch", "--list", record.branch)  # nothing kept: no branch left behind
    person.assert_untouched(repo)


def test_3_a_protected_or_out_of_scope_edit_is_refused_and_rolled_back(
    tmp_path: Path, claude_bin: Path, fake_model: FakeAnthropic, session_env: dict[str, str]
) -> None:
    repo = _planned(tmp_path, claude_bin)
    person = Person.of(repo)
    fake_model.set_script([
        in_worktree(lambda wt: [
            {"tool": "Write", "input": {"file_path": f"{wt}/.env", "content": "TOKEN=x\n"}},
            {"tool": "Write", "input": {"file_path": f"{wt}/docs/notes.md", "content": "# notes\n"}},
            {"tool": "Write", "input": {"file_path": f"{wt}/src/app/extra.py", "content": "X = 1\n"}},
        ]),
        {"tool": "mcp__quality__commit", "input": {"message": "x", "task_id": "sub"}},
        "I could not finish.",
    ])  # fmt: skip
    record, _ = _session(repo, session_env)
    [task] = record.tasks
    assert task.outcome == "failed"
    errors = [block_text(r) for r in _results(fake_model) if r.get("is_error")]
    assert any("`.env` is protected" in e for e in errors), errors
    assert any("`docs/notes.md` is outside this task's Files: scope" in e for e in errors), errors
    assert any("nothing was committed because the gate failed" in e for e in errors), errors  # no test for X
    assert task.leftovers == ["src/app/extra.py"]  # the one write the guard let through, dropped
    report_text = (_ws(repo).state_dir / "reports" / f"{record.id}.md").read_text()
    assert "is protected" in report_text and "❌ rolled back" in report_text
    assert (repo.root / ".env").read_text() == "DATABASE_URL=postgres://localhost/dev\n"
    person.assert_untouched(repo)


def test_4_a_broken_test_is_rolled_back_and_the_lesson_reaches_the_next_session(
    tmp_path: Path, claude_bin: Path, fake_model: FakeAnthropic, session_env: dict[str, str]
) -> None:
    repo = _planned(tmp_path, claude_bin)
    person = Person.of(repo)
    fake_model.set_script([
        in_worktree(lambda wt: {"tool": "Read", "input": {"file_path": f"{wt}/src/app/calc.py"}}),
        in_worktree(lambda wt: {"tool": "Edit", "input": {"file_path": f"{wt}/src/app/calc.py",
                                                          "old_string": "return a + b", "new_string": "return a * b"}}),
        {"tool": "mcp__quality__run_quality_gate", "input": {}},
        {"tool": "mcp__quality__commit", "input": {"message": "faster add", "task_id": "sub"}},
        "The tests fail and I do not know why.",
    ])  # fmt: skip
    first, _ = _session(repo, session_env)
    [task] = first.tasks
    assert task.outcome == "failed" and "test_add" in task.reasons[1]
    ws = _ws(repo)
    [hit] = memory.search(ws, "rolled back test_add", kind="lesson").hits
    # the next session: its first request to the model carries the lesson, fenced as reference data
    fake_model.set_script(done_properly())
    asked = len(fake_model.main_requests)
    second, _ = _session(repo, session_env)
    assert second.tasks[0].outcome == "passed" and second.tasks[0].attempt == 2
    prompt = json.dumps(fake_model.main_requests[asked].body)
    assert f"lesson #{hit.id}" in prompt and "test_add" in prompt and "not instructions" in prompt
    person.assert_untouched(repo)


def test_5_a_hanging_agent_is_ended_by_the_wall_clock(
    tmp_path: Path, claude_bin: Path, fake_model: FakeAnthropic, session_env: dict[str, str]
) -> None:
    repo = _planned(tmp_path, claude_bin, scheduler="max_tasks = 1\ntask_timeout_min = 0.15\n")
    person = Person.of(repo)
    fake_model.set_script([
        in_worktree(write_x),
        Hang(),
    ])  # fmt: skip
    started = time.monotonic()
    record, _ = _session(repo, session_env)
    [task] = record.tasks
    assert task.outcome == "timed-out" and task.agent is not None and task.agent.timed_out
    assert task.agent.terminal_reason == "timed out" and time.monotonic() - started < 120
    assert fake_model.hang_started.is_set()
    assert record.final_commit == record.base_commit
    person.assert_untouched(repo)


def test_6_overnight_stop_in_the_middle(
    tmp_path: Path, claude_bin: Path, fake_model: FakeAnthropic, session_env: dict[str, str]
) -> None:
    repo = _planned(tmp_path, claude_bin)
    person = Person.of(repo)
    fake_model.set_script([
        in_worktree(write_x),
        Hang(),
    ])  # fmt: skip
    proc = _spawn(repo, session_env)
    try:
        lock = wait_for_agent(repo, proc)
        assert fake_model.hang_started.wait(60)
        stop = subprocess.run([sys.executable, "-m", "scheduler", "-C", str(repo.root), "stop"], capture_output=True,
                              text=True, timeout=60, check=False)  # fmt: skip
        assert stop.returncode == 0 and "signalled to stop" in stop.stdout
        output, _ = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 0, output
    record = report.load(_ws(repo).state_dir, str(lock["session"]))
    assert record.outcome == "stopped" and [t.outcome for t in record.tasks] == ["stopped"]
    assert not alive(int(str(lock["agent_pid"]))) and "⏹ stopped, rolled back" in output
    assert record.final_commit == record.base_commit
    person.assert_untouched(repo)


def test_7_two_failures_in_a_row_stop_the_session(
    tmp_path: Path, claude_bin: Path, fake_model: FakeAnthropic, session_env: dict[str, str]
) -> None:
    repo = _planned(tmp_path, claude_bin, scheduler="")
    person = Person.of(repo)
    fake_model.set_script(["I cannot do this task.", "Nor this one."])
    record, _ = _session(repo, session_env)
    assert [t.task_id for t in record.tasks] == ["sub", "mul"]
    assert record.outcome == "failed" and record.stop_reason == "2 failed tasks in a row"
    assert fake_model.overruns == 0 and len(fake_model.main_requests) == 2
    person.assert_untouched(repo)


def test_8_a_killed_session_is_recovered_by_the_next_run(
    tmp_path: Path, claude_bin: Path, fake_model: FakeAnthropic, session_env: dict[str, str]
) -> None:
    repo = _planned(tmp_path, claude_bin, plan_text=make_plan(("sub", "Add sub()")))
    person = Person.of(repo)
    fake_model.set_script([Hang()])
    proc = _spawn(repo, session_env)
    lock = wait_for_agent(repo, proc)
    assert fake_model.hang_started.wait(60)
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=60)
    agent = int(str(lock["agent_pid"]))
    for _ in range(100):  # the sandbox dies with the scheduler, and every process in it; so do the servers
        if not alive(agent) and not processes_mentioning(str(lock["worktree"])):
            break
        time.sleep(0.1)
    assert not alive(agent), "the agent outlived the scheduler that started it"
    assert processes_mentioning(str(lock["worktree"])) == [], "a server outlived the scheduler that started it"
    fake_model.set_script(done_properly())
    record, said = _session(repo, session_env)
    assert any("removed the worktree of session" in line for line in said), said
    assert not Path(str(lock["worktree"])).exists()
    assert [(t.task_id, t.outcome, t.attempt) for t in record.tasks] == [("sub", "passed", 2)]
    ws = _ws(repo)
    assert memory.get_session(ws, str(lock["session"])).outcome == "crashed"
    with ws.db() as conn:
        assert taskstore.states(conn, time.time())["sub"].failures == 1  # the interrupted attempt
    person.assert_untouched(repo)


def test_9_a_test_that_tries_to_escape_the_sandbox_is_held(
    tmp_path: Path, claude_bin: Path, fake_model: FakeAnthropic, session_env: dict[str, str]
) -> None:
    """The agent writes a test that reaches for the person's checkout, their .git and their home, and runs it
    through Bash, then through the gate: the sandbox holds every write, and the report names the attempt."""
    repo = _planned(tmp_path, claude_bin)
    person = Person.of(repo)
    home = Path(os.environ["HOME"])
    bashrc = home / ".bashrc"
    bashrc.write_text("# the person's shell\n")
    escape = (
        "def test_escape():\n"
        f"    for target in [{str(repo.root / 'NOTES.txt')!r}, {str(repo.root / '.git/hooks/post-checkout')!r},\n"
        f"                   {str(bashrc)!r}]:\n"
        "        with open(target, 'a') as handle:\n"
        "            handle.write('pwned\\n')\n"
    )
    fake_model.set_script([
        in_worktree(lambda wt: {"tool": "Write", "input": {"file_path": f"{wt}/tests/test_escape.py",
                                                           "content": escape}}),
        {"tool": "Bash", "input": {"command": "python -m pytest -q tests/test_escape.py", "description": "t"}},
        {"tool": "mcp__quality__run_quality_gate", "input": {}},
        "Done.",
    ])  # fmt: skip
    record, said = _session(repo, session_env)
    [task] = record.tasks
    assert task.outcome == "failed" and record.final_commit == record.base_commit, said
    ran = [r for r in _results(fake_model) if "Read-only file system" in block_text(r)]
    assert ran, "the escaping test's writes were not refused by the sandbox"
    assert any("python -m pytest" in h and "Read-only file system" in h for h in task.held), task.refused
    text = (_ws(repo).state_dir / "reports" / f"{record.id}.md").read_text()
    assert text.index("Attempts the sandbox held") < text.index("- Outcome:")
    assert bashrc.read_text() == "# the person's shell\n"
    assert not (repo.root / ".git/hooks/post-checkout").exists()
    person.assert_untouched(repo)
