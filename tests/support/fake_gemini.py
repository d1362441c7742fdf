"""A scripted stand-in for the Gemini API, so the real `gemini` CLI runs offline in tests.

Use:

    with FakeGemini([{"tool": "run_shell_command", "input": {"command": "ls"}}, "done"]) as model:
        subprocess.run([gemini, "-p", PROMPT, "--output-format", "stream-json", "-m", MODEL, ...],
                       env={**client_env, **model.env()}, ...)

The script is written as for `fake_anthropic.FakeAnthropic` (a final text, `{"tool": NAME, "input": {...}}`, a list
of those, a `Reply`, a `Hang`, a `Dynamic`), plus `ApiError` here, the Gemini API's error shape (`quota_exhausted()`
is a 429 the CLI does not retry). Each main request (`POST /v1beta/models/M:streamGenerateContent?alt=sse` with
`tools`) takes the next turn; anything else (`generateContent`, `countTokens`) is a side request, answered without
taking a turn. Tool calls are `functionCall` parts; MCP tools are named `mcp_<server>_<tool>` by the CLI.

What Gemini CLI 0.61.0 sends (see ../../shared/notes/agent-cli-recipes.md, and measured with this server):
`GOOGLE_GEMINI_BASE_URL` points it here and is honoured once `security.auth.selectedType` is "gemini-api-key";
the key must look like one (`AIza...`); with `-m MODEL` there is no routing side call. A tool's result comes back
in the next request as a `functionResponse` part (`{"name", "response": {"output"|"error": ...}}`). Errors: the
exit code is the HTTP status mod 256 (429 -> 173); a 429 carrying a per-day QuotaFailure is not retried; others
are retried up to `general.maxAttempts` with backoff.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, TypeAlias
from urllib.parse import urlsplit

from .fake_anthropic import Dynamic, Hang, Reply, ToolCall
from .fake_anthropic import to_turn as _to_turn

DUMMY_API_KEY = "AIzaFakeOfflineKeyForTests0000000000000"
MODEL = "gemini-2.5-flash"

__all__ = ["DUMMY_API_KEY", "MODEL", "ApiError", "Dynamic", "FakeGemini", "Hang", "Reply", "ToolCall",
           "quota_exhausted"]  # fmt: skip


@dataclass(frozen=True)
class ApiError:
    """An HTTP error in the Gemini API's shape: `{"error": {"code", "message", "status", "details"}}`.

    `times` consecutive main requests get it (the CLI retries 5xx and plain 429s); None means every one from here.
    """

    status: int = 503
    status_text: str = "UNAVAILABLE"
    message: str = "The model is overloaded. Please try again later."
    details: tuple[Mapping[str, Any], ...] = ()
    times: int | None = 1


def quota_exhausted(times: int | None = 1) -> ApiError:
    """A 429 for a daily quota at zero: Gemini CLI gives up at once (no retry) and exits 173."""
    violation = {"quotaMetric": "generativelanguage.googleapis.com/generate_content_free_tier_requests",
                 "quotaId": "GenerateRequestsPerDayPerProjectPerModel-FreeTier"}  # fmt: skip
    return ApiError(429, "RESOURCE_EXHAUSTED", "You exceeded your current quota. Quota exceeded for metric: "
                    "generativelanguage.googleapis.com/generate_content_free_tier_requests, limit: 0",
                    ({"@type": "type.googleapis.com/google.rpc.QuotaFailure", "violations": [violation]},),
                    times)  # fmt: skip


Turn: TypeAlias = Reply | Hang | ApiError | Dynamic
TurnLike: TypeAlias = Turn | str | Mapping[str, Any] | Sequence[str | Mapping[str, Any] | ToolCall]


def to_turn(item: Any) -> Turn:
    return item if isinstance(item, ApiError) else _to_turn(item)


@dataclass
class GeminiRequest:
    """One request as received: `kind` is "main" (scripted), "side" or "other"."""

    method: str
    path: str
    headers: dict[str, str]
    body: Any
    kind: str
    turn: int | None = None

    @property
    def route(self) -> str:
        return urlsplit(self.path).path

    @property
    def contents(self) -> list[dict[str, Any]]:
        return list(self.body.get("contents") or []) if isinstance(self.body, dict) else []

    @property
    def function_names(self) -> list[str]:
        """The names in `tools[].functionDeclarations`: what the model is offered."""
        tools = self.body.get("tools") if isinstance(self.body, dict) else None
        return [str(d.get("name")) for t in tools or [] if isinstance(t, dict)
                for d in t.get("functionDeclarations") or [] if isinstance(d, dict)]  # fmt: skip

    def function_responses(self) -> list[dict[str, Any]]:
        """Every `functionResponse` in the conversation so far, oldest first."""
        return [part["functionResponse"] for content in self.contents for part in content.get("parts") or []
                if isinstance(part, dict) and isinstance(part.get("functionResponse"), dict)]  # fmt: skip


def response_text(response: Mapping[str, Any]) -> str:
    """A functionResponse's result or error as text."""
    inner = response.get("response")
    return json.dumps(inner) if not isinstance(inner, str) else inner


