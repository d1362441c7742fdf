"""A damaged `state.db` and a dead session's report: the next run carries on, and says what was lost (issue 10)."""

from __future__ import annotations

import os
from pathlib import Path

from mcp_servers.core.workspace import Workspace
from scheduler import report

from .sessions import Person, make_planned, passing, run_session, write_script


def _state(root: Path) -> Path:
    return Workspace.open(root, environ=dict(os.environ)).state_dir


def test_a_corrupt_state_db_is_moved_aside_and_the_session_runs(tmp_path: Path) -> None:
    repo = make_planned(tmp_path / "r", scheduler="max_tasks = 1\n")
    person = Person.of(repo)
    first, _ = run_session(repo, write_script(tmp_path / "s1.toml", passing("sub", "sub")))
    state = _state(repo.root)
    path = state / "state.db"
    script = write_script(tmp_path / "s2.toml", passing("sub", "sub"), passing("mul", "mul"))
    for n, damage in enumerate(("garbage", "truncated"), start=1):  # each on the database the session before wrote
        data = path.read_bytes()
        damaged = b"this is not a database " * 400 if damage == "garbage" else data[: len(data) // 2 + 7]
        path.write_bytes(damaged)
        # the new database has forgotten that sub was done on the session before's branch: sub is ready again
        second, said = run_session(repo, script)
        assert second.outcome == "completed", (damage, said, second.problems)
        assert [t.task_id for t in second.tasks] == ["sub"], damage
        moved = sorted(state.glob("state.db.corrupt-*[0-9]"))
        assert len(moved) == n, (damage, moved)
        [new] = [m for m in moved if any(str(m) in w for w in second.warnings)]
        assert any(str(new) in w and "receipts" in w and "memory" in w for w in second.warnings), second.warnings
        assert new.read_bytes() == damaged  # moved aside as it was, for whoever wants to look into it
        text = (state / "reports" / f"{second.id}.md").read_text()
        assert str(new) in text
    assert report.load(state, first.id).outcome == "completed"
    person.assert_untouched(repo)


def test_a_report_left_running_by_a_dead_session_is_closed_as_crashed(tmp_path: Path) -> None:
    repo = make_planned(tmp_path / "r", scheduler="max_tasks = 1\n")
    state = _state(repo.root)
    dead = report.SessionRecord(id="2026-01-01-dead00", repo=str(repo.root), started=report.now_iso())
    report.save(state, dead)  # no lock names it: its process died before it could write the lock, or lost it
    record, said = run_session(repo, write_script(tmp_path / "s.toml", passing("sub", "sub")))
    assert any("closed the report of session 2026-01-01-dead00 as crashed" in line for line in said), said
    closed = report.load(state, dead.id)
    assert closed.outcome == "crashed" and closed.ended
    assert report.load(state, record.id).outcome == "completed"
