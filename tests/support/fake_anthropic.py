"""A scripted stand-in for the Anthropic Messages API, so the real `claude` CLI runs offline in tests.

Use:

    with FakeAnthropic([{"tool": "mcp__quality__get_policy", "input": {}}, "done"]) as model:
        subprocess.run([claude, "-p", PROMPT, "--output-format", "stream-json", "--verbose", ...],
                       env={**client_env, **model.env()}, ...)
        model.tool_result_text("toolu_fake_0_0")   # what the tool returned to the model

A script is a list of turns; each main-loop request takes the next one. A turn is a final text (`"done"`), one
tool call (`{"tool": NAME, "input": {...}}`), a list of those (one assistant message with several blocks, text
first), or a `Reply` (text, tool calls, token usage, a delay), a `Hang` or an `ApiError`. Tool calls get the ids
`toolu_fake_<turn>_<n>` unless given an `id`. When the script runs out, the fake ends the loop with a marker text
and counts an overrun. Every request is recorded (`.requests`, `.main_requests`, `.side_requests`,
`.subagent_requests`) with its path, headers and parsed body.

What Claude Code 2.1.330 sends (measured with this server, every request logged, and strace):

* Traffic. With `CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1` (set by `env()`) a `-p` run opens connections to
  127.0.0.1 only, and the only route it calls is `POST /v1/messages?beta=true`: one request per model turn, no
  `count_tokens`, no `/v1/models`, no title or bash-prefix side queries. Without that variable it also sends
  `HEAD /api/hello` to the base URL and looks up api.anthropic.com in DNS, so keep it set. (`count_tokens`,
  `/v1/models` and HEAD are answered anyway, and recorded.)
* Headers: `x-api-key: $ANTHROPIC_API_KEY` (the dummy key is accepted, and the init line says
  `apiKeySource: "ANTHROPIC_API_KEY"`), `anthropic-version: 2023-06-01`, `anthropic-beta: claude-code-20250219,
  interleaved-thinking-2025-05-14,context-management-2025-06-27,...,advanced-tool-use-2025-11-20,...`,
  `user-agent: claude-cli/2.1.330 (external, sdk-cli)`, `x-app: cli`, `x-claude-code-session-id: <session id>`,
  `x-stainless-retry-count`, `x-stainless-timeout: 600`, `connection: keep-alive`. A subagent's requests add
  `x-claude-code-agent-id`. No header names the kind of query.
* Main-loop body: `model` (`claude-opus-5-5` when no `--model` is given), `stream: true`, `max_tokens: 128000`,
  `thinking: {"type": "adaptive", ...}`, `context_management`, `output_config: {"effort": "medium"}`,
  `metadata.user_id` (a JSON string with device_id and session_id), `system` (text blocks; the first is
  `x-anthropic-billing-header: cc_version=...; cc_entrypoint=sdk-cli;`), and `tools` with the 12 built-ins:
  Agent, Bash, Edit, ListAgents, Read, ReportFindings, ScheduleWakeup, Skill, ToolSearch, Workflow,
  DeferredToolPlaceholder, Write. `messages` starts with a user message (system-reminder blocks for git status and
  commit attribution, then the prompt as the last text block) followed by a `{"role": "system"}` message (the
  environment, and the deferred tools); the conversation follows. Do not validate roles.
* MCP tools are never in `tools`: they are deferred behind ToolSearch and only named, one a line, in the
  `role: system` message ("The following deferred tools are now available via ToolSearch ...:
  ...mcp__quality__get_policy..."). A `tool_use` naming one is executed anyway; `system/init.tools` lists them.
* Tool results come back in the next request as `{"type": "tool_result", "tool_use_id", "content", "is_error"?}`
  blocks, `content` a string (an MCP tool's structured result as JSON text) or a list of text blocks. A call
  refused by a rule: `is_error: true`, "Permission to use Bash with command <command> has been denied.". A call
  blocked by a PreToolUse hook that exits 2: `is_error: true`, "PreToolUse:Bash hook error: [<hook command>]:
  <its stderr>". Both land in the result's `permission_denials`.
* Side queries: none in plain `-p` runs. A `prompt` hook makes one: same model, no `tools`, no `thinking`, its own
  system prompt ("You are evaluating a hook in Claude Code ..."), `output_config.format = {"type": "json_schema",
  "schema": {ok, reason, impossible}}`, `stream: true`. The binary has other query sources (session titles,
  compaction, memory extraction, tool-use summaries, ...) that these runs never triggered; they would also come
  without `tools`. So: a request with an `x-claude-code-agent-id` header is a subagent's, one with a non-empty
  `tools` list is the main loop's, anything else is a side query, answered by `side_reply` (by default a
  schema-valid JSON value when structured output is asked for, e.g. `{"ok": true, "reason": "ok"}`, else "ok")
  without consuming a turn. See `classify_request`.
* Subagents (the Agent tool) run in the background, their requests racing the main loop's; they are answered like
  side queries. When one ends, the main loop gets another turn (a notification), and the stream has a second
  `system/init` and a second `result` (`result_index: 1`): `usage` and `num_turns` are per result,
  `total_cost_usd` and `modelUsage` are running totals.
* Usage: the result's `usage` sums `message_start.message.usage.input_tokens` and `message_delta.usage.
  output_tokens` over the turns; `total_cost_usd` is priced client-side from the model name, so fake tokens cost
  too (about $0.05 a turn with the default estimate of ~12k input tokens for the system prompt and tools).
* Errors: a 500 or 529 is retried after ~0.6 s (a `system/api_retry` line with `error_status`), up to
  `CLAUDE_CODE_MAX_RETRIES` (default 10). With `CLAUDE_CODE_MAX_RETRIES=0` the run ends at once: exit 1, a result
  with `subtype: "success"` but `is_error: true`, `terminal_reason: "api_error"`, `api_error_status: 500`,
  `result: "API Error: 500 <message> ..."`. A 400 is re-sent about 6 times within 0.3 s with fewer betas and then
  with tool search off (all 21 tools, MCP ones included, in `tools`), so script it with `times=None`.
* A stream cut after `message_start` (see `Hang(after_headers=True, timeout=...)`) is re-asked at once without
  streaming (`stream: false`, answered with a plain JSON message from the next turn), with no api_retry line. A
  connection closed before any response is retried as a stream, with an api_retry line (`error: "unknown"`).
* A hang: the CLI waits (no watchdog fired within 150 s, before the headers or mid-stream; the SDK's own timeout
  is 600 s), so the caller's wall clock must end it. SIGTERM ends it at once with exit 143 and no result line.
* Outside HOME: every session writes under $TMPDIR/claude-<uid>/<its cwd, slugged>/ (/tmp when TMPDIR is unset;
  task output, background agents' transcripts) and $TMPDIR/cc-socks/ (a messaging socket), so give each run its
  own TMPDIR. The session transcript goes to $HOME/.claude/projects/.
"""

