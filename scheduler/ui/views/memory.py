"""The Memory page's data (issue 14): `search_memory` with its filters (the same `memory.search`, so the same
ranking, paging and refusals), each hit with its entry: the full text, who wrote it (agent, scheduler or person,
the session and the task), its tags and files and whether each changed since (the stale mark).

Texts are redacted again on the way out, as memory redacts on the way in: entries written before a detector
existed, or imported from another machine's export, show no secret either.
"""

from __future__ import annotations

from collections.abc import Callable

from pydantic import BaseModel, Field

from mcp_servers.core import memory
from mcp_servers.core.memory_models import NOTICE, FileRef
from mcp_servers.core.secrets import redact
from mcp_servers.core.workspace import Workspace

MAX_TEXT = 4000  # characters of an entry's text on the page (the entry says when it was cut)


class MemoryItem(BaseModel):
    id: int
    kind: str
    created: str
    score: float
    source: str = Field(description="who wrote it: agent, scheduler or person")
    session: str | None = None
    task_id: str | None = None
    stale: bool
    snippet: str
    text: str = ""
    cut: bool = Field(default=False, description="the text was cut for the page")
    tags: list[str] = Field(default_factory=list)
    files: list[FileRef] = Field(default_factory=list)
    state: str | None = Field(default=None, description="for next steps: open or done")


class MemoryPage(BaseModel):
    query: str
    items: list[MemoryItem]
    matched_all_words: bool
    next_offset: int | None = None
    offset: int = 0
    kinds: list[str] = Field(default_factory=lambda: list(memory.KINDS))
    notice: str = NOTICE


def _clean(text: str) -> str:
    return redact(text)[0]


def search(
    ws: Workspace,
    query: str = "",
    *,
    kind: str | None = None,
    task_id: str | None = None,
    file: str | None = None,
    session: str | None = None,
    since: str | None = None,
    limit: int = 20,
    offset: int = 0,
    clean: Callable[[str], str] = _clean,
) -> MemoryPage:
    """A page of entries: those matching `query` (all its words, else the closest) ranked by relevance and recency,
    or the newest without words; refused as `search_memory` refuses (a bad kind, date, file or offset). `clean`
    redacts a text (the app passes its `Texts.clean`, which keeps its answers)."""
    found = memory.search(ws, query, kind=kind or None, task_id=task_id or None, file=file or None,
                          session=session or None, since=since or None, limit=limit, offset=offset)  # fmt: skip
    entries = {e.id: e for e in memory.get_entries(ws, [h.id for h in found.hits]).entries} if found.hits else {}
    items = []
    for hit in found.hits:
        entry = entries.get(hit.id)
        text = entry.text if entry else ""
        items.append(MemoryItem(
            id=hit.id, kind=hit.kind, created=hit.created, score=hit.score, source=hit.source, session=hit.session,
            task_id=hit.task_id, stale=hit.stale, snippet=clean(hit.snippet), text=clean(text[:MAX_TEXT]),
            cut=len(text) > MAX_TEXT or text.endswith("ask for fewer ids)"), tags=entry.tags if entry else [],
            files=entry.files if entry else [], state=entry.state if entry else None,
        ))  # fmt: skip
    return MemoryPage(query=query, items=items, matched_all_words=found.matched_all_words,
                      next_offset=found.next_offset, offset=offset)  # fmt: skip
