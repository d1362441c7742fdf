"""`overnight run | stop | resume | status | report | cron | demo`: the unattended sessions."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import click
from rich.markup import escape

from mcp_servers.core.errors import UsageError
from mcp_servers.core.workspace import Workspace

from . import output as out

RUN_EXIT = {"completed": out.OK, "no-work": out.OK, "stopped": out.OK, "failed": out.NO, "preflight-failed": out.USAGE,
            "limit-reached": out.OK,
            "error": out.BUG,
            # the model's API ended it (issue 12): a limit waited out as far as the time limit allows is no error;
            # a disabled allowance or an API that kept failing needs a person
            "usage-limit": out.OK, "limit-disabled": out.NO, "infra-failed": out.NO}


def _ws(ctx: click.Context) -> Workspace:
    return Workspace.open(ctx.find_root().obj)


@click.command()
@click.option("--agent", "agent_name", metavar="NAME", help="The agent: claude, codex, gemini, command, replay or "
              "another registered one (default: `scheduler.agent` in overnight.toml, else claude).")
@click.option("--script", type=click.Path(dir_okay=False, path_type=Path),
              help="For --agent replay: the scripted session to play.")
@click.option("--env-file", type=click.Path(dir_okay=False, path_type=Path),
              help="Read secrets (ANTHROPIC_API_KEY, ...) from this file, which must be mode 0600.")
@click.option("--task", "only_task", metavar="ID", help="Work on this task only (it must be ready all the same).")
@click.option("--max-tasks", type=click.IntRange(min=1), help="At most N tasks this run (overrides `max_tasks`).")
@click.option("--dry-run", is_flag=True, help="Say what would run, in what order, what is passed over and why, and "
              "the first task's prompt; start and write nothing (exit 1 when nothing would run).")
@click.option("-q", "--quiet", is_flag=True, help="Show only each task's outcome and the session's end as it runs.")
@click.option("--json", "as_json", is_flag=True, help="Print the session's result as JSON (progress stays on stderr).")
@click.pass_context
def run(ctx: click.Context, agent_name: str | None, script: Path | None, env_file: Path | None,
        only_task: str | None, max_tasks: int | None, dry_run: bool, quiet: bool, as_json: bool) -> int:  # fmt: skip
    """Run one unattended session: work through the ready tasks on a new branch, keep what passes, roll back
    the rest, and print the report. A second run while one is going exits at once (status 0).

    While it runs, stderr shows what the agent does (each tool call, gate results, turns, cost so far, elapsed)
    and each task's outcome: a live view on a terminal, one plain line per event otherwise."""
    from . import agents, runner
    from .cron import load_env_file
    from .events import RunResult
    from .live import RunView, progress_console

    if env_file is not None:
        os.environ.update(load_env_file(env_file))
    ws = Workspace.open(ctx.find_root().obj)
    settings = ws.settings.scheduler
    agent = agents.make(agent_name or settings.agent, settings, ws.repo.root, script, ws.settings.agents)
    if dry_run or only_task:
        from .dry_run import dry_run as what_would_run
        from .morning_commands import show_dry_run

        plan = what_would_run(ws, agent, only=only_task, max_tasks=max_tasks)
        if dry_run:
            if as_json:
                out.emit_json(plan)
            else:
                show_dry_run(plan)
            return out.OK if plan.tasks and not plan.problems else out.NO
        if not plan.tasks:  # named, but it may not run: said before anything starts
            raise UsageError(f"{plan.summary}; `overnight run --dry-run` shows what would run")
    with RunView(progress_console(), quiet=quiet) as view:
        record = runner.Runner(ws, agent, only_task=only_task, max_tasks=max_tasks, say=view.say, events=view).run()
    from .report import REFUSED, render, render_refusal, reports_dir

    if record is None:
        if as_json:
            out.emit_json(RunResult(id=None, outcome="already-running", stop_reason="another session is running"))
        return out.OK
    path = reports_dir(ws.state_dir) / (record.id + ".md")
    if as_json:  # (a run refused at preflight has no report: it was never a session)
        out.emit_json(RunResult.of(record, str(path)).model_copy(update={"report": None})
                      if record.outcome in REFUSED else RunResult.of(record, str(path)))  # fmt: skip
        return RUN_EXIT.get(record.outcome, out.NO)
    click.echo("")
    if record.outcome in REFUSED:
        click.echo(render_refusal(record), nl=False)
        return RUN_EXIT.get(record.outcome, out.NO)
    click.echo(render(record), nl=False)
    click.echo(f"\n(kept as {path})")
    return RUN_EXIT.get(record.outcome, out.NO)


