"""`overnight plan ...`: the task queue from the shell, the same code as the project server's tools.

`approve` and `reject` are the person's channel: no MCP tool can do what they do. They edit the plan file in
this worktree and, unless told not to, commit just that file, because approval counts only on the base branch.
"""

from __future__ import annotations

import getpass

import click
from rich.markup import escape

from mcp_servers.core import queue
from mcp_servers.core.queue_models import TaskDetail, TaskList, TaskSummary
from mcp_servers.core.workspace import Workspace

from . import output as out
from . import paging
from .wording import for_shell


def _session() -> str:
    try:
        return f"person:{getpass.getuser()}"
    except (KeyError, OSError):
        return "person"


person_session = _session  # the person's session name in the queue (the command center asks as the CLI does)


def _ws(ctx: click.Context) -> Workspace:
    return Workspace.open(ctx.obj)


@click.group(name="plan")
def plan_group() -> None:
    """The task queue in PROJECT_PLAN.md: list, show, next, add, approve, reject, validate, reset."""


@plan_group.command("list")
@click.option("--status", help="Only tasks in this state (ready, claimed, done, blocked, failed, ...).")
@click.option("--section", type=click.Choice(["ready", "pending", "not-ready"]), help="Only this section.")
@click.option("--limit", type=click.IntRange(1), default=queue.MAX_LIST, show_default=True,
              help="Tasks to show (any number).")  # fmt: skip
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def plan_list(ctx: click.Context, status: str | None, section: str | None, limit: int, as_json: bool) -> int:
    """The plan's tasks, their approval and their state."""
    ws, session, pages = _ws(ctx), _session(), list[TaskList]()

    def page(cursor: str | None, n: int) -> tuple[list[TaskSummary], str | None]:
        pages.append(queue.list_tasks(ws, session, status=status, section=section, limit=n, cursor=cursor))
        return pages[-1].tasks, pages[-1].next_cursor

    tasks, following = paging.collect(page, limit, queue.MAX_LIST)
    result = pages[0].model_copy(update={"tasks": tasks, "next_cursor": following})
    if as_json:
        out.emit_json(result)
        return out.OK
    table = out.table("id", "priority", "section", "state", "title", "why")
    for t in result.tasks:
        table.add_row(escape(t.id), t.priority, t.section or "-", t.state, escape(t.title), escape(t.why or ""))
    console = out.console()
    console.print(table)
    console.print(f"{result.total} task(s); approval read from {escape(result.base_ref)}")
    return out.OK


@plan_group.command("show")
@click.argument("task_id")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def plan_show(ctx: click.Context, task_id: str, as_json: bool) -> int:
    """One task in full: fields, state and why, claim, attempts, history."""
    detail = queue.get_task(_ws(ctx), task_id, _session())
    if as_json:
        out.emit_json(detail)
    else:
        _show(detail)
    return out.OK


def _show(t: TaskDetail) -> None:
    console = out.console()
    console.print(f"[bold]{escape(t.id)}[/] {escape(t.title)}")
    section = t.section or "not on the base branch"
    if t.working_section:
        section += f" (working tree: {t.working_section})"
    attempts = f"{t.attempts} ({t.failures} failed)" + (f"; last failure: {t.last_failure}" if t.last_failure else "")
    rows = [
        ("state", t.state + (f" ({t.why})" if t.why else "")),
        ("section", section),
        ("priority", t.priority),
        ("depends on", ", ".join(t.depends_on) or "-"),
        ("files", ", ".join(t.files) or "-"),
        ("estimate", str(t.estimated_lines) if t.estimated_lines is not None else "-"),
        ("alignment", str(t.alignment_score) if t.alignment_score is not None else "-"),
        ("attempts", attempts),
    ]
    if t.claim:
        rows.append(("claim", f"{t.claim.session} until {t.claim.expires}"))
    if t.completion:
        c = t.completion
        rows.append(("completed", f"{c.commit[:12]} on {c.branch} ({c.completed})"))
    if t.safety_check:
        rows.append(("safety", t.safety_check))
    rows += [("warning", w) for w in t.warnings]
    for key, value in rows:
        console.print(f"  {key:<10} {escape(value)}")
    for event in t.history:
        console.print(f"  history    {escape(event)}")


