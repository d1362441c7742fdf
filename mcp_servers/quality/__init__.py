"""The `quality` MCP server: `python -m mcp_servers.quality [--transport http --port N]`."""

from __future__ import annotations

from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    """Run the server (stdio by default). Logs go to stderr; stdout carries the protocol."""
    from ..serving import parse_args, serve, setup_logging
    from .server import build

    args = parse_args("quality", argv)
    setup_logging()
    serve(build(args.repo), args.transport, args.port, uds=args.uds, repo=args.repo)
    return 0
