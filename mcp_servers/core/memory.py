"""Memory: what every session did, decided, failed at and learned, searchable by the next one.

- Writes redact secrets first (on by default) and go to SQLite in one short transaction each.
- An entry about files keeps each file's git blob id at the time, so an entry about code that has changed
  since is shown as stale.
- Search is FTS5 BM25 blended with recency; a query whose words do not all occur together still returns the
  closest entries: those with the most of its words.
- Sessions are first-class: bound to `OVERNIGHT_SESSION_ID`, else `CLAUDE_CODE_SESSION_ID`, else created.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import hashlib
import json
import math
import os
import re
import secrets as pyrandom
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel, ValidationError

from . import db
from . import memorystore as store
from .config import CONFIG_NAME
from .errors import UsageError
from .memory_models import (
    Entries,
    Entry,
    FileRef,
    Hit,
    Imported,
    Lessons,
    Logged,
    NextSteps,
    SearchResult,
    SessionDetail,
    Sessions,
    SessionSummary,
)
from .paths import inside
from .secrets import redact
from .workspace import Workspace

Clock = Callable[[], float]
KINDS = ("decision", "failure", "lesson", "note", "gate", "next_step", "summary")
SOURCES = ("agent", "scheduler", "person")
# the last four: the model's API ended the session (a usage limit past the time limit, a disabled allowance,
# retries used up), or a rate limit or budget of `[limits]` did: kept apart from failures (issue 12)
OUTCOMES = ("completed", "stopped", "failed", "crashed", "interrupted", "timed-out", "budget", "no-work",
            "usage-limit", "limit-disabled", "infra-failed", "limit-reached")
MAX_TEXT = 16 * 1024
MAX_GOAL = 2000
MAX_TAGS = 10
MAX_QUERY = 500
MAX_FILES = 50
MAX_LIMIT = 50  # per call: the CLI pages through `next_offset` for more
MAX_OFFSET = 1_000_000
MAX_IDS = 50
MAX_ANSWER_CHARS = 60_000  # full texts in one answer: far below Claude Code's 25k-token cap on a tool result
RECENCY_DAYS = 30.0
CANDIDATES = 30  # the best entries by BM25 that are then blended with recency (at least 3 x limit)
MAX_SUBSET_QUERIES = 32  # "closest" looks for entries with all but one word, two, ... within this many queries
_TAG = re.compile(r"^[a-z0-9][a-z0-9_.:/-]{0,39}$")
_SESSION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,99}$")


_WORKSPACES: dict[tuple[Any, ...], tuple[Workspace, tuple[Any, ...]]] = {}
_WORKSPACE_ENV = ("OVERNIGHT_REPO", "OVERNIGHT_SESSION_ID", "CLAUDE_CODE_SESSION_ID", "OVERNIGHT_CHECKPOINT")


def workspace(path: str | None = None) -> Workspace:
    """`Workspace.open(path)` for a long-running process (the memory server), kept between calls.

    Opening asks git where the repository is and reads the config at HEAD (memory uses none of it but the
    paths) on every call. Here the workspace is opened again only when what it was opened from changes: the
    working directory or the environment it reads, the worktree's `.git` (a new repository there; in a main
    worktree, also any git operation, which changes the folder), or the worktree's overnight.toml. Checking
    them is two stats.
    """
    try:
        cwd: str | None = os.getcwd()
    except OSError:  # removed: only an absolute `path` still names a repository, and opening says so otherwise
        cwd = None
    key = (path, cwd, tuple(os.environ.get(name) for name in _WORKSPACE_ENV))
    kept = _WORKSPACES.get(key)
    if kept is not None and _stamp(kept[0].repo.root) == kept[1]:
        return kept[0]
    ws = Workspace.open(path)
    stamp = _stamp(ws.repo.root)
    if len(_WORKSPACES) >= 16:
        _WORKSPACES.clear()
    _WORKSPACES[key] = (ws, stamp)
    return ws


def _stamp(root: Path) -> tuple[Any, ...]:
    found: list[tuple[int, int, int, int] | None] = []
    for name in (".git", CONFIG_NAME):
        try:
            st = os.stat(os.path.join(root, name))
        except OSError:
            found.append(None)
        else:
            found.append((st.st_ino, st.st_ctime_ns, st.st_size, st.st_mtime_ns))
    return tuple(found)


def _db(ws: Workspace) -> contextlib.AbstractContextManager[Any]:
    """The workspace's state database, over a connection kept open between calls."""
    return store.connection(ws.db_path)


