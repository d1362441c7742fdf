"""The command center's guard: who may ask (a one-time login token, then a session cookie), which Host they may
ask through (against DNS rebinding), that every state-changing request carries its session's CSRF token, and
the security headers on every answer.

One ASGI middleware (`Guard`) in front of the whole app, so no route can forget a check: a route that changes
state is a POST, and no POST reaches a route without a valid session and its CSRF token.
"""

from __future__ import annotations

import hmac
import secrets
import time
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import parse_qs

COOKIE = "overnight_session"  # and the port: cookies are shared by every port of a host (two `overnight ui`s)
CSRF_FIELD = "csrf"
CSRF_HEADER = "x-csrf-token"
LOGIN_TTL_S = 15 * 60.0  # the printed link works once, within this time
SESSION_TTL_S = 24 * 3600.0  # a browser session lasts this long at most
MAX_BODY = 256 * 1024  # a form's size at most
MAX_SESSIONS = 16
SAFE_METHODS = frozenset({"GET", "HEAD"})
OPEN_PATHS = ("/login", "/static/")  # reached without a session (the login itself, the CSS and the script)

HEADERS = [
    (b"content-security-policy", b"default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
     b"connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-content-type-options", b"nosniff"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"cross-origin-resource-policy", b"same-origin"),
    (b"cache-control", b"no-store"),
]  # fmt: skip

WRONG_HOST = ("This server answers only at the address `overnight ui` printed (a request through another host name "
              "is refused, against DNS rebinding). Add the name to allowed_hosts under [ui] in overnight.toml if "
              "you mean it.")  # fmt: skip
LOG_IN = ("You are not logged in. Open the link `overnight ui` printed when it started (it works once); if it was "
          "used or has expired, stop `overnight ui` and run it again for a new one.")  # fmt: skip

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


@dataclass
class Session:
    csrf: str
    created: float


@dataclass
class Keys:
    """The login token (once, for `LOGIN_TTL_S`), the browser sessions it opened, and the Host headers allowed."""

    login: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    issued: float = field(default_factory=time.monotonic)
    used: bool = False
    sessions: dict[str, Session] = field(default_factory=dict)
    hosts: set[str] = field(default_factory=set)
    port: int = 0
    clock: Callable[[], float] = time.monotonic

    def allow(self, port: int, extra: list[str] | tuple[str, ...] = ()) -> None:
        """Answer `127.0.0.1:<port>`, `localhost:<port>`, `[::1]:<port>` and the configured extra hosts."""
        self.port = port
        self.hosts = {f"127.0.0.1:{port}", f"localhost:{port}", f"[::1]:{port}", *(h.lower() for h in extra)}

    def log_in(self, token: str) -> str | None:
        """A new session's id for the right token, once and in time; None otherwise."""
        fresh = not self.used and self.clock() - self.issued <= LOGIN_TTL_S
        if not (hmac.compare_digest(token.encode(), self.login.encode()) and fresh):
            return None
        self.used = True
        if len(self.sessions) >= MAX_SESSIONS:
            self.sessions.pop(next(iter(self.sessions)))
        sid = secrets.token_urlsafe(32)
        self.sessions[sid] = Session(csrf=secrets.token_urlsafe(32), created=self.clock())
        return sid

    def session(self, sid: str | None) -> Session | None:
        if not sid:
            return None
        for known, found in self.sessions.items():
            if hmac.compare_digest(known.encode(), sid.encode()):
                if self.clock() - found.created > SESSION_TTL_S:
                    return None
                return found
        return None


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key == name:
            return str(value.decode("latin-1"))
    return None


def cookie_name(port: int) -> str:
    return f"{COOKIE}_{port}"


def session_id(scope: Scope, port: int) -> str | None:
    raw = _header(scope, b"cookie")
    if not raw:
        return None
    jar: SimpleCookie = SimpleCookie()
    try:
        jar.load(raw)
    except Exception:  # a malformed cookie header: no session
        return None
    found = jar.get(cookie_name(port))
    return found.value if found is not None else None


def cookie_header(sid: str, port: int) -> str:
    return f"{cookie_name(port)}={sid}; HttpOnly; SameSite=Strict; Path=/"


class Guard:
    """The middleware: Host check, session check, CSRF check on every POST, headers on every answer."""

    def __init__(self, app: ASGIApp, keys: Keys) -> None:
        self.app, self.keys = app, keys

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self.app(scope, receive, send)
            return
        if scope["type"] != "http":  # a WebSocket: no page here speaks one, and none passes unguarded
            await send({"type": "websocket.close", "code": 1008})
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *HEADERS]
            await send(message)

        refusal = self._refusal(scope)
        if refusal is not None:
            await _refuse(send_with_headers, *refusal)
            return
        method = scope["method"]
        if method in SAFE_METHODS:
            await self.app(scope, receive, send_with_headers)
            return
        body = await _body(receive)
        if body is None:
            await _refuse(send_with_headers, 413, "Too large", "That request is larger than any form here.")
            return
        problem = self._csrf_problem(scope, body)
        if problem:
            await _refuse(send_with_headers, 403, "Refused", problem)
            return
        await self.app(scope, _replay(body), send_with_headers)

    def _refusal(self, scope: Scope) -> tuple[int, str, str] | None:
        host = (_header(scope, b"host") or "").lower()
        if host not in self.keys.hosts:
            return 421, "Wrong host", WRONG_HOST
        method, path = scope["method"], scope["path"]
        if method not in {*SAFE_METHODS, "POST"}:
            return 405, "Not allowed", f"{method} is not a method this server answers."
        if path.startswith(OPEN_PATHS):
            return None if method in SAFE_METHODS else (405, "Not allowed", "Only GET here.")
        if self.keys.session(session_id(scope, self.keys.port)) is None:
            return 401, "Log in first", LOG_IN
        return None

    def _csrf_problem(self, scope: Scope, body: bytes) -> str | None:
        origin = _header(scope, b"origin")
        # (a page under Referrer-Policy no-referrer, ours, sends `Origin: null`: the CSRF token decides then)
        if origin not in {None, "null"} and str(origin).split("://", 1)[-1].lower() not in self.keys.hosts:
            return "This request came from another site; nothing was changed."
        found = self.keys.session(session_id(scope, self.keys.port))
        sent = _header(scope, CSRF_HEADER.encode())
        if sent is None and (_header(scope, b"content-type") or "").startswith("application/x-www-form-urlencoded"):
            sent = next(iter(parse_qs(body.decode("utf-8", "replace")).get(CSRF_FIELD, [])), None)
        if found is None or not sent or not hmac.compare_digest(sent.encode(), found.csrf.encode()):
            return ("This form's security token is missing or wrong (an old page, or a request from elsewhere); "
                    "nothing was changed. Reload the page and try again.")  # fmt: skip
        return None


async def _body(receive: Receive) -> bytes | None:
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY:
            return None
        chunks.append(chunk)
        if not message.get("more_body"):
            break
    return b"".join(chunks)


def _replay(body: bytes) -> Receive:
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return receive


async def _refuse(send: Send, status: int, title: str, text: str) -> None:
    from html import escape

    page = (f"<!doctype html><html lang=en><head><meta charset=utf-8><title>{escape(title)} · overnight</title>"
            f'<link rel=stylesheet href="/static/ui.css"></head><body><main class=refused><h1>{escape(title)}</h1>'
            f"<p>{escape(text)}</p></main></body></html>").encode()  # fmt: skip
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"text/html; charset=utf-8"),
                            (b"content-length", str(len(page)).encode())]})  # fmt: skip
    await send({"type": "http.response.body", "body": page})
