"""The session's journal: every event of a real replay session as one JSON line, readable while it grows, never
failing the session, bounded."""

from __future__ import annotations

import json
from pathlib import Path

from mcp_servers.core.workspace import Workspace
from scheduler import journal
from scheduler.agents import AgentEvent
from scheduler.events import RunEvent

from ..scheduler.sessions import make_planned, run_session, task_script, write_script

# an agent that writes and gives up without a commit: a whole session, its task rolled back, in a few seconds
QUICK = """
[[task.step]]
append = "src/app/calc.py"
text = "\\n\\nHALF = 'done'\\n"
[[task.step]]
say = "I stop here"
"""


def test_a_session_journals_its_events(tmp_path: Path) -> None:
    repo = make_planned(tmp_path / "repo", scheduler="max_tasks = 1\n")
    record, said = run_session(repo, write_script(tmp_path / "s.toml", task_script("sub", QUICK)))
    path = journal.path_of(Workspace.open(repo.root).state_dir, record.id)
    assert path is not None and path.is_file()
    events, offset = journal.read(path)
    assert offset == path.stat().st_size
    kinds = [e["kind"] for e in events]
    assert kinds[0] == "session" and kinds[-1] == "end"
    assert "task" in kinds and "outcome" in kinds
    steps = [(e["agent"]["kind"], e["agent"]["text"]) for e in events if e["kind"] == "agent"]
    assert ("tool", "write src/app/calc.py") in steps and ("said", "I stop here") in steps, steps
    assert all(e["session"] == record.id for e in events if e["kind"] in {"task", "outcome"})
    outcome = next(e for e in events if e["kind"] == "outcome")
    assert outcome["outcome"] == record.tasks[0].outcome != "passed" and outcome["task_id"] == "sub"
    # without a reporter the runner still says each line (but the agent's steps), as before the journal
    assert any("task sub" in line for line in said) and not any(": tool:" in line for line in said)
    assert journal.tail(path, keep=2) == (events[-2:], offset)


def test_reading_waits_for_whole_lines(tmp_path: Path) -> None:
    path = tmp_path / journal.NAME
    path.write_bytes(b'{"kind": "task"}\nnot json\n["a list"]\n{"kind": "ag')
    events, offset = journal.read(path)
    assert events == [{"kind": "task"}]
    assert offset == len(b'{"kind": "task"}\nnot json\n["a list"]\n')
    with path.open("ab") as f:
        f.write(b'ent"}\n')
    more, end = journal.read(path, offset)
    assert more == [{"kind": "agent"}] and end == path.stat().st_size
    assert journal.read(tmp_path / "missing", 7) == ([], 7)


def test_the_journal_is_bounded_and_never_fails_the_session(tmp_path: Path, monkeypatch: object) -> None:
    import pytest

    assert isinstance(monkeypatch, pytest.MonkeyPatch)
    huge = RunEvent("agent", "z" * 200_000, agent=AgentEvent("said", "w" * 200_000))
    j2 = journal.Journal(tmp_path, "2026-12-06-bbbbbb")
    j2.write(huge)
    assert j2.path is not None and len(j2.path.read_bytes()) < journal.MAX_LINE
    j2.close()
    monkeypatch.setattr(journal, "MAX_BYTES", 2000)
    monkeypatch.setattr(journal, "HARD_BYTES", 4000)
    j = journal.Journal(tmp_path, "2026-12-06-abcdef")
    step = RunEvent("agent", "x" * 100, agent=AgentEvent("tool", "Bash: " + "y" * 100))
    for _ in range(50):
        j.write(step)
    j.write(RunEvent("end", "the end", outcome="completed"))
    assert j.path is not None
    size = j.path.stat().st_size
    assert 1000 < size <= 4000
    events, _ = journal.read(j.path)
    assert events[-1]["kind"] == "end"  # the end has room of its own past the steps' bound
    j.close()
    # a journal that cannot be written is given up; the caller never sees an error
    blocked = journal.Journal(tmp_path / "file-not-folder", "2026-12-06-cccccc")
    (tmp_path / "file-not-folder").write_text("")
    told: list[str] = []
    sink = blocked.sink(told.append, None)
    sink(RunEvent("task", "overnight: task t: T"))
    sink(RunEvent("agent", "overnight: task t: tool: Bash"))
    assert blocked.broken and told == ["overnight: task t: T"]
    assert journal.path_of(tmp_path, "../etc") is None and journal.path_of(tmp_path, "") is None
    assert json.loads(json.dumps(journal.as_json(step, 1.0)))["agent"]["kind"] == "tool"
