"""The Sessions, Memory and Trends pages (issue 14): each route reads one view (`views/`) and draws one template;
merging and discarding a session branch call the very functions `overnight merge` and `overnight discard` call
(`merge.merge`, `morning.discard`), which make every check again before they move anything.

The reports are read through one `ReportIndex` per app (made at startup): the first read of many reports takes
seconds, every later one costs nothing while the folder is unchanged. Chart SVGs are drawn escaped by `svg.py`
and embedded as `Markup`; every other text goes through Jinja's autoescape.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from markupsafe import Markup
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from mcp_servers.core.errors import OvernightError, UsageError
from mcp_servers.core.memory import KINDS

from .. import merge, morning
from .views import memory as memory_view
from .views import sessions as sessions_view
from .views import trends as trends_view
from .views.index import ReportIndex

if TYPE_CHECKING:
    from .app import Site

PAGE_SIZE = 50
MEMORY_PAGE = 20
NIGHTS = (7, 14, 30, 90, 365)
MEMORY_FILTERS = ("q", "kind", "task", "file", "session", "since")


def _int(value: str | None, what: str, default: int) -> int:
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise UsageError(f"{what} {value!r} is not a whole number.") from None


def _query(params: dict[str, str], offset: int) -> str:
    """The page's query string at another `offset` (empty filters left out): the pager's links."""
    kept = {k: v for k, v in params.items() if v and k != "offset"}
    return urlencode({**kept, **({"offset": str(offset)} if offset else {})})


class Pages:
    """The routes of the Sessions, Memory and Trends pages, drawn through the app's `Site`."""

    def __init__(self, site: Site, index: ReportIndex) -> None:
        self.site, self.ws, self.index = site, site.ws, index
        # the charts drawn from the index's list of summaries, by what was asked: the list is a new object
        # whenever a report changed, so a kept drawing of the same list is the one drawing it again would make
        self.drawn: dict[tuple[str, int, int, str | None], tuple[object, Any, dict[str, Markup]]] = {}

    def routes(self) -> list[Route]:
        return [
            Route("/sessions", self.sessions, methods=["GET"]),
            Route("/sessions/{session}", self.session, methods=["GET"]),
            Route("/sessions/{session}/merge", self.merge, methods=["POST"]),
            Route("/sessions/{session}/discard", self.discard_confirm, methods=["GET"]),
            Route("/sessions/{session}/discard", self.discard, methods=["POST"]),
            Route("/memory", self.memory, methods=["GET"]),
            Route("/trends", self.trends, methods=["GET"]),
        ]

    def _refused(self, request: Request, title: str, e: OvernightError, code: int = 400) -> Response:
        return self.site.page(request, "message.html", code, title=title, text=str(e))

    async def sessions(self, request: Request) -> Response:
        params = dict(request.query_params)
        try:
            offset = _int(params.get("offset"), "offset", 0)
            found = await self.site.call(lambda: sessions_view.list_sessions(
                self.ws, self.index, offset=offset, limit=PAGE_SIZE, outcome=params.get("outcome") or None,
                agent=params.get("agent") or None, since=params.get("since") or None,
                until=params.get("until") or None))  # fmt: skip
        except UsageError as e:
            return self._refused(request, "Sessions", e)
        more = _query(params, offset=found.next_offset) if found.next_offset is not None else ""
        back = _query(params, offset=max(0, offset - PAGE_SIZE)) if offset > 0 else None
        return self.site.page(request, "sessions.html", found=found, filters=params, more=more, back=back)

    async def session(self, request: Request) -> Response:
        sid = request.path_params["session"]
        try:
            view = await self.site.call(sessions_view.session_detail, self.ws, sid)
        except OvernightError as e:  # no such session, or its report cannot be read: said, never a trace
            return self._refused(request, "No such session", e, 404)
        return self.site.page(request, "session.html", view=view)

    def _exact(self, sid: str) -> str:
        """The session's branch, named by the session's whole id (the CLI takes a prefix too; a form does not)."""
        found = morning.find(self.ws, sid)
        if found.session != sid:
            raise UsageError(f"{sid!r} is not a session id: the Sessions page lists them.")
        return found.branch

    async def merge(self, request: Request) -> Response:
        sid = request.path_params["session"]
        try:
            done = await self.site.call(lambda: merge.merge(self.ws, self._exact(sid)))
        except OvernightError as e:
            return self.site.back(f"/sessions/{sid}", error=str(e))
        return self.site.back(f"/sessions/{sid}", said=done.message)

    async def discard_confirm(self, request: Request) -> Response:
        sid = request.path_params["session"]
        try:
            view = await self.site.call(sessions_view.session_detail, self.ws, sid)
        except OvernightError as e:  # no such session, or its report cannot be read: said, never a trace
            return self._refused(request, "No such session", e, 404)
        return self.site.page(request, "discard.html", view=view)

    async def discard(self, request: Request) -> Response:
        sid = request.path_params["session"]
        try:
            gone = await self.site.call(lambda: morning.discard(self.ws, self._exact(sid)))
        except OvernightError as e:
            return self.site.back(f"/sessions/{sid}", error=str(e))
        return self.site.back(f"/sessions/{sid}", said=gone.message)

    async def memory(self, request: Request) -> Response:
        params = {k: request.query_params.get(k, "").strip() for k in (*MEMORY_FILTERS, "offset")}
        error, found = "", None
        try:
            offset = _int(params["offset"], "offset", 0)
            found = await self.site.call(lambda: memory_view.search(
                self.ws, params["q"], kind=params["kind"] or None, task_id=params["task"] or None,
                file=params["file"] or None, session=params["session"] or None, since=params["since"] or None,
                limit=MEMORY_PAGE, offset=offset, clean=self.site.texts.clean))  # fmt: skip
        except UsageError as e:
            error = str(e)
        more = _query(params, offset=found.next_offset) if found and found.next_offset is not None else ""
        return self.site.page(request, "memory.html", 400 if error else 200, found=found, filters=params, more=more,
                              first=_query(params, 0), kinds=KINDS, problem=error)  # fmt: skip

    async def trends(self, request: Request) -> Response:
        params = request.query_params
        agent = params.get("agent") or None
        try:
            nights = _int(params.get("nights"), "nights", 30)
            granularity = "session" if params.get("by") == "session" else "night"
            sessions = _int(params.get("sessions"), "sessions", 50)
            made = await self.site.call(lambda: self._trends(granularity, nights, sessions, agent))
        except UsageError as e:
            return self._refused(request, "Trends", e)
        data, charts = made
        return self.site.page(request, "trends.html", t=data, charts=charts, nights=nights, nights_choices=NIGHTS,
                              by=granularity, sessions=sessions, agent=agent or "")  # fmt: skip

    def _trends(self, granularity: str, nights: int, sessions: int, agent: str | None) -> tuple[Any, dict[str, Markup]]:
        key, every = (granularity, nights, sessions, agent), self.index.refresh()
        kept = self.drawn.get(key)
        if kept is not None and kept[0] is every:
            return kept[1], kept[2]
        data = trends_view.trends(self.ws, self.index, granularity="session" if granularity == "session" else "night",
                                  nights=nights, sessions=sessions, agent=agent)  # fmt: skip
        # svg.py escapes every label and name it draws: the SVG text is safe to embed as markup
        charts = {name: Markup(text) for name, text in trends_view.charts(data).items()}  # noqa: S704
        if len(self.drawn) >= 64:
            self.drawn.clear()
        self.drawn[key] = (every, data, charts)
        return data, charts