from __future__ import annotations

import json
import select
import socket
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, TypeAlias
from urllib.parse import urlsplit

DUMMY_API_KEY = "sk-ant-fake-offline-key"


# --------------------------------------------------------------------------------------------- the script


@dataclass(frozen=True)
class ToolCall:
    """One `tool_use` block: call `tool` (e.g. `Bash`, `mcp__quality__get_policy`) with `input`."""

    tool: str
    input: Mapping[str, Any] = field(default_factory=dict)
    id: str | None = None  # the tool_use id; generated (`toolu_fake_<turn>_<n>`) when None


@dataclass(frozen=True)
class Reply:
    """An assistant message: optional text, then tool calls. No tool calls means the turn ends the loop."""

    text: str = ""
    tool_calls: tuple[ToolCall, ...] = ()
    input_tokens: int | None = None  # default: a rough estimate from the request's size
    output_tokens: int | None = None  # default: a rough estimate from the reply's size
    delay: float = 0.0  # seconds to think before answering (a slow model); cut short if the client goes away

    @property
    def stop_reason(self) -> str:
        return "tool_use" if self.tool_calls else "end_turn"


@dataclass(frozen=True)
class Hang:
    """Never answer: hold the request open until the client goes away, the server stops, or `timeout` passes.

    `after_headers=True` sends the 200, the SSE headers and `message_start`, then stalls mid-stream (a model
    that started answering and froze); otherwise nothing at all is sent. When `timeout` passes the connection is
    closed: the CLI then re-asks (without streaming after a cut stream, with an api_retry before any header).
    `times` is how many consecutive main-loop requests this turn answers; None means every request from here on.
    `FakeAnthropic.hang_started` / `hang_ended` / `hang_end_reason` ("client", "timeout", "server") tell a test
    where the hang stands.
    """

    timeout: float = 600.0
    after_headers: bool = False
    times: int | None = None