def iso(when: float | None) -> str | None:
    return dt.datetime.fromtimestamp(when, dt.UTC).isoformat(timespec="seconds") if when is not None else None


# -- sessions ---------------------------------------------------------------------------------------------


def session_from(environ: Mapping[str, str]) -> str | None:
    return environ.get("OVERNIGHT_SESSION_ID") or environ.get("CLAUDE_CODE_SESSION_ID") or None


def _session(ws: Workspace, session: str | None) -> str:
    chosen = session or session_from(ws.environ)
    if chosen is None:
        chosen = _PROCESS_SESSION
    if not _SESSION.match(chosen):
        raise UsageError(f"{chosen!r} is not a session id: letters, digits, `_`, `-`, `.` and `:`, at most 100.")
    return chosen


_PROCESS_SESSION = f"s-{dt.datetime.now(dt.UTC).strftime('%Y%m%d-%H%M%S')}-{pyrandom.token_hex(3)}"


def start_session(
    ws: Workspace,
    *,
    session: str | None = None,
    goal: str | None = None,
    source: str = "agent",
    clock: Clock = time.time,
) -> SessionDetail:
    """Open (or name the goal of) a session; every entry logged under its id belongs to it."""
    sid = _session(ws, session)
    text = _clean(goal or "", MAX_GOAL, "goal")[0] or None
    with _db(ws) as conn:
        store.start_session(conn, sid, _source(source), clock(), text)
    return get_session(ws, sid)


def end_session(
    ws: Workspace,
    *,
    outcome: str,
    session: str | None = None,
    stop_reason: str | None = None,
    summary: str | None = None,
    record: dict[str, Any] | None = None,
    source: str = "agent",
    clock: Clock = time.time,
) -> SessionDetail:
    """Close a session with its outcome, why it stopped, a summary (kept as an entry) and its run record."""
    sid = _session(ws, session)
    wanted = outcome.strip().lower().replace("_", "-").replace(" ", "-")
    if wanted not in OUTCOMES:
        raise UsageError(f"outcome {outcome!r} is not one of {', '.join(OUTCOMES)}.")
    reason = _clean(stop_reason or "", 500, "stop_reason")[0] or None
    if summary:
        log_event(ws, "summary", summary, session=sid, source=source, clock=clock)
    with _db(ws) as conn:
        store.end_session(conn, sid, clock(), wanted, reason, _record(record or {}))
    return get_session(ws, sid)