@dataclass
class FakeGemini:
    """A scripted Gemini API on a free port of 127.0.0.1, served from a background thread."""

    script: Iterable[TurnLike] = ()
    model_version: str = MODEL
    requests: list[GeminiRequest] = field(default_factory=list)
    overruns: int = 0

    def __post_init__(self) -> None:
        self._lock = threading.RLock()
        self._stopping = threading.Event()
        self._turns: list[Turn] = []
        self._next = 0
        self._repeats = 0
        self.hang_started = threading.Event()
        self._httpd: ThreadingHTTPServer | None = None
        self.set_script(self.script)

    def set_script(self, script: Iterable[TurnLike]) -> None:
        turns = [to_turn(item) for item in script]
        with self._lock:
            self._turns, self._next, self._repeats, self.overruns = turns, 0, 0, 0

    @property
    def remaining(self) -> int:
        with self._lock:
            return len(self._turns) - self._next

    def _take(self) -> tuple[int | None, Turn | None]:
        with self._lock:
            if self._next >= len(self._turns):
                self.overruns += 1
                return None, None
            index, turn = self._next, self._turns[self._next]
            times = turn.times if isinstance(turn, (Hang, ApiError)) else 1
            self._repeats += 1
            if times is not None and self._repeats >= times:
                self._next, self._repeats = self._next + 1, 0
            return index, turn

    def __enter__(self) -> FakeGemini:
        handler = type("Handler", (_Handler,), {"fake": self})
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._httpd.daemon_threads = True
        threading.Thread(target=self._httpd.serve_forever, args=(0.05,), name="fake-gemini", daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stopping.set()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()

    @property
    def url(self) -> str:
        assert self._httpd is not None, "the server is not started"
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def env(self) -> dict[str, str]:
        """The variables that point `gemini` at this server."""
        return {"GOOGLE_GEMINI_BASE_URL": self.url, "GEMINI_API_KEY": DUMMY_API_KEY}

    @property
    def main_requests(self) -> list[GeminiRequest]:
        with self._lock:
            return [r for r in self.requests if r.kind == "main"]

    def results(self) -> list[dict[str, Any]]:
        """Every functionResponse the model was sent, once each (each request repeats the conversation)."""
        seen: dict[str, dict[str, Any]] = {}
        for request in self.main_requests:
            for index, response in enumerate(request.function_responses()):
                seen[str(response.get("id") or index)] = response
        return list(seen.values())


def _parts(reply: Reply, turn: int | None) -> list[dict[str, Any]]:
    parts: list[dict[str, Any]] = [{"text": reply.text}] if reply.text else []
    for n, call in enumerate(reply.tool_calls):
        ident = call.id or f"call_fake_{turn}_{n}"
        parts.append({"functionCall": {"id": ident, "name": call.tool, "args": dict(call.input)}})
    return parts or [{"text": ""}]


class _Handler(BaseHTTPRequestHandler):
    fake: FakeGemini
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass  # the test's output stays clean

    def do_POST(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else None
        except json.JSONDecodeError:
            body = raw.decode("utf-8", "replace")
        headers = {k.lower(): v for k, v in self.headers.items()}
        route = urlsplit(self.path).path
        fake = self.fake
        stream = route.endswith(":streamGenerateContent")
        if not (stream or route.endswith(":generateContent")):
            with fake._lock:
                fake.requests.append(GeminiRequest("POST", self.path, headers, body, "other"))
            self._json(200, {"totalTokens": 10} if route.endswith(":countTokens") else {})
            return
        if not (isinstance(body, dict) and body.get("tools")):
            with fake._lock:
                fake.requests.append(GeminiRequest("POST", self.path, headers, body, "side"))
            self._answer(stream, Reply(text=_side_text(body)), None)
            return
        index, turn = fake._take()
        request = GeminiRequest("POST", self.path, headers, body, "main", index)
        with fake._lock:
            fake.requests.append(request)
        while isinstance(turn, Dynamic):
            turn = to_turn(turn.make(request))  # type: ignore[arg-type]
        if turn is None:
            turn = Reply(text="[fake-gemini: the script has no more turns]")
        if isinstance(turn, ApiError):
            error = {"code": turn.status, "message": turn.message, "status": turn.status_text,
                     "details": [dict(d) for d in turn.details]}  # fmt: skip
            self._json(turn.status, {"error": error})
        elif isinstance(turn, Hang):
            fake.hang_started.set()
            fake._stopping.wait(turn.timeout)
            self.close_connection = True
        else:
            self._answer(stream, turn, index)

    def _answer(self, stream: bool, reply: Reply, turn: int | None) -> None:
        tokens_in = reply.input_tokens if reply.input_tokens is not None else 100
        tokens_out = reply.output_tokens if reply.output_tokens is not None else 20
        chunk = {
            "candidates": [{"content": {"role": "model", "parts": _parts(reply, turn)}, "finishReason": "STOP",
                            "index": 0}],
            "usageMetadata": {"promptTokenCount": tokens_in, "candidatesTokenCount": tokens_out,
                              "totalTokenCount": tokens_in + tokens_out},
            "modelVersion": self.fake.model_version,
        }  # fmt: skip
        if not stream:
            self._json(200, chunk)
            return
        data = f"data: {json.dumps(chunk)}\r\n\r\n".encode()
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.send_header("content-length", str(len(data)))
        self.send_header("connection", "close")
        self.end_headers()
        self.wfile.write(data)
        self.close_connection = True

    def _json(self, status: int, payload: Any) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.send_header("connection", "close")
        self.end_headers()
        self.wfile.write(data)
        self.close_connection = True


def _side_text(body: Any) -> str:
    """A harmless answer to a side query: JSON when JSON is asked for, else "ok"."""
    config = body.get("generationConfig") if isinstance(body, dict) else None
    if isinstance(config, dict) and config.get("responseMimeType") == "application/json":
        return json.dumps({"reasoning": "ok", "next_speaker": "user", "model_choice": "flash"})
    return "ok"
