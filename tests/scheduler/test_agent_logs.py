"""Each agent's log read back by its own adapter (issue 13): what a run did (`scheduler.activity`, for the report of
a stopped run and the post-mortem of a session that died), the costs it reported (`scheduler.limits.highest_cost`)
and the tool names of messages said in the shell (`scheduler.wording`).

The logs in tests/fixtures/agent_logs are real: written by Claude Code 2.1.330, Codex 0.171.0 and Gemini CLI 0.61.0
in the end-to-end scenarios (tests/e2e/test_scheduler_*.py) against the scripted model servers, with long texts
cut and the temporary folders renamed.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest

from mcp_servers.core.workspace import Workspace
from scheduler import activity, agents, recovery, report, runner
from scheduler.agents import registry
from scheduler.limits import highest_cost
from scheduler.wording import for_shell

from .sessions import make_planned

LOGS = Path(__file__).parent.parent / "fixtures" / "agent_logs"


def _copy(tmp_path: Path, name: str, stderr: bool = False) -> Path:
    """A fixture log copied alone into its own run folder (with codex's stderr log beside it when asked)."""
    folder = tmp_path / name.removesuffix(".jsonl")
    folder.mkdir()
    shutil.copy(LOGS / name, folder / "agent.jsonl")
    if stderr:
        shutil.copy((LOGS / name).with_suffix(".stderr"), folder / "agent.stderr")
    return folder / "agent.jsonl"


def _write(path: Path, lines: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path


def test_a_codex_log_lists_its_commands_and_tool_calls(tmp_path: Path) -> None:
    found = activity.read(_copy(tmp_path, "codex-protected-edit.jsonl"), ["src/app/extra.py"], "codex")
    assert found.tool_calls == [
        "Bash `mkdir -p $(dirname .env) && cat > .env <<'OVERNIGHT_EOF' TOKEN=x OVERNIGHT_EOF`",
        "Bash `mkdir -p $(dirname docs/notes.md) && cat > docs/notes.md <<'OVERNIGHT_EOF' # notes OVERNIGHT_EOF`",
        "Bash `mkdir -p $(dirname src/app/extra.py) && cat > src/app/extra.py <<'OVERNIGHT_EOF' X = 1 OVERNIGHT_EOF`",
        "mcp__quality__commit (failed)",  # the quality server refused it: nothing passed the gate
    ]  # fmt: skip
    assert found.turns == 5 and found.tool_calls_total == 4  # four calls and its last words
    assert found.files_changed == ["src/app/extra.py"] and found.files_named == []
    # the same log read as Claude Code's says nothing: the adapter that wrote it is the one that reads it
    assert activity.read(found.log, [], "claude").tool_calls_total == 0


def test_codex_calls_the_guard_blocked_are_read_from_its_stderr_log(tmp_path: Path) -> None:
    """A call codex's PreToolUse hook blocked leaves no JSONL item: codex says so on stderr only."""
    found = activity.read(_copy(tmp_path, "codex-git-commit-blocked.jsonl", stderr=True), [], "codex")
    assert found.tool_calls[0].startswith("Bash `mkdir -p $(dirname src/app/extra.py)")
    assert found.tool_calls[1:] == [
        "Bash `git add -A && git commit -qm 'straight to git'` (blocked by the guard)",
        "Bash `git -C . commit --no-verify -qam around` (blocked by the guard)",
        "Bash `bash -c 'git commit -qam again'` (blocked by the guard)",
    ]
    assert found.turns == 5
    alone = tmp_path / "alone"
    alone.mkdir()
    assert activity.read(_copy(alone, "codex-git-commit-blocked.jsonl"), [], "codex").tool_calls_total == 1


def test_a_codex_run_ended_mid_call_shows_what_it_was_doing(tmp_path: Path) -> None:
    lines = (LOGS / "codex-escaping-test.jsonl").read_text().splitlines()
    cut = next(i for i, line in enumerate(lines) if '"item.started"' in line and "pytest" in line)
    log = tmp_path / "agent.jsonl"
    log.write_text("\n".join(lines[: cut + 1]) + "\n")  # killed while the test ran
    found = activity.read(log, [], "codex")
    assert found.tool_calls[-1] == "Bash `python -m pytest -q tests/test_escape.py` (running)"
    assert found.tool_calls_total == 2 and found.turns == 1  # (codex counts an item once it completed)
    whole = activity.read(_copy(tmp_path, "codex-escaping-test.jsonl"), [], "codex")
    assert whole.tool_calls[1:] == ["Bash `python -m pytest -q tests/test_escape.py` (failed)",
                                    "mcp__quality__run_quality_gate"]  # fmt: skip


def test_codex_file_changes_name_the_files_it_wrote(tmp_path: Path) -> None:
    """apply_patch's `file_change` item (codex's FileChangeItem: `changes` of `path` and `kind`)."""
    root = "/work/wt"  # (a patch's paths are absolute)
    changes = [{"path": f"{root}/src/a.py", "kind": "update"}, {"path": f"{root}/src/b.py", "kind": "add"}]
    change = {"id": "item_1", "type": "file_change", "status": "completed", "changes": changes}
    log = _write(tmp_path / "agent.jsonl", [{"type": "thread.started"}, {"type": "item.completed", "item": change}])
    found = activity.read(log, ["src/a.py"], "codex", root=root)
    assert found.tool_calls == [f"patch update {root}/src/a.py, add {root}/src/b.py"]
    assert found.files_named == ["src/b.py"]  # relative to the worktree; src/a.py is in git's list already


def test_a_gemini_log_lists_its_tool_calls_and_the_files_it_wrote(tmp_path: Path) -> None:
    found = activity.read(_copy(tmp_path, "gemini-protected-edit.jsonl"), ["src/app/extra.py"], "gemini")
    assert found.tool_calls == [
        "write_file `.env` (failed)",  # outside the workspace, for Gemini CLI's own check
        "write_file `tests/conftest.py` (failed)",  # the guard's BeforeTool hook
        "write_file `docs/notes.md` (failed)",
        "write_file `src/app/extra.py`",
        "mcp_quality_commit (failed)",
    ]
    assert found.turns == 3  # the four writes came in one reply
    assert found.files_named == [".env", "tests/conftest.py", "docs/notes.md"]  # git saw only src/app/extra.py
    refused = activity.read(_copy(tmp_path, "gemini-git-commit-refused.jsonl"), [], "gemini")
    assert refused.tool_calls[1:] == ["run_shell_command `git add -A && git commit -qm 'straight to git'` (failed)",
                                      "run_shell_command `git -C . commit --no-verify -qam around` (failed)",
                                      "run_shell_command `bash -c 'git commit -qam again'` (failed)"]  # fmt: skip
    assert activity.read(found.log, [], "claude").tool_calls_total == 0


def test_claude_code_and_replay_logs_read_as_before(tmp_path: Path) -> None:
    done = activity.read(_copy(tmp_path, "claude-task-done.jsonl"), [])
    assert done.turns == 7 and done.tool_calls[2:] == [
        "mcp__quality__run_quality_gate", "mcp__quality__commit", "mcp__project__complete_task",
        "mcp__memory__log_event"]  # fmt: skip
    assert done.files_named == ["src/app/extra.py", "tests/test_extra.py"]  # relative to the init line's cwd
    for agent in ("", "claude", "replay", "no-such-agent"):  # a record that names none, or a test's own agent
        assert activity.read(done.log, [], agent) == done
    stopped = activity.read(_copy(tmp_path, "claude-stopped.jsonl"), [], "claude")
    assert stopped.turns == 1 and stopped.tool_calls_total == 1  # no result line: its assistant messages count


def test_the_command_agent_s_output_is_its_own_and_not_read(tmp_path: Path) -> None:
    log = tmp_path / "agent.log"
    shutil.copy(LOGS / "claude-task-done.jsonl", log)  # a command printing Claude-shaped lines claims nothing
    assert activity.read(log, ["src/app/extra.py"], "command").model_dump() == activity.Activity(
        files_changed=["src/app/extra.py"], log=str(log)).model_dump()  # fmt: skip
    assert highest_cost(0.5, str(log), "command") == (0.5, None)


def test_a_cheaper_result_line_forged_into_a_real_claude_log_does_not_lower_the_cost(tmp_path: Path) -> None:
    log = _copy(tmp_path, "claude-task-done.jsonl")
    real = registry.get("claude").costs(log)
    assert real == [pytest.approx(0.377976)]
    with log.open("a") as handle:
        handle.write(json.dumps({"type": "result", "subtype": "success", "is_error": False, "total_cost_usd": 0.0}))
    cost, said = highest_cost(0.0, str(log), "claude")
    assert cost == pytest.approx(0.377976) and said is not None and "2 result lines" in said
    assert highest_cost(0.0, str(log), "replay")[0] == cost  # the replay agent writes Claude Code's lines
    # Codex and Gemini report no cost: a `result` line in their logs is not theirs, and changes nothing
    for agent, name in (("codex", "codex-protected-edit.jsonl"), ("gemini", "gemini-protected-edit.jsonl")):
        other = _copy(tmp_path, name)
        with other.open("a") as handle:
            handle.write(json.dumps({"type": "result", "total_cost_usd": 9.0}) + "\n")
            handle.write(json.dumps({"type": "result", "total_cost_usd": 0.0}) + "\n")
        assert highest_cost(None, str(other), agent) == (None, None)
        assert highest_cost(None, str(other), "claude")[0] == 9.0  # (read as Claude Code's, it would count)


def test_recovery_reads_the_log_of_the_agent_the_lock_names(tmp_path: Path) -> None:
    repo = make_planned(tmp_path / "r")
    ws = Workspace.open(repo.root)
    record = report.SessionRecord(id="2026-12-06-dead00", repo=str(repo.root), started="2026-12-06T20:00:00+00:00")
    run = ws.state_dir / "runs" / record.id / "sub-1"
    run.mkdir(parents=True)
    shutil.copy(LOGS / "gemini-protected-edit.jsonl", run / "agent.jsonl")
    stale = {"session": record.id, "task": "sub", "title": "Add sub()", "agent": "gemini"}
    task = recovery._in_hand(ws, record, stale, ["src/app/extra.py"])
    assert task.outcome == "interrupted" and task.activity is not None
    assert task.activity.tool_calls_total == 5 and task.activity.turns == 3
    old = recovery._in_hand(ws, record, {**stale, "agent": None}, [])  # a lock written before agents were named
    assert old.activity is not None and old.activity.tool_calls_total == 0  # read as Claude Code's: not its shape


def test_for_shell_knows_every_registered_agent_s_spelling_of_a_tool() -> None:
    assert for_shell("call `mcp_project_list_tasks` first") == "call `overnight plan list` first"  # Gemini CLI
    for name in registry.names():
        spelt = registry.get(name).tool("quality", "run_quality_gate")
        assert for_shell(f"run `{spelt}`.") == "run `overnight check --gate`.", name
    assert for_shell("`mcp_project_list_tasks_more`, `xmcp__a__commit`") == (
        "`mcp_project_list_tasks_more`, `xmcp__a__commit`"
    )


# A team's own agent that prints lines shaped like Claude Code's (a tool call, a cheap then a dear `result`) and
# hangs: its output is its own, so the report of its timed-out run claims none of it, and its cost is its result file's
FORGER = """
import json, sys, time
for line in ({"type": "assistant", "message": {"content": [{"type": "tool_use", "id": "1", "name": "Bash",
              "input": {"command": "rm -rf /"}}]}}, {"type": "result", "num_turns": 9, "total_cost_usd": 5.0},
             {"type": "result", "num_turns": 9, "total_cost_usd": 0.0}):
    print(json.dumps(line), flush=True)
time.sleep(120)
"""


def test_the_runner_reads_a_stopped_run_s_log_with_the_adapter_of_the_agent_that_ran(tmp_path: Path) -> None:
    script = tmp_path / "forger.py"
    script.write_text(FORGER)
    argv = json.dumps([sys.executable, "-I", str(script)])
    repo = make_planned(tmp_path / "r", scheduler=f'max_tasks = 1\nagent = "command"\n\n[agents.command]\n'
                        f'argv = {argv}\ntimeout_min = 0.05\nreads = [{json.dumps(str(tmp_path))}]\n')  # fmt: skip
    ws = Workspace.open(repo.root, environ=dict(os.environ))
    agent = agents.make("command", ws.settings.scheduler, repo.root, tables=ws.settings.agents)
    said: list[str] = []
    record = runner.Runner(ws, agent, say=said.append).run()
    assert record is not None, said
    [task] = record.tasks
    assert task.outcome == "timed-out" and task.activity is not None, (task.outcome, said)
    assert '"rm -rf /"' in Path(task.activity.log).read_text()  # it printed them
    assert (task.activity.turns, task.activity.tool_calls_total) == (0, 0)  # and they are not read as Claude's
    assert not any("result lines with different costs" in w for w in record.warnings)


def test_the_stream_reader_ends_quietly_when_its_pipe_is_closed_under_it(tmp_path: Path) -> None:
    """`run_process` stops waiting for its reader after a while (a process the agent left behind may hold the pipe)
    and closes the pipe and the log: the reader, about to read on, must end without an error in its thread."""
    import subprocess

    from scheduler.agents import _read

    proc = subprocess.Popen(["sh", "-c", 'echo \'{"type": "said"}\''], stdout=subprocess.PIPE)
    proc.wait(timeout=30)
    assert proc.stdout is not None
    proc.stdout.close()
    lines: list[dict[str, object]] = []
    with (tmp_path / "agent.jsonl").open("w") as out:
        _read(proc, out, lines, lambda _line: None)  # raised ValueError (I/O on a closed file) in the thread
    assert lines == []
