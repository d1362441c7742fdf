"""`overnight memory ...`: people query and add to the sessions' memory between sessions."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click
from rich.markup import escape

from mcp_servers.core import memory
from mcp_servers.core.memory_models import Entry, Hit, SearchResult, Sessions, SessionSummary
from mcp_servers.core.workspace import Workspace

from . import output as out
from . import paging


def _ws(ctx: click.Context) -> Workspace:
    return Workspace.open(ctx.obj)


@click.group(name="memory")
def memory_group() -> None:
    """What every session did, decided, failed at and learned: search, sessions, show, add, export, import."""


@memory_group.command("search")
@click.argument("query", required=False, default="")
@click.option("--kind", type=click.Choice(memory.KINDS), help="Only entries of this kind.")
@click.option("--task", "task_id", help="Only entries about this task.")
@click.option("--file", "file", help="Only entries about this file.")
@click.option("--session", help="Only entries of this session.")
@click.option("--since", help="Only newer entries: 7d, 12h, or an ISO date.")
@click.option("--limit", type=click.IntRange(1), default=10, show_default=True, help="Hits to show (any number).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def memory_search(
    ctx: click.Context,
    query: str,
    kind: str | None,
    task_id: str | None,
    file: str | None,
    session: str | None,
    since: str | None,
    limit: int,
    as_json: bool,
) -> int:
    """Search every session's entries (all the words, else the closest), newest and most relevant first."""
    if not query.strip() and not any((kind, task_id, file, session, since)):
        raise click.UsageError("say what to search for: some words, or a filter (--kind, --task, --file, --session, "
                               "--since); `overnight memory sessions` lists the sessions")  # fmt: skip
    ws, first = _ws(ctx), SearchResult(hits=[], matched_all_words=True)

    def page(offset: int | None, n: int) -> tuple[list[Hit], int | None]:
        nonlocal first
        found = memory.search(ws, query, kind=kind, task_id=task_id, file=file, session=session, since=since,
                              limit=n, offset=offset or 0)  # fmt: skip
        first = found if offset is None else first
        return found.hits, found.next_offset

    hits, following = paging.collect(page, limit, memory.MAX_LIMIT)
    unique = list({h.id: h for h in reversed(hits)}.values())[::-1]  # a later page ranks a larger pool: each once
    result = first.model_copy(update={"hits": unique, "next_offset": following})
    if as_json:
        out.emit_json(result)
        return out.OK
    console = out.console()
    if not result.hits:
        console.print("nothing found")
    if result.hits and not result.matched_all_words:
        console.print("[dim]no entry has every word; these are the closest[/]")
    for h in result.hits:
        stale = " [yellow](stale)[/]" if h.stale else ""
        task = f" {escape(h.task_id)}" if h.task_id else ""
        console.print(f"[bold]#{h.id}[/] {h.kind} {h.created[:16]} {h.source}{task}{stale}  {escape(h.snippet)}")
    return out.OK


