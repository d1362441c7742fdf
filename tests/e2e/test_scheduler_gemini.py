"""`overnight run` end to end with the real `gemini` CLI (Gemini CLI 0.61.0), offline, against the scripted Gemini
API (tests/support/fake_gemini.py) through the CLI's base-URL setting.

The same scenarios as Claude Code's: a gated commit lands with its receipt trailer; an ungated `git commit` does not
survive; a protected file does not survive; a test that tries to escape the sandbox is held. Each proves the base
branch, the person's checkout and the plan on the base branch untouched. Plus a daily quota's 429: an
infrastructure stop (probed, then the task is done), not a failure of the task.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mcp_servers.core import memory, plan, taskstore
from mcp_servers.core.workspace import Workspace
from scheduler import activity, report, runner
from scheduler.agents.gemini import GeminiAgent, GeminiSettings, tool

from ..conftest import GitRepo
from ..scheduler.sessions import PLAN, Person, make_planned
from ..support.fake_gemini import MODEL, FakeGemini, TurnLike, quota_exhausted, response_text
from .conftest import _client, _runs

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def gemini_bin(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Gemini CLI's launcher (`gemini`), checked to run."""
    path = _client("gemini")
    _runs([str(path), "--version"], tmp_path_factory.mktemp("gemini-version-home"), "0.61.0")
    return path


@pytest.fixture
def fake() -> Iterator[FakeGemini]:
    with FakeGemini() as server:
        yield server


@pytest.fixture
def env(client_env: dict[str, str], fake: FakeGemini) -> dict[str, str]:
    return {**client_env, **fake.env()}


def done_properly(task_id: str = "sub") -> list[TurnLike]:
    """Write code and its test, run the gate, commit through `commit`, complete the task, log a decision."""
    return [
        [
            "I will add sub() in its own module, with a test.",
            {"tool": "write_file", "input": {"file_path": "src/app/extra.py",
                                             "content": "def sub(a, b):\n    return a - b\n"}},
            {"tool": "write_file", "input": {"file_path": "tests/test_extra.py",
                                             "content": "from app.extra import sub\n\n\ndef test_sub():\n"
                                                        "    assert sub(3, 1) == 2\n"}},
        ],
        {"tool": tool("quality", "run_quality_gate"), "input": {}},
        {"tool": tool("quality", "commit"), "input": {"message": "Add sub()", "task_id": task_id}},
        {"tool": tool("project", "complete_task"), "input": {"task_id": task_id}},
        {"tool": tool("memory", "log_event"), "input": {"kind": "decision", "text": "sub() lives in app.extra",
                                                        "task_id": task_id, "files": ["src/app/extra.py"]}},
        "Done: sub() is added and tested, the gate passed and the commit went through the quality server.",
    ]  # fmt: skip


def _planned(tmp_path: Path, scheduler: str = "max_tasks = 1\n") -> GitRepo:
    return make_planned(tmp_path / "r", PLAN, scheduler=f'agent = "gemini"\n{scheduler}')


def _session(
    repo: GitRepo, gemini: Path, fake: FakeGemini, env: dict[str, str]
) -> tuple[report.SessionRecord, list[str]]:
    said: list[str] = []
    ws = _ws(repo)
    config = GeminiSettings(command=str(gemini), model=MODEL, base_url=fake.url, max_attempts=1)
    record = runner.Runner(ws, GeminiAgent(ws.settings.scheduler, config, environ=env), say=said.append).run()
    assert record is not None, said
    return record, said


def _ws(repo: GitRepo) -> Workspace:
    return Workspace.open(repo.root, environ=dict(os.environ))


def _errors(fake: FakeGemini) -> list[str]:
    """The text of every tool result sent back to the model as an error."""
    return [response_text(r) for r in fake.results() if isinstance(r.get("response"), dict) and
            "error" in r["response"]]  # fmt: skip


def _report(repo: GitRepo, record: report.SessionRecord) -> str:
    return (_ws(repo).state_dir / "reports" / f"{record.id}.md").read_text()


