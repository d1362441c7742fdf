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
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Generic, Literal, TypeVar

from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import CallToolResult, TextContent
from pydantic import BaseModel

from .core.errors import OvernightError

if TYPE_CHECKING:
    from mcp.server import MCPServer

Found = TypeVar("Found")


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


class Answers(Generic[Found]):
    """A tool's answer as the result the SDK sends, made once per answer object of the core.

    The SDK turns a returned model into a `CallToolResult` on every call: it validates the model, dumps it, and
    writes it again as indented JSON text. A tool whose core function hands back the same object while nothing
    changed (next_task) returns the result made for it last time instead, its text compact JSON. `shape` turns
    the core's answer into the tool's model. Declare such a tool `-> Annotated[CallToolResult, Model]`: the
    output schema is still the model's.
    """

    def __init__(self, shape: Callable[[Found], BaseModel]) -> None:
        self._shape = shape
        self._last: tuple[Found, CallToolResult] | None = None

    def result(self, found: Found) -> CallToolResult:
        last = self._last
        if last is not None and last[0] is found:
            return last[1]
        made = result_of(self._shape(found))
        self._last = (found, made)
        return made


def result_of(answer: BaseModel) -> CallToolResult:
    """The answer as the result a tool sends: structured content, and the same as compact JSON text."""
    return CallToolResult(
        content=[TextContent(type="text", text=answer.model_dump_json())],
        structured_content=answer.model_dump(mode="json"),
    )


def light_output_schemas(server: MCPServer) -> MCPServer:
    """Publish every tool's output schema in the form a client validates fastest, meaning the same.

    The Python SDK's client checks every structured answer against the tool's output schema with `jsonschema`,
    and pydantic writes schemas it walks slowly: each nested model is a `$ref` into `$defs` (resolved again for
    every list item) and each optional field an `anyOf` of two branches. On `next_task` that check cost more
    than the call itself. The SDK reads `fn_metadata.output_schema` live, so rewriting it after registration
    is enough.
    """
    for tool in server._tool_manager.list_tools():  # (the SDK has no public setter)
        schema = tool.fn_metadata.output_schema
        if schema is not None:
            model = tool.fn_metadata.output_model
            if isinstance(model, type) and issubclass(model, BaseModel):
                schema = without_excluded(schema, model.model_json_schema(mode="serialization"))
            tool.fn_metadata.output_schema = flat_schema(schema)
    return server


def without_excluded(schema: dict[str, Any], serialized: dict[str, Any]) -> dict[str, Any]:
    """`schema` without the properties its models never send (fields declared `exclude=True`): those the
    serialization schema of the same models lacks."""

    def trim(node: dict[str, Any], sent: dict[str, Any]) -> dict[str, Any]:
        properties = node.get("properties")
        if not isinstance(properties, dict) or not isinstance(sent.get("properties"), dict):
            return node
        kept = {k: v for k, v in properties.items() if k in sent["properties"]}
        return {**node, "properties": kept, "required": [r for r in node.get("required", []) if r in kept]}

    out = trim(schema, serialized)
    defs, sent_defs = schema.get("$defs", {}), serialized.get("$defs", {})
    if defs:
        out["$defs"] = {name: trim(d, sent_defs.get(name, d)) for name, d in defs.items()}
    return out


def flat_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """`schema` with every local `$ref` replaced by its definition, every `anyOf: [{type: T, ...}, {type: null}]`
    written as `{type: [T, null], ...}` and every `anyOf` of bare types as one list of types. A recursive
    model's schema cannot be inlined: ValueError."""
    defs = schema.get("$defs", {})

    def flat(node: Any, seen: tuple[str, ...]) -> Any:
        if isinstance(node, list):
            return [flat(item, seen) for item in node]
        if not isinstance(node, dict):
            return node
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/$defs/"):
            name = ref.removeprefix("#/$defs/")
            if name in seen:
                raise ValueError(f"the output schema refers to itself through {name!r}: it cannot be inlined")
            rest = {k: flat(v, seen) for k, v in node.items() if k != "$ref"}
            return {**flat(defs[name], (*seen, name)), **rest}
        out = {k: flat(v, seen) for k, v in node.items() if k != "$defs"}
        branches = out.get("anyOf")
        if isinstance(branches, list) and all(isinstance(b, dict) and set(b) == {"type"} for b in branches):
            del out["anyOf"]
            out["type"] = [b["type"] for b in branches]
        elif isinstance(branches, list) and len(branches) == 2 and {"type": "null"} in branches:
            other = branches[1 - branches.index({"type": "null"})]
            if isinstance(other.get("type"), str):
                del out["anyOf"]
                out = {**other, **out, "type": [other["type"], "null"]}
                if "const" in out:
                    out["enum"] = [out.pop("const")]
                if "enum" in out:
                    out["enum"] = [*out["enum"], None]
        return out

    return dict(flat(schema, ()))


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
    parser.add_argument("--uds", help="for --transport http: listen on this Unix socket instead of a port")
    parser.add_argument("--repo", help="the repository to serve (default: $OVERNIGHT_REPO, else the working directory)")
    return parser.parse_args(argv)


TOKEN_ENV = "OVERNIGHT_HTTP_TOKEN"  # noqa: S105 (the variable's name, not a token)
TOKEN_FILE = "http-token"  # noqa: S105 (a file name)


def http_token(repo: str | None, environ: Mapping[str, str] | None = None) -> str:
    """The bearer token HTTP clients must send: $OVERNIGHT_HTTP_TOKEN (the scheduler sets one per run), else the
    repository's own, generated on first use and kept in the state directory with mode 0600."""
    from .core.workspace import Workspace, read_or_create_token

    environ = os.environ if environ is None else environ
    given = environ.get(TOKEN_ENV, "")
    if given:
        return given
    return read_or_create_token(Workspace.open(repo).state_dir / TOKEN_FILE)


class BearerAuth:
    """ASGI middleware: every HTTP request must carry `Authorization: Bearer <token>`, else 401, before the MCP
    app sees it. Another local user (or a web page, through DNS rebinding) cannot call `commit` as the owner."""

    def __init__(self, app: Any, token: str) -> None:
        if not token:
            raise ValueError("an HTTP server needs a token")
        self.app = app
        self.expected = f"Bearer {token}".encode()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            import hmac

            got = dict(scope.get("headers") or []).get(b"authorization", b"")
            if not hmac.compare_digest(got, self.expected):
                body = b'{"error": "unauthorized: send Authorization: Bearer <token> (overnight serve prints where)"}'
                await send({"type": "http.response.start", "status": 401, "headers": [
                    (b"content-type", b"application/json"), (b"www-authenticate", b"Bearer")]})  # fmt: skip
                await send({"type": "http.response.body", "body": body})
                return
        await self.app(scope, receive, send)


def serve(server: MCPServer, transport: str, port: int, *, uds: str | None = None, repo: str | None = None) -> None:
    """Run until the client goes away (stdio) or the process is stopped (HTTP: loopback or a Unix socket only,
    and never without a bearer token)."""
    if transport != "http":
        server.run()
        return
    import uvicorn

    token = http_token(repo)
    app = BearerAuth(server.streamable_http_app(host="127.0.0.1"), token)
    where = uds or f"127.0.0.1:{port}"
    logging.getLogger("overnight").warning("serving %s over HTTP on %s (bearer token required)", server.name, where)
    config = uvicorn.Config(app, host="127.0.0.1", port=port, uds=uds, log_level=log_level().lower(),
                            lifespan="on", access_log=False)  # fmt: skip
    uvicorn.Server(config).run()
