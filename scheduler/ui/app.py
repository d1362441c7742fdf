"""The command center's web app: routes, templates and static files, behind the `Guard` (`security.py`).

Every page is drawn on the server from the same core the CLI uses (`control.status`, the queue, `plan add`,
`person_move`, `request_stop`); Jinja2 escapes everything (autoescape on for every template), and what an agent
wrote is redacted first (`now.shown`). GET never changes state; every POST passed the Guard's CSRF check.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote

import anyio
from jinja2 import Environment, FileSystemLoader
from sse_starlette import EventSourceResponse
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from mcp_servers.core.errors import OvernightError
from mcp_servers.core.workspace import Workspace

from .. import control
from ..plan_commands import person_session
from . import board, live, now
from .pages import Pages
from .security import CSRF_FIELD, Guard, Keys, cookie_header, session_id
from .views.index import ReportIndex

HERE = Path(__file__).parent
PAGES = (("/", "Now"), ("/tasks", "Tasks"), ("/sessions", "Sessions"), ("/memory", "Memory"), ("/trends", "Trends"))
T = TypeVar("T")


def clock(at: object) -> str:
    """Unix seconds as the time of day, UTC (`21:04:05`)."""
    if not isinstance(at, int | float):
        return ""
    return dt.datetime.fromtimestamp(at, dt.UTC).strftime("%H:%M:%S")


def environment(texts: now.Texts) -> Environment:
    env = Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=True, trim_blocks=True,
                      lstrip_blocks=True)  # fmt: skip
    env.filters["shown"] = texts.shown
    env.filters["money"] = lambda v: "-" if v is None else f"${float(v):.2f}"
    env.filters["clock"] = clock
    return env


class Site:
    """The pages: each route one method, drawing a template from one call into the core."""

    def __init__(self, ws: Workspace, keys: Keys) -> None:
        self.ws, self.keys, self.texts = ws, keys, now.Texts()
        self.templates = Jinja2Templates(env=environment(self.texts))

    async def call(self, fn: Callable[..., T], *args: Any) -> T:
        return await anyio.to_thread.run_sync(functools.partial(fn, *args))

    def page(self, request: Request, name: str, code: int = 200, **context: Any) -> Response:
        found = self.keys.session(session_id(request.scope, self.keys.port))
        params = request.query_params
        context.update(pages=PAGES, path=request.url.path, csrf=found.csrf if found else "", csrf_field=CSRF_FIELD,
                       said=params.get("said", ""), error=params.get("error", ""))  # fmt: skip
        return self.templates.TemplateResponse(request, name, context, status_code=code)

    @staticmethod
    def back(to: str, said: str = "", error: str = "") -> Response:
        query = f"?said={quote(said)}" if said else f"?error={quote(error)}" if error else ""
        return RedirectResponse(to + query, status_code=303)

    async def login(self, request: Request) -> Response:
        sid = self.keys.log_in(request.query_params.get("token", ""))
        if sid is None:
            return self.page(request, "message.html", 401, title="Log in first",
                             text="This login link is wrong, was already used or has expired (each works once). "
                             "Stop `overnight ui` and run it again, then open the new link it prints.")  # fmt: skip
        response = RedirectResponse("/", status_code=303)
        response.headers["set-cookie"] = cookie_header(sid, self.keys.port)
        return response

    async def now_page(self, request: Request) -> Response:
        return self.page(request, "now.html", **await self.call(now.now, self.ws))

    async def events(self, request: Request) -> Response:
        params = request.query_params
        try:  # (a browser that reconnects says where it was: the last event's id, an offset)
            offset = max(0, int(request.headers.get("last-event-id") or params.get("offset", "0")))
        except ValueError:
            offset = 0
        stream = live.follow(self.ws, params.get("session", ""), offset, params.get("live") == "1",
                             request.is_disconnected)  # fmt: skip
        return EventSourceResponse(stream, ping=15)

    async def stop_confirm(self, request: Request) -> Response:
        return self.page(request, "stop.html", **await self.call(now.now, self.ws))

    async def stop(self, request: Request) -> Response:
        return self.back("/", said=await self.call(control.request_stop, self.ws))

    async def resume(self, request: Request) -> Response:
        return self.back("/", said=await self.call(control.resume, self.ws))

    async def tasks_page(self, request: Request) -> Response:
        return self.page(request, "tasks.html", board=await self.call(board.board, self.ws), columns=board.COLUMNS,
                         cards_shown=board.CARDS_SHOWN)  # fmt: skip

    async def task_page(self, request: Request) -> Response:
        from mcp_servers.core import queue

        try:
            detail = await self.call(queue.get_task, self.ws, request.path_params["task_id"], person_session())
        except OvernightError as e:
            return self.page(request, "message.html", 404, title="No such task", text=str(e))
        return self.page(request, "task.html", task=detail)

    async def edit(self, request: Request) -> Response:
        task_id, verb = request.path_params["task_id"], request.url.path.rsplit("/", 1)[-1]
        form = await request.form()
        try:
            if verb == "approve":
                said = await self.call(board.approve, self.ws, task_id)
            else:
                said = await self.call(board.reject, self.ws, task_id, str(form.get("reason") or "").strip())
        except OvernightError as e:
            return self.back("/tasks", error=str(e))
        return self.back("/tasks", said=said)

    async def add(self, request: Request) -> Response:
        form = await request.form()
        text = {k: str(form.get(k) or "").strip() for k in ("title", "files", "priority", "description", "tests",
                                                             "estimate")}  # fmt: skip
        try:
            estimate = int(text["estimate"]) if text["estimate"] else None
        except ValueError:
            return self.back("/tasks", error=f"the estimate {text['estimate']!r} is not a whole number of lines")
        files = [f.strip() for f in text["files"].split(",") if f.strip()]
        try:
            said = await self.call(board.add, self.ws, text["title"], files, text["priority"] or "P2",
                                   text["description"], text["tests"], estimate,
                                   form.get("approve") == "on")  # fmt: skip
        except OvernightError as e:
            return self.back("/tasks", error=str(e))
        return self.back("/tasks", said=said)

    async def missing(self, request: Request, exc: Exception) -> Response:
        return self.page(request, "message.html", 404, title="Not found", text="There is no page here.")


def make_app(ws: Workspace, keys: Keys, index: ReportIndex | None = None) -> Starlette:
    """The app over `ws`, guarded by `keys` (their allowed hosts set by the caller once the port is known); the
    reports read through `index` (default: a new one, kept by this app)."""
    site = Site(ws, keys)
    pages = Pages(site, index or ReportIndex(ws.state_dir))
    routes = [
        Route("/login", site.login),
        Route("/", site.now_page),
        Route("/events", site.events),
        Route("/stop", site.stop_confirm, methods=["GET"]),
        Route("/stop", site.stop, methods=["POST"]),
        Route("/resume", site.resume, methods=["POST"]),
        Route("/tasks", site.tasks_page),
        Route("/tasks/add", site.add, methods=["POST"]),
        Route("/tasks/{task_id}", site.task_page),
        Route("/tasks/{task_id}/approve", site.edit, methods=["POST"]),
        Route("/tasks/{task_id}/reject", site.edit, methods=["POST"]),
        *pages.routes(),
        Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
    ]
    return Starlette(routes=routes, middleware=[Middleware(Guard, keys=keys)],
                     exception_handlers={404: site.missing})  # fmt: skip