@dataclass(frozen=True)
class ApiError:
    """Answer with an HTTP error in the API's shape, e.g. 529 overloaded_error or 500 api_error.

    `times` is how many consecutive main-loop requests get this error (the CLI retries 5xx/529 with backoff,
    up to `CLAUDE_CODE_MAX_RETRIES`, default 10, and re-sends a 400 several times with fewer betas); None means
    every request from here on.
    """

    status: int = 529
    error_type: str = "overloaded_error"
    message: str = "Overloaded"
    times: int | None = 1
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Dynamic:
    """A turn decided when its request arrives: `make(request)` returns any script entry (e.g. a tool call whose
    path is only known at run time, like a session's worktree)."""

    make: Callable[[RecordedRequest], TurnLike]


Turn: TypeAlias = Reply | Hang | ApiError | Dynamic
# What a script may be written as: "final text", {"tool": ..., "input": ...}, a list of those (one assistant
# message with several blocks), or a Reply / Hang / ApiError.
TurnLike: TypeAlias = Turn | str | Mapping[str, Any] | Sequence[str | Mapping[str, Any] | ToolCall]


def _tool_call(item: Mapping[str, Any] | ToolCall) -> ToolCall:
    if isinstance(item, ToolCall):
        return item
    unknown = set(item) - {"tool", "input", "id"}
    if "tool" not in item or unknown:
        raise ValueError(f"a tool call is {{'tool': NAME, 'input': {{...}}}}, not {dict(item)!r}")
    return ToolCall(tool=str(item["tool"]), input=dict(item.get("input") or {}), id=item.get("id"))


def to_turn(item: TurnLike) -> Turn:
    """Normalise one script entry."""
    if isinstance(item, (Reply, Hang, ApiError, Dynamic)):
        return item
    if isinstance(item, str):
        return Reply(text=item)
    if isinstance(item, (Mapping, ToolCall)):
        return Reply(tool_calls=(_tool_call(item),))
    if isinstance(item, Sequence):
        texts = [part for part in item if isinstance(part, str)]
        calls = tuple(_tool_call(part) for part in item if not isinstance(part, str))
        return Reply(text="\n".join(texts), tool_calls=calls)
    raise TypeError(f"not a script turn: {item!r}")


# ------------------------------------------------------------------------------------------ what was sent


@dataclass
class RecordedRequest:
    """One HTTP request the client made, as received."""

    method: str
    path: str  # with the query string, e.g. /v1/messages?beta=true
    headers: dict[str, str]
    body: Any  # parsed JSON, the raw text if it was not JSON, None if empty
    kind: str  # "main" (answered from the script), "side", "subagent", "count_tokens", "models", "other"
    turn: int | None = None  # index of the script turn that answered a main request
    received_at: float = field(default_factory=time.monotonic)

    @property
    def route(self) -> str:
        return urlsplit(self.path).path

    @property
    def messages(self) -> list[dict[str, Any]]:
        return list(self.body.get("messages") or []) if isinstance(self.body, dict) else []

    @property
    def tool_names(self) -> list[str]:
        tools = self.body.get("tools") if isinstance(self.body, dict) else None
        return [str(t.get("name")) for t in tools or [] if isinstance(t, dict)]

    @property
    def system_text(self) -> str:
        system = self.body.get("system") if isinstance(self.body, dict) else None
        if isinstance(system, str):
            return system
        return "\n".join(str(b.get("text", "")) for b in system or [] if isinstance(b, dict))

    @property
    def model(self) -> str | None:
        return self.body.get("model") if isinstance(self.body, dict) else None

    def tool_results(self) -> list[dict[str, Any]]:
        """Every `tool_result` block in this request's messages, oldest first."""
        return [
            block
            for message in self.messages
            if isinstance(message.get("content"), list)
            for block in message["content"]
            if isinstance(block, dict) and block.get("type") == "tool_result"
        ]