_JSON = click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")


def _said(message: str, as_json: bool, **data: object) -> None:
    if as_json:
        out.emit_json({"message": message, **data})
    else:
        out.console().print(escape(message))


@click.command()
@_JSON
@click.pass_context
def stop(ctx: click.Context, as_json: bool) -> int:
    """Set the kill switch and stop the running session (its task is rolled back, its report written)."""
    from .control import request_stop

    _said(request_stop(_ws(ctx)), as_json, kill_switch=True)
    return out.OK


@click.command()
@_JSON
@click.pass_context
def resume(ctx: click.Context, as_json: bool) -> int:
    """Clear the kill switch `overnight stop` set, and the daemon's pause after error cycles."""
    from .control import resume as clear
    from .daemon_state import resume as unpause

    ws = _ws(ctx)
    said = clear(ws)
    unpaused = unpause(ws)
    _said(said + (f"; {unpaused}" if unpaused else ""), as_json, kill_switch=False, daemon_paused=False)
    return out.OK


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print the status as JSON.")
@click.pass_context
def status(ctx: click.Context, as_json: bool) -> int:
    """The running session (task, elapsed time, agent pid), the last sessions with their outcomes and costs, and
    each rate limit or budget against its count."""
    from .control import status as current

    data = current(_ws(ctx))
    if as_json:
        out.emit_json(data)
        return out.OK
    console = out.console()
    if data["sandbox"] == "off" or any(s.get("sandbox") == "off" for s in data["sessions"][:1]):
        console.print("[bold red]unsandboxed[/]: `sandbox = \"off\"` in overnight.toml, so agents and the tests "
                      "they write run as you")  # fmt: skip
    for s in data["sessions"]:  # first: something a session ran changed what you own
        for event in s["security_events"]:
            console.print(f"[red]security event[/] in session {escape(s['id'])}: {escape(event)}")
    running = data["running"]
    if running:
        task = running.get("task")
        agent = f"agent {running['agent']} " if running.get("agent") else "agent "  # (a chain's, issue 13)
        doing = f"task {task}, {running.get('task_elapsed_s', 0)}s in, {agent}pid {running.get('agent_pid')}" \
            if task else "between tasks"
        if isinstance(running.get("waiting"), dict):  # a usage limit's reset, a retry, an open breaker (issue 12)
            doing = str(running["waiting"].get("line") or "waiting")
        console.print(f"running: session {escape(str(running.get('session')))} (pid {running.get('pid')}) on "
                      f"{escape(str(running.get('branch') or '-'))}: {escape(doing)}")
    else:
        console.print("no session is running")
    _show_daemon(data["daemon"])
    if data["kill_switch"]:
        console.print("[yellow]the kill switch is set[/]: `overnight resume` clears it")
    _show_holds(data, running)
    refused = data["last_refusal"]
    if refused:  # once, not as a session: it never started
        problems = refused["problems"]
        more = f"; and {len(problems) - 1} more" if len(problems) > 1 else ""
        detail = f" ({problems[0]}{more})" if problems else ""
        console.print(f"last run refused at preflight: {escape(refused['reason'] + detail)}, {refused['at']}")
    if data["sessions"]:
        table = out.table("session", "outcome", "done", "rolled back", "cost", "branch", "why it stopped")
        for s in data["sessions"]:
            table.add_row(escape(s["id"]), s["outcome"], str(s["tasks_done"]), str(s["tasks_failed"]),
                          f"${s['cost_usd']:.2f}", escape(s["branch"] or "-"), escape(s["stop_reason"] or ""))
        console.print(table)
    return out.OK