@memory_group.command("sessions")
@click.option("--limit", type=click.IntRange(1), default=20, show_default=True, help="Sessions to show (any number).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def memory_sessions(ctx: click.Context, limit: int, as_json: bool) -> int:
    """The newest sessions, with their outcome and what they did."""
    ws = _ws(ctx)

    def page(offset: int | None, n: int) -> tuple[list[SessionSummary], int | None]:
        found = memory.recent_sessions(ws, n, offset or 0)
        return found.sessions, found.next_offset

    sessions, following = paging.collect(page, limit, memory.MAX_LIMIT)
    result = Sessions(sessions=sessions, next_offset=following)
    if as_json:
        out.emit_json(result)
        return out.OK
    table = out.table("session", "started", "outcome", "entries", "done", "failed", "goal")
    for s in result.sessions:
        table.add_row(
            escape(s.id),
            s.started[:16],
            s.outcome or "open",
            str(s.entries),
            str(s.tasks_done),
            str(s.tasks_failed),
            escape(s.goal or ""),
        )
    out.console().print(table)
    return out.OK


@memory_group.command("show")
@click.argument("ident")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def memory_show(ctx: click.Context, ident: str, as_json: bool) -> int:
    """An entry in full (by its number) or a session (by its id)."""
    ws = _ws(ctx)
    if ident.lstrip("#").isdigit():
        found = memory.get_entries(ws, [int(ident.lstrip("#"))])
        if not found.entries:
            out.error(f"there is no entry {ident}: `overnight memory search WORDS` shows ids.")
            return out.USAGE
        if as_json:
            out.emit_json(found.entries[0])
        else:
            _show_entry(found.entries[0])
        return out.OK
    detail = memory.get_session(ws, ident)
    if as_json:
        out.emit_json(detail)
        return out.OK
    console = out.console()
    console.print(f"[bold]{escape(detail.id)}[/] {detail.outcome or 'open'} ({detail.started} - {detail.ended or ''})")
    for key in ("goal", "stop_reason", "branch", "base_commit", "final_commit"):
        value = getattr(detail, key)
        if value:
            console.print(f"  {key:<12} {escape(str(value))}")
    for key, value in sorted(detail.record.items()):
        console.print(f"  {key:<12} {escape(str(value))}")
    for h in detail.recent:
        console.print(f"  #{h.id} {h.kind} {escape(h.snippet)}")
    return out.OK


def _show_entry(e: Entry) -> None:
    console = out.console()
    console.print(f"[bold]#{e.id}[/] {e.kind} by {e.source} on {e.created} (session {escape(e.session or '-')})")
    if e.task_id:
        console.print(f"  task  {escape(e.task_id)}")
    for f in e.files:
        console.print(f"  file  {escape(f.path)}" + (" [yellow](changed since)[/]" if f.stale else ""))
    if e.tags:
        console.print(f"  tags  {escape(' '.join(e.tags))}")
    if e.state:
        console.print(f"  state {e.state}" + (f" ({escape(e.closed_note or '')})" if e.closed_note else ""))
    console.print(escape(e.text))


@memory_group.command("add")
@click.argument("text")
@click.option("--kind", type=click.Choice(memory.KINDS), default="note", show_default=True)
@click.option("--task", "task_id", help="The task it is about.")
@click.option("--file", "files", multiple=True, help="A file it is about (repeatable).")
@click.option("--tag", "tags", multiple=True, help="A tag (repeatable).")
@click.option("--json", "as_json", is_flag=True, help="Print the entry's number as JSON.")
@click.pass_context
def memory_add(
    ctx: click.Context,
    text: str,
    kind: str,
    task_id: str | None,
    files: tuple[str, ...],
    tags: tuple[str, ...],
    as_json: bool,
) -> int:
    """A person's note (or decision, lesson, next step) for the next sessions."""
    ws = _ws(ctx)
    logged = memory.log_event(
        ws,
        kind,
        text,
        task_id=task_id,
        files=list(files),
        tags=list(tags),
        source="person",
        session=memory.session_from(ws.environ) or "person",
    )
    if as_json:
        out.emit_json(logged)
        return out.OK
    redacted = f" ({logged.redacted} secret(s) redacted)" if logged.redacted else ""
    out.console().print(f"added #{logged.id}{redacted}")
    return out.OK


@memory_group.command("export")
@click.option(
    "-o", "--output", "path", type=click.Path(dir_okay=False, path_type=Path), help="Write here (default: stdout)."
)
@click.option("--json", "as_json", is_flag=True, help="One JSON document: the records as a list (with -o: where "
              "they were written and how many).")  # fmt: skip
@click.pass_context
def memory_export(ctx: click.Context, path: Path | None, as_json: bool) -> int:
    """Every session and entry as JSON lines (to standard output by default)."""
    lines = memory.export(_ws(ctx))
    if path is None and as_json:
        out.emit_json([json.loads(line) for line in lines])
        return out.OK
    if path is None:
        for line in lines:
            sys.stdout.write(line + "\n")
        return out.OK
    tmp = path.with_name(f".{path.name}.tmp")
    written = 0
    with tmp.open("w", encoding="utf-8") as handle:
        for line in lines:
            handle.write(line + "\n")
            written += 1
    tmp.replace(path)
    if as_json:
        out.emit_json({"path": str(path), "records": written})
    else:
        out.err_console().print(f"exported to {escape(str(path))}")
    return out.OK


@memory_group.command("import")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the counts as JSON.")
@click.pass_context
def memory_import(ctx: click.Context, path: Path, as_json: bool) -> int:
    """Load an export (every line is checked before anything is written)."""
    with path.open(encoding="utf-8") as handle:
        result = memory.import_lines(_ws(ctx), handle)
    if as_json:
        out.emit_json(result)
        return out.OK
    out.console().print(
        f"imported {result.entries} entries and {result.sessions} sessions ({result.skipped} already present)"
    )
    return out.OK
