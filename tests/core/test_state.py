"""The state directory: under the git common dir, SQLite in WAL with ordered migrations, a private key."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from mcp_servers.core import db
from mcp_servers.core.errors import StateError
from mcp_servers.core.workspace import Workspace, read_or_create_key

from ..conftest import GitRepo


def test_state_lives_under_the_common_dir_shared_by_worktrees(repo: GitRepo, tmp_path: Path) -> None:
    repo.git("worktree", "add", "-q", "-b", "side", str(tmp_path / "side"))
    main, side = Workspace.open(repo.root), Workspace.open(tmp_path / "side")
    assert main.state_dir == side.state_dir == repo.root / ".git" / "overnight"
    assert main.key() == side.key()
    assert repo.status() == ""  # nothing of it shows up in git


def test_state_database_is_wal_with_a_busy_timeout_and_current_schema(repo: GitRepo) -> None:
    with Workspace.open(repo.root).db() as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA busy_timeout").fetchone()[0] == db.BUSY_TIMEOUT_MS
        assert db.schema_version(conn) == len(db.MIGRATIONS)
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        assert {"gate_runs", "coverage"} <= tables


def test_state_migrations_run_in_order_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "state.db"
    with db.opened(path):
        pass
    extra = [["CREATE TABLE later (x INTEGER)"]]
    monkeypatch.setattr(db, "MIGRATIONS", [*db.MIGRATIONS, *extra])
    with db.opened(path) as conn:
        assert db.schema_version(conn) == len(db.MIGRATIONS)
        conn.execute("INSERT INTO later VALUES (1)")
    with db.opened(path) as conn:  # opening again applies nothing twice
        assert conn.execute("SELECT count(*) FROM later").fetchone()[0] == 1


def test_state_newer_schema_than_this_version_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    raw = sqlite3.connect(path)
    raw.execute(f"PRAGMA user_version = {len(db.MIGRATIONS) + 5}")
    raw.close()
    with pytest.raises(StateError, match=r"newer than this overnight knows"):
        db.connect(path)


def _filled(path: Path) -> bytes:
    """A database with some memory in it, checkpointed: its bytes."""
    with db.opened(path) as conn:
        for n in range(200):
            conn.execute("INSERT INTO entries (kind, text, source, created_at) VALUES ('note', ?, 'agent', 1)",
                         (f"entry {n} " + "x" * 500,))  # fmt: skip
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return path.read_bytes()


@pytest.mark.parametrize("damage", ["garbage", "header cut", "half cut"])
def test_state_corrupt_database_is_moved_aside_and_a_new_one_started(
    tmp_path: Path, damage: str, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "state.db"
    data = _filled(path)
    damaged = {"garbage": b"this is not a database" * 100, "header cut": data[:50], "half cut": data[: len(data) // 2]}
    path.write_bytes(damaged[damage])
    with db.opened(path) as conn:  # a new, empty, current database
        assert db.schema_version(conn) == len(db.MIGRATIONS)
        assert conn.execute("SELECT count(*) FROM entries").fetchone()[0] == 0
    [moved] = db.moved_aside(path, since=0)
    assert moved.name.startswith("state.db.corrupt-2") and moved.read_bytes() == damaged[damage]
    [warning] = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert f"moved to {moved}" in warning and "memory" in warning and "receipts" in warning


def test_state_damage_found_by_a_query_moves_the_file_aside_and_says_so(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    data = _filled(path)
    keep = len(data) * 3 // 4
    path.write_bytes(data[:keep] + b"\xff" * (len(data) - keep))  # the schema is fine, the last entries are not
    with pytest.raises(StateError, match=r"is damaged .*it was moved to .*corrupt-.*try again"), db.opened(path) as c:
        c.execute("SELECT count(*), max(length(text)) FROM entries").fetchone()
    with db.opened(path) as conn:
        assert conn.execute("SELECT count(*) FROM entries").fetchone()[0] == 0


def test_state_a_sound_or_busy_database_is_never_moved(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    _filled(path)
    assert db.quarantine(path) is None and db.ensure_sound(path) is None  # another process was quicker, or no harm
    with contextlib.closing(db.connect(path)) as holder:
        holder.execute("BEGIN EXCLUSIVE")
        with pytest.raises(sqlite3.OperationalError, match="locked"), db.opened(path) as conn:
            conn.execute("PRAGMA busy_timeout = 0")
            conn.execute("BEGIN IMMEDIATE")
        holder.execute("ROLLBACK")
    assert db.moved_aside(path, since=0) == []


def test_state_moved_aside_lists_only_damage_since_a_time(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    for name in ("state.db.corrupt-20200101T000000", "state.db.corrupt-20990101T000000",
                 "state.db.corrupt-20990101T000000-wal", "state.db.corrupt-20990101T000000-2", "state.db.corrupt-x"):
        (tmp_path / name).write_bytes(b"")  # fmt: skip
    found = [p.name for p in db.moved_aside(path, since=1_700_000_000)]
    assert found == ["state.db.corrupt-20990101T000000", "state.db.corrupt-20990101T000000-2"]


def test_state_data_version_follows_a_database_moved_aside(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    first = db.data_version(path)
    path.write_bytes(b"this is not a database" * 100)  # damaged in place under the watcher
    second = db.data_version(path)
    assert second != first and len(db.moved_aside(path, since=0)) == 1
    os.replace(path, tmp_path / "elsewhere.db")  # replaced by another process: the new file is watched
    db.connect(path).close()
    third = db.data_version(path)
    assert third[0] != second[0]
    with contextlib.closing(db.connect(path)) as other, db.transaction(other):
        other.execute("CREATE TABLE t (x)")
    assert db.data_version(path) != third


def test_state_failed_transaction_leaves_nothing(tmp_path: Path) -> None:
    with db.opened(tmp_path / "state.db") as conn:
        with pytest.raises(RuntimeError), db.transaction(conn):
            conn.execute("INSERT INTO coverage (tree, percent, files, created) VALUES ('t', 1.0, '{}', 'now')")
            raise RuntimeError("boom")
        assert conn.execute("SELECT count(*) FROM coverage").fetchone()[0] == 0


def test_state_key_is_created_private_and_stable(tmp_path: Path) -> None:
    key_path = tmp_path / "key"
    key = read_or_create_key(key_path)
    assert len(key) == 32
    assert stat.S_IMODE(key_path.stat().st_mode) == 0o600
    assert read_or_create_key(key_path) == key


def test_state_key_readable_by_others_is_refused(tmp_path: Path) -> None:
    key_path = tmp_path / "key"
    read_or_create_key(key_path)
    key_path.chmod(0o644)
    with pytest.raises(StateError, match=r"chmod 600"):
        read_or_create_key(key_path)


def test_state_damaged_key_is_refused(tmp_path: Path) -> None:
    key_path = tmp_path / "key"
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT, 0o600)
    os.write(fd, b"short")
    os.close(fd)
    with pytest.raises(StateError, match=r"damaged"):
        read_or_create_key(key_path)


def test_state_key_created_by_racing_processes_is_one_key(tmp_path: Path) -> None:
    key_path = tmp_path / "key"
    code = (
        "import sys; from pathlib import Path; from mcp_servers.core.workspace import read_or_create_key; "
        "sys.stdout.write(read_or_create_key(Path(sys.argv[1])).hex())"
    )
    procs = [subprocess.Popen([sys.executable, "-c", code, str(key_path)], stdout=subprocess.PIPE) for _ in range(6)]
    keys = {p.communicate()[0] for p in procs}
    assert len(keys) == 1 and len(next(iter(keys))) == 64


def test_state_data_version_changes_on_a_commit_and_watchers_stay_bounded(tmp_path: Path) -> None:
    paths = [tmp_path / f"s{i}.db" for i in range(db.MAX_WATCHERS + 3)]
    first = db.data_version(paths[0])
    assert db.data_version(paths[0]) == first
    with contextlib.closing(db.connect(paths[0])) as other, db.transaction(other):  # another connection commits
        other.execute("CREATE TABLE t (x)")
    changed = db.data_version(paths[0])
    assert changed != first
    for path in paths[1:]:  # paths[0] is now the least recently asked about: its watcher is closed
        db.data_version(path)
    assert paths[0] not in db._WATCHERS and len(db._WATCHERS) <= db.MAX_WATCHERS
    # watched again, by a new connection whose count starts afresh: the value still differs from the old ones
    assert db.data_version(paths[0]) not in {first, changed}


def test_state_migrations_since_4_add_the_preflight_log_and_keeps_every_row(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mcp_servers.core import refusals

    path = tmp_path / "state.db"
    monkeypatch.setattr(db, "MIGRATIONS", db.MIGRATIONS[:4])  # a database made by the previous version
    with db.opened(path) as conn:
        conn.execute("INSERT INTO entries (kind, text, source, created_at) VALUES ('note', 'kept', 'person', 1)")
        conn.execute("INSERT INTO sessions (id, source, started_at) VALUES ('night-1', 'scheduler', 1)")
        assert db.schema_version(conn) == 4
    monkeypatch.undo()
    with db.opened(path) as conn:
        assert db.schema_version(conn) == len(db.MIGRATIONS) >= 5
        assert [tuple(r) for r in conn.execute("SELECT text FROM entries")] == [("kept",)]
        assert [tuple(r) for r in conn.execute("SELECT id FROM sessions")] == [("night-1",)]
        refusals.record(conn, at=2.0, session="s-2", outcome="no-work", reason="no ready task", problems=[])
        refusals.record(conn, at=3.0, session="s-3", outcome="preflight-failed", reason="preflight failed",
                        problems=["the kill switch is set"])  # fmt: skip
        newest, older = refusals.recent(conn)
    assert (newest.session, newest.problems) == ("s-3", ["the kill switch is set"])
    assert newest.at == "1970-01-01T00:00:03+00:00"
    assert older.outcome == "no-work" and "at_s" not in newest.model_dump()


def test_state_preflight_log_keeps_only_the_newest(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from mcp_servers.core import refusals

    monkeypatch.setattr(refusals, "KEEP", 3)
    with db.opened(tmp_path / "state.db") as conn:
        for n in range(5):
            refusals.record(conn, at=float(n), session=f"s-{n}", outcome="no-work", reason="r", problems=[])
        assert [r.session for r in refusals.recent(conn)] == ["s-4", "s-3", "s-2"]
