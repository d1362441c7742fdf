"""A scripted stand-in for the OpenAI Responses API, so the real `codex` CLI runs offline in tests.

Use (the same script style as `fake_anthropic`):

    with FakeOpenAI([{"tool": "exec_command", "input": {"cmd": "ls"}},
                     {"tool": "mcp__quality__get_policy", "input": {}}, "done"]) as model:
        # a custom provider in $CODEX_HOME/config.toml: base_url = model.url, wire_api = "responses"
        subprocess.run([codex, "exec", "--json", ...], env=...)

Each `POST /v1/responses` takes the next turn of the script. A turn is a final text (`"done"`), one tool call
(`{"tool": NAME, "input": {...}}`), a list of those (text first), or a `Reply`, `Hang`, `ApiError` or `Dynamic`
(the classes of `fake_anthropic`). A tool named `mcp__<server>__<tool>` is sent as Codex's namespaced function
call (`"namespace": "mcp__<server>", "name": "<tool>"`); any other name (`exec_command`) as a plain one. When the
script runs out, the fake ends the loop with a marker text and counts an overrun.

What Codex 0.171.0 sends (measured; see /work/shared/notes/agent-cli-recipes.md): `POST <base_url>/responses`
with `stream: true`, `model`, `instructions`, `input` (the conversation: messages, `function_call` items and their
`function_call_output`s), and `tools` (`exec_command`, ..., MCP servers as `{"type": "namespace", "name":
"mcp__quality", "tools": [...]}`). It answers server-sent events: `response.created`, one
`response.output_item.done` per item, `response.completed` with `usage`. Errors: an HTTP 429 is not retried (a
`usage_limit_reached` body makes codex say "You've hit your usage limit"); a 5xx is retried up to the provider's
`request_max_retries`; an SSE `response.failed` is retried up to `stream_max_retries`. Also measured: an MCP
server's tools are in `tools` only if it answered within about a second of codex's start, unless its entry says
`required = true` (then codex waits, or fails the run); a flat `mcp__quality__commit` call is refused ("unsupported
call"), the namespaced one works; a command can write lines to codex's own stdout through /proc/<pid>/fd/1.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from .fake_anthropic import ApiError, Dynamic, Hang, Reply, ToolCall, Turn, TurnLike, to_turn

__all__ = ["ApiError", "Dynamic", "FakeOpenAI", "Hang", "RecordedRequest", "Reply", "StreamError", "ToolCall",
           "TurnLike", "usage_limit"]  # fmt: skip


@dataclass(frozen=True)
class StreamError:
    """A 200 stream that fails: `response.failed` with `code` (e.g. `rate_limit_exceeded`, `server_error`)."""

    code: str = "server_error"
    message: str = "the fake model failed"
    times: int | None = 1


def usage_limit(resets_in_s: int = 3600, plan_type: str = "plus") -> ApiError:
    """HTTP 429 as ChatGPT's backend says a usage limit: codex reads `usage_limit_reached` and `resets_at`."""
    return ApiError(status=429, error_type="usage_limit_reached", message="The usage limit has been reached",
                    headers={"x-fake-plan-type": plan_type, "x-fake-resets-in": str(resets_in_s)})  # fmt: skip


@dataclass
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: Any
    turn: int | None = None
    received_at: float = field(default_factory=time.monotonic)

    @property
    def input(self) -> list[dict[str, Any]]:
        items = self.body.get("input") if isinstance(self.body, dict) else None
        return [i for i in items or [] if isinstance(i, dict)]

    @property
    def tool_names(self) -> list[str]:
        """Every tool offered, MCP ones as `mcp__<server>__<tool>` (namespaces flattened)."""
        names: list[str] = []
        tools = self.body.get("tools") if isinstance(self.body, dict) else None
        for tool in tools or []:
            if not isinstance(tool, dict):
                continue
            if tool.get("type") == "namespace":
                inner = [t for t in tool.get("tools") or [] if isinstance(t, dict)]
                names += [f"{tool.get('name')}__{t.get('name')}" for t in inner]
            else:
                names.append(str(tool.get("name")))
        return names

    def outputs(self) -> dict[str, str]:
        """call_id -> the output the client sent back for it."""
        return {str(i.get("call_id")): _output_text(i.get("output")) for i in self.input
                if str(i.get("type", "")).endswith("_call_output")}  # fmt: skip


def _output_text(output: Any) -> str:
    if isinstance(output, list):
        return "\n".join(str(o.get("text", "")) for o in output if isinstance(o, dict))
    return str(output or "")


class FakeOpenAI:
    """The scripted Responses API server on 127.0.0.1 (an ephemeral port)."""

    def __init__(self, script: Iterable[TurnLike | StreamError] = (), model_id: str = "fake-model") -> None:
        self.model_id = model_id
        self.requests: list[RecordedRequest] = []
        self.overruns = 0
        self.hang_started = threading.Event()
        self._lock = threading.Lock()
        self._turns: list[Turn | StreamError] = []
        self._next = 0
        self._repeat = 0  # times the current error turn has answered
        self._stopping = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self.set_script(script)

    def set_script(self, script: Iterable[TurnLike | StreamError]) -> None:
        with self._lock:
            self._turns = [t if isinstance(t, StreamError) else to_turn(t) for t in script]
            self._next = self._repeat = 0

    @property
    def remaining(self) -> int:
        return len(self._turns) - self._next

    def _take(self) -> tuple[int | None, Turn | StreamError | None]:
        with self._lock:
            if self._next >= len(self._turns):
                self.overruns += 1
                return None, None
            index, turn = self._next, self._turns[self._next]
            times = getattr(turn, "times", 1) if isinstance(turn, (ApiError, StreamError, Hang)) else 1
            self._repeat += 1
            if times is not None and self._repeat >= times:
                self._next += 1
                self._repeat = 0
            return index, turn

    # -- lifecycle

    def __enter__(self) -> FakeOpenAI:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        handler = type("Handler", (_Handler,), {"fake": self})
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self._stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    @property
    def url(self) -> str:
        assert self._server is not None, "the fake is not started"
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    def outputs(self) -> dict[str, str]:
        """Every tool output the model was sent, by call_id (each request repeats the conversation)."""
        found: dict[str, str] = {}
        for request in self.requests:
            found.update(request.outputs())
        return found


