"""Memory on real SQLite files: sessions, entries, search ranking, staleness, limits, next steps, export/import."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from mcp_servers.core import memory
from mcp_servers.core.errors import UsageError
from mcp_servers.core.workspace import Workspace

from ..conftest import GitRepo

DAY = 86400.0


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


def _ws(repo: GitRepo, **env: str) -> Workspace:
    return Workspace.open(repo.root, environ={**os.environ, **env})


def test_memory_session_id_comes_from_the_environment(repo: GitRepo) -> None:
    logged = memory.log_event(_ws(repo, OVERNIGHT_SESSION_ID="night-7"), "note", "hello")
    assert logged.session == "night-7"
    claude = memory.log_event(_ws(repo, CLAUDE_CODE_SESSION_ID="cc-42"), "note", "hi")
    assert claude.session == "cc-42"
    both = memory.log_event(_ws(repo, OVERNIGHT_SESSION_ID="night-7", CLAUDE_CODE_SESSION_ID="cc-42"), "note", "x")
    assert both.session == "night-7"
    made = memory.log_event(_ws(repo), "note", "no session in the environment")
    assert made.session.startswith("s-")  # created for this process, and the same for every call in it
    assert memory.log_event(_ws(repo), "note", "again").session == made.session


def test_memory_first_log_opens_a_session_and_end_records_the_run(repo: GitRepo) -> None:
    clock = Clock()
    ws = _ws(repo, OVERNIGHT_SESSION_ID="night-1")
    memory.log_event(ws, "decision", "Use banker's rounding", clock=clock)
    opened = memory.get_session(ws, "night-1")
    assert opened.outcome is None and opened.entries == 1 and opened.source == "agent"
    clock.now += 3600
    record = {"branch": "overnight/2026-11-23-x", "base_commit": "a" * 40, "final_commit": "b" * 40,
              "commits": ["b" * 40], "tasks_done": ["task_1"], "tasks_failed": ["task_2"], "turns": 31,
              "tokens_in": 120_000, "tokens_out": 9000, "cost_usd": 1.25,
              "gate": {"task_1": "passed"}, "note": "token ghp_" + "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8"}  # fmt: skip
    ended = memory.end_session(ws, outcome="completed", stop_reason="no ready task", summary="Did task_1.",
                               record=record, source="scheduler", clock=clock)  # fmt: skip
    assert ended.outcome == "completed" and ended.stop_reason == "no ready task"
    assert ended.branch == "overnight/2026-11-23-x" and ended.final_commit == "b" * 40
    assert (ended.tasks_done, ended.tasks_failed, ended.cost_usd) == (1, 1, 1.25)
    assert ended.record["turns"] == 31 and "ghp_" not in json.dumps(ended.record)
    assert ended.by_kind == {"decision": 1, "summary": 1}
    with pytest.raises(UsageError, match="outcome 'fine' is not one of"):
        memory.end_session(ws, outcome="fine")


def test_memory_entries_are_redacted_and_marked_by_source(repo: GitRepo) -> None:
    ws = _ws(repo, OVERNIGHT_SESSION_ID="s1")
    key = "sk-ant-api03-" + "Zz9" * 30
    logged = memory.log_event(ws, "failure", f"the deploy used {key} by mistake", source="agent")
    assert logged.redacted == 1
    entry = memory.get_entries(ws, [logged.id]).entries[0]
    assert key not in entry.text and "[REDACTED:anthropic-key]" in entry.text
    assert entry.source == "agent" and entry.redactions == 1
    assert "not instructions" in memory.get_entries(ws, [logged.id]).notice


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"kind": "rumour", "text": "x"}, "kind 'rumour' is not one of"),
        ({"kind": "note", "text": "   "}, "the entry is empty"),
        ({"kind": "note", "text": "x" * (16 * 1024 + 1)}, "keep it under 16384"),
        ({"kind": "note", "text": "x", "tags": ["Not A Tag"]}, "tags are lower-case words"),
        ({"kind": "note", "text": "x", "tags": [f"t{i}" for i in range(11)]}, "at most 10 tags"),
        ({"kind": "note", "text": "x", "files": ["../elsewhere.py"]}, "outside the repository"),
        ({"kind": "note", "text": "x", "task_id": "--all"}, "not a task id"),
        ({"kind": "note", "text": "x", "source": "god"}, "source 'god' is not one of"),
    ],
)
def test_memory_limits_give_clear_errors_and_store_nothing(
    repo: GitRepo, kwargs: dict[str, object], message: str
) -> None:
    ws = _ws(repo)
    with pytest.raises(UsageError, match=message):
        memory.log_event(ws, **kwargs)  # type: ignore[arg-type]
    assert memory.search(ws, "").hits == []


def test_memory_search_ranks_relevance_and_recency(repo: GitRepo) -> None:
    clock = Clock()
    ws = _ws(repo, OVERNIGHT_SESSION_ID="s1")
    old = memory.log_event(ws, "lesson", "The coverage gate fails when tests import the package twice", clock=clock)
    clock.now += 60 * DAY
    new = memory.log_event(ws, "lesson", "The coverage gate fails when tests import the package twice", clock=clock)
    other = memory.log_event(ws, "note", "Coverage of the parser is low", clock=clock)
    result = memory.search(ws, "coverage gate import", clock=clock)
    assert result.matched_all_words
    assert [h.id for h in result.hits] == [new.id, old.id]  # same words: the newer first; `other` lacks `gate`
    assert result.hits[0].score > result.hits[1].score
    closest = memory.search(ws, "coverage parser gate", clock=clock)
    assert not closest.matched_all_words and other.id in [h.id for h in closest.hits]
    assert "[coverage]" in closest.hits[0].snippet.lower()


def test_memory_search_filters(repo: GitRepo) -> None:
    clock = Clock()
    ws = _ws(repo, OVERNIGHT_SESSION_ID="s1")
    a = memory.log_event(ws, "failure", "flaky timeout in the parser", task_id="task_1", files=["src/app/calc.py"],
                         clock=clock)  # fmt: skip
    clock.now += 10 * DAY
    b = memory.log_event(_ws(repo, OVERNIGHT_SESSION_ID="s2"), "lesson", "parser timeout fixed with a retry",
                         task_id="task_2", clock=clock)  # fmt: skip
    ids = lambda **kw: [h.id for h in memory.search(ws, "parser timeout", clock=clock, **kw).hits]  # noqa: E731
    assert sorted(ids()) == sorted([a.id, b.id])
    assert ids(kind="failure") == [a.id]
    assert ids(task_id="task_2") == [b.id]
    assert ids(file="src/app/calc.py") == [a.id]
    assert ids(session="s2") == [b.id]
    assert ids(since="5d") == [b.id]
    assert ids(since="2028-01-01") == []
    with pytest.raises(UsageError, match="neither"):
        memory.search(ws, "x", since="last tuesday")
    with pytest.raises(UsageError, match="keep it under 500"):
        memory.search(ws, "x" * 501)


def test_memory_search_words_are_never_operators(repo: GitRepo) -> None:
    ws = _ws(repo)
    memory.log_event(ws, "note", 'the NEAR/2 "quoted" column:value and OR NOT AND words')
    for query in ("NEAR/2", '"quoted"', "column:value", "OR NOT AND", "*", "(", "AND", '"'):
        memory.search(ws, query)  # none raises an FTS syntax error
    assert memory.search(ws, "column:value").hits


def test_memory_entry_about_changed_code_is_stale(repo: GitRepo) -> None:
    ws = _ws(repo)
    logged = memory.log_event(ws, "lesson", "add() must stay pure", files=["src/app/calc.py", "src/app/new.py"])
    entry = memory.get_entries(ws, [logged.id]).entries[0]
    assert not entry.stale and [f.stale for f in entry.files] == [False, False]  # new.py absent then and now
    repo.append("src/app/calc.py", "\n# edited\n")
    entry = memory.get_entries(ws, [logged.id]).entries[0]
    assert entry.stale and [f.stale for f in entry.files] == [True, False]
    assert memory.search(ws, "pure").hits[0].stale
    repo.write("src/app/new.py", "x = 1\n")
    assert memory.get_entries(ws, [logged.id]).entries[0].files[1].stale


def test_memory_lessons_for_files_and_tasks(repo: GitRepo) -> None:
    clock = Clock()
    ws = _ws(repo)
    memory.log_event(ws, "lesson", "calc: keep add() pure", files=["src/app/calc.py"], clock=clock)
    clock.now += 1
    memory.log_event(ws, "failure", "task_1 broke the build", task_id="task_1", clock=clock)
    clock.now += 1
    memory.log_event(ws, "decision", "calc: rounding decided", files=["src/app/calc.py"], clock=clock)  # not a lesson
    found = memory.lessons_for(ws, files=["src/app/calc.py"], task_id="task_1")
    assert [e.text for e in found.entries] == ["task_1 broke the build", "calc: keep add() pure"]
    with pytest.raises(UsageError, match="name the files or the task"):
        memory.lessons_for(ws)


def test_memory_next_steps_open_and_close(repo: GitRepo) -> None:
    ws = _ws(repo, OVERNIGHT_SESSION_ID="night-1")
    step = memory.log_event(ws, "next_step", "Add tests for sub() rounding")
    note = memory.log_event(ws, "note", "not a step")
    assert [s.id for s in memory.open_next_steps(ws).steps] == [step.id]
    closed = memory.close_next_step(_ws(repo, OVERNIGHT_SESSION_ID="night-2"), step.id, note="done in task_5")
    assert closed.state == "done" and closed.closed_note == "done in task_5" and closed.closed is not None
    assert memory.open_next_steps(ws).steps == []
    with pytest.raises(UsageError, match="is a note, not a next step"):
        memory.close_next_step(ws, note.id)
    with pytest.raises(UsageError, match="there is no entry 999"):
        memory.close_next_step(ws, 999)


def test_memory_answers_stay_bounded(repo: GitRepo) -> None:
    ws = _ws(repo)
    ids = [memory.log_event(ws, "note", f"entry {i} " + "word " * 3000).id for i in range(10)]
    found = memory.get_entries(ws, ids)
    assert found.truncated and sum(len(e.text) for e in found.entries) < memory.MAX_ANSWER_CHARS + 1000
    assert all(len(h.snippet) <= 240 for h in memory.search(ws, "word", limit=50).hits)
    with pytest.raises(UsageError, match="at most 50 entries"):
        memory.get_entries(ws, list(range(51)))


def test_memory_export_then_import_into_an_empty_store_gives_the_same_entries(repo: GitRepo, tmp_path: Path) -> None:
    from ..conftest import make_repo

    ws = _ws(repo, OVERNIGHT_SESSION_ID="night-1")
    memory.start_session(ws, goal="test export")
    for i, kind in enumerate(memory.KINDS):
        memory.log_event(ws, kind, f"{kind} number {i}", task_id=f"task_{i}", files=["src/app/calc.py"], tags=[f"t{i}"])
    memory.end_session(ws, outcome="completed", record={"turns": 3})
    lines = list(memory.export(ws))
    other = make_repo(tmp_path / "other")
    result = memory.import_lines(Workspace.open(other.root), lines)
    assert (result.sessions, result.entries, result.skipped) == (1, len(memory.KINDS), 0)
    assert list(memory.export(Workspace.open(other.root))) == lines
    again = memory.import_lines(Workspace.open(other.root), lines)
    assert (again.entries, again.skipped) == (0, len(memory.KINDS))  # importing twice changes nothing


def test_memory_import_refuses_a_bad_line_and_imports_nothing(repo: GitRepo) -> None:
    ws = _ws(repo)
    good = json.dumps({"type": "entry", "id": 1, "kind": "note", "text": "ok", "source": "person", "created_at": 1.0})
    for bad in ("not json", json.dumps({"type": "entry", "id": 2}), json.dumps({"type": "poem"})):
        with pytest.raises(UsageError, match="line 2 of the import"):
            memory.import_lines(ws, [good, bad])
        assert memory.search(ws, "").hits == []


def test_memory_closest_are_the_entries_with_the_most_of_the_words(repo: GitRepo) -> None:
    clock = Clock()
    ws = _ws(repo)
    two = memory.log_event(ws, "note", "alpha and beta went wrong", clock=clock)
    memory.log_event(ws, "note", "alpha alone", clock=clock)
    memory.log_event(ws, "note", "gamma gamma gamma alone", clock=clock)
    found = memory.search(ws, "alpha beta gamma", clock=clock)
    assert not found.matched_all_words
    assert [h.id for h in found.hits] == [two.id]  # two of the three words: closer than any entry with one
    assert "[alpha]" in found.hits[0].snippet and "[beta]" in found.hits[0].snippet
    assert [h.id for h in memory.search(ws, "alpha beta gamma", kind="lesson", clock=clock).hits] == []
    assert [h.id for h in memory.search(ws, "alpha beta gamma", kind="note", clock=clock).hits] == [two.id]
    one = memory.search(ws, "gamma delta", clock=clock)  # no two words together: any of them, ranked
    assert not one.matched_all_words and len(one.hits) == 1 and "[gamma]" in one.hits[0].snippet
    assert memory.search(ws, "delta", clock=clock).hits == []


def test_memory_snippets_show_the_words_found_around_the_first_of_them(repo: GitRepo) -> None:
    ws = _ws(repo)
    long_text = "Filler words come first here. " * 12 + "Then the Parser timed out: the parsers retry timeouts."
    texts = [
        long_text,
        "We cached it; caching helps, AttemptCache does not count and neither does cache_dir's prefix.",
        "nothing about it in the text at all",
        "short parser",
    ]
    ids = [memory.log_event(ws, "note", t, tags=["timeout"] if i == 2 else None).id for i, t in enumerate(texts)]
    hits = {h.id: h.snippet for h in memory.search(ws, "parser timeout", limit=10).hits}
    first = hits[ids[0]]
    assert first.startswith("…") and first.endswith("Then the [Parser] timed out: the [parsers] retry [timeouts].")
    assert len(first) <= memory.SNIPPET_MAX and "\n" not in first
    tagged = {h.id: h.snippet for h in memory.search(ws, "timeout", limit=10).hits}
    assert tagged[ids[2]] == "nothing about it in the text at all"  # (only its tag matched)
    cached = memory.search(ws, "cache").hits
    assert [h.snippet for h in cached] == [
        "We [cached] it; [caching] helps, AttemptCache does not count and neither does [cache]_dir's prefix."
    ]
    assert memory.snippet("x " * 300, ()).endswith("…") and len(memory.snippet("x " * 300, ())) <= 240
    assert memory.snippet("İstanbul İzmir cache", memory.marker(("cache",))) == "İstanbul İzmir [cache]"


def test_memory_search_answers_as_ranking_every_match_does(repo: GitRepo) -> None:
    """Against a plain reference: every match ranked (all words, else the most words any entry has, else any),
    the best blended with recency. Few words, so subsets and ties are frequent."""
    import random

    rng = random.Random(7)  # noqa: S311 (reproducible test data)
    vocab = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta", "iota", "kappa", "lambda",
             "parser", "tests", "test", "cache", "retry-after", "retry", "lock", "the"]  # fmt: skip
    clock = Clock()
    ws = _ws(repo)
    for i in range(150):
        clock.now += DAY * rng.choice([0, 0, 1, 2])  # some entries share a time, so equal ranks stay in order
        words = rng.choices(vocab, k=rng.randint(2, 6))
        text = " ".join(words).replace(" the ", ". The ", 1)
        tags = rng.sample(["gamma", "lock", "ci"], k=rng.randint(0, 2))
        memory.log_event(ws, rng.choice(["note", "lesson"]), f"{text} {i}", tags=tags, clock=clock)
    queries = [" ".join(rng.sample(vocab, k=rng.randint(1, 5))) for _ in range(80)]
    queries += ["alpha beta gamma delta", "parser retry-after lock", "nope alpha", "nope never"]
    for query in queries:
        for limit in (3, 10):
            got = memory.search(ws, query, limit=limit, clock=clock)
            want, all_words = _reference_search(ws, query, limit, clock.now)
            assert [(h.id, h.score, h.snippet) for h in got.hits] == want, (query, limit)
            assert got.matched_all_words == all_words


def test_memory_at_least_matches_the_entries_with_that_many_of_the_words(repo: GitRepo) -> None:
    """`at_least(words, n)` finds exactly the entries having n or more of the words, in any order of the words;
    `most_frequent_first` puts the word most entries have first."""
    import itertools
    import random

    from mcp_servers.core import memorystore

    rng = random.Random(11)  # noqa: S311 (reproducible test data)
    vocab = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta"]
    ws = _ws(repo)
    has: dict[int, set[str]] = {}
    for i in range(120):
        words = set(rng.sample(vocab, k=rng.randint(0, 5)))
        if i % 2:
            words.add("alpha")  # in most entries
        has[memory.log_event(ws, "note", f"entry {i}: " + " ".join(sorted(words))).id] = words
    with memorystore.connection(ws.db_path) as conn:
        assert memorystore.most_frequent_first(conn, ["zeta", "alpha", "beta"])[0] == "alpha"
        for k in range(1, 6):
            for words in itertools.combinations(vocab, k):
                order = list(words)
                rng.shuffle(order)
                for n in range(1, k + 1):
                    sql = "SELECT rowid FROM entries_fts WHERE entries_fts MATCH ?"
                    got = {r[0] for r in conn.execute(sql, (memorystore.at_least(order, n),))}
                    assert got == {i for i, w in has.items() if len(w & set(words)) >= n}, (order, n)


def _reference_search(ws: Workspace, query: str, limit: int, now: float) -> tuple[list[tuple[int, float, str]], bool]:
    import itertools

    from mcp_servers.core import memorystore

    words = memorystore.terms(query)
    rank_sql = "SELECT rowid, bm25(entries_fts, 1.0, 0.5) FROM entries_fts WHERE entries_fts MATCH ?"
    with memorystore.connection(ws.db_path) as conn:

        def ranked(fts: str) -> list[tuple[int, float]]:  # FTS5 visits rowids in order; the sort keeps it on ties
            return sorted(conn.execute(rank_sql, (fts,)).fetchall(), key=lambda r: r[1])

        found = ranked(memorystore.match(words))
        all_words = bool(found)
        if not found and len(words) > 1:
            anyword = memorystore.match(words, any_word=True)
            asked = 0
            for size in range(len(words) - 1, 1, -1):
                subsets = list(itertools.combinations(words, size))
                asked += len(subsets)
                if asked > memory.MAX_SUBSET_QUERIES:
                    break
                found = sorted((r for s in subsets for r in ranked(memorystore.match(s))), key=lambda r: r[1])
                if found:
                    break
            if not found:
                found = ranked(anyword)
        pool = found[: max(memory.CANDIDATES, limit * 3)]
        created = dict(conn.execute("SELECT id, created_at FROM entries").fetchall())
        best = memory._rank([(i, rank, created[i]) for i, rank in pool], now)[:limit]
        texts = dict(conn.execute("SELECT id, text FROM entries").fetchall())
    marks = memory.marker(tuple(words))
    return [(i, round(score, 4), memory.snippet(texts[i], marks)) for i, score in best], all_words


def test_memory_keeps_its_connection_and_notices_a_new_database(repo: GitRepo) -> None:
    ws = _ws(repo)
    first = memory.log_event(ws, "note", "before the database went away")
    assert [h.id for h in memory.search(ws, "database went away").hits] == [first.id]
    for suffix in ("", "-wal", "-shm"):
        Path(f"{ws.db_path}{suffix}").unlink(missing_ok=True)
    assert memory.search(ws, "database went away").hits == []  # a new, empty database, not the old one
    again = memory.log_event(ws, "note", "after the database went away")
    assert [h.id for h in memory.search(ws, "after").hits] == [again.id]
    other = make_other_db(ws.db_path.with_name("other.db"), "a replaced database")
    os.replace(other, ws.db_path)
    for suffix in ("-wal", "-shm"):
        Path(f"{ws.db_path}{suffix}").unlink(missing_ok=True)
    assert [h.snippet for h in memory.search(ws, "replaced").hits] == ["a [replaced] database"]


def make_other_db(path: Path, text: str) -> Path:
    from mcp_servers.core import db

    with db.opened(path) as conn:
        conn.execute("INSERT INTO entries (kind, text, source, created_at) VALUES ('note', ?, 'person', 1.0)", (text,))
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return path


def test_memory_workspace_is_kept_until_the_repository_or_its_config_changes(repo: GitRepo) -> None:
    first = memory.workspace(str(repo.root))
    assert memory.workspace(str(repo.root)) is first
    repo.write("overnight.toml", "")
    changed = memory.workspace(str(repo.root))
    assert changed is not first and memory.workspace(str(repo.root)) is changed
    repo.git("add", "overnight.toml")
    repo.commit("config")
    assert memory.workspace(str(repo.root)) is not changed  # a commit moves .git