def _show_holds(data: dict[str, Any], running: dict[str, Any] | None) -> None:
    """What holds sessions back (issue 12): each agent's circuit breaker, a pause for a rate limit, the limits."""
    console = out.console()
    for b in data.get("breakers", []):  # the model's API kept failing for an agent (issue 12)
        state = {"open": f"[red]open[/] until {b['open_until']}", "half-open": "half-open (the next run is a probe)",
                 "closed": "closed"}[b["state"]]  # fmt: skip
        console.print(f"circuit breaker of agent {escape(b['agent'])}: {state}, {b['failures']} infrastructure "
                      f"stop(s) in a row (last: {escape(str(b['last_detail'] or b['last_kind']))})")  # fmt: skip
    if running and running.get("paused_until"):
        console.print(f"[yellow]paused[/] until {escape(str(running['paused_until']))}: "
                      f"{escape(str(running.get('paused_for') or ''))}")  # fmt: skip
    for limit in data["limits"]:  # each rate limit or budget that is set, against its count
        line = escape(limit["line"])
        console.print(f"limit: [yellow]{line}[/]" if limit["reached"] else f"limit: {line}")


def _show_daemon(daemon: dict[str, object]) -> None:
    """The daemon's line of `overnight status`: running (its state, cycles, next cycle) or not; its pause."""
    console = out.console()
    if daemon.get("running"):
        nxt = f", next cycle {daemon['next_cycle_at']}" if daemon.get("next_cycle_at") else ""
        console.print(f"daemon: {escape(str(daemon.get('state')))} ({escape(str(daemon.get('detail') or ''))}), "
                      f"pid {daemon.get('pid')}, {daemon.get('cycles')} cycle(s) this run{escape(nxt)}")  # fmt: skip
    paused = daemon.get("paused")
    if isinstance(paused, dict):
        console.print(f"[yellow]the daemon is paused[/]: {escape(str(paused.get('reason')))}; `overnight resume` "
                      "resumes it")  # fmt: skip


@click.command()
@click.argument("session", required=False)
@click.option("--daemon", "daemon_reports", is_flag=True, help="The daemon's reports (progress, status, final): "
              "the newest, or the one named.")  # fmt: skip
@click.option("--list", "listing", is_flag=True, help="With --daemon: list the daemon's reports.")
@click.option("--json", "as_json", is_flag=True, help="Print the session record as JSON.")
@click.pass_context
def report(ctx: click.Context, session: str | None, daemon_reports: bool, listing: bool, as_json: bool) -> int:
    """Show a session's report (the newest without SESSION); with --daemon, the daemon's."""
    from .report import load, render

    if daemon_reports or listing:
        return _daemon_report(_ws(ctx), session, listing, as_json)
    record = load(_ws(ctx).state_dir, session)
    if as_json:
        out.emit_json(record)
    else:
        click.echo(render(record), nl=False)
    return out.OK


def _daemon_report(ws: Workspace, name: str | None, listing: bool, as_json: bool) -> int:
    from . import daemon_report

    if listing:
        found = daemon_report.listing(ws.state_dir)
        if as_json:
            out.emit_json([{"id": r.id, "kind": r.kind, "at": r.at, "state": r.state} for r in found])
            return out.OK
        table = out.table("report", "kind", "at", "state")
        for r in found:
            table.add_row(escape(r.id), r.kind, r.at, escape(r.state))
        out.console().print(table)
        return out.OK
    found_report = daemon_report.load(ws.state_dir, name)
    if as_json:
        out.emit_json(found_report)
    else:
        click.echo(daemon_report.render(found_report), nl=False)
    return out.OK


@click.group(name="cron")
def cron_group() -> None:
    """Start `overnight run` from cron (secrets in a 0600 env file, never in the crontab)."""


