"""Memory search at 100,000 entries: `search_memory` over stdio against a bare FTS5 query and the official server.

Data: 100,000 entries of generated coding-session text (decisions, failures, lessons, notes, gate results, next
steps, summaries about files, tasks, tests and errors), 20-80 words each, drawn with a fixed seed from ~3,400
technical words and identifiers (Zipf-distributed) plus ~120 common English words; 2,000 sessions of 50 entries,
task ids, tags, and files of a committed 150-file repository (a fifth of them recorded with an older blob, so
stale). They are bulk-loaded in one transaction into the state.db that `Workspace.open(repo)` creates, with the
store's own schema (table `entries`; `entries_fts` filled by its triggers), so the server reads exactly them.
Queries: a fixed set of 50 (1-4 words), picked by document frequency from the generated data: common and rare
words, identifiers, phrases lifted from entries, and word pairs that never occur together (the server then falls
back to the closest entries). After one warm-up pass, rounds of all 50, order rotating every round, sides interleaved.

(a) `search_memory(query)` (limit 10) round trip through the MCP SDK's stdio `Client` to the memory server,
    against the bare FTS5 query of the same words (`memorystore.fts_query(q, any_word=False)`; `SELECT rowid,
    bm25(entries_fts) FROM entries_fts WHERE entries_fts MATCH ? ORDER BY bm25(entries_fts) LIMIT 10`) served
    by a trivial `bare_fts` tool on the same server process, through the same client, interleaved: a launcher
    written to a temp dir calls `mcp_servers.memory.server.build()` (as `python -m mcp_servers.memory` does),
    adds `bare_fts(match) -> str` (the rows as JSON text, `[[rowid, bm25], ...]`, the cheapest answer an mcp
    tool gives; sqlite3, one connection opened at start, on the same state.db) and runs it over stdio. So both
    sides pay the same round trip, and the ratio is what searching costs beyond the bare query. Neither tool
    publishes an output schema (search_memory answers structured content and the same JSON as text, but no
    schema: the Python client would check each answer against it, 0.6 ms for ten hits), so the client checks
    neither answer.
    Printed for attribution, interleaved, not judged: `bare_fts_rows`, the same rows as structured output with a
    published schema (a pydantic model, as the other overnight tools answer, which the client validates), the same
    bare query run in-process (no round trip), a `ping` round trip to a minimal mcp 2.3.0 server through the same
    client (the floor of any tool call), `memory.search(memory.workspace(repo), q)` in-process (the server-side
    share) and `memory.workspace(repo)` alone (what the server does per call to find its kept workspace); all split
    by queries whose words all occur together and those that fall back to the closest entries.
    Target: p50(search_memory) / p50(bare_fts) <= 2.
(b) The same queries, asked through the same client, of the official `@modelcontextprotocol/server-memory`
    (npm, pinned, installed by this script into bench/.cache/node; run with node, `MEMORY_FILE_PATH` pointing
    at a JSONL file holding the same 100,000 texts as observations of 10,000 entities of 10) with its
    `search_nodes` tool. Its search is a case-insensitive substring match of the whole query over every
    observation and it returns whole entities, unbounded; answer sizes are printed.
    Target: p50(official) / p50(search_memory) >= 20.
(c) Cold start: spawn to answered `initialize` + `tools/list` of `python -m mcp_servers.memory` (in the
    100,000-entry repository), raw JSON-RPC over the child's pipes, against a minimal mcp 2.3.0 server (one
    `ping` tool), interleaved; the exchange and the minimal server are bench/cold_start.py's.
    Target: median ratio memory/minimal <= 1.15.
    Also printed: the modules the memory server imports that the minimal one does not (`-X importtime`); and,
    no target, the memory server's VmRSS after answering every search at 100,000 entries (with its VmHWM and its
    RSS before the first search; the minimal server's and the official server's for scale).

Run: .venv/bin/python bench/memory_search.py [--rounds 10] [--official-rounds 2] [--cold-rounds 30]
(node and npm on PATH; network the first time, for npm install)
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import re
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
from cold_start import MINIMAL_SERVER, exchange, importtime
from mcp import Client, StdioServerParameters
from measure import pct, rss_mb
from ts_rounds import ts_round_trips

from mcp_servers.core import memory, memorystore
from mcp_servers.core.workspace import Workspace

ENTRIES = 100_000
PER_SESSION = 50
PER_ENTITY = 10
REPO_FILES = 150
SEED = 20_260_904
LIMIT = 10
FTS_TARGET = 2.0
OFFICIAL_TARGET = 20.0
COLD_TARGET = 1.15
OFFICIAL_PACKAGE = "@modelcontextprotocol/server-memory"
OFFICIAL_VERSION = "2026.8.31"  # the current version on npm when this benchmark was written
BENCH = Path(__file__).resolve().parent
NODE_PREFIX = BENCH / ".cache" / "node"
Times = dict[str, list[float]]
BARE_SQL = (
    "SELECT rowid, bm25(entries_fts) FROM entries_fts WHERE entries_fts MATCH ? ORDER BY bm25(entries_fts) LIMIT ?"
)
# The memory server as `python -m mcp_servers.memory` runs it, plus the reference tool of (a), `bare_fts`.
LAUNCHER = f"""\
from __future__ import annotations

import json
import sqlite3

from pydantic import BaseModel

from mcp_servers.core.workspace import Workspace
from mcp_servers.memory.server import build
from mcp_servers.serving import setup_logging

setup_logging()
server = build(None)
conn = sqlite3.connect(Workspace.open().db_path, check_same_thread=False)  # tools run in worker threads


@server.tool()
def bare_fts(match: str, limit: int = 10) -> str:
    return json.dumps(conn.execute({BARE_SQL!r}, (match, limit)).fetchall())


class Rows(BaseModel):
    rows: list[tuple[int, float]]


@server.tool()
def bare_fts_rows(match: str, limit: int = 10) -> Rows:
    return Rows(rows=conn.execute({BARE_SQL!r}, (match, limit)).fetchall())


