"""SQLite for everything the tools remember: WAL, a busy timeout, short IMMEDIATE transactions, migrations.

The database lives in the state directory (`<git common dir>/overnight/state.db`), which every worktree of
the repository shares and which git never commits or cleans. Schema changes are an ordered list indexed by
`PRAGMA user_version`; an applied migration is never edited, only followed by a new one.
"""

from __future__ import annotations

import calendar
import contextlib
import fcntl
import itertools
import logging
import os
import random
import sqlite3
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator
from pathlib import Path

from .errors import StateError

log = logging.getLogger(__name__)

BUSY_TIMEOUT_MS = 30_000

# Each migration is a list of statements, run in one transaction. Append; never edit an applied one.
MIGRATIONS: list[list[str]] = [
    [  # 1: gate runs and their receipts, coverage by tree
        """CREATE TABLE gate_runs (
            id TEXT PRIMARY KEY,
            tree TEXT NOT NULL,
            base TEXT NOT NULL,
            policy_hash TEXT NOT NULL,
            scope TEXT NOT NULL,
            passed INTEGER NOT NULL,
            report TEXT NOT NULL,
            session TEXT,
            task_id TEXT,
            created TEXT NOT NULL,
            mac TEXT NOT NULL
        )""",
        "CREATE INDEX gate_runs_by_tree ON gate_runs (tree, base, policy_hash, scope, passed)",
        "CREATE INDEX gate_runs_by_time ON gate_runs (created)",
        """CREATE TABLE coverage (
            tree TEXT PRIMARY KEY,
            percent REAL NOT NULL,
            files TEXT NOT NULL,
            created TEXT NOT NULL
        )""",
    ],
    [  # 2: the task queue's runtime state, keyed by the plan's task ids
        """CREATE TABLE task_claims (
            task_id TEXT PRIMARY KEY,
            session TEXT NOT NULL,
            claimed_at REAL NOT NULL,
            expires_at REAL NOT NULL,
            attempt_id INTEGER NOT NULL
        )""",
        """CREATE TABLE task_attempts (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            task_id TEXT NOT NULL,
            session TEXT NOT NULL,
            started_at REAL NOT NULL,
            ended_at REAL,
            outcome TEXT NOT NULL,
            reason TEXT,
            cleared INTEGER NOT NULL DEFAULT 0
        )""",
        "CREATE INDEX task_attempts_by_task ON task_attempts (task_id, cleared)",
        """CREATE TABLE task_completions (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            task_id TEXT NOT NULL,
            session TEXT NOT NULL,
            branch TEXT NOT NULL,
            commit_id TEXT NOT NULL,
            receipt_id TEXT NOT NULL,
            completed_at REAL NOT NULL,
            cleared INTEGER NOT NULL DEFAULT 0
        )""",
        "CREATE INDEX task_completions_by_task ON task_completions (task_id, cleared)",
        """CREATE TABLE plan_ops (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            branch TEXT NOT NULL,
            op TEXT NOT NULL,
            task_id TEXT NOT NULL,
            payload TEXT NOT NULL,
            session TEXT NOT NULL,
            created_at REAL NOT NULL
        )""",
        "CREATE INDEX plan_ops_by_branch ON plan_ops (branch, id)",
        """CREATE TABLE task_events (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            task_id TEXT NOT NULL,
            at REAL NOT NULL,
            session TEXT,
            actor TEXT NOT NULL,
            event TEXT NOT NULL,
            detail TEXT
        )""",
        "CREATE INDEX task_events_by_task ON task_events (task_id, at)",
    ],
    [  # 3: memory: sessions, entries with their files, full-text search kept in step by triggers
        """CREATE TABLE sessions (
            id TEXT PRIMARY KEY,
            goal TEXT,
            source TEXT NOT NULL,
            started_at REAL NOT NULL,
            ended_at REAL,
            outcome TEXT,
            stop_reason TEXT,
            branch TEXT,
            base_commit TEXT,
            final_commit TEXT,
            record TEXT NOT NULL DEFAULT '{}'
        )""",
        "CREATE INDEX sessions_by_start ON sessions (started_at)",
        """CREATE TABLE entries (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            kind TEXT NOT NULL,
            text TEXT NOT NULL,
            session TEXT,
            task_id TEXT,
            source TEXT NOT NULL,
            tags TEXT NOT NULL DEFAULT '',
            created_at REAL NOT NULL,
            redactions INTEGER NOT NULL DEFAULT 0,
            state TEXT,
            closed_at REAL,
            closed_by TEXT,
            closed_note TEXT
        )""",
        "CREATE INDEX entries_by_time ON entries (created_at)",
        "CREATE INDEX entries_by_task ON entries (task_id, created_at)",
        "CREATE INDEX entries_by_session ON entries (session, created_at)",
        "CREATE INDEX entries_by_state ON entries (kind, state)",
        """CREATE TABLE entry_files (
            entry_id INTEGER NOT NULL REFERENCES entries (id) ON DELETE CASCADE,
            path TEXT NOT NULL,
            blob TEXT
        )""",
        "CREATE INDEX entry_files_by_path ON entry_files (path, entry_id)",
        "CREATE INDEX entry_files_by_entry ON entry_files (entry_id)",
        """CREATE VIRTUAL TABLE entries_fts USING fts5(
            text, tags, content='entries', content_rowid='id', tokenize='porter unicode61 remove_diacritics 2'
        )""",
        """CREATE TRIGGER entries_ai AFTER INSERT ON entries BEGIN
            INSERT INTO entries_fts (rowid, text, tags) VALUES (new.id, new.text, new.tags);
        END""",
        """CREATE TRIGGER entries_ad AFTER DELETE ON entries BEGIN
            INSERT INTO entries_fts (entries_fts, rowid, text, tags) VALUES ('delete', old.id, old.text, old.tags);
        END""",
        """CREATE TRIGGER entries_au AFTER UPDATE OF text, tags ON entries BEGIN
            INSERT INTO entries_fts (entries_fts, rowid, text, tags) VALUES ('delete', old.id, old.text, old.tags);
            INSERT INTO entries_fts (rowid, text, tags) VALUES (new.id, new.text, new.tags);
        END""",
    ],
    [  # 4: who asked for a gate run (receipts of old rows, which have none, no longer count), commits by `commit`
        "ALTER TABLE gate_runs ADD COLUMN kind TEXT",
        """CREATE TABLE commits (
            commit_id TEXT PRIMARY KEY,
            tree TEXT NOT NULL,
            receipt_id TEXT NOT NULL,
            session TEXT,
            task_id TEXT,
            created TEXT NOT NULL,
            mac TEXT NOT NULL
        )""",
    ],
    [  # 5: how a tree's coverage was measured: only figures measured the same way are compared (issue 11)
        "ALTER TABLE coverage ADD COLUMN mode TEXT NOT NULL DEFAULT 'branch'",
    ],
    [  # 6: runs refused at preflight, kept apart from the sessions that started (issue 11)
        """CREATE TABLE preflight_refusals (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            at REAL NOT NULL,
            session TEXT NOT NULL,
            outcome TEXT NOT NULL,
            reason TEXT NOT NULL,
            problems TEXT NOT NULL DEFAULT '[]'
        )""",
        "CREATE INDEX preflight_refusals_by_time ON preflight_refusals (at)",
    ],
    [  # 7: a circuit breaker per agent: infrastructure stops in a row, and until when no run starts (issue 12)
        """CREATE TABLE agent_breakers (
            agent TEXT PRIMARY KEY,
            failures INTEGER NOT NULL DEFAULT 0,
            opened_at REAL,
            open_until REAL,
            last_kind TEXT,
            last_detail TEXT,
            updated_at REAL NOT NULL
        )""",
    ],
    [  # 8: `overnight daemon`: its work cycles (limits per hour and day, error cycles in a row) and its pause
        """CREATE TABLE daemon_cycles (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            daemon TEXT NOT NULL,
            started REAL NOT NULL,
            ended REAL,
            session TEXT,
            outcome TEXT NOT NULL DEFAULT 'running',
            stop_reason TEXT NOT NULL DEFAULT '',
            error INTEGER NOT NULL DEFAULT 0,
            tasks_done INTEGER NOT NULL DEFAULT 0,
            tasks_failed INTEGER NOT NULL DEFAULT 0,
            cost_usd REAL NOT NULL DEFAULT 0
        )""",
        "CREATE INDEX daemon_cycles_by_time ON daemon_cycles (started)",
        """CREATE TABLE daemon_pause (
            id INTEGER PRIMARY KEY CHECK (id = 1),
            paused_at REAL,
            reason TEXT NOT NULL DEFAULT '',
            resumed_at REAL
        )""",
    ],
    [  # 9: what rate limits and budgets count across sessions (issue 12): agent runs, commits kept, pull
        # requests, cost; written by the scheduler only (`limitstore`)
        """CREATE TABLE limit_events (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            kind TEXT NOT NULL CHECK (kind IN ('run', 'commit', 'pr', 'cost')),
            at REAL NOT NULL,
            session TEXT NOT NULL,
            task_id TEXT,
            amount REAL NOT NULL CHECK (amount >= 0),
            ended_at REAL,
            expires_at REAL,
            note TEXT
        )""",
        "CREATE INDEX limit_events_by_kind ON limit_events (kind, at)",
    ],
]