def _record(record: dict[str, Any]) -> dict[str, Any]:
    """The run record as JSON-safe data, its text redacted."""

    def clean(value: Any) -> Any:
        if isinstance(value, str):
            return redact(value)[0]
        if isinstance(value, dict):
            return {clean(str(k)): clean(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [clean(v) for v in value]
        return value

    data: dict[str, Any] = clean(json.loads(json.dumps(record, default=str, sort_keys=True)))
    return data


# -- writing ---------------------------------------------------------------------------------------------


def _clean(text: str, limit: int, what: str) -> tuple[str, int]:
    cleaned, count = redact(text.replace("\r\n", "\n").replace("\0", "").strip())
    if len(cleaned.encode()) > limit:
        raise UsageError(
            f"the {what} is {len(cleaned.encode())} bytes long; keep it under {limit} (split it, or store "
            "a summary and the path of a file with the rest)."
        )
    return cleaned, count


def _source(source: str) -> str:
    if source not in SOURCES:
        raise UsageError(f"source {source!r} is not one of {', '.join(SOURCES)}.")
    return source


def _tags(tags: Iterable[str] | None) -> str:
    found = [t.strip().lower() for t in tags or [] if t.strip()]
    if len(found) > MAX_TAGS:
        raise UsageError(f"at most {MAX_TAGS} tags, not {len(found)}.")
    bad = [t for t in found if not _TAG.match(t)]
    if bad:
        raise UsageError(f"tags are lower-case words (letters, digits, `_.:/-`, up to 40): {', '.join(bad)}")
    return " ".join(dict.fromkeys(found))


def log_event(
    ws: Workspace,
    kind: str,
    text: str,
    *,
    session: str | None = None,
    task_id: str | None = None,
    files: Iterable[str] | None = None,
    tags: Iterable[str] | None = None,
    source: str = "agent",
    clock: Clock = time.time,
) -> Logged:
    """Store an entry; once this returns it is committed. Secrets are redacted first."""
    if kind not in KINDS:
        raise UsageError(f"kind {kind!r} is not one of {', '.join(KINDS)}.")
    body, count = _clean(text, MAX_TEXT, "text")
    if not body:
        raise UsageError("the entry is empty: say what happened, what was decided or learned.")
    paths = [inside(ws.repo.root, f) for f in files or []]
    if len(paths) > MAX_FILES:
        raise UsageError(f"an entry names at most {MAX_FILES} files, not {len(paths)}.")
    if task_id is not None and not re.match(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$", task_id):
        raise UsageError(f"{task_id!r} is not a task id.")
    sid = _session(ws, session)
    row = {
        "kind": kind,
        "text": body,
        "session": sid,
        "task_id": task_id,
        "source": _source(source),
        "tags": _tags(tags),
        "created_at": clock(),
        "redactions": count,
        "state": "open" if kind == "next_step" else None,
    }
    blobs = Blobs(ws.repo.root)
    with _db(ws) as conn:
        entry_id = store.add_entry(conn, row, [(p, blobs.of(p)) for p in dict.fromkeys(paths)])
    return Logged(id=entry_id, session=sid, kind=kind, redacted=count)


class Blobs:
    """Git blob ids of working-tree files, computed here (no process), remembered by size and mtime (and, for
    one answer, by path)."""

    _cache: ClassVar[dict[tuple[str, int, int], str]] = {}

    def __init__(self, root: Path) -> None:
        self.root = str(root)
        self._seen: dict[str, str | None] = {}

    def of(self, path: str) -> str | None:
        if path not in self._seen:
            self._seen[path] = self._blob(os.path.join(self.root, path))
        return self._seen[path]

    def _blob(self, full: str) -> str | None:
        try:
            st = os.stat(full)
        except OSError:
            return None
        key = (full, st.st_size, st.st_mtime_ns)
        found = self._cache.get(key)
        if found is None:
            try:
                with open(full, "rb") as handle:
                    data = handle.read()
            except OSError:
                return None
            found = hashlib.sha1(b"blob %d\0" % len(data) + data, usedforsecurity=False).hexdigest()
            if len(self._cache) > 10_000:
                self._cache.clear()
            self._cache[key] = found
        return found


# -- reading ---------------------------------------------------------------------------------------------


def parse_since(since: str | None, now: float) -> float | None:
    """`7d`, `12h`, `30m`, or an ISO date or time, as a timestamp."""
    if not since:
        return None
    m = re.fullmatch(r"\s*(\d+)\s*([dhm])\s*", since)
    if m:
        return now - int(m.group(1)) * {"d": 86400, "h": 3600, "m": 60}[m.group(2)]
    try:
        when = dt.datetime.fromisoformat(since.strip())
    except ValueError as e:
        raise UsageError(f"since {since!r} is neither `7d`/`12h`/`30m` nor an ISO date like 2026-11-01.") from e
    return (when if when.tzinfo else when.replace(tzinfo=dt.UTC)).timestamp()


def search(
    ws: Workspace,
    query: str,
    *,
    kind: str | None = None,
    task_id: str | None = None,
    file: str | None = None,
    session: str | None = None,
    since: str | None = None,
    limit: int = 10,
    offset: int = 0,
    clock: Clock = time.time,
) -> SearchResult:
    """Entries matching the query's words (all of them, else the closest), ranked by BM25 and recency: the page of
    at most MAX_LIMIT from `offset`, and `next_offset` when there are more (issue 11: list commands page)."""
    if len(query) > MAX_QUERY:
        raise UsageError(f"the query is {len(query)} characters long; keep it under {MAX_QUERY}.")
    if kind is not None and kind not in KINDS:
        raise UsageError(f"kind {kind!r} is not one of {', '.join(KINDS)}.")
    limit, offset = max(1, min(limit, MAX_LIMIT)), _offset(offset)
    now = clock()
    filters = store.Filters(
        kind=kind,
        task_id=task_id,
        session=session,
        since=parse_since(since, now),
        file=inside(ws.repo.root, file) if file else None,
    )
    words = store.terms(query)
    with _db(ws) as conn, store.snapshot(conn):
        if words:
            found = _matching(conn, words, filters, max(CANDIDATES, (offset + limit) * 3))
            ordered = _rank(found.candidates, now)
            best, more = ordered[offset : offset + limit], len(ordered) > offset + limit
            rows = store.shown(conn, [i for i, _ in best])
            marks = marker(tuple(words))
            ranked = [(rows[i], snippet(rows[i][6], marks), score) for i, score in best if i in rows]
            all_words = found.all_words
        else:
            newest = [r["id"] for r in store.recent(conn, filters, limit + 1, offset)]
            newest, more = newest[:limit], len(newest) > limit
            rows = store.shown(conn, newest)
            ranked = [(rows[i], _snippet(rows[i][6][:200]), _recency(rows[i][2], now)) for i in newest if i in rows]
            all_words = True
    blobs = Blobs(ws.repo.root)
    hits = [
        Hit(
            id=r[0],
            kind=r[1],
            created=iso(r[2]) or "",
            score=round(score, 4),
            source=r[3],
            session=r[4],
            task_id=r[5],
            stale=_stale(r[7], blobs),
            snippet=shown,
        )
        for r, shown, score in ranked
    ]
    return SearchResult(hits=hits, matched_all_words=all_words, next_offset=offset + limit if more else None)


def _offset(offset: int) -> int:
    """A page's start, as `next_offset` gave it: refused when it cannot be one (bounds the ranked pool)."""
    if not 0 <= offset <= MAX_OFFSET:
        raise UsageError(f"offset {offset} is out of range: pass 0, or the `next_offset` of the previous page.")
    return offset


@dataclass
class _Found:
    candidates: list[tuple[int, float, float]]  # (id, BM25 rank, created_at) of the best, best first
    all_words: bool


def _matching(conn: Any, words: list[str], filters: store.Filters, pool: int) -> _Found:
    """The best `pool` entries with every word, by BM25; when there are none, the closest: those with the most
    of the words (k-1 of the k, then k-2, ... while that stays within MAX_SUBSET_QUERIES subsets), else any word.

    At each size no entry has more of the words (the larger sizes found none), so an entry's BM25 rank is the
    one an any-word query would give it. Each size is one statement (`store.at_least`), the most frequent word
    written once in it: FTS5 walks every entry of each word written, once per statement."""
    found = store.rank(conn, store.match(words), filters, pool)
    if found or len(words) == 1:
        return _Found(found, bool(found))
    sizes, asked = [], 0
    for size in range(len(words) - 1, 1, -1):
        asked += math.comb(len(words), size)
        if asked > MAX_SUBSET_QUERIES:
            break
        sizes.append(size)
    ordered = store.most_frequent_first(conn, words) if sizes else words
    for size in sizes:
        found = store.rank(conn, store.at_least(ordered, size), filters, pool)
        if found:
            return _Found(found, False)
    return _Found(store.rank(conn, store.match(words, any_word=True), filters, pool), False)


def _recency(created_at: float, now: float) -> float:
    return math.exp(-max(0.0, now - created_at) / 86400 / RECENCY_DAYS)


def _rank(found: list[tuple[int, float, float]], now: float) -> list[tuple[int, float]]:
    """(id, score) of (id, BM25 rank, created_at): BM25 relevance (normalised over the candidates) blended with
    recency (half-life of a month), best first."""
    if not found:
        return []
    best = max(-rank for _, rank, _ in found) or 1.0
    scored = []
    for entry_id, rank, created_at in found:
        recency = _recency(created_at, now)
        scored.append((entry_id, 0.8 * (-rank / best) + 0.2 * recency if rank else recency))
    return sorted(scored, key=lambda pair: -pair[1])


def _snippet(text: str | None) -> str:
    return _cut(" ".join((text or "").split()))


def _cut(line: str) -> str:
    return line if len(line) <= SNIPPET_MAX else line[: SNIPPET_MAX - 1] + "…"


SNIPPET_MAX = 240  # characters of a hit's snippet
SNIPPET_WINDOW = 180  # characters of text around the first word found, before the marks
_SUFFIXES = ("ations", "ation", "ings", "ing", "ies", "ied", "ers", "er", "es", "ed", "ly", "s", "e")


@functools.lru_cache(maxsize=256)
def marker(words: tuple[str, ...]) -> tuple[str, ...]:
    """The stems of a search's words, lower case, longest first: a word in a text is the search's when it starts
    with one (`cache` finds cache, cached, caching: nearly the forms FTS5's porter stemmer joins)."""
    stems = set()
    for word in words:
        stem = word.lower()
        for suffix in _SUFFIXES:
            if stem.endswith(suffix) and len(stem) - len(suffix) >= 3:
                stem = stem[: -len(suffix)]
                break
        stems.add(stem)
    return tuple(sorted(stems, key=len, reverse=True))


def _words_found(one: str, stems: tuple[str, ...]) -> list[tuple[int, int]]:
    """(start, end) of each whole word of `one` (letters and digits) that starts with one of the stems, in order.
    (str.find, not a regular expression: ten snippets a search, and a pattern scan cost 10 µs a text.)"""
    low = one.lower()
    if len(low) != len(one):  # a character whose lower case is longer would shift every offset
        low = "".join(c.lower() if len(c.lower()) == 1 else c for c in one)
    spans = []
    for stem in stems:
        i = low.find(stem)
        while i >= 0:
            if i and low[i - 1].isalnum():  # inside a word, not at its start
                i = low.find(stem, i + 1)
                continue
            j = i + len(stem)
            while j < len(low) and low[j].isalnum():
                j += 1
            spans.append((i, j))
            i = low.find(stem, j)
    spans.sort()
    kept: list[tuple[int, int]] = []
    for span in spans:
        if not kept or span[0] >= kept[-1][1]:
            kept.append(span)
    return kept


def snippet(text: str, stems: tuple[str, ...]) -> str:
    """The entry's text around the first word of the search it has, those words marked `[so]`: one line, at most
    SNIPPET_MAX characters, `…` where it was cut. (Made here from the row already read: FTS5's snippet() needs
    the index walked again, which cost more than the search.)"""
    one = " ".join(text.split())
    spans = _words_found(one, stems) if stems else []
    start, end = 0, len(one)
    if len(one) > SNIPPET_WINDOW:
        if spans and spans[0][0] > SNIPPET_WINDOW // 3:
            start = one.rfind(" ", 0, spans[0][0] - SNIPPET_WINDOW // 4) + 1
        end = min(len(one), start + SNIPPET_WINDOW)
        if end < len(one) and one.rfind(" ", start, end) > start:
            end = one.rfind(" ", start, end)
    parts, at = ["…" if start else ""], start
    for first, after in spans:
        if first < start:
            continue
        if first >= end:
            break
        parts += [one[at:first], "[", one[first : min(after, end)], "]"]
        at = min(after, end)
    parts += [one[at:end], "…" if end < len(one) else ""]
    return _cut("".join(parts))  # (one line already)


def _stale(files: list[tuple[str, str | None]], blobs: Blobs) -> bool:
    return any(blobs.of(path) != blob for path, blob in files)


def _entry(row: Any, files: list[tuple[str, str | None]], blobs: Blobs, budget: list[int]) -> Entry:
    text = row["text"]
    if len(text) > budget[0]:
        text = text[: max(0, budget[0])] + "… (cut: the answer had grown too long; ask for fewer ids)"
    budget[0] -= len(text)
    refs = [FileRef(path=p, stale=blobs.of(p) != b) for p, b in files]
    return Entry(
        id=row["id"],
        kind=row["kind"],
        text=text,
        created=iso(row["created_at"]) or "",
        source=row["source"],
        session=row["session"],
        task_id=row["task_id"],
        tags=row["tags"].split(),
        files=refs,
        stale=any(f.stale for f in refs),
        redactions=row["redactions"],
        state=row["state"],
        closed=iso(row["closed_at"]),
        closed_note=row["closed_note"],
    )


def _entries(ws: Workspace, rows: list[Any]) -> tuple[list[Entry], bool]:
    with _db(ws) as conn:
        files = store.files_of(conn, [r["id"] for r in rows])
    blobs, budget = Blobs(ws.repo.root), [MAX_ANSWER_CHARS]
    found = [_entry(r, files[r["id"]], blobs, budget) for r in rows]
    return found, budget[0] < 0 or any(e.text.endswith("ask for fewer ids)") for e in found)


def get_entries(ws: Workspace, ids: list[int]) -> Entries:
    if len(ids) > MAX_IDS:
        raise UsageError(f"ask for at most {MAX_IDS} entries at a time, not {len(ids)}.")
    wanted = list(dict.fromkeys(ids))
    with _db(ws) as conn:
        rows = store.entries(conn, wanted)
    found, truncated = _entries(ws, rows)
    missing = sorted(set(wanted) - {e.id for e in found})
    return Entries(entries=found, missing=missing, truncated=truncated)


def lessons_for(
    ws: Workspace, *, files: list[str] | None = None, task_id: str | None = None, limit: int = 20
) -> Lessons:
    """Failures and lessons about these files or this task, newest first, stale ones marked."""
    paths = [inside(ws.repo.root, f) for f in files or []]
    if not paths and not task_id:
        raise UsageError("name the files or the task the lessons should be about.")
    with _db(ws) as conn:
        rows = store.about(conn, ("failure", "lesson"), paths, task_id, max(1, min(limit, MAX_LIMIT)))
    return Lessons(entries=_entries(ws, rows)[0])


def open_next_steps(ws: Workspace, limit: int = 20) -> NextSteps:
    with _db(ws) as conn:
        rows = store.open_steps(conn, max(1, min(limit, MAX_LIMIT)))
    return NextSteps(steps=_entries(ws, rows)[0])


def close_next_step(
    ws: Workspace, entry_id: int, *, note: str | None = None, session: str | None = None, clock: Clock = time.time
) -> Entry:
    text = _clean(note or "", 2000, "note")[0] or None
    with _db(ws) as conn:
        row = store.close_step(conn, entry_id, clock(), _session(ws, session), text)
    if row is None:
        raise UsageError(f"there is no entry {entry_id}: `open_next_steps` lists the open ones.")
    if row["kind"] != "next_step":
        raise UsageError(f"entry {entry_id} is a {row['kind']}, not a next step.")
    return _entries(ws, [row])[0][0]


def _summary(row: Any) -> SessionSummary:
    record = json.loads(row["record"] or "{}")
    return SessionSummary(
        id=row["id"],
        goal=row["goal"],
        source=row["source"],
        started=iso(row["started_at"]) or "",
        ended=iso(row["ended_at"]),
        outcome=row["outcome"],
        stop_reason=row["stop_reason"],
        branch=row["branch"],
        entries=row["entry_count"],
        tasks_done=len(record.get("tasks_done") or []),
        tasks_failed=len(record.get("tasks_failed") or []),
        cost_usd=record.get("cost_usd"),
    )


def recent_sessions(ws: Workspace, limit: int = 10, offset: int = 0) -> Sessions:
    """The newest sessions from `offset`, at most MAX_LIMIT, and `next_offset` when there are more."""
    limit, offset = max(1, min(limit, MAX_LIMIT)), _offset(offset)
    with _db(ws) as conn:
        rows = store.sessions(conn, limit + 1, offset)
    following = offset + limit if len(rows) > limit else None
    return Sessions(sessions=[_summary(r) for r in rows[:limit]], next_offset=following)


def get_session(ws: Workspace, session: str) -> SessionDetail:
    with _db(ws) as conn:
        row = store.session(conn, session)
        if row is None:
            raise UsageError(f"there is no session {session!r}: `recent_sessions` lists them.")
        by_kind = store.kinds_of(conn, session)
        newest = store.recent(conn, store.Filters(session=session), 10)
    hits = [
        Hit(
            id=r["id"],
            kind=r["kind"],
            created=iso(r["created_at"]) or "",
            score=0.0,
            source=r["source"],
            session=r["session"],
            task_id=r["task_id"],
            stale=False,
            snippet=_snippet(r["snippet"]),
        )
        for r in newest
    ]
    return SessionDetail(
        **_summary(row).model_dump(),
        base_commit=row["base_commit"],
        final_commit=row["final_commit"],
        record=json.loads(row["record"] or "{}"),
        by_kind=by_kind,
        recent=hits,
    )


# -- export and import -------------------------------------------------------------------------------------


def export(ws: Workspace) -> Iterator[str]:
    """Every session and entry as JSON lines."""
    with _db(ws) as conn:
        for item in store.dump(conn):
            yield json.dumps(item, ensure_ascii=False, sort_keys=True)


class _SessionLine(BaseModel):
    type: str
    id: str
    source: str
    started_at: float
    goal: str | None = None
    ended_at: float | None = None
    outcome: str | None = None
    stop_reason: str | None = None
    branch: str | None = None
    base_commit: str | None = None
    final_commit: str | None = None
    record: dict[str, Any] = {}


class _FileLine(BaseModel):
    path: str
    blob: str | None = None


class _EntryLine(BaseModel):
    type: str
    id: int
    kind: str
    text: str
    source: str
    created_at: float
    session: str | None = None
    task_id: str | None = None
    tags: str = ""
    redactions: int = 0
    state: str | None = None
    closed_at: float | None = None
    closed_by: str | None = None
    closed_note: str | None = None
    files: list[_FileLine] = []


def import_lines(ws: Workspace, lines: Iterable[str]) -> Imported:
    """Load an export. Every line is checked before anything is written; a bad one names its line number."""
    sessions: list[_SessionLine] = []
    entries: list[_EntryLine] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
            kind = data.get("type") if isinstance(data, dict) else None
            if kind == "session":
                sessions.append(_SessionLine.model_validate(data))
            elif kind == "entry":
                item = _EntryLine.model_validate(data)
                if item.kind not in KINDS or item.source not in SOURCES:
                    raise ValueError(f"kind {item.kind!r} or source {item.source!r} is not known")
                entries.append(item)
            else:
                raise ValueError("`type` is neither session nor entry")
        except (json.JSONDecodeError, ValidationError, ValueError) as e:
            raise UsageError(
                f"line {number} of the import is not a memory export line ({e}); nothing was imported."
            ) from e
    return _load(ws, sessions, entries)


def _load(ws: Workspace, sessions: list[_SessionLine], entries: list[_EntryLine]) -> Imported:
    added = skipped = 0
    with _db(ws) as conn:
        with db.transaction(conn):
            for s in sessions:
                store.restore_session(conn, s.model_dump())
        for e in entries:
            text, count = redact(e.text)
            existing = store.entry_row(conn, e.id)
            if existing is not None and existing["text"] == text and existing["created_at"] == e.created_at:
                skipped += 1
                continue
            row = {**e.model_dump(exclude={"files", "id", "type"}), "text": text, "redactions": e.redactions + count}
            store.add_entry(conn, row, [(f.path, f.blob) for f in e.files], entry_id=None if existing else e.id)
            added += 1
    return Imported(sessions=len(sessions), entries=added, skipped=skipped)


def environ_session(environ: Mapping[str, str] | None = None) -> str:
    """The session a process works for: its environment's, else one made for this process."""
    return session_from(os.environ if environ is None else environ) or _PROCESS_SESSION