server.run()
"""

# -- the vocabulary ------------------------------------------------------------------------------------------


def words(text: str) -> list[str]:
    return text.split()


COMMON = words("""
the a an to of and in is it for on that this with was not but when after before because so we now
still only all from by as at be are has had then which into again instead also no one two each every first last
same other new old more less than too without until while just should must can could would does did do make keep
use used there here its their our they them what why how where some any both either most many few very already
yet once never always often about over under between through during against up down out off even though since
per via whether if else unless otherwise rather like around back much well""")

TECH = words("""
test tests config parser cache lock timeout retry commit branch merge rebase import module function class
method argument schema migration index query transaction connection session token request response handler
server client stdio socket thread process subprocess signal deadlock race fixture mock assertion coverage lint
annotation error exception traceback stack overflow leak heap buffer stream pipe encoding unicode path symlink
permission directory file worktree hook gate receipt plan task queue dependency cycle graph node edge regression
benchmark latency throughput memory snapshot checkpoint rollback journal wal sqlite fts5 bm25 tokenizer stemmer
ranking recency snippet filter pagination limit offset cursor batch bulk insert update delete select join
constraint trigger vacuum pragma busy contention writer reader concurrency atomic rename fsync durability crash
restart shutdown startup import-time latency-budget logging logger warning debug verbose stderr stdout exit status
code flag option default override environment variable secret redaction regex pattern whitespace newline indent
formatter ruff mypy pytest hypothesis tox nox pip wheel sdist version pin lockfile upgrade downgrade deprecation
api endpoint route payload json yaml toml markdown header footer template render escape quote serializer
deserializer model field validator pydantic dataclass enum literal generic protocol callback coroutine async await
event loop scheduler worker pool executor future promise deadline budget quota retry-after backoff jitter
idempotent duplicate conflict diff patch hunk blame bisect stash tag release changelog readme docstring comment
typo rename refactor extract inline split merge-conflict fast-forward upstream remote fetch push pull clone
submodule sparse shallow blob tree object hash sha digest signature hmac key rotation expiry clock timezone utc
timestamp duration interval window sliding bucket histogram percentile median p95 outlier noise variance warmup
cold warm hot path profile cprofile flamegraph allocation garbage collector refcount gil multiprocessing fork
spawn pid zombie orphan reap sigterm sigkill sigint handler-chain retry-loop poll select epoll nonblocking
blocking flush readline chunk frame message envelope notification initialize handshake capability tool resource
prompt sampling elicitation transport http sse websocket port host localhost proxy tls certificate ca bundle
network offline airgap mirror registry npm node typescript javascript python rust go binary wheelhouse
interpreter venv virtualenv site-packages sys-path entrypoint console script cli argparse subcommand usage help
completion shell bash zsh quoting glob wildcard ignore gitignore pathspec exclude include scope changed staged
unstaged untracked tracked dirty clean reset restore checkout switch detached head ancestor descendant parent
child sibling orphaned stale fresh invalidate expire evict lru ttl size bytes megabyte gigabyte rss vmhwm oom
swap disk inode quota full readonly mount tmpfs container docker image layer volume sandbox seccomp namespace
user group owner umask chmod executable shebang crlf bom utf-8 latin-1 decode surrogate normalization nfc
casefold lowercase uppercase collation sort order stable deterministic seed random flaky intermittent
reproducible bisected root-cause workaround fix hotfix revert backport guard assert invariant precondition
postcondition contract property fuzz mutation survived killed threshold complexity cyclomatic radon bandit
security injection traversal escape-hatch allowlist denylist policy approval review reviewer approve reject
blocker priority estimate alignment acceptance criteria done pending ready blocked claimed released heartbeat
lease renew owner-check stale-claim takeover""")

PREFIXES = words("""
Config Plan Task Queue Gate Receipt Session Memory Entry Cache Lock Policy Worker Schema Token Stream
Buffer Index Query Commit Branch Repo Diff Patch File Path Hook Event Report Metric Secret Redaction Search Rank
Snippet Filter Import Export Migration Transaction Connection Server Client Transport Message Tool Resource Prompt
Workspace Checkpoint Claim Lease Attempt Completion Approval Review Coverage Complexity Security Bench Profile
Timer Clock Budget Retry Backoff Signal Process""")

SUFFIXES = words("""
Loader Parser Store Manager Error Handler Builder Factory Client Server Reader Writer Validator Resolver
Registry Cache Queue Runner Checker Monitor Formatter Serializer Adapter Provider Service Controller Tracker
Collector Encoder Decoder Scanner Matcher Planner Scheduler Dispatcher Listener Watcher Guard Policy Snapshot
Record Result Summary""")

PACKAGES = words("core gate plan memory queue project quality scheduler serving cli db git hooks policy worker")
MODULES = words("""
config parser cache lock timeout retry commit branch merge schema migration index query session token
request response handler server client stdio socket thread process signal fixture mock coverage lint errors paths
models receipts changes health secrets taskstore memorystore workspace proc templates runner report metrics
export importer ranking snippets filters clock budget backoff claims leases attempts approval review complexity
security bench profile timer""")

ERRORS = words("""
ValueError KeyError TypeError IndexError AttributeError RuntimeError TimeoutError OSError PermissionError
FileNotFoundError FileExistsError BrokenPipeError ConnectionResetError UnicodeDecodeError JSONDecodeError
AssertionError RecursionError MemoryError OperationalError IntegrityError DatabaseError ValidationError
CalledProcessError CancelledError ExceptionGroup StateError GitError UsageError ToolError""")

VERBS = words("""
add remove rename move split merge cache retry skip guard check validate parse load store flush close
open lock unlock reset restore rebuild reindex migrate refactor inline extract pin bump revert document test
profile measure batch stream bound limit filter rank sort normalise escape quote redact log""")
VERBED = words("""
added removed renamed moved split merged cached retried skipped guarded checked validated parsed
loaded stored flushed closed opened locked unlocked reset restored rebuilt reindexed migrated refactored inlined
extracted pinned bumped reverted documented tested profiled measured batched streamed bounded limited filtered
ranked sorted normalised escaped quoted redacted logged""")

KIND_WEIGHTS = {"decision": 25, "failure": 25, "lesson": 20, "note": 13, "gate": 7, "next_step": 5, "summary": 5}
TAGS = words("sqlite gate ci flaky perf plan memory git hooks security windows macos python3.11 cli stdio")

OPENERS = {
    "decision": [
        "Decided to {v} {C} in {f} instead of {v2} it, because {t} {t2} was {why}.",
        "Chose {t} over {t2} for {C}: {why}.",
        "Keep {C} in {f}; {v} the {t} only when the {t2} changes.",
    ],
    "failure": [
        "{x} failed with {E} in {f} line {n} while trying to {v} the {t}.",
        "{E}: {C} could not {v} the {t} after {n} retries; the {t2} was {why}.",
        "The gate failed on {f}: {t} {t2} reported {n} problems in {C}.",
    ],
    "lesson": [
        "Lesson: {v} the {t} before calling {C}, otherwise {E} shows up in {f}.",
        "Learned that {C} {vd} the {t} silently when the {t2} is {why}.",
        "Next time check {f} first: the {t} in {C} is {why}.",
    ],
    "note": ["Note on {f}: {C} {vd} the {t} and the {t2}.", "{C} now {vd} {t}; see {f} and {x}."],
    "gate": ["Gate run on {f}: {t} ok, {t2} {n} findings, {x} passed after {v} of {C}."],
    "next_step": ["Next: {v} the {t} in {f} so that {C} stops {vd} the {t2}.", "Still to do: {v} {C} ({x})."],
    "summary": ["Session summary: {vd} {C} in {f}, {vd2} the {t}; {n} tests pass, {x} still flaky."],
}
WHY = """too slow at scale|not thread-safe|stale after a rebase|missing on a fresh clone|racing with the writer
|only set in CI|empty on the first run|locked by another process|larger than the limit|wrong after a rename
|undefined on Windows|cached across sessions|not flushed before exit|reported twice|silently truncated""".replace(
    "\n", ""
).split("|")
FILLERS = [
    "the {t} {vd} {C} when {t2} {vd2} it",
    "{C} {vd} the {t} in {f}",
    "because {E} came from {C} the {t} was {why}",
    "{x} covers it now and {t} {t2} is checked",
    "this {vd} {t} time from {n} ms to {n2} ms",
    "we {vd} the {t} so {C} does not {v} it again",
    "after {v} of the {t} the {t2} in {f} is {why}",
    "see {f} for the {t} {t2} and {C}",
    "{t} and {t2} both {v} through {C}",
    "it {vd} once the {t} was {vd2} in {f}",
]


ZIPF = {"tech": 0.8, "idents": 0.8, "files": 0.6, "tests": 0.6, "errors": 0.9}  # rank-frequency exponents
_SLOT = re.compile(r"{(\w+)}")


def zipf_weights(n: int, s: float) -> list[float]:
    return [1.0 / (rank + 1) ** s for rank in range(n)]


class Vocabulary:
    """The words entries are made of, and draws from them (Zipf for the technical pools), in fast batches."""

    BATCH = 1 << 16

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.tech = list(dict.fromkeys(TECH))
        rng.shuffle(self.tech)  # which words are frequent is drawn, not alphabetical
        self.idents = [p + s for p in PREFIXES for s in SUFFIXES if p != s]
        rng.shuffle(self.idents)
        mods = list(dict.fromkeys(MODULES))
        self.files = [f"src/{PACKAGES[i % len(PACKAGES)]}/{mods[i % len(mods)]}_{i}.py"
                      for i in range(REPO_FILES)]  # fmt: skip
        rng.shuffle(self.files)
        self.tests = [f"tests/test_{m}.py::test_{w}" for m in mods for w in ("roundtrip", "limits", "unicode", "empty")]
        rng.shuffle(self.tests)
        zipf = {"tech": self.tech, "idents": self.idents, "files": self.files, "tests": self.tests, "errors": ERRORS}
        self._pools: dict[str, tuple[list[str], list[float] | None]] = {}
        for name, pool in zipf.items():
            cum, total = [], 0.0
            for w in zipf_weights(len(pool), ZIPF[name]):
                total += w
                cum.append(total)
            self._pools[name] = (pool, cum)
        uniform = {"verbs": VERBS, "verbed": VERBED, "why": WHY, "common": COMMON, "number": [str(n) for n in
                   range(2, 401)], "end": [".", ".", ";", ","], "filler": FILLERS}  # fmt: skip
        for name, pool in uniform.items():
            self._pools[name] = (pool, None)
        self._slots = {"t": "tech", "t2": "tech", "C": "idents", "f": "files", "x": "tests", "E": "errors",
                       "v": "verbs", "v2": "verbs", "vd": "verbed", "vd2": "verbed", "why": "why", "n": "number",
                       "n2": "number"}  # fmt: skip
        self._batches: dict[str, list[str]] = {}

    def draw(self, name: str) -> str:
        batch = self._batches.get(name)
        if not batch:
            pool, cum = self._pools[name]
            batch = self._batches[name] = self.rng.choices(pool, cum_weights=cum, k=self.BATCH)
        return batch.pop()

    def fill(self, template: str) -> str:
        return _SLOT.sub(lambda m: self.draw(self._slots[m.group(1)]), template)


def entry_text(v: Vocabulary, kind: str) -> str:
    r = v.rng
    target = r.randint(20, 80)
    words = v.fill(r.choice(OPENERS[kind])).split()
    while len(words) < target:
        sentence = v.fill(v.draw("filler")).split()
        for _ in range(r.randint(1, 4)):  # common words woven in, as people write them
            sentence.insert(int(r.random() * (len(sentence) + 1)), v.draw("common"))
        sentence[-1] += v.draw("end")
        words.extend(sentence)
    text = " ".join(words[:target]).rstrip(",;")
    return text if text.endswith(".") else text + "."


@dataclass
class Dataset:
    rows: list[tuple[Any, ...]]  # entries, in the table's column order
    files: list[tuple[int, str, str | None]]  # entry_files
    sessions: list[tuple[Any, ...]]
    texts: list[str]
    vocab: Vocabulary


def git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-c", "user.name=bench", "-c", "user.email=bench@example.invalid",
                    "-c", "commit.gpgsign=false", *args], cwd=repo, check=True, capture_output=True)  # fmt: skip


def blob_id(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data, usedforsecurity=False).hexdigest()


def make_repo(repo: Path, vocab: Vocabulary) -> dict[str, str]:
    """A committed repository holding the files the entries are about; {path: its blob id}."""
    blobs = {}
    for i, rel in enumerate(vocab.files):
        data = f'"""Module {i} of the generated repository."""\n\nVALUE = {i}\n'.encode()
        (repo / rel).parent.mkdir(parents=True, exist_ok=True)
        (repo / rel).write_bytes(data)
        blobs[rel] = blob_id(data)
    (repo / "README.md").write_text("A repository for bench/memory_search.py.\n")
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "Initial commit")
    return blobs


def generate(seed: int, blobs: dict[str, str], vocab: Vocabulary, now: float, entries: int) -> Dataset:
    r = vocab.rng
    kinds, weights = list(KIND_WEIGHTS), list(KIND_WEIGHTS.values())
    span = 180 * 86400.0  # six months of sessions, oldest first
    rows: list[tuple[Any, ...]] = []
    files: list[tuple[int, str, str | None]] = []
    sessions: list[tuple[Any, ...]] = []
    texts: list[str] = []
    for i in range(1, entries + 1):
        created = now - span + span * i / entries
        s = (i - 1) // PER_SESSION
        session = f"bench-{seed % 1000:03d}-{s:05d}"
        if (i - 1) % PER_SESSION == 0:
            sessions.append((session, f"Work through tasks {s * 3}-{s * 3 + 2}", "agent", created,
                             created + 3600, r.choice(["completed", "stopped", "failed"]), None, "{}"))  # fmt: skip
        kind = r.choices(kinds, weights)[0]
        text = entry_text(vocab, kind)
        task = f"task_{r.randint(1, 3000)}" if r.random() < 0.6 else None
        tags = " ".join(dict.fromkeys(r.choice(TAGS) for _ in range(r.choice([0, 0, 1, 1, 2, 3]))))
        state = r.choice(["open", "done"]) if kind == "next_step" else None
        source = r.choices(["agent", "scheduler", "person"], [85, 10, 5])[0]
        rows.append((i, kind, text, session, task, source, tags, created, 0, state))
        texts.append(text)
        for path in dict.fromkeys(vocab.draw("files") for _ in range(r.choice([0, 1, 1, 2, 3]))):
            stale = r.random() < 0.2
            files.append((i, path, blob_id(f"older {path}".encode()) if stale else blobs[path]))
    return Dataset(rows, files, sessions, texts, vocab)


def load(db_path: Path, data: Dataset) -> None:
    """Everything in one transaction, through the store's own schema and triggers."""
    conn = sqlite3.connect(db_path, isolation_level=None)
    try:
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany(
            "INSERT INTO sessions (id, goal, source, started_at, ended_at, outcome, stop_reason, record) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            data.sessions,
        )
        conn.executemany(
            "INSERT INTO entries (id, kind, text, session, task_id, source, tags, created_at, redactions, state) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            data.rows,
        )
        conn.executemany("INSERT INTO entry_files (entry_id, path, blob) VALUES (?, ?, ?)", data.files)
        conn.execute("COMMIT")
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()