def block_text(block: Mapping[str, Any]) -> str:
    """The text of a tool_result (or any) block, whether its content is a string or a list of blocks."""
    content = block.get("content", block.get("text", ""))
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(block_text(part) if isinstance(part, dict) else str(part) for part in content)
    return "" if content is None else str(content)


# ---------------------------------------------------------------------------------------------- the server


def classify_request(headers: Mapping[str, str], body: Any) -> str:
    """Who is asking, for a POST /v1/messages: "main", "subagent" or "side".

    * "subagent": a subagent's loop (the Agent tool); it carries an `x-claude-code-agent-id` header (and
      `cc_is_subagent=true` in the system prompt's billing line).
    * "main": the agent's own loop; it always sends a non-empty `tools` list (the built-in tools, even when the
      MCP tools are deferred).
    * "side": everything else, e.g. a `prompt` hook's query: no `tools`, often structured output.
    """
    if "x-claude-code-agent-id" in {name.lower() for name in headers}:
        return "subagent"
    if isinstance(body, dict) and body.get("tools"):
        return "main"
    return "side"


SideReply = Callable[[RecordedRequest], str]


def schema_instance(schema: Any) -> Any:
    """A small value that satisfies a (simple) JSON schema: required properties only, `true` for booleans."""
    if not isinstance(schema, dict):
        return None
    if "const" in schema:
        return schema["const"]
    if schema.get("enum"):
        return schema["enum"][0]
    for key in ("anyOf", "oneOf", "allOf"):
        if schema.get(key):
            return schema_instance(schema[key][0])
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object" or "properties" in schema:
        props = schema.get("properties") or {}
        return {name: schema_instance(props.get(name, {})) for name in schema.get("required") or []}
    return {"array": [], "boolean": True, "integer": 0, "number": 0, "null": None}.get(str(kind), "ok")


def default_side_reply(request: RecordedRequest) -> str:
    """A harmless answer to a side query: schema-valid JSON when structured output is asked for, else "ok".

    A `prompt` hook's query asks for `{"ok": bool, "reason": str}`, so it gets `{"ok": true, "reason": "ok"}`
    (the action may go ahead).
    """
    body = request.body if isinstance(request.body, dict) else {}
    output_format = (body.get("output_config") or {}).get("format") or {}
    if output_format.get("type") == "json_schema":
        return json.dumps(schema_instance(output_format.get("schema")))
    return "ok"


