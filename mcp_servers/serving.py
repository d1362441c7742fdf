"""What the three MCP servers share: turning core errors into `ToolError`, logging to stderr, transports.

This is adapter code (it imports `mcp`); the core never imports it. Servers never print to stdout: on stdio
it carries the protocol.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Literal

from mcp.server.mcpserver.exceptions import ToolError

from .core.errors import OvernightError

if TYPE_CHECKING:
    from mcp.server import MCPServer


@contextlib.contextmanager
def tool_errors() -> Iterator[None]:
    """Raise every OvernightError as a ToolError, message intact.

    In mcp 2.3.0 only a ToolError's message reaches the model; any other exception arrives as a bare
    "Error executing tool <name>" (python-sdk PR #3314), which no agent can act on.
    """
    try:
        yield
    except OvernightError as e:
        raise ToolError(str(e)) from e


def log_level() -> Literal["DEBUG", "WARNING"]:
    """WARNING, or DEBUG with OVERNIGHT_DEBUG set. Also keeps uvicorn's access log (stdout) quiet over HTTP."""
    return "DEBUG" if os.environ.get("OVERNIGHT_DEBUG") else "WARNING"


def setup_logging() -> None:
    logging.basicConfig(stream=sys.stderr, level=log_level(), format="%(asctime)s %(name)s %(levelname)s %(message)s")


def parse_args(name: str, argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog=f"python -m mcp_servers.{name}", description=f"overnight's `{name}` MCP server"
    )
    parser.add_argument(
        "--transport",
        choices=["stdio", "http"],
        default="stdio",
        help="stdio (default), or streamable HTTP on 127.0.0.1",
    )
    parser.add_argument("--port", type=int, default=8000, help="port for --transport http (default 8000)")
    parser.add_argument("--repo", help="the repository to serve (default: $OVERNIGHT_REPO, else the working directory)")
    return parser.parse_args(argv)


def serve(server: MCPServer, transport: str, port: int) -> None:
    """Run until the client goes away (stdio) or the process is stopped (HTTP, loopback only)."""
    if transport == "http":
        server.run(transport="streamable-http", host="127.0.0.1", port=port)
    else:
        server.run()