@cron_group.command("install")
@click.option("--schedule", default="0 2 * * *", show_default=True, help="When, as five cron fields.")
@_JSON
@click.pass_context
def cron_install(ctx: click.Context, schedule: str, as_json: bool) -> int:
    """Add (or replace) this repository's crontab line."""
    from . import cron

    ws = _ws(ctx)
    line, env_note, action = cron.install(ws, schedule)
    if as_json:
        out.emit_json({"line": line, "action": action, "env_file": str(cron.env_file(ws)), "env_note": env_note,
                       "log": str(cron.log_file(ws))})  # fmt: skip
        return out.OK
    console = out.console()
    console.print(f"crontab line {action}:\n  {escape(line)}")
    console.print(f"env file: {escape(env_note)}")
    return out.OK


@cron_group.command("remove")
@_JSON
@click.pass_context
def cron_remove(ctx: click.Context, as_json: bool) -> int:
    """Remove this repository's crontab line (the env file and the log stay)."""
    from . import cron

    removed = cron.remove(_ws(ctx))
    _said("crontab line removed" if removed else "there was no crontab line for this repository", as_json,
          removed=removed)  # fmt: skip
    return out.OK


@cron_group.command("show")
@_JSON
@click.pass_context
def cron_show(ctx: click.Context, as_json: bool) -> int:
    """Show this repository's crontab line, its env file and its log (exit 1 when there is no line). Without
    `crontab` on PATH: the line `cron install` would add, and that crontab is missing (exit 0)."""
    from . import cron

    ws = _ws(ctx)
    if not cron.available():  # issue 11: show what would be installed rather than fail
        would = cron.line(ws, cron.DEFAULT_SCHEDULE)
        if as_json:
            out.emit_json({"line": None, "would_install": would, "crontab": None, "problem": cron.MISSING,
                           "env_file": str(cron.env_file(ws)), "log": str(cron.log_file(ws))})  # fmt: skip
            return out.OK
        console = out.console()
        console.print(f"[yellow]{escape(cron.MISSING)}[/]\nthe line `overnight cron install` would add:")
        console.print(escape(would))
        return out.OK
    line = cron.show(ws)
    if as_json:
        out.emit_json({"line": line, "env_file": str(cron.env_file(ws)), "log": str(cron.log_file(ws))})
        return out.OK if line is not None else out.NO
    console = out.console()
    if line is None:
        console.print("no crontab line for this repository: `overnight cron install` adds one")
        return out.NO
    console.print(escape(line))
    console.print(f"env file: {escape(str(cron.env_file(ws)))}; log: {escape(str(cron.log_file(ws)))}")
    return out.OK


@click.command()
@click.option("--dir", "where", type=click.Path(file_okay=False, path_type=Path),
              help="Make the demo repository here (a new or empty folder; default: a temporary one, kept).")
def demo(where: Path | None) -> int:
    """Watch a whole session with no API key: in a throwaway repository a scripted agent does three tasks; one
    lands on the branch, an unsafe one and a test-breaking one are rolled back; the report is printed."""
    from mcp_servers.core import sandbox

    from . import demo as make
    from .report import REFUSED, render, render_refusal
    from .runner import Runner

    repo, script = make.create(where)
    console = out.console()
    console.print(f"demo repository: {escape(str(repo))}\nscripted agent: {escape(str(script))}\n")
    why = sandbox.problem()
    if why:
        console.print(f"[yellow]the demo runs unsandboxed[/]: {escape(why)}\n")
    from .live import RunView, progress_console

    with RunView(progress_console()) as view:  # the session as it happens, on stderr
        record = Runner(Workspace.open(repo), make.agent(script), say=view.say, events=view).run()
    if record is None:  # pragma: no cover (a fresh repository has no other session)
        return out.BUG
    click.echo("")
    click.echo(render(record) if record.outcome not in REFUSED else render_refusal(record), nl=False)
    click.echo(f"\nLook around: cd {repo} && git log --oneline --all && overnight report && overnight memory sessions")
    return out.OK if record.outcome != "preflight-failed" else out.USAGE


COMMANDS = (run, stop, resume, status, report, cron_group, demo)
