"""Paging through a list tool's pages so a command honours any `--limit`: a tool answers at most a page per call
(its cap bounds what one call costs an agent), and says where the next page starts (issue 11)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")
Cursor = TypeVar("Cursor")


def collect(
    fetch: Callable[[Cursor | None, int], tuple[list[T], Cursor | None]], limit: int, page: int
) -> tuple[list[T], Cursor | None]:
    """Up to `limit` items, asked `page` at a time: `fetch(start, n)` returns a page and the next start (None at
    the end; None as `start` asks for the first page). Also the next start after what was taken."""
    items: list[T] = []
    start: Cursor | None = None
    while len(items) < limit:
        got, following = fetch(start, min(page, limit - len(items)))
        items += got
        if following is None or not got:
            return items, None
        start = following
    return items, start
