"""Memory in `state.db`: sessions, entries and the files they are about, searched with FTS5 and BM25.

Every write is one short `BEGIN IMMEDIATE` transaction: when it returns, the entry is committed to the WAL
and survives the writer being killed. No model and no network anywhere in writing or searching.

Connections are kept open between calls (`connection`), so a long-running process (the memory server) pays
for opening, the pragmas, the migration check and the FTS5 check once, not on every call. One that is in use
is never shared, and a kept one is only reused while the database file is still the one it opened.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import re
import sqlite3
import threading
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import db
from .errors import StateError

_WORD = re.compile(r"\w[\w.'-]*", re.UNICODE)
MAX_TERMS = 24
KEPT_DATABASES = 8  # databases with connections kept open (least recently used closed first)
KEPT_PER_DATABASE = 4  # idle connections kept per database (more are open only while calls overlap)


@dataclass
class _Kept:
    conn: sqlite3.Connection
    file: tuple[int, int] | None  # (device, inode) of the database file when it was opened
    pid: int


_IDLE: OrderedDict[Path, list[_Kept]] = OrderedDict()
_IDLE_LOCK = threading.Lock()


def _file(path: Path) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def _open(path: Path) -> _Kept:
    conn = db.connect(path)  # creates and migrates it if need be
    try:
        check_fts(conn)
    except StateError:
        conn.close()
        raise
    return _Kept(conn, _file(path), os.getpid())


def _take(path: Path) -> _Kept:
    """An idle kept connection to `path` if one is still good, else a new one."""
    now = _file(path)
    found: _Kept | None = None
    dropped: list[_Kept] = []
    with _IDLE_LOCK:
        idle = _IDLE.get(path, [])
        while idle and found is None:
            kept = idle.pop()
            if kept.file is not None and kept.file == now and kept.pid == os.getpid():
                found = kept
            else:  # the file was removed or replaced since (or this is a forked child): start afresh
                dropped.append(kept)
    for kept in dropped:
        _close(kept)
    if found is not None and not _current(found.conn):
        _close(found)
        found = None
    return found or _open(path)


def _current(conn: sqlite3.Connection) -> bool:
    """Still usable, and not migrated by a newer overnight meanwhile (opening again would say so)."""
    try:
        return db.schema_version(conn) == len(db.MIGRATIONS)
    except sqlite3.Error:
        return False


def _give(path: Path, kept: _Kept) -> None:
    evicted: list[_Kept] = []
    with _IDLE_LOCK:
        idle = _IDLE.setdefault(path, [])
        _IDLE.move_to_end(path)
        if len(idle) < KEPT_PER_DATABASE:
            idle.append(kept)
        else:
            evicted.append(kept)
        while len(_IDLE) > KEPT_DATABASES:
            evicted.extend(_IDLE.popitem(last=False)[1])
    for old in evicted:
        _close(old)


def _close(kept: _Kept) -> None:
    if kept.pid == os.getpid():  # a connection inherited through fork() is not this process's to close
        with contextlib.suppress(sqlite3.Error):
            kept.conn.close()


@contextlib.contextmanager
def connection(path: Path) -> Iterator[sqlite3.Connection]:
    """A connection to the state database at `path`, for this caller alone until the block ends, and kept open
    for the next call afterwards (unless an SQLite error or an unfinished transaction leaves it in doubt)."""
    kept = _take(path)
    try:
        yield kept.conn
    except sqlite3.Error:
        _close(kept)
        raise
    except BaseException:
        _keep_or_close(path, kept)
        raise
    _keep_or_close(path, kept)


def _keep_or_close(path: Path, kept: _Kept) -> None:
    if kept.conn.in_transaction:
        _close(kept)
    else:
        _give(path, kept)


@atexit.register
def close_kept() -> None:
    """Close every kept connection (at exit, so SQLite checkpoints the WAL as it does on a last close)."""
    with _IDLE_LOCK:
        kept = [k for idle in _IDLE.values() for k in idle]
        _IDLE.clear()
    for k in kept:
        _close(k)


@dataclass(frozen=True)
class Filters:
    kind: str | None = None
    task_id: str | None = None
    file: str | None = None
    session: str | None = None
    since: float | None = None

    def sql(self) -> tuple[str, list[Any]]:
        parts: list[str] = []
        params: list[Any] = []
        for column, value in (("e.kind", self.kind), ("e.task_id", self.task_id), ("e.session", self.session)):
            if value is not None:
                parts.append(f"{column} = ?")
                params.append(value)
        if self.since is not None:
            parts.append("e.created_at >= ?")
            params.append(self.since)
        if self.file is not None:
            parts.append("EXISTS (SELECT 1 FROM entry_files f WHERE f.entry_id = e.id AND f.path = ?)")
            params.append(self.file)
        return "".join(f" AND {p}" for p in parts), params


def check_fts(conn: sqlite3.Connection) -> None:
    try:
        conn.execute("SELECT 1 FROM entries_fts LIMIT 0")
    except sqlite3.OperationalError as e:
        raise StateError(f"this Python's SQLite cannot search memory ({e}); use a Python built with FTS5") from e


def ensure_session(conn: sqlite3.Connection, session: str, source: str, now: float, goal: str | None = None) -> None:
    conn.execute(
        "INSERT INTO sessions (id, goal, source, started_at) VALUES (?, ?, ?, ?) ON CONFLICT (id) DO NOTHING",
        (session, goal, source, now),
    )


def start_session(conn: sqlite3.Connection, session: str, source: str, now: float, goal: str | None) -> None:
    with db.transaction(conn):
        ensure_session(conn, session, source, now, goal)
        if goal:
            conn.execute("UPDATE sessions SET goal = ? WHERE id = ?", (goal, session))


def end_session(
    conn: sqlite3.Connection, session: str, now: float, outcome: str, stop_reason: str | None, record: dict[str, Any]
) -> None:
    with db.transaction(conn):
        ensure_session(conn, session, "agent", now)
        old = json.loads(conn.execute("SELECT record FROM sessions WHERE id = ?", (session,)).fetchone()[0] or "{}")
        merged = {**old, **record}
        conn.execute(
            "UPDATE sessions SET ended_at = ?, outcome = ?, stop_reason = ?, record = ?, "
            "branch = COALESCE(?, branch), base_commit = COALESCE(?, base_commit), "
            "final_commit = COALESCE(?, final_commit) WHERE id = ?",
            (
                now,
                outcome,
                stop_reason,
                json.dumps(merged, sort_keys=True),
                merged.get("branch"),
                merged.get("base_commit"),
                merged.get("final_commit"),
                session,
            ),
        )


def add_entry(
    conn: sqlite3.Connection, row: dict[str, Any], files: Sequence[tuple[str, str | None]], entry_id: int | None = None
) -> int:
    """Insert one entry (and its session, when new) in one transaction; its id once committed."""
    with db.transaction(conn):
        if row.get("session"):
            ensure_session(conn, row["session"], row["source"], row["created_at"])
        columns = [
            "kind",
            "text",
            "session",
            "task_id",
            "source",
            "tags",
            "created_at",
            "redactions",
            "state",
            "closed_at",
            "closed_by",
            "closed_note",
        ]
        values = [row.get(c) for c in columns]
        if entry_id is not None:
            columns.insert(0, "id")
            values.insert(0, entry_id)
        cursor = conn.execute(
            f"INSERT INTO entries ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})",
            values,
        )
        new_id = int(cursor.lastrowid or 0)
        conn.executemany(
            "INSERT INTO entry_files (entry_id, path, blob) VALUES (?, ?, ?)", [(new_id, p, b) for p, b in files]
        )
        return new_id


def terms(text: str) -> list[str]:
    """The text's distinct words, lower-cased, at most MAX_TERMS."""
    return list(dict.fromkeys(w.lower() for w in _WORD.findall(text)))[:MAX_TERMS]