class FakeAnthropic:
    """A scripted Messages API on a free port of 127.0.0.1, served from a background thread.

    Use it as a context manager (or `start()` / `stop()`); `url` is the base URL, `env()` the variables for the
    CLI, `set_script` / `extend_script` change the script at any time, `requests` is everything received.
    """

    def __init__(
        self,
        script: Iterable[TurnLike] = (),
        *,
        model_id: str | None = None,
        side_reply: SideReply = default_side_reply,
        classify: Callable[[Mapping[str, str], Any], str] = classify_request,
    ) -> None:
        self._lock = threading.RLock()
        self._stopping = threading.Event()
        self._script: list[Turn] = []
        self._next = 0  # index of the next script turn
        self._repeats = 0  # how many requests the current Hang/ApiError turn has answered
        self.model_id = model_id
        self.side_reply = side_reply
        self.classify = classify
        self.requests: list[RecordedRequest] = []
        self.overruns = 0  # main-loop requests that came after the script ran out
        self.hang_started = threading.Event()
        self.hang_ended = threading.Event()
        self.hang_end_reason: str | None = None  # "client", "timeout", "server"
        self._changed = threading.Condition(self._lock)
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.set_script(script)

    # -- script

    def set_script(self, script: Iterable[TurnLike]) -> None:
        """Replace the script; the next main-loop request gets its first turn."""
        turns = [to_turn(item) for item in script]
        with self._lock:
            self._script = turns
            self._next = 0
            self._repeats = 0
            self.overruns = 0

    def extend_script(self, script: Iterable[TurnLike]) -> None:
        turns = [to_turn(item) for item in script]
        with self._lock:
            self._script.extend(turns)

    @property
    def remaining(self) -> int:
        """Script turns not yet used (a Hang/ApiError turn counts until it has answered `times` requests)."""
        with self._lock:
            return len(self._script) - self._next

    def _take_turn(self) -> tuple[int | None, Turn | None]:
        with self._lock:
            if self._next >= len(self._script):
                self.overruns += 1
                return None, None
            index, turn = self._next, self._script[self._next]
            times = turn.times if isinstance(turn, (Hang, ApiError)) else 1
            self._repeats += 1
            if times is not None and self._repeats >= times:
                self._next += 1
                self._repeats = 0
            return index, turn

    # -- lifecycle

    def __enter__(self) -> FakeAnthropic:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        handler = type("Handler", (_Handler,), {"fake": self})
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, args=(0.05,), name="fake-anthropic", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    @property
    def port(self) -> int:
        assert self._httpd is not None, "the server is not started"
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def env(self) -> dict[str, str]:
        """The variables that point `claude` at this server and keep it off the network."""
        return {
            "ANTHROPIC_BASE_URL": self.url,
            "ANTHROPIC_API_KEY": DUMMY_API_KEY,
            "DISABLE_AUTOUPDATER": "1",
            "DISABLE_TELEMETRY": "1",
            "DISABLE_ERROR_REPORTING": "1",
            "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        }

    # -- what was received

    def _record(self, request: RecordedRequest) -> None:
        with self._changed:
            self.requests.append(request)
            self._changed.notify_all()

    @property
    def main_requests(self) -> list[RecordedRequest]:
        return self.requests_of("main")

    @property
    def side_requests(self) -> list[RecordedRequest]:
        return self.requests_of("side")

    @property
    def subagent_requests(self) -> list[RecordedRequest]:
        return self.requests_of("subagent")

    def requests_of(self, kind: str) -> list[RecordedRequest]:
        with self._lock:
            return [r for r in self.requests if r.kind == kind]

    def wait_for(self, predicate: Callable[[list[RecordedRequest]], bool], timeout: float = 30.0) -> bool:
        """Block until `predicate(requests)` holds (True) or `timeout` passes (False)."""
        with self._changed:
            return self._changed.wait_for(lambda: predicate(self.requests), timeout=timeout)

    def tool_results(self) -> dict[str, dict[str, Any]]:
        """Every tool_result block the client sent back in main-loop requests, by tool_use_id."""
        found: dict[str, dict[str, Any]] = {}
        for request in self.main_requests:
            for block in request.tool_results():
                found.setdefault(str(block.get("tool_use_id")), block)
        return found

    def tool_result(self, tool_use_id: str) -> dict[str, Any]:
        results = self.tool_results()
        if tool_use_id not in results:
            raise KeyError(f"no tool_result for {tool_use_id!r}; got {sorted(results)}")
        return results[tool_use_id]

    def tool_result_text(self, tool_use_id: str) -> str:
        return block_text(self.tool_result(tool_use_id))


# ---------------------------------------------------------------------------------------- HTTP handling


def _estimate_tokens(obj: Any) -> int:
    return max(1, len(json.dumps(obj, separators=(",", ":"))) // 4)


def _blocks(reply: Reply, turn: int | None) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = []
    if reply.text:
        blocks.append({"type": "text", "text": reply.text})
    for n, call in enumerate(reply.tool_calls):
        tool_id = call.id or f"toolu_fake_{turn if turn is not None else 'x'}_{n}"
        blocks.append({"type": "tool_use", "id": tool_id, "name": call.tool, "input": dict(call.input)})
    if not blocks:
        blocks.append({"type": "text", "text": ""})
    return blocks


class _Handler(BaseHTTPRequestHandler):
    fake: FakeAnthropic
    protocol_version = "HTTP/1.1"
    server_version = "fake-anthropic/1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    # -- plumbing

    def _read_body(self) -> Any:
        length = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(length) if length else b""
        if not raw:
            return None
        text = raw.decode("utf-8", errors="replace")
        try:
            return json.loads(text)
        except ValueError:
            return text

    def _send_json(self, status: int, payload: Any, headers: Mapping[str, str] | None = None) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.send_header("request-id", f"req_fake_{len(self.fake.requests)}")
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)
        self.wfile.flush()

    def _error(self, status: int, error_type: str, message: str, headers: Mapping[str, str] | None = None) -> None:
        self._send_json(status, {"type": "error", "error": {"type": error_type, "message": message}}, headers)

    def _event(self, name: str, data: Mapping[str, Any]) -> None:
        self.wfile.write(f"event: {name}\ndata: {json.dumps(data)}\n\n".encode())
        self.wfile.flush()

    def _client_gone(self) -> bool:
        try:
            poller = select.poll()  # (not select(): a test process may well hold more than 1,024 descriptors)
            poller.register(self.connection, select.POLLIN)
            if not poller.poll(0):
                return False
            return bool(self.connection.recv(1, socket.MSG_PEEK) == b"")
        except OSError:
            return True

    # -- routes

    def do_GET(self) -> None:
        self._dispatch(None)

    def do_POST(self) -> None:
        self._dispatch(self._read_body())

    def do_HEAD(self) -> None:
        # CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC)
        headers = {k.lower(): v for k, v in self.headers.items()}
        self.fake._record(RecordedRequest(self.command, self.path, headers, None, "other"))
        self.send_response(200)
        self.send_header("content-length", "0")
        self.end_headers()

    def _dispatch(self, body: Any) -> None:
        route = urlsplit(self.path).path.rstrip("/")
        headers = {k.lower(): v for k, v in self.headers.items()}
        try:
            if self.command == "POST" and route == "/v1/messages/count_tokens":
                self.fake._record(RecordedRequest(self.command, self.path, headers, body, "count_tokens"))
                self._send_json(200, {"input_tokens": _estimate_tokens(body)})
            elif self.command == "GET" and route.startswith("/v1/models"):
                self.fake._record(RecordedRequest(self.command, self.path, headers, body, "models"))
                self._models(route)
            elif self.command == "POST" and route == "/v1/messages":
                self._messages(headers, body)
            else:
                self.fake._record(RecordedRequest(self.command, self.path, headers, body, "other"))
                self._error(404, "not_found_error", f"fake-anthropic has no route {self.command} {route}")
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def _models(self, route: str) -> None:
        model = self.fake.model_id or "claude-fake-1"
        info = {"type": "model", "id": model, "display_name": "Fake", "created_at": "2025-01-01T00:00:00Z"}
        if route == "/v1/models":
            self._send_json(200, {"data": [info], "has_more": False, "first_id": model, "last_id": model})
        else:
            self._send_json(200, {**info, "id": route.rsplit("/", 1)[-1]})

    def _messages(self, headers: dict[str, str], body: Any) -> None:
        fake = self.fake
        if not isinstance(body, dict):
            fake._record(RecordedRequest(self.command, self.path, headers, body, "other"))
            self._error(400, "invalid_request_error", "the body is not a JSON object")
            return
        kind = fake.classify(headers, body)
        if kind != "main":
            request = RecordedRequest(self.command, self.path, headers, body, kind)
            fake._record(request)
            self._reply(body, Reply(text=fake.side_reply(request)), None)
            return
        turn_index, turn = fake._take_turn()
        request = RecordedRequest(self.command, self.path, headers, body, "main", turn_index)
        fake._record(request)
        while isinstance(turn, Dynamic):
            turn = to_turn(turn.make(request))
        if turn is None:
            turn = Reply(text="[fake-anthropic: the script has no more turns]")
        if isinstance(turn, ApiError):
            self._error(turn.status, turn.error_type, turn.message, turn.headers)
        elif isinstance(turn, Hang):
            self._hang(body, turn)
        else:
            self._reply(body, turn, turn_index)

    def _message_id(self, turn: int | None) -> str:
        return f"msg_fake_{turn if turn is not None else 'side'}_{len(self.fake.requests)}"

    def _wait(self, seconds: float) -> str:
        """Sleep up to `seconds`; return why it ended: "timeout", "client" (it went away) or "server" (stopping)."""
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            if self.fake._stopping.wait(min(0.05, left)):
                return "server"
            if self._client_gone():
                return "client"
        return "timeout"

    def _reply(self, body: dict[str, Any], reply: Reply, turn: int | None) -> None:
        if reply.delay > 0 and self._wait(reply.delay) != "timeout":
            self.close_connection = True
            return
        model = self.fake.model_id or str(body.get("model") or "claude-fake-1")
        blocks = _blocks(reply, turn)
        input_tokens = reply.input_tokens if reply.input_tokens is not None else _estimate_tokens(body)
        output_tokens = reply.output_tokens if reply.output_tokens is not None else _estimate_tokens(blocks)
        usage = {"input_tokens": input_tokens, "output_tokens": output_tokens}
        message = {
            "id": self._message_id(turn),
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": blocks,
            "stop_reason": reply.stop_reason,
            "stop_sequence": None,
            "usage": usage,
        }
        if not body.get("stream"):
            self._send_json(200, message)
            return
        self._start_stream()
        self._event(
            "message_start",
            {
                "type": "message_start",
                "message": {
                    **message,
                    "content": [],
                    "stop_reason": None,
                    "usage": {"input_tokens": input_tokens, "output_tokens": 1},
                },
            },
        )
        for index, block in enumerate(blocks):
            if block["type"] == "text":
                self._event(
                    "content_block_start",
                    {"type": "content_block_start", "index": index, "content_block": {"type": "text", "text": ""}},
                )
                text = block["text"]
                for start in range(0, len(text), 64):  # a few deltas, as a real stream would have
                    delta = {"type": "text_delta", "text": text[start : start + 64]}
                    self._event("content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta})
            else:
                self._event(
                    "content_block_start",
                    {
                        "type": "content_block_start",
                        "index": index,
                        "content_block": {"type": "tool_use", "id": block["id"], "name": block["name"], "input": {}},
                    },
                )
                partial = json.dumps(block["input"])
                for start in range(0, len(partial), 64):
                    delta = {"type": "input_json_delta", "partial_json": partial[start : start + 64]}
                    self._event("content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta})
            self._event("content_block_stop", {"type": "content_block_stop", "index": index})
        self._event(
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": reply.stop_reason, "stop_sequence": None},
                "usage": {"output_tokens": output_tokens},
            },
        )
        self._event("message_stop", {"type": "message_stop"})
        self.close_connection = True

    def _start_stream(self) -> None:
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.send_header("cache-control", "no-cache")
        self.send_header("connection", "close")
        self.send_header("request-id", f"req_fake_{len(self.fake.requests)}")
        self.end_headers()
        self.close_connection = True

    def _hang(self, body: dict[str, Any], hang: Hang) -> None:
        fake = self.fake
        if hang.after_headers and body.get("stream"):
            self._start_stream()
            model = fake.model_id or str(body.get("model") or "claude-fake-1")
            start: dict[str, Any] = {
                "id": self._message_id(None),
                "type": "message",
                "role": "assistant",
                "model": model,
                "content": [],
                "stop_reason": None,
                "stop_sequence": None,
                "usage": {"input_tokens": _estimate_tokens(body), "output_tokens": 1},
            }
            self._event("message_start", {"type": "message_start", "message": start})
        fake.hang_started.set()
        fake.hang_end_reason = self._wait(hang.timeout)
        fake.hang_ended.set()
        self.close_connection = True