def _items(reply: Reply, turn: int | None) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    if reply.text:
        items.append({"type": "message", "role": "assistant", "id": f"msg_{turn}",
                      "content": [{"type": "output_text", "text": reply.text, "annotations": []}]})  # fmt: skip
    for n, call in enumerate(reply.tool_calls):
        ident = call.id or f"call_{turn}_{n}"
        item = {"type": "function_call", "id": f"fc_{turn}_{n}", "call_id": ident,
                "arguments": json.dumps(dict(call.input))}  # fmt: skip
        if call.tool.startswith("mcp__") and call.tool.count("__") >= 2:
            namespace, _, name = call.tool.rpartition("__")
            item.update(name=name, namespace=namespace)
        else:
            item["name"] = call.tool
        items.append(item)
    return items


class _Handler(BaseHTTPRequestHandler):
    fake: FakeOpenAI
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self._json(404, {"error": {"message": f"fake-openai has no route GET {self.path}", "type": "not_found"}})

    def do_POST(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw or b"null")
        except ValueError:
            body = raw.decode(errors="replace")
        headers = {k.lower(): v for k, v in self.headers.items()}
        if urlsplit(self.path).path.rstrip("/") != "/v1/responses":
            self.fake.requests.append(RecordedRequest("POST", self.path, headers, body))
            self._json(404, {"error": {"message": f"fake-openai has no route POST {self.path}", "type": "not_found"}})
            return
        index, turn = self.fake._take()
        request = RecordedRequest("POST", self.path, headers, body, index)
        self.fake.requests.append(request)
        try:
            while isinstance(turn, Dynamic):
                turn = to_turn(turn.make(request))  # type: ignore[arg-type]
            if turn is None:
                turn = Reply(text="[fake-openai: the script has no more turns]")
            if isinstance(turn, ApiError):
                self._api_error(turn)
            elif isinstance(turn, StreamError):
                self._stream(
                    [
                        (
                            "response.failed",
                            {
                                "type": "response.failed",
                                "response": {
                                    "id": "resp_failed",
                                    "status": "failed",
                                    "error": {"code": turn.code, "message": turn.message},
                                },
                            },
                        )
                    ]
                )
            elif isinstance(turn, Hang):
                self.fake.hang_started.set()
                deadline = time.monotonic() + turn.timeout
                while time.monotonic() < deadline and not self.fake._stopping.wait(0.1):
                    pass
                self.close_connection = True
            else:
                self._reply(body if isinstance(body, dict) else {}, turn, index)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def _api_error(self, turn: ApiError) -> None:
        error: dict[str, Any] = {"type": turn.error_type, "message": turn.message, "code": turn.error_type}
        headers = dict(turn.headers)
        if turn.error_type == "usage_limit_reached":
            error["plan_type"] = headers.pop("x-fake-plan-type", "plus")
            resets_in = int(headers.pop("x-fake-resets-in", "3600"))
            error.update(resets_in_seconds=resets_in, resets_at=int(time.time()) + resets_in)
        self._json(turn.status, {"error": error}, headers)

    def _reply(self, body: dict[str, Any], reply: Reply, turn: int | None) -> None:
        items = _items(reply, turn)
        tokens_in = reply.input_tokens if reply.input_tokens is not None else 100
        tokens_out = reply.output_tokens if reply.output_tokens is not None else 20
        response = {"id": f"resp_{turn}", "object": "response", "model": self.fake.model_id, "status": "completed",
                    "output": items}  # fmt: skip
        events = [
            (
                "response.created",
                {"type": "response.created", "response": {**response, "output": [], "status": "in_progress"}},
            )
        ]
        events += [("response.output_item.done", {"type": "response.output_item.done", "output_index": n, "item": i})
                   for n, i in enumerate(items)]  # fmt: skip
        usage = {
            "input_tokens": tokens_in,
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": tokens_out,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": tokens_in + tokens_out,
        }
        events.append(("response.completed", {"type": "response.completed", "response": {**response, "usage": usage}}))
        if reply.delay:
            time.sleep(reply.delay)
        self._stream(events)

    def _stream(self, events: list[tuple[str, Mapping[str, Any]]]) -> None:
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.send_header("cache-control", "no-cache")
        self.send_header("connection", "close")
        self.end_headers()
        for name, data in events:
            self.wfile.write(f"event: {name}\ndata: {json.dumps(data)}\n\n".encode())
        self.wfile.flush()
        self.close_connection = True

    def _json(self, status: int, payload: Any, headers: Mapping[str, str] | None = None) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)
        self.wfile.flush()
