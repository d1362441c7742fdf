"""`overnight notify test`: a test message to each `[notify]` channel, and whether it arrived (issue 12)."""

from __future__ import annotations

import dataclasses

import click
from rich.markup import escape

from mcp_servers.core.errors import UsageError
from mcp_servers.core.workspace import Workspace

from . import output as out


@click.group(name="notify")
def notify_group() -> None:
    """Notifications: the channels of `[notify]` in overnight.toml (e-mail, Slack, ntfy, signed webhooks, ...)."""


@notify_group.command("test")
@click.option("--channel", "only", metavar="NAME", help="Only this channel.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def notify_test(ctx: click.Context, only: str | None, as_json: bool) -> int:
    """Send a test message to each channel (whatever events it hears) and say per channel whether it was
    delivered; exit 1 when any was not."""
    from .notify import check

    ws = Workspace.open(ctx.find_root().obj)
    names = [c.name for c in ws.settings.notify.channels]
    if not names:
        raise UsageError("there is no channel to test: add a [[notify.channels]] table (name, url, events) to "
                         "overnight.toml and commit it")  # fmt: skip
    if only is not None and only not in names:
        raise UsageError(f"there is no channel named {only!r}: the channels are {', '.join(names)}")
    results = check(ws, only)
    if as_json:
        out.emit_json([dataclasses.asdict(r) for r in results])
    else:
        console = out.console()
        for r in results:
            state = "delivered" if r.delivered else f"NOT delivered: {r.detail}"
            console.print(f"{escape(r.channel)}: {escape(out.shown(state))}")
    return out.OK if all(r.delivered for r in results) else out.NO
