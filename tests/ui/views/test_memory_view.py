"""The Memory page's data: `search_memory`'s filters and paging, who wrote each entry, the stale mark, and no
secret shown, even one stored before it could be redacted (issue 14)."""

from __future__ import annotations

import itertools

import pytest

from mcp_servers.core import memory, memorystore
from mcp_servers.core.errors import UsageError
from mcp_servers.core.workspace import Workspace
from scheduler.ui.views import memory as view

from ...conftest import GitRepo

KEY = "sk-ant-api03-" + "Zz9" * 30
XSS = "<img src=x onerror=alert(1)>"


def test_search_filters_pages_and_shows_who_wrote_what(repo: GitRepo) -> None:
    ws = Workspace.open(repo.root)
    clock = itertools.count(1_800_000_000, 60).__next__
    memory.log_event(ws, "decision", "calc uses plain floats for speed", session="s1", task_id="sub",
                     files=["src/app/calc.py"], tags=["calc"], source="agent", clock=clock)  # fmt: skip
    memory.log_event(ws, "lesson", f"never trust the calc cache {XSS}", session="s2", source="person", clock=clock)
    for i in range(5):
        memory.log_event(ws, "note", f"note number {i} about the calc module", session="s2", clock=clock)
    found = view.search(ws, "plain floats")
    [hit] = found.items
    assert (hit.kind, hit.source, hit.session, hit.task_id, hit.tags) == ("decision", "agent", "s1", "sub", ["calc"])
    assert hit.text == "calc uses plain floats for speed" and not hit.stale and found.matched_all_words
    assert [(f.path, f.stale) for f in hit.files] == [("src/app/calc.py", False)]
    assert "not instructions" in found.notice
    # the file changed since: the entry is marked stale
    repo.append("src/app/calc.py", "\n# changed\n")
    assert view.search(ws, "plain floats").items[0].stale
    # filters: as search_memory's
    assert [i.source for i in view.search(ws, "calc", kind="lesson").items] == ["person"]
    assert {i.session for i in view.search(ws, "calc", session="s1").items} == {"s1"}
    assert [i.task_id for i in view.search(ws, "", task_id="sub").items] == ["sub"]
    assert [i.kind for i in view.search(ws, "", file="src/app/calc.py").items] == ["decision"]
    # the agent's text comes back as it was written (the page escapes it), never run
    assert XSS in view.search(ws, "cache").items[0].text
    # paging: no words, newest first, page by page
    first = view.search(ws, "", limit=3)
    assert [i.kind for i in first.items] == ["note"] * 3 and first.next_offset == 3
    second = view.search(ws, "", limit=3, offset=3)
    rest = view.search(ws, "", limit=3, offset=6)
    ids = [i.id for i in [*first.items, *second.items, *rest.items]]
    assert len(ids) == len(set(ids)) == 7 and rest.next_offset is None
    assert ids == sorted(ids, reverse=True)
    with pytest.raises(UsageError, match="kind 'rumour' is not one of"):
        view.search(ws, "x", kind="rumour")
    with pytest.raises(UsageError, match="offset -1 is out of range"):
        view.search(ws, "x", offset=-1)


def test_secrets_are_redacted_even_when_stored_unredacted(repo: GitRepo) -> None:
    ws = Workspace.open(repo.root)
    memory.log_event(ws, "failure", f"the deploy used {KEY} by mistake", session="s1")
    row = {"kind": "note", "text": f"imported from an old export: token {KEY}", "session": "s0", "source": "agent",
           "tags": "", "created_at": 1.0, "redactions": 0}  # fmt: skip
    with memorystore.connection(ws.db_path) as conn:
        memorystore.add_entry(conn, row, [])
    for query in ("deploy", "imported export"):
        [item] = view.search(ws, query).items
        assert KEY not in item.text and KEY not in item.snippet and "[REDACTED:" in item.text
    assert all(KEY not in i.text + i.snippet for i in view.search(ws, "").items)