def connect(path: Path) -> sqlite3.Connection:
    """Open (creating and migrating if need be) the database at `path`, ready for concurrent use.

    A damaged file (not a database, malformed, truncated) is moved aside and a new one started, with a warning
    (`quarantine`): a corrupt state.db must not stop every later session (issue 10)."""
    try:
        return _connect(path)
    except sqlite3.DatabaseError as e:
        if not is_corrupt(e):
            raise _state_error(path, e) from e
        quarantine(path, e)
    try:
        return _connect(path)
    except sqlite3.DatabaseError as e:
        raise _state_error(path, e) from e


def _connect(path: Path) -> sqlite3.Connection:
    try:
        conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None, check_same_thread=False)
    except sqlite3.Error as e:
        raise StateError(f"cannot open the state database {path}: {e}. Check that its folder is writable.") from e
    try:
        conn.row_factory = sqlite3.Row
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        _wal(conn)
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute("PRAGMA foreign_keys = ON")
        _migrate(conn)
    except BaseException:
        conn.close()
        raise
    return conn


def _state_error(path: Path, e: sqlite3.DatabaseError) -> StateError:
    if isinstance(e, sqlite3.OperationalError):
        return StateError(f"the state database {path} could not be opened ({e}); try again.")
    return StateError(f"the state database {path} is unusable ({e}). Move it aside and the tools will start a new one.")