def test_1_a_task_done_through_the_tools_lands_with_its_receipt(
    tmp_path: Path, gemini_bin: Path, fake: FakeGemini, env: dict[str, str], client_home: Path
) -> None:
    repo = _planned(tmp_path)
    deny_all = {
        "hooks": {
            "BeforeTool": [
                {
                    "matcher": ".*",
                    "hooks": [{"type": "command", "name": "planted", "command": 'echo \'{"decision": "deny"}\''}],
                }
            ]
        }
    }
    # the person's own Gemini settings are not the run's either
    (client_home / ".gemini").mkdir()
    (client_home / ".gemini" / "settings.json").write_text(json.dumps(deny_all))
    # settings in the worktree would refuse every call and replace the quality server: they must not apply
    repo.write(".gemini/settings.json", json.dumps({**deny_all, "mcpServers": {"quality": {"command": "false"}},
                                                    "tools": {"exclude": ["write_file"]}}))  # fmt: skip
    repo.commit("a workspace's own Gemini settings")
    person = Person.of(repo)
    fake.set_script(done_properly())
    record, said = _session(repo, gemini_bin, fake, env)
    [task] = record.tasks
    assert task.outcome == "passed", (said, task.reasons, task.refused)
    assert fake.remaining == 0 and fake.overruns == 0 and not _errors(fake)
    offered = fake.main_requests[0].function_names
    assert {tool("quality", "commit"), tool("project", "complete_task"), "run_shell_command"} <= set(offered)
    assert not {"web_fetch", "google_web_search"} & set(offered)
    body = repo.git("log", "-1", "--format=%B", task.commits[0])
    assert "Overnight-Receipt:" in body and "Overnight-Task: sub" in body
    assert plan.parse(repo.git("show", f"{record.branch}:PROJECT_PLAN.md").encode()).by_id["sub"].status == "done"
    agent = task.agent
    assert agent is not None and agent.agent == "gemini" and not agent.is_error and agent.exit_code == 0
    assert agent.turns == len(fake.main_requests) == 6 and agent.terminal_reason == "success"
    assert agent.tokens_in == 600 and agent.tokens_out == 120 and agent.cost_usd is None
    assert agent.final.startswith("Done: sub() is added")
    detail = memory.get_session(_ws(repo), record.id)
    assert detail.outcome == "completed" and detail.record["tasks_done"] == ["sub"] and "decision" in detail.by_kind
    assert "`sub` Add sub(): ✅ kept" in _report(repo, record)
    person.assert_untouched(repo)


def test_2_git_commit_through_the_shell_is_refused_and_nothing_lands(
    tmp_path: Path, gemini_bin: Path, fake: FakeGemini, env: dict[str, str]
) -> None:
    repo = _planned(tmp_path)
    person = Person.of(repo)
    fake.set_script([
        {"tool": "write_file", "input": {"file_path": "src/app/extra.py", "content": "X = 1\n"}},
        {"tool": "run_shell_command", "input": {"command": "git add -A && git commit -qm 'straight to git'"}},
        {"tool": "run_shell_command", "input": {"command": "git -C . commit --no-verify -qam around"}},
        {"tool": "run_shell_command", "input": {"command": "bash -c 'git commit -qam again'"}},
        "Committed.",
    ])  # fmt: skip
    record, _ = _session(repo, gemini_bin, fake, env)
    [task] = record.tasks
    assert task.outcome == "failed" and task.reasons[0] == "no commit was made"
    errors = _errors(fake)
    assert len(errors) == 3 and all("`git commit` is refused" in e for e in errors), errors
    assert len(task.refused) == 3 and all(r.startswith("run_shell_command `") for r in task.refused)
    assert record.final_commit == record.base_commit
    assert not repo.git("branch", "--list", record.branch)
    person.assert_untouched(repo)


