"""`overnight`: the command line. Each command makes one call into the core and prints its model.

Exit codes: 0 yes, 1 no (a check failed), 2 a usage or environment error (the message says what to do),
3 a bug (the traceback is written to a log file), 130 interrupted.
"""

from __future__ import annotations

import datetime as dt
import os
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path

import click
from rich.console import Console
from rich.markup import escape

from mcp_servers.core import __version__, hooks
from mcp_servers.core.errors import OvernightError
from mcp_servers.core.models import ChangeReport, GateReport
from mcp_servers.core.workspace import Workspace

from . import output as out
from .init import SERVER_NAMES, Found
from .memory_commands import memory_group
from .notify_commands import notify_group
from .plan_commands import plan_group
from .wording import for_shell


def log_dir(environ: dict[str, str] | None = None) -> Path:
    """Where the CLI writes crash reports: $OVERNIGHT_HOME, else ~/.local/state/overnight."""
    from mcp_servers.core.workspace import user_state_dir

    return user_state_dir(environ)


def main(argv: Sequence[str] | None = None) -> int:  # noqa: PLR0911 (one return per way a run can end)
    """Run `overnight ARGV` and return its exit code; only here do errors become output."""
    try:
        code = cli.main(args=list(argv) if argv is not None else None, prog_name="overnight", standalone_mode=False)
    except click.exceptions.Exit as e:
        return int(e.exit_code)
    except click.exceptions.Abort:
        out.error("interrupted")
        return out.INTERRUPTED
    except click.ClickException as e:
        e.show()
        return out.USAGE
    except KeyboardInterrupt:
        out.error("interrupted")
        return out.INTERRUPTED
    except OvernightError as e:  # worded for the agents that call the core through MCP: said here as commands
        out.error(for_shell(str(e)))
        return out.USAGE
    except Exception:
        return _crash()
    return int(code) if isinstance(code, int) else out.OK


def _crash() -> int:
    path = log_dir() / "overnight.log"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a") as log:
            log.write(f"--- {dt.datetime.now().isoformat()} overnight {__version__}: {' '.join(sys.argv)}\n")
            log.write(traceback.format_exc())
        where = f"; the traceback is in {path}"
    except OSError:
        where = ":\n" + traceback.format_exc()
    out.error(f"overnight hit an unexpected error{where}. Please report it.")
    return out.BUG


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="overnight")
@click.option("-C", "--repo", "repo", metavar="PATH", help="Run as if started in PATH (default: here).")
@click.pass_context
def cli(ctx: click.Context, repo: str | None) -> None:
    """Hand pre-approved tasks to a coding agent that works unattended, and let nothing reach a branch unless
    it passed the safety policy and the quality gate."""
    ctx.obj = repo


def _ws(ctx: click.Context) -> Workspace:
    return Workspace.open(ctx.obj)


# -- init, doctor, serve ------------------------------------------------------------------------------------


@cli.command()
@click.option("--force", is_flag=True, help="Replace overnight.toml and our .mcp.json entries if they differ.")
@click.option("--commit", "make_commit", is_flag=True, help="Commit the files it wrote (and nothing else).")
@click.option("--json", "as_json", is_flag=True, help="Print what was found and done as JSON.")
@click.pass_context
def init(ctx: click.Context, force: bool, make_commit: bool, as_json: bool) -> int:
    """Write overnight.toml (from the layout and environment it finds), a PROJECT_PLAN.md template and
    .mcp.json; safe to run again."""
    from .init import init as run_init

    result = run_init(ctx.obj, force=force, commit=make_commit)
    if as_json:
        out.emit_json(result)
        return out.OK
    console = out.console()
    _print_found(console, result.found)
    table = out.table("file", "action", "detail")
    for f in result.files:
        table.add_row(f.path, f.action, f.detail)
    console.print(table)
    console.print(f"state: {escape(result.state_dir)}")
    if result.commit:
        console.print(f"committed them as {result.commit[:12]} (Set up overnight)")
    elif result.uncommitted:
        files = " ".join(result.uncommitted)
        console.print(
            f"next: commit them yourself (`git add {escape(files)} && git commit -m 'Set up overnight'`) or run "
            "`overnight init --commit`: agents may not change these files, so until they are committed every gate "
            "run counts them as the agent's change."
        )
    return out.OK