# -- the queries ---------------------------------------------------------------------------------------------

_TOKEN = re.compile(r"[a-z0-9]+")


def document_frequencies(texts: list[str]) -> Counter[str]:
    df: Counter[str] = Counter()
    for text in texts:
        df.update(set(_TOKEN.findall(text.lower())))
    return df


def postings(texts: list[str], words: set[str]) -> dict[str, set[int]]:
    """The entries each of `words` occurs in."""
    found: dict[str, set[int]] = {w: set() for w in words}
    for i, text in enumerate(texts):
        for w in words.intersection(_TOKEN.findall(text.lower())):
            found[w].add(i)
    return found


def make_queries(data: Dataset, seed: int) -> list[str]:
    """50 fixed queries: common and rare words and identifiers, phrases from entries, and pairs never seen together."""
    r = random.Random(seed + 1)  # noqa: S311 (reproducible test data)
    df = document_frequencies(data.texts)
    n = len(data.texts)
    techs = sorted((w for w in data.vocab.tech if w.isalpha() and w in df), key=lambda w: -df[w])
    common = techs[: len(techs) // 12]  # by rank among the technical words: the top, the middle, the tail
    middle = techs[len(techs) * 3 // 10 : len(techs) * 7 // 10]
    rare = techs[len(techs) * 85 // 100 :]
    idents_rare = [c for c in data.vocab.idents if 3 <= df[c.lower()] <= 40]
    idents_mid = [c for c in data.vocab.idents if 40 < df[c.lower()] <= 2000]
    errors = [e for e in ERRORS if df[e.lower()] > 0]
    where = postings(data.texts, {w.lower() for w in rare + middle + idents_rare})

    def pick(pool: list[str]) -> str:
        return r.choice(pool)

    def apart(a_pool: list[str], b_pool: list[str]) -> list[str]:
        """Two words that no entry has together."""
        while True:
            pair = [pick(a_pool), pick(b_pool)]
            if pair[0] != pair[1] and not where[pair[0].lower()] & where[pair[1].lower()]:
                return pair

    def phrase() -> list[str]:
        """Four consecutive content words of an entry (no paths, test ids or common words): they occur together."""
        text = data.texts[r.randrange(n)]
        words = [w.strip(".,;:()") for w in text.split() if "/" not in w and "::" not in w]
        content = [w for w in words if w.isalpha() and w.lower() not in COMMON]
        at = r.randrange(max(1, len(content) - 4))
        return content[at : at + 4]

    recipes: list[tuple[int, Any]] = [
        (3, lambda: [pick(common[:8])]),
        (2, lambda: [pick(middle)]),
        (1, lambda: [pick(rare)]),
        (1, lambda: [pick(idents_rare)]),
        (1, lambda: [pick(idents_mid)]),
        (4, lambda: [pick(common), pick(common)]),
        (4, lambda: [pick(common), pick(rare)]),
        (3, lambda: [pick(idents_mid), pick(common)]),
        (2, lambda: [pick(errors), pick(idents_mid)]),
        (2, lambda: apart(rare, rare)),
        (2, lambda: apart(idents_rare, middle)),
        (4, lambda: [pick(common), pick(middle), pick(common)]),
        (3, lambda: [pick(idents_mid), pick(middle), pick(rare)]),
        (3, lambda: [pick(errors), pick(common), pick(middle)]),
        (2, lambda: [*apart(rare, idents_rare), pick(common)]),
        (7, phrase),
        (3, lambda: [pick(common), pick(middle), pick(rare), pick(idents_mid)]),
        (3, lambda: [*apart(idents_rare, rare), pick(middle), pick(common)]),
    ]
    out: list[str] = []
    for count, recipe in recipes:
        made = 0
        while made < count:
            words = recipe()
            query = " ".join(words)
            stems = {w.lower().rstrip("s") for w in words}
            if query not in out and len(stems) == len(words):
                out.append(query)
                made += 1
    assert len(out) == 50, out
    return out


def official_jsonl(path: Path, data: Dataset, queries: list[str]) -> int:
    """The same texts as observations, 10 per entity, one JSON line per entity (the server's loadGraph format)."""
    for q in queries:  # nothing but observations may match: no query is part of an entity's name or type
        assert q.lower() not in "worklog" and "obs-" not in q.lower(), q
    with path.open("w", encoding="utf-8") as out:
        lines = []
        for e in range(0, len(data.texts), PER_ENTITY):
            entity = {"type": "entity", "name": f"obs-{e // PER_ENTITY:05d}", "entityType": "worklog",
                      "observations": data.texts[e : e + PER_ENTITY]}  # fmt: skip
            lines.append(json.dumps(entity, ensure_ascii=False))
        out.write("\n".join(lines))  # as its saveGraph writes it: no trailing newline
    return path.stat().st_size


# -- the official server ---------------------------------------------------------------------------------------


def official_server() -> Path:
    """The pinned package's entry point, installed with npm into bench/.cache/node when missing."""
    missing = [tool for tool in ("node", "npm") if shutil.which(tool) is None]
    if missing:
        raise SystemExit(f"FAIL: {' and '.join(missing)} not found on PATH; the official server needs them")
    package = NODE_PREFIX / "node_modules" / OFFICIAL_PACKAGE
    meta = package / "package.json"
    if not meta.exists() or json.loads(meta.read_text()).get("version") != OFFICIAL_VERSION:
        NODE_PREFIX.mkdir(parents=True, exist_ok=True)
        print(f"installing {OFFICIAL_PACKAGE}@{OFFICIAL_VERSION} into {NODE_PREFIX} (npm) ...", flush=True)
        subprocess.run(["npm", "install", "--prefix", str(NODE_PREFIX), "--save-exact", "--no-audit", "--no-fund",
                        f"{OFFICIAL_PACKAGE}@{OFFICIAL_VERSION}"], check=True, stdout=subprocess.DEVNULL)  # fmt: skip
    entry: Path = package / json.loads(meta.read_text())["bin"]["mcp-server-memory"]
    if not entry.exists():
        raise SystemExit(f"FAIL: {entry} is missing after npm install")
    return entry


# -- measuring -------------------------------------------------------------------------------------------------


def child_pid(marker: str) -> int:
    """The pid of this process's child whose command line contains `marker` (the SDK does not expose it)."""
    me = str(os.getpid())
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if stat.rsplit(")", 1)[1].split()[1] == me and marker in cmdline:
            return int(entry.name)
    raise SystemExit(f"FAIL: no child process running {marker}")


@dataclass
class Sides:
    ours: dict[str, list[float]] = field(default_factory=dict)
    bare: dict[str, list[float]] = field(default_factory=dict)
    inproc: dict[str, list[float]] = field(default_factory=dict)
    official: dict[str, list[float]] = field(default_factory=dict)
    bare_mcp: dict[str, list[float]] = field(default_factory=dict)
    bare_rows: dict[str, list[float]] = field(default_factory=dict)
    open_ms: list[float] = field(default_factory=list)
    ping: list[float] = field(default_factory=list)
    all_words: dict[str, bool] = field(default_factory=dict)
    hits: dict[str, int] = field(default_factory=dict)
    bare_hits: dict[str, int] = field(default_factory=dict)
    official_entities: dict[str, int] = field(default_factory=dict)
    official_bytes: dict[str, int] = field(default_factory=dict)
    rss: dict[str, tuple[float, float]] = field(default_factory=dict)

    def reset(self, queries: list[str]) -> None:
        empty: list[Times] = [{q: [] for q in queries} for _ in range(6)]
        self.ours, self.bare, self.inproc, self.official, self.bare_mcp, self.bare_rows = empty
        self.open_ms, self.ping = [], []

    def flat(self, name: str) -> list[float]:
        side: dict[str, list[float]] = getattr(self, name)
        return [t for times in side.values() for t in times]


def text_of(result: Any, name: str) -> str:
    text = " ".join(getattr(c, "text", "") for c in result.content)
    if result.is_error:
        raise SystemExit(f"FAIL: {name} failed: {text[:500]}")
    return text


class Bare:
    """For attribution: the same words' FTS5 AND query, in-process, over one open connection."""

    def __init__(self, db_path: Path) -> None:
        self.conn = sqlite3.connect(db_path)

    def __call__(self, query: str) -> tuple[float, int]:
        match = memorystore.fts_query(query, any_word=False)
        started = time.perf_counter()
        rows = self.conn.execute(BARE_SQL, (match, LIMIT)).fetchall()
        return (time.perf_counter() - started) * 1000, len(rows)


def in_process(repo: Path, query: str) -> tuple[float, float]:
    """(memory.workspace ms, memory.search total ms) for one query, as the server's tool does it."""
    started = time.perf_counter()
    ws = memory.workspace(str(repo))
    opened = time.perf_counter()
    memory.search(ws, query, limit=LIMIT)
    return (opened - started) * 1000, (time.perf_counter() - started) * 1000


class Runner:
    """The MCP clients, the bare queries and the in-process call; every timing lands in `sides`."""

    def __init__(self, repo: Path, environ: dict[str, str], clients: dict[str, Client], sides: Sides) -> None:
        self.repo, self.environ, self.sides = repo, environ, sides
        self.ours, self.official, self.minimal = clients["ours"], clients["official"], clients["minimal"]
        self.bare = Bare(Workspace.open(repo, environ).db_path)

    async def ask_ours(self, q: str) -> float:
        started = time.perf_counter()
        result = await self.ours.call_tool("search_memory", {"query": q, "limit": LIMIT})
        elapsed = (time.perf_counter() - started) * 1000
        text_of(result, "search_memory")
        content = result.structured_content or {}
        self.sides.all_words[q] = bool(content.get("matched_all_words"))
        self.sides.hits[q] = len(content.get("hits") or [])
        return elapsed

    async def ask_bare(self, tool: str, q: str) -> float:
        match = memorystore.fts_query(q, any_word=False)
        started = time.perf_counter()
        result = await self.ours.call_tool(tool, {"match": match, "limit": LIMIT})
        elapsed = (time.perf_counter() - started) * 1000
        text_of(result, tool)
        return elapsed

    async def ask_official(self, q: str) -> float:
        started = time.perf_counter()
        result = await self.official.call_tool("search_nodes", {"query": q})
        elapsed = (time.perf_counter() - started) * 1000
        self.sides.official_bytes[q] = len(text_of(result, "search_nodes").encode())
        self.sides.official_entities[q] = len((result.structured_content or {}).get("entities") or [])
        return elapsed

    async def ask(self, side: str, q: str) -> None:
        s = self.sides
        if side == "ours":
            s.ours[q].append(await self.ask_ours(q))
        elif side == "bare":
            elapsed, s.bare_hits[q] = self.bare(q)
            s.bare[q].append(elapsed)
        elif side == "bare_mcp":
            s.bare_mcp[q].append(await self.ask_bare("bare_fts", q))
        elif side == "bare_rows":
            s.bare_rows[q].append(await self.ask_bare("bare_fts_rows", q))
        elif side == "inproc":
            opened, total = in_process(self.repo, q)
            s.open_ms.append(opened)
            s.inproc[q].append(total)
        elif side == "ping":
            started = time.perf_counter()
            text_of(await self.minimal.call_tool("ping", {}), "ping")
            s.ping.append((time.perf_counter() - started) * 1000)
        else:
            s.official[q].append(await self.ask_official(q))


async def measure(
    repo: Path, jsonl: Path, entry: Path, launcher: Path, minimal: Path, queries: list[str], args: argparse.Namespace
) -> Sides:
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("OVERNIGHT_", "CLAUDE"))}
    sides = Sides()
    sides.reset(queries)
    ours_params = StdioServerParameters(command=sys.executable, args=[str(launcher)], cwd=str(repo))
    official_params = StdioServerParameters(command="node", args=[str(entry)], cwd=str(repo),
                                            env={"MEMORY_FILE_PATH": str(jsonl)})  # fmt: skip
    minimal_params = StdioServerParameters(command=sys.executable, args=[str(minimal)], cwd=str(repo))
    async with (
        Client(ours_params) as ours,
        Client(official_params, read_timeout_seconds=600) as official,
        Client(minimal_params) as floor,
    ):
        pids = {"ours": child_pid(str(launcher)), "official": child_pid(str(entry)),
                "minimal": child_pid(str(minimal))}  # fmt: skip
        for client in (ours, official, floor):
            await client.list_tools()
        sides.rss["ours idle"] = rss_mb(pids["ours"])
        run = Runner(repo, environ, {"ours": ours, "official": official, "minimal": floor}, sides)
        local = ["ours", "bare_mcp", "bare_rows", "bare", "inproc", "ping"]
        for q in queries:  # warm-up: every query once on our side, a few on the official one (its JIT)
            for side in local:
                await run.ask(side, q)
        for q in queries[:3]:
            await run.ask("official", q)
        sides.reset(queries)  # the warm-up's timings are dropped

        for rnd in range(args.rounds):
            shift = rnd * 7 % len(queries)
            for j, q in enumerate(queries[shift:] + queries[:shift]):
                order = local if (rnd + j) % 2 == 0 else local[::-1]
                if rnd < args.official_rounds:
                    order = [*order, "official"] if j % 2 else ["official", *order]
                for side in order:
                    await run.ask(side, q)
        for name, pid in pids.items():
            sides.rss[name] = rss_mb(pid)
    run.bare.conn.close()
    return sides


def cold_start(repo: Path, script: Path, tmp: Path, args: argparse.Namespace) -> bool:
    """Spawn to answered tools/list of both servers, interleaved; plus what the memory server imports at start-up."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OVERNIGHT_", "PYTHONPROFILE"))}
    variants = {"memory": [sys.executable, "-m", "mcp_servers.memory"], "minimal": [sys.executable, str(script)]}
    tools: dict[str, int] = {}
    for _ in range(args.cold_warmup):
        for name, argv in variants.items():
            _t, tools[name] = exchange(argv, repo, env, tmp / f"{name}.err")
    times: dict[str, list[float]] = {name: [] for name in variants}
    for i in range(args.cold_rounds):
        for name in list(variants) if i % 2 == 0 else list(reversed(variants)):
            elapsed, _n = exchange(variants[name], repo, env, tmp / f"{name}.err")
            times[name].append(elapsed * 1000)
    modules = importtime(variants["memory"], repo, env, tmp)
    baseline = importtime(variants["minimal"], repo, env, tmp)
    extra = {m: t for m, t in modules.items() if m not in baseline}
    heaviest = sorted(extra.items(), key=lambda kv: -kv[1])[:6]

    ratio = statistics.median(times["memory"]) / statistics.median(times["minimal"])
    paired = statistics.median(a / b for a, b in zip(times["memory"], times["minimal"], strict=True))
    print(f"(c) cold start: spawn -> initialize -> tools/list answered, raw JSON-RPC over pipes, in the "
          f"{args.entries:,}-entry repository; {args.cold_rounds} rounds after {args.cold_warmup} warm-up")  # fmt: skip
    for name, v in times.items():
        print(f"  {name:8s} ({tools[name]:2d} tools): median {statistics.median(v):7.1f} ms   "
              f"p25 {pct(v, 0.25):7.1f}   p75 {pct(v, 0.75):7.1f}   min {min(v):7.1f} ms")  # fmt: skip
    print(f"  ratio memory/minimal (of medians): {ratio:.3f}x   (median of per-round ratios: {paired:.3f}x)")
    print(f"  (memory imports {len(extra)} modules the minimal server does not, {sum(extra.values()) / 1000:.1f} ms "
          f"own import time; heaviest: {', '.join(f'{m} {t / 1000:.1f} ms' for m, t in heaviest)})")  # fmt: skip
    ok = ratio <= COLD_TARGET
    print(f"  target <= {COLD_TARGET:.2f}x: {'PASS' if ok else 'FAIL'}")
    return ok


# -- reporting ---------------------------------------------------------------------------------------------------


def line(name: str, values: list[float]) -> str:
    return (f"  {name:40s} p50 {statistics.median(values):8.2f} ms   p95 {pct(values, 0.95):8.2f} ms   "
            f"min {min(values):8.2f}   max {max(values):9.2f}   (n={len(values)})")  # fmt: skip


def per_query_medians(side: dict[str, list[float]]) -> Iterator[tuple[str, float]]:
    for q, times in side.items():
        if times:
            yield q, statistics.median(times)


def report_search(s: Sides, queries: list[str], args: argparse.Namespace) -> tuple[bool, bool]:
    ours, bare, official = s.flat("ours"), s.flat("bare_mcp"), s.flat("official")
    fell_back = [q for q in queries if not s.all_words[q]]
    print(f"(a) search_memory vs bare FTS5 query (`bare_fts`), round trips to one server process through one "
          f"mcp SDK stdio Client, {len(queries)} queries x {args.rounds} interleaved rounds after warm-up")  # fmt: skip
    empty = sum(1 for q in queries if not s.hits[q])
    print(f"  queries matching all words (AND): {len(queries) - len(fell_back)}; falling back to the closest "
          f"entries: {len(fell_back)}; empty answers from search_memory: {empty}")  # fmt: skip
    print(line("search_memory via MCP client", ours))
    print(line("bare_fts via MCP client (same words, AND)", bare))
    print("  for attribution, interleaved, not judged:")
    print(line("  bare_fts_rows (structured answer)", s.flat("bare_rows")))
    print(line("  bare FTS5 query in-process", s.flat("bare")))
    print(line("  ping, minimal server, same client", s.ping))
    print(line("  in-process memory.search", s.flat("inproc")))
    print(line("  in-process memory.workspace alone", s.open_ms))
    for label, subset in (("all words", [q for q in queries if s.all_words[q]]), ("closest", fell_back)):
        if subset:
            o = [t for q in subset for t in s.ours[q]]
            b = [t for q in subset for t in s.bare_mcp[q]]
            i = [t for q in subset for t in s.inproc[q]]
            b2 = [t for q in subset for t in s.bare[q]]
            print(f"    {label:9s} ({len(subset):2d} queries): p50 search_memory {statistics.median(o):6.2f} ms, "
                  f"bare_fts {statistics.median(b):6.2f}; in-process: memory.search {statistics.median(i):6.2f}, "
                  f"bare {statistics.median(b2):6.2f} ms")  # fmt: skip
    slow = sorted(per_query_medians(s.ours), key=lambda kv: -kv[1])[:3]
    print("    slowest search_memory queries: " + "; ".join(f"{q!r} {t:.1f} ms" for q, t in slow))
    ratio = statistics.median(ours) / statistics.median(bare)
    print(f"  ratio search_memory/bare_fts (of p50s): {ratio:.2f}x   "
          f"(p95s: {pct(ours, 0.95) / pct(bare, 0.95):.2f}x)")  # fmt: skip
    ok_fts = ratio <= FTS_TARGET and all(s.hits[q] for q in queries)
    print(f"  target <= {FTS_TARGET:.1f}x at p50: {'PASS' if ok_fts else 'FAIL'}")

    sizes = [s.official_bytes[q] for q in queries]
    ents = [s.official_entities[q] for q in queries]
    small = [q for q in queries if s.official_bytes[q] <= 100_000]
    print(f"(b) official {OFFICIAL_PACKAGE}@{OFFICIAL_VERSION} search_nodes (node {node_version()}, same client), "
          f"{len(queries)} queries x {args.official_rounds} rounds, interleaved with (a)")  # fmt: skip
    print(f"  answers: entities per query median {statistics.median(ents):.0f}, max {max(ents):,}; "
          f"{sum(1 for e in ents if e == 0)} queries with none (it matches the whole query as one substring); "
          f"answer text median {statistics.median(sizes) / 1000:.1f} KB, max {max(sizes) / 1e6:.1f} MB")  # fmt: skip
    print(line("official search_nodes", official))
    if small and len(small) < len(queries):
        print(line(f"  only answers <= 100 KB ({len(small)} q)", [t for q in small for t in s.official[q]]))
    ratio_o = statistics.median(official) / statistics.median(ours)
    print(f"  ratio official/search_memory (of p50s): {ratio_o:.1f}x   "
          f"(p95s: {pct(official, 0.95) / pct(ours, 0.95):.1f}x)")  # fmt: skip
    ok_official = ratio_o >= OFFICIAL_TARGET
    print(f"  target >= {OFFICIAL_TARGET:.0f}x faster at p50: {'PASS' if ok_official else 'FAIL'}")
    return ok_fts, ok_official


def ts_search(repo: Path, launcher: Path, queries: list[str], args: argparse.Namespace) -> bool:
    """(a) again through the MCP TypeScript SDK's client: search_memory and bare_fts, each query, interleaved."""
    params = StdioServerParameters(command=sys.executable, args=[str(launcher)], cwd=str(repo))
    calls: list[tuple[str, str, dict[str, Any]]] = []
    for q in queries:
        calls.append((f"ours {q}", "search_memory", {"query": q, "limit": LIMIT}))
        calls.append((f"bare {q}", "bare_fts", {"match": memorystore.fts_query(q, any_word=False), "limit": LIMIT}))
    got = ts_round_trips(params, calls, args.rounds, 1)
    ours = [t for q in queries for t in got["times"][f"ours {q}"]]
    bare = [t for q in queries for t in got["times"][f"bare {q}"]]
    empty = [q for q in queries if not (got["answers"].get(f"ours {q}") or {}).get("hits")]
    print("  the same through the MCP TypeScript SDK's client (@modelcontextprotocol/client 2.3.1, node; the SDK "
          f"family Claude Code's client comes from), {len(queries)} queries x {args.rounds} rounds, "
          "interleaved:")  # fmt: skip
    print(line("search_memory via TS client", ours))
    print(line("bare_fts via TS client", bare))
    ratio = statistics.median(ours) / statistics.median(bare)
    ok = ratio <= FTS_TARGET and not empty and got["errors"] == 0
    print(f"  ratio search_memory/bare_fts (of p50s): {ratio:.2f}x; target <= {FTS_TARGET:.1f}x at p50: "
          f"{'PASS' if ok else 'FAIL'}" + (f" (empty answers: {len(empty)})" if empty else ""))  # fmt: skip
    return ok


def node_version() -> str:
    return subprocess.run(["node", "--version"], capture_output=True, text=True, check=False).stdout.strip()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10, help="rounds of all queries, ours and bare (default 10)")
    parser.add_argument("--official-rounds", type=int, default=2, help="of those, rounds that ask the official "
                        "server too (default 2; each of its calls re-reads the whole file)")  # fmt: skip
    parser.add_argument("--entries", type=int, default=ENTRIES, help=f"entries to generate (default {ENTRIES:,}; "
                        "the targets are set at that)")  # fmt: skip
    parser.add_argument("--cold-rounds", type=int, default=30, help="cold-start spawns of each server (default 30)")
    parser.add_argument("--cold-warmup", type=int, default=3, help="unmeasured spawns of each first (default 3)")
    args = parser.parse_args()
    args.official_rounds = min(args.official_rounds, args.rounds)
    entry = official_server()

    with tempfile.TemporaryDirectory(prefix="bench-memory-") as tmp_name:
        tmp = Path(tmp_name)
        repo = tmp / "repo"
        repo.mkdir()
        started = time.perf_counter()
        vocab = Vocabulary(random.Random(SEED))  # noqa: S311 (reproducible test data)
        blobs = make_repo(repo, vocab)
        data = generate(SEED, blobs, vocab, time.time(), args.entries)
        generated = time.perf_counter()
        ws = Workspace.open(repo, {})
        with ws.db() as conn:  # creates state.db and migrates it: the schema the server reads
            memorystore.check_fts(conn)
        load(ws.db_path, data)
        loaded = time.perf_counter()
        with ws.db() as conn:
            count = conn.execute("SELECT count(*) FROM entries").fetchone()[0]
            indexed = conn.execute("SELECT count(*) FROM entries_fts WHERE entries_fts MATCH ?",
                                   (memorystore.fts_query(data.texts[-1], any_word=False),)).fetchone()[0]  # fmt: skip
        queries = make_queries(data, SEED)
        jsonl = tmp / "memory.jsonl"
        jsonl_bytes = official_jsonl(jsonl, data, queries)
        words = [len(t.split()) for t in data.texts]
        vocabulary = len(document_frequencies(data.texts))
        db_mb = sum(p.stat().st_size for p in ws.state_dir.glob("state.db*")) / 1e6
        print(f"memory search at {count:,} entries ({len(data.sessions):,} sessions, {len(data.files):,} file refs; "
              f"{vocabulary:,} distinct words; {min(words)}-{max(words)} words, mean {statistics.mean(words):.0f}); "
              f"generated in {generated - started:.1f} s, loaded in {loaded - generated:.1f} s; "
              f"state.db {db_mb:.0f} MB, JSONL for the official server {jsonl_bytes / 1e6:.0f} MB")  # fmt: skip
        if count != args.entries or indexed < 1:
            raise SystemExit(f"FAIL: {count} entries stored, last one found by FTS: {indexed}")
        print("  queries: " + ", ".join(repr(q) for q in queries))

        script = tmp / "minimal_server.py"
        script.write_text(MINIMAL_SERVER)
        launcher = tmp / "launch_memory.py"
        launcher.write_text(LAUNCHER)
        sides = anyio.run(measure, repo, jsonl, entry, launcher, script, queries, args)
        ok_fts, ok_official = report_search(sides, queries, args)
        ok_ts = ts_search(repo, launcher, queries, args)
        ok_cold = cold_start(repo, script, tmp, args)
    rss, peak = sides.rss["ours"]
    print(f"  memory server VmRSS after {sum(len(v) for v in sides.ours.values()) + len(queries):,} searches at "
          f"{args.entries:,} entries: {rss:.1f} MB (peak VmHWM {peak:.1f} MB; {sides.rss['ours idle'][0]:.1f} MB "
          f"before the first search); no target. For scale: the minimal mcp server {sides.rss['minimal'][0]:.1f} MB; "
          f"the official server (node) {sides.rss['official'][0]:.1f} MB (peak VmHWM "
          f"{sides.rss['official'][1]:.1f} MB)")  # fmt: skip
    print(f"overall: vs bare_fts {'PASS' if ok_fts else 'FAIL'} (TypeScript client {'PASS' if ok_ts else 'FAIL'}), "
          f"vs official {'PASS' if ok_official else 'FAIL'}, cold start {'PASS' if ok_cold else 'FAIL'}")  # fmt: skip
    return 0 if ok_fts and ok_ts and ok_official and ok_cold else 1


if __name__ == "__main__":
    raise SystemExit(main())