def is_corrupt(e: sqlite3.Error) -> bool:
    """Whether SQLite says the file itself is damaged (not locked, not busy, not a full disk)."""
    name = getattr(e, "sqlite_errorname", "") or ""
    if name.startswith(("SQLITE_CORRUPT", "SQLITE_NOTADB")):
        return True
    return not name and any(words in str(e) for words in ("not a database", "disk image is malformed"))


def _wal(conn: sqlite3.Connection) -> None:
    """Switch to WAL. SQLite answers "database is locked" at once, without waiting out the busy timeout, when
    several connections switch a new database at the same moment; retry until one of them has done it."""
    deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
    while conn.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
        try:
            conn.execute("PRAGMA journal_mode = WAL")
        except sqlite3.OperationalError as e:
            if "locked" not in str(e) or time.monotonic() > deadline:
                raise
            time.sleep(random.uniform(0.005, 0.05))  # noqa: S311 (jitter, not a secret)


@contextlib.contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """`BEGIN IMMEDIATE` ... `COMMIT`, or `ROLLBACK` on any error: one short write, taken whole or not at all."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


@contextlib.contextmanager
def opened(path: Path) -> Iterator[sqlite3.Connection]:
    """A connection that is closed afterwards (sqlite3's own context manager only ends a transaction).

    Damage found by a query (a malformed page the first statements did not touch) moves the file aside too; the
    call fails, saying so, and the next one starts from a new database."""
    with contextlib.closing(connect(path)) as conn:
        try:
            yield conn
        except sqlite3.DatabaseError as e:
            if not is_corrupt(e):
                raise
            conn.close()
            moved = quarantine(path, e)
            where = f"moved to {moved}" if moved else "already replaced"
            raise StateError(f"the state database {path} is damaged ({e}): it was {where} and a new one is "
                             "started; try again.") from e  # fmt: skip


def _migrate(conn: sqlite3.Connection) -> None:
    if schema_version(conn) == len(MIGRATIONS):
        return
    with transaction(conn):
        version = schema_version(conn)  # again, inside the lock: another process may have migrated meanwhile
        if version > len(MIGRATIONS):
            raise StateError(
                f"the state database has schema version {version}, newer than this overnight knows "
                f"({len(MIGRATIONS)}): upgrade overnight (`pip install -U overnight`).",
            )
        for number in range(version, len(MIGRATIONS)):
            for statement in MIGRATIONS[number]:
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {number + 1}")


# -- a damaged database: moved aside, never deleted ------------------------------------------------------------

CORRUPT_SUFFIX = ".corrupt-"
LOST = ("receipts and gate runs, task claims, attempts and completions, the memory (sessions and entries), the runs "
        "refused at preflight, and the counts of the rate limits and budgets")


def quarantine(path: Path, error: sqlite3.Error | None = None) -> Path | None:
    """Move a damaged database (and its -wal and -shm) to `<name>.corrupt-YYYYmmddTHHMMSS` beside it; the moved path.

    Under a lock, and only if the file is still damaged (`PRAGMA quick_check`): another process may have moved it
    and started a new one meanwhile (then None). Nothing is deleted: a person can recover what the file holds.
    Runs only after SQLite reported damage, so the connections the servers open on each call pay nothing."""
    with open(path.with_name(f".{path.name}.quarantine.lock"), "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        if not _damaged(path):
            return None
        stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
        target = path.with_name(f"{path.name}{CORRUPT_SUFFIX}{stamp}")
        for n in itertools.count(2):
            if not any(os.path.lexists(f"{target}{end}") for end in ("", "-wal", "-shm")):
                break
            target = path.with_name(f"{path.name}{CORRUPT_SUFFIX}{stamp}-{n}")
        for end in ("-wal", "-shm", ""):  # the main file last: until it moves, the others still belong to it
            with contextlib.suppress(FileNotFoundError):
                os.replace(f"{path}{end}", f"{target}{end}")
    log.warning(
        "overnight: the state database %s is damaged (%s). It was moved to %s and a new one started: the %s it "
        "held are not in the new one. Open the moved file with `sqlite3 %s` to recover what you need.",
        path, error or "PRAGMA quick_check failed", target, LOST, target,
    )  # fmt: skip
    return target


def ensure_sound(path: Path) -> Path | None:
    """Check the whole database once (`PRAGMA quick_check`) and move it aside when damaged; the moved path.

    For the start of a session, not for each connection: damage in a page the first statements do not read
    would otherwise surface in the middle of the night."""
    return quarantine(path) if _damaged(path) else None


def _damaged(path: Path) -> bool:
    if not path.exists():
        return False
    try:
        with contextlib.closing(sqlite3.connect(path, timeout=BUSY_TIMEOUT_MS / 1000)) as conn:
            found = [row[0] for row in conn.execute("PRAGMA quick_check")]
    except sqlite3.DatabaseError as e:
        return is_corrupt(e)
    return found != ["ok"]


def moved_aside(path: Path, since: float) -> list[Path]:
    """Damaged copies of the database at `path` that `quarantine` moved aside at or after `since` (epoch seconds)."""
    found = []
    for moved in path.parent.glob(f"{path.name}{CORRUPT_SUFFIX}*"):
        stamp = moved.name.removeprefix(f"{path.name}{CORRUPT_SUFFIX}")[:15]
        if moved.name.endswith(("-wal", "-shm")):
            continue
        try:
            when = calendar.timegm(time.strptime(stamp, "%Y%m%dT%H%M%S"))
        except ValueError:
            continue
        if when >= int(since):
            found.append(moved)
    return sorted(found)


def ensure_dir(path: Path) -> Path:
    """Create a private directory (0700) if it does not exist."""
    if os.path.isdir(path):  # (one stat: servers ask on every call)
        return path
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as e:
        raise StateError(f"cannot create {path}: {e}") from e
    return path


def schema_version(conn: sqlite3.Connection) -> int:
    return int(conn.execute("PRAGMA user_version").fetchone()[0])


_WATCHERS: OrderedDict[Path, tuple[int, sqlite3.Connection, int]] = OrderedDict()
_WATCH_LOCK = threading.Lock()
_WATCHED = itertools.count(1)
MAX_WATCHERS = 8  # databases watched at once (the least recently asked about is closed first)


def data_version(path: Path) -> tuple[int, int]:
    """A value that changes whenever any other connection (any process) commits to the database at `path`.

    One connection per database is kept open for this: SQLite's `PRAGMA data_version` is relative to it, so
    the value also names that connection (a database watched again later gets a new one, whose count starts
    afresh). Answers computed from the database can be kept until it changes. A file replaced meanwhile (a
    damaged one moved aside by any process) is watched afresh: the old connection would never change again.
    """
    evicted: list[sqlite3.Connection] = []
    with _WATCH_LOCK:
        try:
            found = _watch(path, evicted)
        except sqlite3.DatabaseError as e:  # damaged in place since it was first watched
            if not is_corrupt(e):
                raise _state_error(path, e) from e
            evicted.append(_WATCHERS.pop(path)[1])
            try:
                found = _watch(path, evicted)  # `connect` moves the damaged file aside first
            except sqlite3.DatabaseError as again:
                raise _state_error(path, again) from again
    for old in evicted:
        old.close()
    return found


def _watch(path: Path, evicted: list[sqlite3.Connection]) -> tuple[int, int]:
    found = _WATCHERS.get(path)
    if found is not None and found[2] != _inode(path):  # replaced (moved aside as damaged): watch the new file
        evicted.append(_WATCHERS.pop(path)[1])
        found = None
    if found is None:
        connect(path).close()  # create and migrate it first
        conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        found = _WATCHERS[path] = (next(_WATCHED), conn, _inode(path))
        while len(_WATCHERS) > MAX_WATCHERS:
            evicted.append(_WATCHERS.popitem(last=False)[1][1])
    else:
        _WATCHERS.move_to_end(path)
    return found[0], int(found[1].execute("PRAGMA data_version").fetchone()[0])


def _inode(path: Path) -> int:
    try:
        return os.stat(path).st_ino
    except FileNotFoundError:
        return -1