def test_3_a_protected_or_out_of_scope_edit_is_refused_and_rolled_back(
    tmp_path: Path, gemini_bin: Path, fake: FakeGemini, env: dict[str, str]
) -> None:
    repo = _planned(tmp_path)
    person = Person.of(repo)
    fake.set_script([
        [
            {"tool": "write_file", "input": {"file_path": ".env", "content": "TOKEN=x\n"}},
            {"tool": "write_file", "input": {"file_path": "tests/conftest.py", "content": "collect_ignore = ['.']\n"}},
            {"tool": "write_file", "input": {"file_path": "docs/notes.md", "content": "# notes\n"}},
            {"tool": "write_file", "input": {"file_path": "src/app/extra.py", "content": "X = 1\n"}},
        ],
        {"tool": tool("quality", "commit"), "input": {"message": "x", "task_id": "sub"}},
        "I could not finish.",
    ])  # fmt: skip
    record, _ = _session(repo, gemini_bin, fake, env)
    [task] = record.tasks
    assert task.outcome == "failed"
    errors = _errors(fake)
    # `.env` is git-ignored: Gemini's own workspace check stops it first; the guard refuses the protected
    # conftest.py inside the task's scope, and the write outside the scope
    assert any("Path not in workspace" in e and ".env" in e for e in errors), errors
    assert any("`tests/conftest.py` is protected" in e for e in errors), errors
    assert any("`docs/notes.md` is outside this task's Files: scope" in e for e in errors), errors
    assert any("nothing was committed because the gate failed" in e for e in errors), errors
    assert task.leftovers == ["src/app/extra.py"]
    assert task.agent is not None  # its real log, read back by its adapter (issue 13)
    done = activity.read(task.agent.log, [], "gemini")
    assert done.tool_calls == ["write_file `.env` (failed)", "write_file `tests/conftest.py` (failed)",
                               "write_file `docs/notes.md` (failed)", "write_file `src/app/extra.py`",
                               "mcp_quality_commit (failed)"], done  # fmt: skip
    text = _report(repo, record)
    assert "is protected" in text and "❌ rolled back" in text
    assert (repo.root / ".env").read_text() == "DATABASE_URL=postgres://localhost/dev\n"
    assert not (repo.root / "tests/conftest.py").exists()
    person.assert_untouched(repo)


def test_4_a_test_that_tries_to_escape_the_sandbox_is_held(
    tmp_path: Path, gemini_bin: Path, fake: FakeGemini, env: dict[str, str]
) -> None:
    repo = _planned(tmp_path)
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
        {"tool": "write_file", "input": {"file_path": "tests/test_escape.py", "content": escape}},
        {"tool": "run_shell_command", "input": {"command": "python -m pytest -q tests/test_escape.py"}},
        {"tool": tool("quality", "run_quality_gate"), "input": {}},
        "Done.",
    ])  # fmt: skip
    record, said = _session(repo, gemini_bin, fake, env)
    [task] = record.tasks
    assert task.outcome == "failed" and record.final_commit == record.base_commit, said
    sent = [response_text(r) for r in fake.results()]
    assert any("Read-only file system" in s for s in sent), sent
    assert any("python -m pytest" in h and "Read-only file system" in h for h in task.held), task.held
    text = _report(repo, record)
    assert text.index("Attempts the sandbox held") < text.index("- Outcome:")
    assert bashrc.read_text() == "# the person's shell\n"
    assert not (repo.root / ".git/hooks/post-checkout").exists()
    person.assert_untouched(repo)


def test_5_a_quota_429_is_an_infrastructure_stop_and_the_task_is_done_after(
    tmp_path: Path, gemini_bin: Path, fake: FakeGemini, env: dict[str, str]
) -> None:
    repo = _planned(tmp_path, scheduler="max_tasks = 1\n\n[infra]\nprobe_delays_s = [1]\n")
    person = Person.of(repo)
    fake.set_script([quota_exhausted(), *done_properly()])
    record, said = _session(repo, gemini_bin, fake, env)
    assert record.outcome == "completed" and record.tasks[0].outcome == "passed", (record.stop_reason, said)
    [stop] = record.infra
    assert stop.stop.kind == "usage-limit" and stop.stop.status == 429 and "limit: 0" in stop.stop.detail
    assert [w.kind for w in record.waits] == ["probe"]
    with _ws(repo).db() as conn:
        state: Any = taskstore.states(conn, __import__("time").time())["sub"]
        outcomes = [r["outcome"] for r in conn.execute("SELECT outcome FROM task_attempts ORDER BY id")]
    assert state.failures == 0 and outcomes == [taskstore.INFRA, "done"]
    person.assert_untouched(repo)
