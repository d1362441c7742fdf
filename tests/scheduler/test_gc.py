"""`overnight gc` and a state directory that stays bounded (issue 12, item 5): old agent-run logs and reports
pruned (a report whose branch waits for review stays), lock files gone with their worktrees, nothing outside
the state directory ever touched, the running session's files left alone."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from mcp_servers.core.workspace import Workspace, lock_digest
from scheduler import gc, lock, morning
from scheduler.cli import main

from ..conftest import FAST_CONFIG, GitRepo, make_repo
from .sessions import make_planned, passing, plan, run_session, task_script, write_script

DAY = gc.DAY
OLD = time.time() - 40 * DAY


def _ws(repo: GitRepo) -> Workspace:
    return Workspace.open(repo.root, environ=dict(os.environ))


def _file(path: Path, text: str = "x" * 100, at: float = OLD) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    os.utime(path, (at, at))
    return path


def _tree(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


@pytest.fixture
def state(tmp_path: Path) -> tuple[GitRepo, Workspace, Path]:
    """A repository whose state directory has old and new runs, reports and locks, and a folder outside it."""
    repo = make_repo(tmp_path / "r", config=FAST_CONFIG)
    ws = _ws(repo)
    root = ws.state_dir
    with ws.db():
        pass
    ws.key()
    _file(root / "runs" / "2026-01-01-aaaaaa" / "sub-1" / "agent.jsonl")
    _file(root / "runs" / "2026-01-01-aaaaaa" / "sub-1" / "prompt.md")
    _file(root / "runs" / "2026-12-01-bbbbbb" / "sub-1" / "agent.jsonl", at=time.time())  # new: kept
    (root / "runs" / "2026-01-02-cccccc").mkdir(parents=True)  # empty
    os.utime(root / "runs" / "2026-01-02-cccccc", (OLD, OLD))
    (root / "runs" / "2026-01-02-ffffff").mkdir(parents=True)  # empty, but just made: about to be filled
    _file(root / "tmp" / "doctor-abc" / "tree" / "x.py")  # a check's work folder its process never removed
    (root / "tmp" / "doctor-new").mkdir()  # one in use
    for session, at in (("2026-01-01-aaaaaa", OLD), ("2026-12-01-bbbbbb", time.time())):
        record = {"id": session, "repo": str(repo.root), "started": "2026-01-01T00:00:00+00:00", "outcome": "completed",
                  "branch": f"overnight/{session}"}  # fmt: skip
        _file(root / "reports" / f"{session}.json", json.dumps(record), at=at)
        _file(root / "reports" / f"{session}.md", "# report\n", at=at)
    _file(root / "locks" / f"gate-{'0' * 16}.lock", "")  # a worktree long gone
    _file(root / "locks" / f"gate-{lock_digest(repo.root)}.lock", "")  # the checkout's own: kept
    outside = tmp_path / "outside"
    _file(outside / "precious.txt", "the person's file\n")
    return repo, ws, outside


def test_gc_prunes_old_logs_reports_and_dead_locks_and_never_the_database(state: tuple[GitRepo, Workspace, Path]
                                                                           ) -> None:  # fmt: skip
    repo, ws, _ = state
    root = ws.state_dir
    done = gc.collect(ws)  # the default: [state] keep_days = 30
    gone = {(r.path, r.kind) for r in done.removed}
    assert gone == {("runs/2026-01-01-aaaaaa", "run-logs"), ("runs/2026-01-02-cccccc", "empty-folder"),
                    ("reports/2026-01-01-aaaaaa.json", "report"), ("reports/2026-01-01-aaaaaa.md", "report"),
                    (f"locks/gate-{'0' * 16}.lock", "lock"), ("tmp/doctor-abc", "temporary")}  # fmt: skip
    old_json = {"id": "2026-01-01-aaaaaa", "repo": str(repo.root), "started": "2026-01-01T00:00:00+00:00",
                "outcome": "completed", "branch": "overnight/2026-01-01-aaaaaa"}  # fmt: skip
    assert done.freed_bytes == 100 + 100 + len(json.dumps(old_json)) + len("# report\n") + 100
    left = _tree(root)
    assert {"state.db", "key", "runs/2026-12-01-bbbbbb/sub-1/agent.jsonl", "reports/2026-12-01-bbbbbb.md",
            "runs/2026-01-02-ffffff", "tmp/doctor-new",
            f"locks/gate-{lock_digest(repo.root)}.lock"} <= left  # fmt: skip
    assert not any("aaaaaa" in p or "cccccc" in p or "0000" in p for p in left)
    assert gc.collect(ws).removed == []  # nothing left to do


def test_gc_dry_run_lists_without_deleting(state: tuple[GitRepo, Workspace, Path]) -> None:
    _, ws, _ = state
    before = _tree(ws.state_dir)
    dry = gc.collect(ws, dry_run=True)
    assert dry.dry_run and len(dry.removed) == 6 and dry.freed_bytes > 0
    assert _tree(ws.state_dir) == before
    real = gc.collect(ws)
    assert [r.model_dump() for r in real.removed] == [r.model_dump() for r in dry.removed]


def test_gc_never_follows_a_symlink_out_of_the_state_dir(state: tuple[GitRepo, Workspace, Path]) -> None:
    _, ws, outside = state
    runs = ws.state_dir / "runs"
    planted = runs / "2026-01-03-dddddd"
    planted.symlink_to(outside, target_is_directory=True)  # a "session folder" that is a link out
    os.utime(planted, (OLD, OLD), follow_symlinks=False)
    inner = runs / "2026-01-01-aaaaaa" / "sub-1" / "escape"
    inner.symlink_to(outside, target_is_directory=True)  # a link inside an old session folder
    os.utime(inner, (OLD, OLD), follow_symlinks=False)
    (ws.state_dir / "reports" / "2026-01-04-eeeeee.json").symlink_to(outside / "precious.txt")
    done = gc.collect(ws)
    assert (outside / "precious.txt").read_text() == "the person's file\n"  # nothing outside was touched
    assert not planted.is_symlink() and not planted.exists() and not inner.parent.exists()  # links removed, as links
    assert ("runs/2026-01-03-dddddd", "link") in {(r.path, r.kind) for r in done.removed}
    assert all(r.bytes < 10_000 for r in done.removed)


def test_a_linked_runs_folder_is_left_alone(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "r", config=FAST_CONFIG)
    ws = _ws(repo)
    outside = tmp_path / "outside"
    _file(outside / "2026-01-01-aaaaaa" / "agent.jsonl")
    (ws.state_dir / "runs").symlink_to(outside, target_is_directory=True)
    done = gc.collect(ws)
    assert done.removed == [] and any("runs/ is a symbolic link" in k for k in done.kept)
    assert (outside / "2026-01-01-aaaaaa" / "agent.jsonl").exists()


def test_the_running_session_s_files_are_left_alone(state: tuple[GitRepo, Workspace, Path]) -> None:
    _, ws, _ = state
    (ws.state_dir / lock.LOCK_FILE).write_text(json.dumps({"pid": os.getpid(), "session": "2026-01-01-aaaaaa"}))
    done = gc.collect(ws)
    assert not any("aaaaaa" in r.path for r in done.removed)
    assert (ws.state_dir / "runs" / "2026-01-01-aaaaaa" / "sub-1" / "agent.jsonl").exists()
    assert any("2026-01-01-aaaaaa is running" in k for k in done.kept)


def test_a_lock_file_someone_holds_is_kept(state: tuple[GitRepo, Workspace, Path]) -> None:
    import fcntl

    _, ws, _ = state
    path = ws.state_dir / "locks" / f"gate-{'0' * 16}.lock"
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        done = gc.collect(ws)
    assert path.exists() and not any(r.kind == "lock" for r in done.removed)


def test_overnight_gc_on_the_command_line(state: tuple[GitRepo, Workspace, Path], capsys: pytest.CaptureFixture[str]
                                          ) -> None:  # fmt: skip
    repo, ws, _ = state
    before = _tree(ws.state_dir)
    assert main(["-C", str(repo.root), "gc", "--dry-run", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["dry_run"] is True and len(data["removed"]) == 6 and _tree(ws.state_dir) == before
    assert main(["-C", str(repo.root), "gc", "--older-than", "-1"]) == 2
    assert "--older-than" in capsys.readouterr().err
    assert main(["-C", str(repo.root), "gc", "--older-than", "100"]) == 0  # no log is that old: only what is dead
    said = capsys.readouterr().out
    assert "removed runs/2026-01-02-cccccc (empty-folder, 0 bytes)" in said and "freed 2 item(s), 0 bytes" in said
    assert (ws.state_dir / "runs" / "2026-01-01-aaaaaa").exists()
    assert main(["-C", str(repo.root), "gc"]) == 0
    said = capsys.readouterr().out
    assert "removed runs/2026-01-01-aaaaaa (run-logs, 200 bytes)" in said and "freed 4 item(s)" in said
    assert main(["-C", str(repo.root), "gc"]) == 0
    assert "nothing to prune" in capsys.readouterr().out


def test_keep_days_is_validated(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    repo = make_repo(tmp_path / "r", config=FAST_CONFIG + "\n[state]\nkeep_days = 0\n")
    assert main(["-C", str(repo.root), "gc", "--dry-run"]) == 2
    assert "state.keep_days" in capsys.readouterr().err


# -- a soak: sessions in one repository, then gc with the clock moved on ------------------------------------

TRIED = '[[task.step]]\ncall = "quality.run_quality_gate"\n[[task.step]]\nsay = "I give up."\n'
SAID = '[[task.step]]\nsay = "Nothing to do."\n'


def test_a_soak_of_sessions_leaves_locks_bounded_and_gc_prunes_runs_and_reports(tmp_path: Path) -> None:
    tasks = [(f"t{n}", f"Task {n}") for n in range(6)]
    repo = make_planned(tmp_path / "r", plan(*tasks), scheduler="max_tasks = 1\n")
    ws = _ws(repo)
    locks = ws.state_dir / "locks"
    kept: list[str] = []
    after_first: set[str] | None = None
    for n in range(len(tasks)):
        # two kept, two that ran the gate (its lock), two that did nothing: each kind again after the first round
        steps = passing("*", f"f{n}") if n in (2, 5) else task_script("*", TRIED if n in (0, 3) else SAID)
        record, said = run_session(repo, write_script(tmp_path / f"s{n}.toml", steps))
        assert len(record.tasks) == 1, said
        if record.tasks[0].outcome == "passed":
            kept.append(record.id)
        names = set(os.listdir(locks)) if locks.is_dir() else set()
        after_first = names if after_first is None else after_first
        assert names == after_first, f"locks/ grew after session {n}: {sorted(names - after_first)}"
    assert len(kept) == 2
    alive = {lock_digest(repo.root), lock_digest(repo.root.resolve())}
    assert all(name.rsplit("-", 1)[1].removesuffix(".lock") in alive for name in os.listdir(locks))
    branches = repo.git("branch", "--list", "overnight/*").split()
    assert sorted(branches) == sorted(f"overnight/{s}" for s in kept)  # sessions that kept nothing left no branch
    assert sorted(s.session for s in morning.review(ws).sessions) == sorted(kept)
    runs = ws.state_dir / "runs"
    assert len(list(runs.iterdir())) == 6 and len(list((ws.state_dir / "reports").glob("*.json"))) == 6
    later = time.time() + 31 * DAY  # a month on: everything is past keep_days
    dry = gc.collect(ws, clock=lambda: later, dry_run=True)
    assert len(list(runs.iterdir())) == 6 and dry.freed_bytes > 0
    done = gc.collect(ws, clock=lambda: later)
    assert [r.model_dump() for r in done.removed] == [r.model_dump() for r in dry.removed]
    assert list(runs.iterdir()) == []
    reports = sorted(p.name for p in (ws.state_dir / "reports").iterdir())
    assert reports == sorted(f"{s}{suffix}" for s in kept for suffix in (".json", ".md"))  # waiting for review
    assert any("wait for review" in k for k in done.kept)
    assert (ws.state_dir / "state.db").exists()
    assert main(["-C", str(repo.root), "discard", kept[0], "--yes"]) == 0  # reviewed: its report may go now
    again = gc.collect(ws, clock=lambda: later + DAY)  # (discard rewrote the report: it is a day old here)
    assert {r.path for r in again.removed} == {f"reports/{kept[0]}.json", f"reports/{kept[0]}.md"}


def test_a_long_log_keeps_its_newest_part_cut_in_place_at_a_line(state: tuple[GitRepo, Workspace, Path]) -> None:
    _, ws, outside = state
    logs = ws.state_dir / "logs"
    logs.mkdir()
    line = "overnight: session 2026-01-01-aaaaaa: a line of cron's log\n"
    log = logs / "cron.log"
    log.write_text(line * (gc.LOG_MAX_BYTES // len(line) + 2000))
    size, inode = log.stat().st_size, log.stat().st_ino
    _file(logs / "short.log", "kept whole\n", at=time.time())
    big_outside = _file(outside / "big.log", line * (gc.LOG_MAX_BYTES // len(line) + 10))
    (logs / "linked.log").symlink_to(big_outside)
    os.link(big_outside, logs / "hard.log")  # (same file system: tmp_path holds both)
    assert gc.collect(ws, dry_run=True).removed[-1].kind == "log-head" and log.stat().st_size == size
    done = gc.collect(ws)
    [cut] = [r for r in done.removed if r.kind == "log-head"]
    assert "logs/hard.log: a hard link to another file, left alone" in done.kept
    text = log.read_text()
    assert cut.path == "logs/cron.log" and cut.bytes == size - len(text.encode())
    first, rest = text.split("\n", 1)
    assert first == f"overnight gc: the {size - len(rest)} oldest bytes of this log were cut here"
    assert gc.LOG_KEEP_BYTES - len(line) < len(rest) <= gc.LOG_KEEP_BYTES and rest == line * (len(rest) // len(line))
    assert log.stat().st_ino == inode  # in place: cron's `>>` goes on appending to the same file
    assert (logs / "short.log").read_text() == "kept whole\n"
    assert big_outside.stat().st_size > gc.LOG_MAX_BYTES  # a link is never followed, a hard link never cut
    assert not [r for r in gc.collect(ws).removed if r.kind == "log-head"]  # short now: left alone
