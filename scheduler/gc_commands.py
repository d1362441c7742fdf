"""`overnight gc`: prune old agent-run logs and reports, and lock files of worktrees gone (`gc.py`)."""

from __future__ import annotations

import click
from rich.markup import escape

from mcp_servers.core.workspace import Workspace

from . import output as out


def _size(n: int) -> str:
    if n < 1024:
        return f"{n} bytes"
    size = float(n)
    for unit in ("KB", "MB", "GB"):
        size /= 1024
        if size < 1024 or unit == "GB":
            break
    return f"{size:.1f} {unit}"


@click.command()
@click.option(
    "--older-than",
    "days",
    type=click.FloatRange(min=0, max=3650),
    metavar="DAYS",
    help="Prune what is older than DAYS (default: `keep_days` under [state] in overnight.toml, 30).",
)
@click.option("--dry-run", is_flag=True, help="Say what would be removed; remove nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print what was removed as JSON.")
@click.pass_context
def gc(ctx: click.Context, days: float | None, dry_run: bool, as_json: bool) -> int:  # fmt: skip
    """Prune the state directory: agent-run logs and reports older than DAYS (a report whose branch waits for
    review stays), lock files of worktrees that are gone, empty folders. Never the state database."""
    from .gc import DAY, collect

    ws = Workspace.open(ctx.find_root().obj)
    done = collect(ws, None if days is None else days * DAY, dry_run=dry_run)
    if as_json:
        out.emit_json(done)
        return out.OK
    console = out.console()
    verb = "would remove" if dry_run else "removed"
    for item in done.removed:
        console.print(f"{verb} {escape(item.path)} ({item.kind}, {_size(item.bytes)}): {escape(item.why)}")
    for note in done.kept:
        console.print(f"kept: {escape(note)}")
    what = f"{len(done.removed)} item(s), {_size(done.freed_bytes)}"
    if dry_run:
        console.print(f"dry run: {what} would be freed (older than {done.older_than_days:g} days); nothing removed")
    elif done.removed:
        console.print(f"freed {what} in {escape(done.state_dir)} (older than {done.older_than_days:g} days)")
    else:
        console.print(f"nothing to prune in {escape(done.state_dir)} (older than {done.older_than_days:g} days)")
    return out.OK


COMMANDS = [gc]
