"""`overnight daemon` and `overnight service install | remove | status`."""

from __future__ import annotations

import os
from pathlib import Path

import click
from rich.markup import escape

from mcp_servers.core.workspace import Workspace

from . import output as out


@click.command()
@click.option(
    "--agent",
    "agent_name",
    metavar="NAME",
    help="The agent: claude, codex, gemini, command, replay or another registered one (default: `scheduler.agent` "
    "in overnight.toml, else claude).",
)
@click.option(
    "--script",
    type=click.Path(dir_okay=False, path_type=Path),
    help="For --agent replay: the scripted session to play.",
)
@click.option(
    "--env-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Read secrets (ANTHROPIC_API_KEY, ...) from this file, which must be mode 0600.",
)
@click.option("--cycles", "max_cycles", type=click.IntRange(min=1), help="Stop after N cycles (default: run until "
              "the project is complete, `overnight stop` or SIGTERM).")  # fmt: skip
@click.option("-q", "--quiet", is_flag=True, help="Show only each task's outcome and the daemon's own lines.")
@click.option("--json", "as_json", is_flag=True, help="Print the final report as JSON (progress stays on stderr).")
@click.pass_context
def daemon(ctx: click.Context, agent_name: str | None, script: Path | None, env_file: Path | None,
           max_cycles: int | None, quiet: bool, as_json: bool) -> int:  # fmt: skip
    """Run work cycles, each a session as `overnight run` with a break between them (`[daemon]` in
    overnight.toml), until the completion criteria hold: then a final "complete" report, exit 0.

    Outside the active window it sleeps until the window opens. After `pause_after_error_cycles` error cycles in
    a row it pauses until `overnight resume`. `overnight stop` and SIGTERM end the cycle in hand cleanly and the
    daemon with a "stopped" report. A second daemon for the same repository exits at once (status 0)."""
    from . import agents
    from .cron import load_env_file
    from .daemon import Daemon
    from .daemon_report import render
    from .live import RunView, progress_console

    if env_file is not None:
        os.environ.update(load_env_file(env_file))
    ws = Workspace.open(ctx.find_root().obj)

    def make_agent(current: Workspace) -> agents.Agent:
        settings = current.settings.scheduler
        return agents.make(agent_name or settings.agent, settings, current.repo.root, script,
                           current.settings.agents)

    make_agent(ws)  # a missing agent or script is said before the daemon starts
    with RunView(progress_console(), quiet=quiet) as view:
        result = Daemon(ws, make_agent, say=view.say, events=view, max_cycles=max_cycles).run()
    if as_json:
        out.emit_json({"outcome": result.outcome, "reason": result.reason, "report": result.path,
                       "final": result.report.model_dump(mode="json") if result.report else None})  # fmt: skip
        return out.OK
    if result.report is not None:
        click.echo(render(result.report), nl=False)
        click.echo(f"\n(kept as {result.path})")
    else:
        out.err_console().print(escape(result.reason))
    return out.OK


@click.group(name="service")
def service_group() -> None:
    """Run `overnight daemon` as a systemd user service (the alternative to `overnight cron`)."""


_JSON = click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")


@service_group.command("install")
@click.option("--no-start", is_flag=True, help="Enable the unit but do not start it now.")
@_JSON
@click.pass_context
def service_install(ctx: click.Context, no_start: bool, as_json: bool) -> int:
    """Write (or replace) this repository's unit, make the 0600 env file for secrets, enable and start it."""
    from . import service

    done = service.install(Workspace.open(ctx.find_root().obj), start=not no_start)
    if as_json:
        out.emit_json({"unit": str(done.path), "action": done.action, "env_file": done.env_note,
                       "notes": done.notes})  # fmt: skip
        return out.OK
    console = out.console()
    console.print(f"unit {done.action}: {escape(str(done.path))}\nenv file: {escape(done.env_note)}")
    for note in done.notes:
        console.print(f"[yellow]note[/]: {escape(note)}")
    return out.OK


@service_group.command("remove")
@_JSON
@click.pass_context
def service_remove(ctx: click.Context, as_json: bool) -> int:
    """Stop, disable and delete this repository's unit (the env file and the logs stay)."""
    from . import service

    existed, notes = service.remove(Workspace.open(ctx.find_root().obj))
    if as_json:
        out.emit_json({"removed": existed, "notes": notes})
        return out.OK
    console = out.console()
    console.print("unit removed" if existed else "there was no unit for this repository")
    for note in notes:
        console.print(f"[yellow]note[/]: {escape(note)}")
    return out.OK


@service_group.command("status")
@_JSON
@click.pass_context
def service_status(ctx: click.Context, as_json: bool) -> int:
    """Whether the unit is installed, enabled and active (exit 1 when it is not installed)."""
    from . import service

    data = service.status(Workspace.open(ctx.find_root().obj))
    if as_json:
        out.emit_json(data)
        return out.OK if data["installed"] else out.NO
    console = out.console()
    installed = "installed" if data["installed"] else "not installed (`overnight service install` writes it)"
    console.print(f"{escape(str(data['unit']))}: {installed}; {escape(str(data['path']))}")
    if data["problem"]:
        console.print(f"[yellow]{escape(str(data['problem']))}[/]")
    else:
        console.print(f"enabled: {escape(str(data['enabled']))}; active: {escape(str(data['active']))}")
    return out.OK if data["installed"] else out.NO


COMMANDS = (daemon, service_group)