def _print_found(console: Console, found: Found) -> None:
    """What init found: the layout, the environment and its interpreter, the settings written, the notes."""
    write = console.print
    write(f"layout: {escape(found.layout.describe())}")
    env = found.environment
    if env.kind == "none":
        write("environment: none found")
    else:
        facts = env.interpreter
        version = f"Python {facts.version}" if facts and facts.version else "not runnable"
        write(f"environment: {env.kind} at {escape(env.folder)} ({escape(env.how)}); interpreter "
              f"{escape(env.python)}, {version}")  # fmt: skip
    for key, value in found.settings.items():
        write(f"  set {key} = {escape(str(value))}")
    for note in found.notes:
        write(f"note: {escape(note)}")


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print the findings as JSON.")
@click.option("--run-tests", is_flag=True, help="Also run the test command on HEAD as the gate does (slow).")
@click.pass_context
def doctor(ctx: click.Context, as_json: bool, run_tests: bool) -> int:
    """Say what is installed, configured, healthy or missing, and what to do about it."""
    from .doctor import diagnose

    result = diagnose(ctx.obj, run_tests=run_tests)
    if as_json:
        out.emit_json(result)
    else:
        marks = {
            "ok": "[green]ok[/]",
            "warn": "[yellow]warn[/]",
            "missing": "[red]missing[/]",
            "error": "[red]error[/]",
        }
        table = out.table("check", "status", "detail", "what to do")
        for f in result.findings:
            table.add_row(escape(f.name), marks[f.status], escape(f.detail), escape(f.fix))
        out.console().print(table)
    return out.OK if result.healthy else out.NO


@cli.command()
@click.argument("name", type=click.Choice(SERVER_NAMES))
@click.option("--transport", type=click.Choice(["stdio", "http"]), default="stdio", show_default=True)
@click.option("--port", type=int, default=8000, show_default=True, help="Port for --transport http (127.0.0.1).")
@click.pass_context
def serve(ctx: click.Context, name: str, transport: str, port: int) -> int:
    """Run one of the MCP servers (the same as `python -m mcp_servers.NAME`)."""
    import importlib

    from .init import available_servers

    if name not in available_servers():
        raise click.UsageError(f"this installation has no `{name}` server yet")
    module = importlib.import_module(f"mcp_servers.{name}")
    args = ["--transport", transport, "--port", str(port)] + (["--repo", ctx.obj] if ctx.obj else [])
    return int(module.main(args))


# -- check, health -------------------------------------------------------------------------------------------


