"""`overnight review | merge | discard | commit` and the text of `overnight run --dry-run`: the person's morning."""

from __future__ import annotations

import sys

import click
from pydantic import BaseModel
from rich.markup import escape

from mcp_servers.core.errors import GateError, UsageError
from mcp_servers.core.workspace import Workspace

from . import output as out
from .dry_run import DryRun
from .morning import Refused


def _ws(ctx: click.Context) -> Workspace:
    return Workspace.open(ctx.find_root().obj)


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print the sessions as JSON.")
@click.pass_context
def review(ctx: click.Context, as_json: bool) -> int:
    """List the session branches not merged yet: tasks kept and rolled back, diffstat, cost, when, the report."""
    from .morning import review as unmerged

    found = unmerged(_ws(ctx))
    if as_json:
        out.emit_json(found)
        return out.OK
    console = out.console()
    if found.running:
        console.print(f"a session is running on {escape(found.running)} (not listed until it ends)")
    if not found.sessions:
        console.print("no session branch is waiting: every one is merged or discarded")
        return out.OK
    for s in found.sessions:
        when = s.ended or s.started or "?"
        console.print(f"[bold]{escape(s.session)}[/] {escape(s.branch)} → {escape(s.base_branch)}: "
                      f"{s.outcome or 'no report'}, ended {escape(when)}, ${s.cost_usd:.2f}")  # fmt: skip
        console.print(f"  kept: {escape(', '.join(s.kept) or 'none')}; rolled back: "
                      f"{escape(', '.join(s.rolled_back) or 'none')}")  # fmt: skip
        console.print(f"  {s.commits} commit(s), {s.files_changed} file(s) changed, +{s.insertions} -{s.deletions}")
        if s.report:
            console.print(f"  report: {escape(s.report)}")
        if s.note:
            console.print(f"  [yellow]note[/]: {escape(s.note)}")
    console.print("next: `overnight merge SESSION` brings one into its base; `overnight discard SESSION` deletes it")
    return out.OK


@click.command()
@click.argument("session")
@click.option("--json", "as_json", is_flag=True, help="Print what was merged as JSON.")
@click.pass_context
def merge(ctx: click.Context, session: str, as_json: bool) -> int:
    """Bring a session branch into its base branch (fast-forward, else a merge commit), after verifying every
    commit's receipt again. Refused, changing nothing, on a conflict, on uncommitted changes in the files it
    changes, or on a branch that does not verify. Where the base is not checked out, only its ref moves."""
    from .merge import merge as do_merge

    try:
        done = do_merge(_ws(ctx), session)
    except Refused as e:
        out.error(str(e))
        return out.NO
    return _done(done, done.message, as_json)


@click.command()
@click.argument("session")
@click.option("--yes", "-y", is_flag=True, help="Do not ask (for scripts).")
@click.option("--json", "as_json", is_flag=True, help="Print what was deleted as JSON.")
@click.pass_context
def discard(ctx: click.Context, session: str, yes: bool, as_json: bool) -> int:
    """Delete a session branch (and its worktree if one is left), after asking; `review` no longer lists it."""
    from .morning import discard as do_discard
    from .morning import find

    ws = _ws(ctx)
    found = find(ws, session)
    if not yes:
        if not sys.stdin.isatty():
            raise UsageError(f"discarding {found.branch} needs a confirmation: run it on a terminal, or pass `--yes`.")
        lost = "" if found.merged else f" Its {found.commits} commit(s) are not merged."
        if not click.confirm(f"Delete {found.branch} (session {found.session})?{lost}", default=False):
            out.console().print("nothing was deleted")
            return out.NO
    try:
        gone = do_discard(ws, found.branch)
    except Refused as e:
        out.error(str(e))
        return out.NO
    return _done(gone, gone.message, as_json)


def _done(result: BaseModel, message: str, as_json: bool) -> int:
    """What a morning command did: its model as JSON, or its message."""
    if as_json:
        out.emit_json(result)
    else:
        out.console().print(escape(message))
    return out.OK


@click.command("commit")
@click.option("-m", "--message", required=True, help="The commit message (its first line is the subject).")
@click.option("--task-file", "-f", "task_files", multiple=True, metavar="GLOB", help="The task's Files: scope.")
@click.option("--json", "as_json", is_flag=True, help="Print the commit as JSON.")
@click.pass_context
def commit(ctx: click.Context, message: str, task_files: tuple[str, ...], as_json: bool) -> int:
    """Run the gate on your change and commit it with its receipt trailer (what the receipt hook wants); refused
    with the gate's failures otherwise. What is committed is the tree the gate judged: the whole working tree,
    new files included (not only what you staged), as `.gitignore` leaves it. Exit 0 committed, 1 the gate
    failed or there is nothing to commit."""
    from .person_commit import person_commit

    try:
        done = person_commit(_ws(ctx), message, list(task_files))
    except GateError as e:
        out.error(str(e))
        return out.NO
    if as_json:
        out.emit_json(done)
        return out.OK
    console = out.console()
    made = done.commit
    console.print(f"committed {made.commit[:12]} on {escape(made.branch or 'a detached HEAD')} with receipt "
                  f"{escape(made.receipt_id)}: {escape(made.message.splitlines()[0])}")  # fmt: skip
    if not done.hook_installed:
        console.print("note: the receipt hook is not installed here (`overnight hooks install` makes `git commit` "
                      "refuse ungated commits)")  # fmt: skip
    return out.OK


def show_dry_run(plan: DryRun) -> None:
    """`overnight run --dry-run` as text."""
    console = out.console()
    console.print(f"dry run: nothing is started or written. A session would branch {escape(plan.branch)} "
                  f"from {escape(plan.base_branch)} at {plan.base_commit[:12]}, at most {plan.max_tasks} "
                  "task(s).")  # fmt: skip
    for problem in plan.problems:
        console.print(f"[red]would not start[/]: {escape(problem)}")
    if len(plan.agents) > 1:  # a fallback chain: each agent, and whether it can run (issue 13)
        for member in plan.agents:
            mark = "[green]ok[/]" if member.can_run else "[red]no[/]" if member.role == "first" else "[yellow]no[/]"
            console.print(f"  {mark} {escape(member.line())}")
    for warning in plan.warnings:
        console.print(f"[yellow]warning[/]: {escape(warning)}")
    if plan.held:
        console.print(f"[yellow]a limit holds now[/]: {escape(plan.held)}")
    for n, task in enumerate(plan.tasks, 1):
        console.print(f"  {n}. {escape(task.id)} ({task.priority}) {escape(task.title)}")
    if not plan.tasks:
        console.print(f"no task would run: {escape(plan.summary)}")
    if plan.more:
        console.print(f"  then the task limit: {escape(plan.more)}")
    for skipped in plan.passed_over:
        console.print(f"  passed over: {escape(skipped.id)}: {escape(skipped.reason)}")
    if plan.passed_over_total > len(plan.passed_over):
        console.print(f"  ... and {plan.passed_over_total - len(plan.passed_over)} more passed over")
    if plan.prompt:
        console.print(f"\nthe prompt of {escape(plan.tasks[0].id)}:\n")
        click.echo(plan.prompt)


COMMANDS = (review, merge, discard, commit)