def match(words: Sequence[str], any_word: bool = False) -> str:
    """An FTS5 query of these words, each quoted (so no word is read as an operator): all of them, or any."""
    return (" OR " if any_word else " ").join('"' + w.replace('"', '""') + '"' for w in words)


def at_least(words: Sequence[str], n: int) -> str:
    """An FTS5 query matching the entries that have at least `n` of these words (1 <= n <= len(words)), with each
    word written once where it can be: `a AND at_least(rest, n-1) OR at_least(rest, n)`. FTS5 counts each
    phrase's entries once per phrase written (what BM25 weighs it by), so the first word, written once, should be
    the most frequent. Where no entry has more than `n` of them, an entry matches through one branch only, and
    its BM25 rank is that of its `n` words alone."""
    if n >= len(words):
        return "(" + match(words) + ")"
    if n <= 1:
        return "(" + match(words, any_word=True) + ")"
    first = match(words[:1])
    return f"(({first} AND {at_least(words[1:], n - 1)}) OR {at_least(words[1:], n)})"


def most_frequent_first(conn: sqlite3.Connection, words: Sequence[str], cap: int = 1000) -> list[str]:
    """The words ordered by how many entries have them (counted up to `cap`: cheap, and enough to tell a common
    word from a rare one), most first."""
    counted = "SELECT count(*) FROM (SELECT 1 FROM entries_fts WHERE entries_fts MATCH ? LIMIT ?)"
    count = {w: conn.execute(counted, (match([w]), cap)).fetchone()[0] for w in words}
    return sorted(words, key=lambda w: -count[w])