@cli.command()
@click.option("--base", metavar="REF", help="Compare with REF (default: the task's checkpoint, else HEAD).")
@click.option("--gate", "with_gate", is_flag=True, help="Also run the quality gate (your index is left as it is).")
@click.option("--task-file", "-f", "task_files", multiple=True, metavar="GLOB", help="The task's Files: scope.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.option("-q", "--quiet", is_flag=True, help="No progress while the gate runs (on stderr otherwise).")
@click.pass_context
def check(ctx: click.Context, base: str | None, with_gate: bool, task_files: tuple[str, ...], as_json: bool,
          quiet: bool) -> int:  # fmt: skip
    """Check the working tree against the safety policy (and the gate, with --gate).

    While the gate runs, each check's start and end and the tests done so far are shown on stderr (a live view
    on a terminal, plain lines otherwise). Exit 0 when safe (and gated), 1 when not, 2 on a usage or environment
    error."""
    from mcp_servers.core.changes import default_base
    from mcp_servers.core.gate import check_workspace, run_gate

    from .live import GateView, progress_console

    ws = _ws(ctx)
    base = base or default_base(ws.environ)
    files = list(task_files)
    person = ws.session_id is None  # at the shell, not an agent in a session: advice for the owner of the files
    report = check_workspace(ws, base=base, task_files=files, person=person)
    gate = None
    if with_gate and quiet:
        gate = run_gate(ws, task_files=files, base=base, person=person)
    elif with_gate:
        with GateView(progress_console()) as view:
            gate = run_gate(ws, task_files=files, base=base, progress=view, person=person)
    ok = report.safe and (gate is None or gate.passed)
    if as_json:
        out.emit_json(
            {
                "safe": report.safe,
                "violations": [v.model_dump() for v in report.violations],
                "files": [f.model_dump() for f in report.files],
                "gate": gate.model_dump(mode="json") if gate else None,
            }
        )
    else:
        _show_check(report, gate)
    return out.OK if ok else out.NO


def _show_check(report: ChangeReport, gate: GateReport | None) -> None:
    console = out.console()
    console.print(
        f"{report.files_total} file(s) changed (+{report.lines_added} -{report.lines_removed}) "
        f"against {report.base[:12]}"
    )
    for v in report.violations:
        console.print(f"  [red]✗[/] [bold]{escape(v.rule)}[/] {escape(v.path or '')}: {escape(for_shell(v.message))}")
        if v.fix:
            console.print(f"      fix: {escape(for_shell(v.fix))}")
    if report.violations_total > len(report.violations):
        console.print(f"  ... and {report.violations_total - len(report.violations)} more")
    console.print("[green]safe[/]" if report.safe else f"[red]not safe[/]: {report.violations_total} violation(s)")
    if gate is not None:
        for c in gate.checks:
            mark = {"passed": "[green]✓[/]", "failed": "[red]✗[/]", "skipped": "[dim]-[/]"}[c.status]
            console.print(f"  {mark} {c.name}: {escape(out.shown(for_shell(c.summary)))}")
            for f in c.findings[:10] if c.status == "failed" else []:  # the tests' output: shown, never obeyed
                where = f"{f.path}:{f.line}" if f.line else f.path or ""
                console.print(f"      {escape(out.shown(where))} {escape(out.shown(f.message))}")
        cached = " (from its receipt)" if gate.cached else ""
        console.print(
            f"[green]gate passed{cached}[/]: receipt {gate.receipt.id if gate.receipt else '?'}"
            if gate.passed
            else "[red]gate failed[/]"
        )


@cli.command()
@click.argument("paths", nargs=-1)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.pass_context
def health(ctx: click.Context, paths: tuple[str, ...], as_json: bool) -> int:
    """Coverage by module, complexity hotspots, maintainability and security findings."""
    from mcp_servers.core.health import health_report

    report = health_report(_ws(ctx), list(paths) or None)
    if as_json:
        out.emit_json(report)
        return out.OK
    console = out.console()
    total = f"{report.coverage_total:.1f}%" if report.coverage_total is not None else "not measured"
    console.print(f"{report.python_files} Python file(s) under {', '.join(report.paths) or '-'}; coverage {total}")
    if report.coverage_of:
        console.print(f"  coverage of {escape(report.coverage_of)}")
    for m in report.coverage_by_module[:10]:
        console.print(f"  coverage {m.percent:5.1f}%  {escape(m.module)} ({m.statements} statements)")
    for h in report.complexity_hotspots[:10]:
        console.print(f"  complexity {h.complexity:3d} ({h.rank})  {escape(h.path)}:{h.line} {escape(h.function)}")
    for mi in report.maintainability[:5]:
        console.print(f"  maintainability {mi.index:5.1f} ({mi.rank})  {escape(mi.path)}")
    for s in report.security[:10]:
        console.print(f"  security {s.test_id} {s.severity}  {escape(s.path)}:{s.line} {escape(s.text)}")
    for note in report.notes:
        console.print(f"  note: {escape(for_shell(note))}")
    return out.OK


# -- plan, hooks ----------------------------------------------------------------------------------------------

cli.add_command(plan_group)
cli.add_command(memory_group)
cli.add_command(notify_group)


@cli.group(name="hooks")
def hooks_group() -> None:
    """The git pre-commit hook that refuses commits without a gate receipt."""


_JSON = click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")


def _hook_said(ws: Workspace, path: Path, what: str, as_json: bool) -> int:
    if as_json:
        out.emit_json({"path": str(path), "result": what, "installed": hooks.is_installed(ws)})
    else:
        out.console().print(f"{escape(str(path))}: {what}")
    return out.OK


@hooks_group.command("install")
@click.option("--force", is_flag=True, help="Install even where core.hooksPath points into the worktree.")
@_JSON
@click.pass_context
def hooks_install(ctx: click.Context, force: bool, as_json: bool) -> int:
    """Install the pre-commit hook (an existing hook is kept and run after ours)."""
    ws = _ws(ctx)
    path, what = hooks.install(ws, force=force)
    return _hook_said(ws, path, what, as_json)


@hooks_group.command("uninstall")
@_JSON
@click.pass_context
def hooks_uninstall(ctx: click.Context, as_json: bool) -> int:
    """Remove the pre-commit hook (restoring the one it replaced)."""
    ws = _ws(ctx)
    path, what = hooks.uninstall(ws)
    return _hook_said(ws, path, what, as_json)


@hooks_group.command("status")
@_JSON
@click.pass_context
def hooks_status(ctx: click.Context, as_json: bool) -> int:
    """Whether the pre-commit hook is installed (exit 1 when it is not)."""
    ws = _ws(ctx)
    installed = hooks.is_installed(ws)
    what = "installed" if installed else "not installed: `overnight hooks install` installs it"
    _hook_said(ws, ws.repo.hooks_dir() / "pre-commit", what, as_json)
    return out.OK if installed else out.NO


@hooks_group.command("run", hidden=True)
@click.argument("hook", type=click.Choice(["pre-commit"]))
@click.pass_context
def hooks_run(ctx: click.Context, hook: str) -> int:
    """What the installed hook runs: refuse the commit unless its tree has a passing receipt."""
    ok, message = hooks.check_staged(_ws(ctx), dict(os.environ))
    out.err_console().print(escape(message))
    return out.OK if ok else out.NO


# -- run, stop, resume, status, report, cron, demo -------------------------------------------------------------


def _sessions() -> None:
    from .run_commands import COMMANDS

    for command in COMMANDS:
        cli.add_command(command)
    from .daemon_commands import COMMANDS as DAEMON

    for command in DAEMON:
        cli.add_command(command)
    from .morning_commands import COMMANDS as MORNING

    for command in MORNING:
        cli.add_command(command)
    from .gc_commands import COMMANDS as GC

    for command in GC:
        cli.add_command(command)
    from .ui_commands import COMMANDS as UI

    for command in UI:
        cli.add_command(command)


_sessions()
