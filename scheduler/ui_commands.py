"""`overnight ui`: the command center, a local web app (`scheduler/ui/`), served until Ctrl-C.

Its first line on stdout is the URL to open, with a one-time login token; everything else goes to stderr."""

from __future__ import annotations

import errno
import ipaddress
import socket
import sys
import threading

import click

from mcp_servers.core.errors import OvernightError
from mcp_servers.core.workspace import Workspace

from . import output as out


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on host:port (port 0: any free one); a clear error when the port is taken."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP named: asyncio sets TCP_NODELAY only on sockets that say so, and without it the body of each
    # answer waits on the browser's delayed ACK of its headers (40 ms a page on Linux)
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as e:
        sock.close()
        if e.errno == errno.EADDRINUSE:
            raise OvernightError(f"port {port} on {host} is taken (another `overnight ui`?): pass --port N for "
                                 "another, or --port 0 for any free one") from None  # fmt: skip
        raise OvernightError(f"cannot listen on {host}:{port} ({e.strerror}): check `host` under [ui] in "
                             "overnight.toml") from None  # fmt: skip
    sock.listen(64)
    sock.set_inheritable(True)
    return sock


@click.command("ui")
@click.option("--port", type=click.IntRange(0, 65535), help="The port (0: any free one; default: `port` under "
              "[ui] in overnight.toml, 8765).")  # fmt: skip
@click.option("--no-open", is_flag=True, help="Do not open a browser; just print the URL.")
@click.pass_context
def ui(ctx: click.Context, port: int | None, no_open: bool) -> int:
    """The command center: a local web page of the night (Now, Tasks, ...). Prints the URL to open (with a
    one-time login token) as its first line, and serves on 127.0.0.1 until Ctrl-C."""
    import uvicorn

    from .ui.app import make_app
    from .ui.security import Keys
    from .ui.views.index import ReportIndex

    ws = Workspace.open(ctx.find_root().obj)
    settings = ws.settings.ui
    sock = bind(settings.host, settings.port if port is None else port)
    bound = sock.getsockname()[1]
    keys = Keys()
    keys.allow(bound, settings.allowed_hosts)
    shown_host = "127.0.0.1" if settings.host in {"0.0.0.0", "::"} else settings.host  # noqa: S104 (a comparison)
    shown_host = f"[{shown_host}]" if ":" in shown_host else shown_host
    keys.hosts.add(f"{shown_host}:{bound}")
    url = f"http://{shown_host}:{bound}/login?token={keys.login}"
    print(url, flush=True)  # the first line: what a person (or a test) opens
    err = out.err_console()
    err.print(f"overnight ui: serving {ws.repo.root} at http://{shown_host}:{bound}/ (Ctrl-C stops it); the link "
              "above logs you in once", highlight=False)  # fmt: skip
    if not ipaddress.ip_address(settings.host).is_loopback:
        err.print(f"overnight ui: warning: listening on {settings.host}, not only this machine (`host` under [ui]): "
                  "anyone who can reach it still needs the one-time link, and only the Host names in "
                  "`allowed_hosts` are answered", highlight=False)  # fmt: skip
    if not no_open:
        import webbrowser

        webbrowser.open(url)
    index = ReportIndex(ws.state_dir)  # read once now, in the background: 1,000 reports take seconds
    threading.Thread(target=index.refresh, name="overnight-ui-reports", daemon=True).start()
    config = uvicorn.Config(make_app(ws, keys, index), log_level="warning", access_log=False, lifespan="off",
                            timeout_graceful_shutdown=2, log_config=None)  # fmt: skip
    server = uvicorn.Server(config)
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()
    print("overnight ui: stopped", file=sys.stderr)
    return out.OK


COMMANDS = [ui]