def fts_query(text: str, any_word: bool) -> str | None:
    """An FTS5 query of the text's words, each quoted (so no word is read as an operator)."""
    words = terms(text)
    return match(words, any_word) if words else None


def rank(conn: sqlite3.Connection, query: str, filters: Filters, limit: int) -> list[tuple[int, float, float]]:
    """(id, BM25 rank: lower is better, created_at) of the `limit` entries matching `query` with the best rank
    (text weighs more than tags), best first (on equal ranks, oldest id first). Without filters the ranking runs
    in the FTS index alone, and only the best are looked up in the table."""
    where, params = filters.sql()
    if where:
        sql = (
            "SELECT entries_fts.rowid, bm25(entries_fts, 1.0, 0.5) AS rank, e.created_at FROM entries_fts "
            f"JOIN entries e ON e.id = entries_fts.rowid WHERE entries_fts MATCH ?{where} "
            "ORDER BY rank, entries_fts.rowid LIMIT ?"
        )
    else:
        sql = (
            "SELECT f.id, f.rank, e.created_at FROM (SELECT rowid AS id, bm25(entries_fts, 1.0, 0.5) AS rank "
            "FROM entries_fts WHERE entries_fts MATCH ? ORDER BY rank, rowid LIMIT ?) f "
            "JOIN entries e ON e.id = f.id ORDER BY f.rank, f.id"
        )
    return [(int(r[0]), float(r[1]), float(r[2])) for r in conn.execute(sql, [query, *params, limit])]


Shown = tuple[int, str, float, str, "str | None", "str | None", str, list[tuple[str, "str | None"]]]


def shown(conn: sqlite3.Connection, ids: Sequence[int]) -> dict[int, Shown]:
    """What a hit shows of these entries: (id, kind, created_at, source, session, task_id, text, [(file, blob)])
    (the text is what its snippet is made from), in one statement."""
    if not ids:
        return {}
    sql = (
        "SELECT id, kind, created_at, source, session, task_id, text, (SELECT json_group_array(json_array(path, "
        "blob)) FROM entry_files WHERE entry_id = entries.id) FROM entries "
        f"WHERE id IN ({', '.join('?' * len(ids))})"
    )
    cursor = conn.cursor()
    cursor.row_factory = None  # plain tuples
    return {r[0]: (*r[:7], [(f[0], f[1]) for f in json.loads(r[7])]) for r in cursor.execute(sql, list(ids))}