@plan_group.command("next")
@click.option("--json", "as_json", is_flag=True, help='Print {"task": {...} | null, "skipped": [{"id", "reason"}]}.')
@click.pass_context
def plan_next(ctx: click.Context, as_json: bool) -> int:
    """The task an agent would be handed next, and why the tasks ahead of it were passed over."""
    found = queue.next_task(_ws(ctx), _session())
    if as_json:
        out.emit_json({
            "task": found.task.model_dump(mode="json") if found.task else None,
            "skipped": [s.model_dump() for s in found.skipped],
        })  # fmt: skip
        return out.OK
    console = out.console()
    if found.task:
        _show(found.task)
    else:
        console.print(escape(for_shell(found.summary)))
    for s in found.skipped:
        console.print(f"  passed over {escape(s.id)}: {escape(for_shell(s.reason))}")
    return out.OK


def person_move(ws: Workspace, task_id: str, section: str, verb: str, reason: str | None, commit: bool
                ) -> dict[str, object]:  # fmt: skip
    """Move a task in this worktree's plan, and commit the plan alone (so the approval reaches the branch): the
    person's approve and reject, from the shell or the command center (`overnight ui`)."""
    path = ws.settings.plan.path
    dirty = bool(ws.repo.out("status", "--porcelain", "--", path))
    after = queue.move(ws, task_id, section, reason)
    made = None
    if after is None:
        message = f"`{task_id}` is already in that section; nothing changed"
    elif not commit:
        message = f"{verb} `{task_id}` in {path}; commit it for the approval to count"
    elif dirty:
        message = (f"{verb} `{task_id}` in {path}, which had other uncommitted edits, so it was not committed: "
                   "review and commit it yourself")  # fmt: skip
    else:
        ws.repo.run("commit", "--quiet", "-m", f"{verb} {task_id}", "--", path)
        made = ws.repo.out("rev-parse", "HEAD")
        message = f"{verb} `{task_id}` and committed it ({made[:7]})"
    return {"task_id": task_id, "section": section, "changed": after is not None, "path": path, "commit": made,
            "message": message}  # fmt: skip


def _person_edit(ws: Workspace, task_id: str, section: str, verb: str, reason: str | None, commit: bool,
                 as_json: bool = False) -> int:  # fmt: skip
    """`plan approve` and `plan reject`: `person_move`, said."""
    done = person_move(ws, task_id, section, verb, reason, commit)
    if as_json:
        out.emit_json(done)
    else:
        out.console().print(escape(str(done["message"])))
    return out.OK


@plan_group.command("add")
@click.argument("title")
@click.option("--files", multiple=True, metavar="GLOBS", help="The task's scope (repeat, or comma-separated).")
@click.option("--priority", type=click.Choice(["P0", "P1", "P2", "P3"], case_sensitive=False), default="P2",
              show_default=True)  # fmt: skip
