"""`overnight run` end to end with the real `codex` CLI (0.171.0), offline, against a scripted Responses API.

The same scenarios as Claude Code's (test_scheduler_claude.py): the scheduler's worktree and branch, the per-run
CODEX_HOME with our three servers behind the sandbox's relay, the guard as codex's PreToolUse hook, codex's JSONL
read into the result, the scheduler's own verification. Each proves that the base branch, the person's checkout
and the plan on the base branch were not touched. Plus a usage limit: an infrastructure stop, not a failed task.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mcp_servers.core import memory, plan, taskstore
from mcp_servers.core.workspace import Workspace
from scheduler import activity, report, runner
from scheduler.agents.codex import CodexAgent, CodexSettings

from ..conftest import GitRepo
from ..scheduler.sessions import Person, make_planned
from ..support.fake_openai import FakeOpenAI, usage_limit
from .conftest import _client, _runs, client_environment

pytestmark = pytest.mark.e2e


def sh(cmd: str) -> dict[str, Any]:
    return {"tool": "exec_command", "input": {"cmd": cmd}}


def write(path: str, text: str) -> dict[str, Any]:
    return sh(f"mkdir -p $(dirname {path}) && cat > {path} <<'OVERNIGHT_EOF'\n{text}OVERNIGHT_EOF")


def done_properly(task_id: str = "sub") -> list[Any]:
    """Write code and its test, run the gate, commit through `commit`, complete the task, log a decision."""
    return [
        ["I will add sub() in its own module, with a test.",
         write("src/app/extra.py", "def sub(a, b):\n    return a - b\n"),
         write("tests/test_extra.py", "from app.extra import sub\n\n\ndef test_sub():\n    assert sub(3, 1) == 2\n")],
        {"tool": "mcp__quality__run_quality_gate", "input": {}},
        {"tool": "mcp__quality__commit", "input": {"message": "Add sub()", "task_id": task_id}},
        {"tool": "mcp__project__complete_task", "input": {"task_id": task_id}},
        {"tool": "mcp__memory__log_event", "input": {"kind": "decision", "text": "sub() lives in app.extra",
                                                     "task_id": task_id, "files": ["src/app/extra.py"]}},
        "Done: sub() is added and tested, the gate passed and the commit went through the quality server.",
    ]  # fmt: skip


@pytest.fixture(scope="module")
def codex_bin(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = _client("codex")
    _runs([str(path), "--version"], tmp_path_factory.mktemp("codex-version-home"), "codex-cli ")
    return path


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as server:
        yield server


@pytest.fixture
def session_env(tmp_path: Path) -> dict[str, str]:
    home, scratch = tmp_path / "home", tmp_path / "tmp"
    home.mkdir()
    scratch.mkdir()
    return {**client_environment(home), "TMPDIR": str(scratch)}


def _session(repo: GitRepo, agent: CodexAgent) -> tuple[report.SessionRecord, list[str]]:
    said: list[str] = []
    ws = Workspace.open(repo.root, environ=dict(os.environ))
    record = runner.Runner(ws, agent, say=said.append).run()
    assert record is not None, said
    return record, said


def _agent(repo: GitRepo, codex: Path, fake: FakeOpenAI, env: dict[str, str]) -> CodexAgent:
    settings = CodexSettings(command=str(codex), base_url=fake.url, model="fake-model", request_max_retries=0)
    return CodexAgent(Workspace.open(repo.root).settings.scheduler, settings, environ=env)


def _ws(repo: GitRepo) -> Workspace:
    return Workspace.open(repo.root, environ=dict(os.environ))


def test_1_a_task_done_through_the_tools_lands_with_its_receipt(
    tmp_path: Path, codex_bin: Path, fake: FakeOpenAI, session_env: dict[str, str]
) -> None:
    repo = make_planned(tmp_path / "r", scheduler="max_tasks = 1\n")
    person = Person.of(repo)
    fake.set_script(done_properly())
    asked = len(fake.requests)
    record, said = _session(repo, _agent(repo, codex_bin, fake, session_env))
    [task] = record.tasks
    assert task.outcome == "passed", (said, task.reasons, task.refused, task.agent)
    assert fake.remaining == 0
    body = repo.git("log", "-1", "--format=%B", task.commits[0])
    assert "Overnight-Receipt:" in body and "Overnight-Task: sub" in body
    assert plan.parse(repo.git("show", f"{record.branch}:PROJECT_PLAN.md").encode()).by_id["sub"].status == "done"
    # the MCP servers are offered as codex's namespaces, and the agent's JSONL was read into the result
    first = fake.requests[asked]
    assert {"mcp__quality__commit", "mcp__project__complete_task", "mcp__memory__log_event"} <= set(first.tool_names)
    agent = task.agent
    assert agent is not None and agent.agent == "codex" and not agent.is_error and agent.exit_code == 0
    assert agent.turns == 8 and agent.tokens_in == 600 and agent.tokens_out == 120 and agent.cost_usd is None
    assert agent.servers == {"quality": "connected", "project": "connected", "memory": "connected"}
    assert agent.final.startswith("Done: sub() is added") and not agent.refused
    detail = memory.get_session(_ws(repo), record.id)
    assert detail.outcome == "completed" and detail.record["tasks_done"] == ["sub"] and "decision" in detail.by_kind
    person.assert_untouched(repo)


def _outputs(fake: FakeOpenAI, since: int) -> list[str]:
    found: dict[str, str] = {}
    for request in fake.requests[since:]:
        found.update(request.outputs())
    return list(found.values())


def test_2_git_commit_through_the_shell_is_refused_and_nothing_lands(
    tmp_path: Path, codex_bin: Path, fake: FakeOpenAI, session_env: dict[str, str]
) -> None:
    repo = make_planned(tmp_path / "r", scheduler="max_tasks = 1\n")
    person = Person.of(repo)
    fake.set_script([
        write("src/app/extra.py", "X = 1\n"),
        sh("git add -A && git commit -qm 'straight to git'"),
        sh("git -C . commit --no-verify -qam around"),
        sh("bash -c 'git commit -qam again'"),
        "Committed.",
    ])  # fmt: skip
    asked = len(fake.requests)
    record, _ = _session(repo, _agent(repo, codex_bin, fake, session_env))
    [task] = record.tasks
    assert task.outcome == "failed" and task.reasons[0] == "no commit was made"
    blocked = [o for o in _outputs(fake, asked) if o.startswith("Command blocked by PreToolUse hook")]
    assert len(blocked) == 3 and all("`git commit` is refused" in o for o in blocked), blocked
    assert len([r for r in task.refused if r.startswith("Bash `") and "git commit" in r]) == 3, task.refused
    assert task.agent is not None  # its real log, read back by its adapter (issue 13): the blocked calls too
    done = activity.read(task.agent.log, [], "codex")
    assert len([c for c in done.tool_calls if "commit" in c and c.endswith("(blocked by the guard)")]) == 3, done
    assert record.final_commit == record.base_commit
    assert not repo.git("branch", "--list", record.branch)  # nothing kept: no branch left behind
    person.assert_untouched(repo)


def test_3_a_protected_or_out_of_scope_edit_does_not_survive(
    tmp_path: Path, codex_bin: Path, fake: FakeOpenAI, session_env: dict[str, str]
) -> None:
    repo = make_planned(tmp_path / "r", scheduler="max_tasks = 1\n")
    person = Person.of(repo)
    fake.set_script([
        [write(".env", "TOKEN=x\n"), write("docs/notes.md", "# notes\n"), write("src/app/extra.py", "X = 1\n")],
        {"tool": "mcp__quality__commit", "input": {"message": "x", "task_id": "sub"}},
        "I could not finish.",
    ])  # fmt: skip
    asked = len(fake.requests)
    record, _ = _session(repo, _agent(repo, codex_bin, fake, session_env))
    [task] = record.tasks
    assert task.outcome == "failed" and record.final_commit == record.base_commit
    outputs = _outputs(fake, asked)
    assert any("nothing was committed" in o for o in outputs), outputs
    report_text = (_ws(repo).state_dir / "reports" / f"{record.id}.md").read_text()
    assert "❌ rolled back" in report_text
    assert (repo.root / ".env").read_text() == "DATABASE_URL=postgres://localhost/dev\n"
    assert not (repo.root / "docs" / "notes.md").exists()
    person.assert_untouched(repo)


def test_4_a_test_that_tries_to_escape_the_sandbox_is_held(
    tmp_path: Path, codex_bin: Path, fake: FakeOpenAI, session_env: dict[str, str]
) -> None:
    """The agent writes a test that reaches for the person's checkout, their .git and their home, and runs it
    through the shell, then through the gate: the sandbox holds every write, and the report names the attempt."""
    repo = make_planned(tmp_path / "r", scheduler="max_tasks = 1\n")
    person = Person.of(repo)
    bashrc = Path(os.environ["HOME"]) / ".bashrc"
    bashrc.write_text("# the person's shell\n")
    escape = (
        "def test_escape():\n"
        f"    for target in [{str(repo.root / 'NOTES.txt')!r}, {str(repo.root / '.git/hooks/post-checkout')!r},\n"
        f"                   {str(bashrc)!r}]:\n"
        "        with open(target, 'a') as handle:\n"
        "            handle.write('pwned\\n')\n"
    )
    fake.set_script([
        write("tests/test_escape.py", escape),
        sh("python -m pytest -q tests/test_escape.py"),
        {"tool": "mcp__quality__run_quality_gate", "input": {}},
        "Done.",
    ])  # fmt: skip
    asked = len(fake.requests)
    record, said = _session(repo, _agent(repo, codex_bin, fake, session_env))
    [task] = record.tasks
    assert task.outcome == "failed" and record.final_commit == record.base_commit, said
    assert any("Read-only file system" in o for o in _outputs(fake, asked)), "the escaping writes were not refused"
    assert any("python -m pytest" in h and "Read-only file system" in h for h in task.held), task.refused
    text = (_ws(repo).state_dir / "reports" / f"{record.id}.md").read_text()
    assert text.index("Attempts the sandbox held") < text.index("- Outcome:")
    assert bashrc.read_text() == "# the person's shell\n"
    assert not (repo.root / ".git/hooks/post-checkout").exists()
    person.assert_untouched(repo)


def test_5_a_usage_limit_is_an_infrastructure_stop_and_the_task_is_done_after_it(
    tmp_path: Path, codex_bin: Path, fake: FakeOpenAI, session_env: dict[str, str]
) -> None:
    repo = make_planned(tmp_path / "r", scheduler="max_tasks = 1\n\n[infra]\nprobe_delays_s = [1]\nwait_min_s = 0\n")
    person = Person.of(repo)
    fake.set_script([usage_limit(resets_in_s=2), *done_properly()])
    record, said = _session(repo, _agent(repo, codex_bin, fake, session_env))
    assert record.outcome == "completed" and record.tasks[0].outcome == "passed", (record.stop_reason, said)
    [stop] = record.infra
    assert stop.stop.kind == "usage-limit" and stop.stop.status == 429, stop
    with _ws(repo).db() as conn:  # the stopped run was not an attempt: the task is not set aside
        state = taskstore.states(conn, time.time())["sub"]
        outcomes = [r["outcome"] for r in conn.execute("SELECT outcome FROM task_attempts ORDER BY id")]
    assert state.failures == 0 and outcomes == [taskstore.INFRA, "done"]
    person.assert_untouched(repo)


def _bare_job(tmp_path: Path) -> Any:
    """A run of codex alone: sandbox off, no servers (what the adapter does, not what the scheduler does)."""
    from scheduler.agents import AgentJob
    from scheduler.confine import Confinement

    worktree, folder = tmp_path / "wt", tmp_path / "run"
    worktree.mkdir()
    (folder / "home").mkdir(parents=True)
    return AgentJob(task_id="sub", prompt="do it", worktree=worktree, env={}, run_dir=tmp_path / "logs",
                    timeout_s=120, confinement=Confinement("off", folder, folder / "home", {}))  # fmt: skip


def test_6_an_api_that_cannot_be_reached_ends_the_run_as_a_network_stop(
    tmp_path: Path, codex_bin: Path, session_env: dict[str, str]
) -> None:
    """Codex waits without end for an API it cannot reach ("Reconnecting... waiting for network"): the adapter
    ends the run after `network_wait_s` and says so as an infrastructure stop, not as the person's stop."""
    import socket

    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{probe.getsockname()[1]}/v1"
    job = _bare_job(tmp_path)
    settings = CodexSettings(command=str(codex_bin), base_url=closed, model="fake-model", request_max_retries=0,
                             network_wait_s=3)  # fmt: skip
    started = time.monotonic()
    result = CodexAgent(None, settings, environ=session_env).run(job)
    assert time.monotonic() - started < 60 and not result.stopped and not result.timed_out, result
    assert result.infra is not None and result.infra.kind == "network", result
    assert result.is_error and not job.stop.is_set()


def test_7_codex_has_no_turn_cap_so_the_adapter_ends_the_run_past_max_turns(
    tmp_path: Path, codex_bin: Path, fake: FakeOpenAI, session_env: dict[str, str]
) -> None:
    fake.set_script([sh(f"echo {n} >> steps.txt") for n in range(10)] + ["done"])
    job = _bare_job(tmp_path)
    settings = CodexSettings(command=str(codex_bin), base_url=fake.url, model="fake-model", max_turns=2)
    result = CodexAgent(None, settings, environ=session_env).run(job)
    assert result.terminal_reason == "max turns (2)" and result.is_error and not result.stopped, result
    assert result.infra is None and not job.stop.is_set()
    # ended soon after its second action (how soon depends on the machine's load), long before the tenth
    assert len((job.worktree / "steps.txt").read_text().split()) < 8 and fake.remaining >= 3