@contextlib.contextmanager
def snapshot(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """One read transaction around several statements, so that they all see the same commits."""
    if conn.in_transaction:
        yield conn
        return
    conn.execute("BEGIN")
    try:
        yield conn
    finally:
        if conn.in_transaction:
            conn.execute("ROLLBACK")  # (nothing to keep: it only read)


def recent(conn: sqlite3.Connection, filters: Filters, limit: int, offset: int = 0) -> list[sqlite3.Row]:
    where, params = filters.sql()
    sql = f"SELECT e.*, 0.0 AS rank, substr(e.text, 1, 200) AS snippet FROM entries e WHERE 1 = 1{where} "
    return list(conn.execute(sql + "ORDER BY e.created_at DESC, e.id DESC LIMIT ? OFFSET ?", [*params, limit, offset]))


def entries(conn: sqlite3.Connection, ids: Sequence[int]) -> list[sqlite3.Row]:
    marks = ", ".join("?" * len(ids))
    return list(conn.execute(f"SELECT * FROM entries WHERE id IN ({marks}) ORDER BY id", list(ids)))


def files_of(conn: sqlite3.Connection, ids: Sequence[int]) -> dict[int, list[tuple[str, str | None]]]:
    found: dict[int, list[tuple[str, str | None]]] = {i: [] for i in ids}
    if not ids:
        return found
    marks = ", ".join("?" * len(ids))
    for row in conn.execute(f"SELECT entry_id, path, blob FROM entry_files WHERE entry_id IN ({marks})", list(ids)):
        found[row["entry_id"]].append((row["path"], row["blob"]))
    return found


def about(
    conn: sqlite3.Connection, kinds: Sequence[str], paths: Sequence[str], task_id: str | None, limit: int
) -> list[sqlite3.Row]:
    """Entries of these kinds about any of these files, or about this task, newest first."""
    conditions: list[str] = []
    params: list[Any] = []
    if paths:
        conditions.append(f"e.id IN (SELECT entry_id FROM entry_files WHERE path IN ({', '.join('?' * len(paths))}))")
        params.extend(paths)
    if task_id:
        conditions.append("e.task_id = ?")
        params.append(task_id)
    if not conditions:
        return []
    sql = (
        f"SELECT e.* FROM entries e WHERE e.kind IN ({', '.join('?' * len(kinds))}) AND ({' OR '.join(conditions)}) "
        "ORDER BY e.created_at DESC, e.id DESC LIMIT ?"
    )
    return list(conn.execute(sql, [*kinds, *params, limit]))


def open_steps(conn: sqlite3.Connection, limit: int) -> list[sqlite3.Row]:
    return list(
        conn.execute(
            "SELECT * FROM entries WHERE kind = 'next_step' AND state = 'open' ORDER BY created_at, id LIMIT ?",
            (limit,),
        )
    )


def close_step(conn: sqlite3.Connection, entry_id: int, now: float, by: str, note: str | None) -> sqlite3.Row | None:
    with db.transaction(conn):
        row: sqlite3.Row | None = conn.execute("SELECT * FROM entries WHERE id = ?", (entry_id,)).fetchone()
        if row is None or row["kind"] != "next_step":
            return row
        if row["state"] != "done":
            conn.execute(
                "UPDATE entries SET state = 'done', closed_at = ?, closed_by = ?, closed_note = ? WHERE id = ?",
                (now, by, note, entry_id),
            )
        found: sqlite3.Row | None = conn.execute("SELECT * FROM entries WHERE id = ?", (entry_id,)).fetchone()
        return found


def sessions(conn: sqlite3.Connection, limit: int, offset: int = 0) -> list[sqlite3.Row]:
    return list(
        conn.execute(
            "SELECT s.*, (SELECT count(*) FROM entries e WHERE e.session = s.id) AS entry_count FROM sessions s "
            "ORDER BY s.started_at DESC, s.id DESC LIMIT ? OFFSET ?",
            (limit, offset),
        )
    )


def session(conn: sqlite3.Connection, session_id: str) -> sqlite3.Row | None:
    found: sqlite3.Row | None = conn.execute(
        "SELECT s.*, (SELECT count(*) FROM entries e WHERE e.session = s.id) AS entry_count FROM sessions s "
        "WHERE s.id = ?",
        (session_id,),
    ).fetchone()
    return found


def kinds_of(conn: sqlite3.Connection, session_id: str) -> dict[str, int]:
    rows = conn.execute("SELECT kind, count(*) FROM entries WHERE session = ? GROUP BY kind", (session_id,))
    return {r[0]: r[1] for r in rows}


def dump(conn: sqlite3.Connection) -> Iterator[dict[str, Any]]:
    """Every session, then every entry with its files, as plain dicts (the export format)."""
    for row in conn.execute("SELECT * FROM sessions ORDER BY started_at, id"):
        yield {"type": "session", **dict(row), "record": json.loads(row["record"] or "{}")}
    files = files_of(conn, [r[0] for r in conn.execute("SELECT id FROM entries")])
    for row in conn.execute("SELECT * FROM entries ORDER BY id"):
        yield {"type": "entry", **dict(row), "files": [{"path": p, "blob": b} for p, b in files[row["id"]]]}


def restore_session(conn: sqlite3.Connection, row: dict[str, Any]) -> None:
    columns = [
        "id",
        "goal",
        "source",
        "started_at",
        "ended_at",
        "outcome",
        "stop_reason",
        "branch",
        "base_commit",
        "final_commit",
        "record",
    ]
    values = [json.dumps(row.get(c) or {}, sort_keys=True) if c == "record" else row.get(c) for c in columns]
    conn.execute(
        f"INSERT INTO sessions ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))}) "
        "ON CONFLICT (id) DO NOTHING",
        values,
    )


def entry_row(conn: sqlite3.Connection, entry_id: int) -> sqlite3.Row | None:
    found: sqlite3.Row | None = conn.execute("SELECT * FROM entries WHERE id = ?", (entry_id,)).fetchone()
    return found