@click.option("--depends-on", multiple=True, metavar="IDS", help="Tasks it waits for (repeat, or comma-separated).")
@click.option("--tests", metavar="PATH", help="Its tests (`Tests defined: ✅ Yes (PATH)`); else they need definition.")
@click.option("--estimate", type=click.IntRange(0, 100_000), help="Estimated lines changed.")
@click.option("--alignment", type=click.IntRange(0, 100), help="Alignment score, 0 to 100.")
@click.option("--description", help="What the task asks for, in a sentence or two.")
@click.option("--id", "task_id", metavar="ID", help="The task's id (default: a fresh `task_xxxxxx`).")
@click.option("--approve", is_flag=True, help="Put it under Ready for Autonomous Execution (your approval).")
@click.option("--no-commit", is_flag=True, help="Edit the plan file only; commit it yourself.")
@click.option("--json", "as_json", is_flag=True, help="Print the new task as JSON.")
@click.pass_context
def plan_add(
    ctx: click.Context,
    title: str,
    files: tuple[str, ...],
    priority: str,
    depends_on: tuple[str, ...],
    tests: str | None,
    estimate: int | None,
    alignment: int | None,
    description: str | None,
    task_id: str | None,
    approve: bool,
    no_commit: bool,
    as_json: bool,
) -> int:
    """Write a new task into the plan (Pending Approval, or Ready with --approve) and commit the plan alone."""
    from mcp_servers.core.plan_add import add_task

    added = add_task(_ws(ctx), title, files=files, priority=priority, depends_on=depends_on, tests=tests,
                     estimate=estimate, alignment=alignment, description=description, task_id=task_id,
                     approve=approve, commit=not no_commit)  # fmt: skip
    if as_json:
        out.emit_json(added)
        return out.OK
    console = out.console()
    where = "Ready for Autonomous Execution" if added.section == "ready" else "Pending Approval"
    done = f"committed it ({added.commit[:12]})" if added.commit else "did not commit it (--no-commit)"
    console.print(f"added `{escape(added.id)}` under {where} (line {added.line}) and {done}")
    for note in added.notes:
        console.print(f"  note: {escape(note)}")
    return out.OK


_JSON = click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")


@plan_group.command("approve")
@click.argument("task_id")
@click.option("--no-commit", is_flag=True, help="Edit the plan file only; commit it yourself.")
@_JSON
@click.pass_context
def plan_approve(ctx: click.Context, task_id: str, no_commit: bool, as_json: bool) -> int:
    """Move a task to Ready for Autonomous Execution (a person's decision; no agent tool can do this)."""
    return _person_edit(_ws(ctx), task_id, "ready", "approved", None, not no_commit, as_json)


@plan_group.command("reject")
@click.argument("task_id")
@click.option("--reason", help="Why, written into the task's Reason field.")
@click.option("--no-commit", is_flag=True, help="Edit the plan file only; commit it yourself.")
@_JSON
@click.pass_context
def plan_reject(ctx: click.Context, task_id: str, reason: str | None, no_commit: bool, as_json: bool) -> int:
    """Move a task to Not Ready."""
    return _person_edit(_ws(ctx), task_id, "not-ready", "rejected", reason, not no_commit, as_json)


@plan_group.command("validate")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def plan_validate(ctx: click.Context, as_json: bool) -> int:
    """Check the plan file; exit 1 when it has errors (line numbers included)."""
    result = queue.validate(_ws(ctx))
    if as_json:
        out.emit_json(result)
    else:
        console = out.console()
        for p in [*result.errors, *result.warnings]:
            kind = "error" if p in result.errors else "warning"
            where = f"{result.path}:{p.line}" if p.line else result.path
            console.print(f"{escape(where)}: {kind}: {escape(p.message)}" + (" (base)" if p.where == "base" else ""))
        console.print(f"{result.tasks} task(s), {len(result.errors)} error(s), {len(result.warnings)} warning(s)")
    return out.OK if result.ok else out.NO


@plan_group.command("reset")
@click.argument("task_id")
@_JSON
@click.pass_context
def plan_reset(ctx: click.Context, task_id: str, as_json: bool) -> int:
    """Clear a task's claims, attempts and completions so that it is offered again."""
    result = queue.reset_task(_ws(ctx), task_id)
    if as_json:
        out.emit_json(result)
    else:
        out.console().print(f"{escape(task_id)}: {escape(result.message)}")
    return out.OK


@plan_group.command("summary")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def plan_summary(ctx: click.Context, as_json: bool) -> int:
    """Counts by section and state, the done ratio, what is blocked and why, what is next."""
    result = queue.summary(_ws(ctx), _session())
    if as_json:
        out.emit_json(result)
        return out.OK
    console = out.console()
    console.print(f"{result.tasks} task(s); done {result.done_ratio:.0%}; by state: {result.by_state}")
    for b in result.blocked:
        console.print(f"  {escape(b.id)}: {escape(b.reason)}")
    console.print(f"next: {escape(result.next.id + ' ' + result.next.title) if result.next else 'nothing runnable'}")
    return out.OK
