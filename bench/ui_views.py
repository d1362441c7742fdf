"""The command center's pages' data at scale (issue 14): each view function the Sessions, Memory and Trends pages
call, timed over bench/ui_state.py's state (1,000 session reports, a 10,000-task plan, 100,000 memory entries).

Each view is called in-process as the web app calls it, with one `ReportIndex` kept for the whole run (the app
keeps one per state directory); after one warm-up pass, rounds of every view, in an order that rotates every
round. Printed per view: p50 and p95 of the wall time in ms, and the p50 of the process's CPU time (what the
view costs when the machine is not shared: the git processes it starts are not in it). The index's first scan
(every report parsed, what the first page after the app starts pays) is printed apart, with a later scan that
finds nothing changed and one after a report changed (what a page pays after a session ends).

Views: the Sessions list (first page, a later page filtered by agent, a date range), one session in detail (the
newest, whose branch is in git: its diffs and `overnight merge`'s checks; and an old one whose branch is gone),
the Trends data with its charts drawn as SVG (30 nights, 365 nights, the last 100 sessions, one agent's share),
the Memory page (the newest entries, one word, two words, a kind filter, a file filter, a page further on).
Target: p95 under 100 ms for every view (issue 14; the HTTP layer and templates come on top, measured by the
web app's own benchmark).

Run: .venv/bin/python bench/ui_views.py [--rounds 20] [--cache DIR]   (builds the state the first time)
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from measure import pct
from ui_state import ensure

from mcp_servers.core.workspace import Workspace
from scheduler import report
from scheduler.ui.views import memory, sessions, trends
from scheduler.ui.views.index import ReportIndex

TARGET_MS = 100.0


def views(ws: Workspace, index: ReportIndex) -> dict[str, Callable[[], Any]]:
    found = index.refresh()
    newest, old = found[0].id, found[-1].id
    path = next((i.files[0].path for i in memory.search(ws, "", limit=50).items if i.files), None)
    return {
        "sessions: first page": lambda: sessions.list_sessions(ws, index),
        "sessions: page 5, agent gemini": lambda: sessions.list_sessions(ws, index, offset=200, agent="gemini"),
        "sessions: a month, outcome completed": lambda: sessions.list_sessions(
            ws, index, since="2026-05-01", until="2026-05-31", outcome="completed"
        ),
        "session detail: newest (branch, diffs, merge checks)": lambda: sessions.session_detail(ws, newest),
        "session detail: oldest (branch gone)": lambda: sessions.session_detail(ws, old),
        "trends: 30 nights + charts": lambda: trends.charts(trends.trends(ws, index, nights=30)),
        "trends: 365 nights + charts": lambda: trends.charts(trends.trends(ws, index, nights=365)),
        "trends: last 100 sessions + charts": lambda: trends.charts(
            trends.trends(ws, index, granularity="session", sessions=100)
        ),
        "trends: 90 nights, agent codex": lambda: trends.charts(trends.trends(ws, index, nights=90, agent="codex")),
        "memory: newest": lambda: memory.search(ws),
        "memory: one word": lambda: memory.search(ws, "sqlite"),
        "memory: two words": lambda: memory.search(ws, "flaky timeout"),
        "memory: kind lesson": lambda: memory.search(ws, "cache", kind="lesson"),
        "memory: file filter": lambda: memory.search(ws, "", file=path),
        "memory: page 10": lambda: memory.search(ws, "gate", offset=180),
    }


def timed(call: Callable[[], Any]) -> float:
    started = time.perf_counter()
    call()
    return (time.perf_counter() - started) * 1000


def both(call: Callable[[], Any]) -> tuple[float, float]:
    """(wall ms, this process's CPU ms): on a loaded machine the second says what the view itself costs (the
    git processes a view starts are not in it)."""
    cpu = time.process_time()
    wall = timed(call)
    return wall, (time.process_time() - cpu) * 1000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--cache", type=Path, help="where the state is kept (default ~/.cache/overnight-bench)")
    args = parser.parse_args()
    repo = ensure(args.cache)
    ws = Workspace.open(repo, dict(os.environ))
    index = ReportIndex(ws.state_dir)
    cold = timed(index.refresh)
    warm = timed(index.refresh)
    time.sleep(2.1)  # past the index's racy window: the next scan trusts the folder's timestamp
    index.refresh()
    warm = timed(index.refresh)
    report.save(ws.state_dir, report.load(ws.state_dir, index.refresh()[0].id))  # as `overnight merge` marks it
    changed = timed(index.refresh)
    print(f"load average {os.getloadavg()[0]:.1f}; {len(index.refresh())} sessions")
    print(f"report index: first scan {cold:.0f} ms (every report parsed), unchanged {warm:.1f} ms, "
          f"one report changed {changed:.1f} ms")  # fmt: skip
    calls = views(ws, index)
    for call in calls.values():  # warm-up
        call()
    times: dict[str, list[float]] = {name: [] for name in calls}
    cpu: dict[str, list[float]] = {name: [] for name in calls}
    names = list(calls)
    for r in range(args.rounds):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            wall, used = both(calls[name])
            times[name].append(wall)
            cpu[name].append(used)
    ok = True
    width = max(map(len, names))
    print(f"{'view':<{width}}  {'p50 ms':>8}  {'p95 ms':>8}  {'cpu p50':>8}")
    for name in names:
        p50, p95 = pct(times[name], 0.5), pct(times[name], 0.95)
        ok = ok and p95 < TARGET_MS
        print(f"{name:<{width}}  {p50:8.1f}  {p95:8.1f}  {pct(cpu[name], 0.5):8.1f}  "
              f"{'PASS' if p95 < TARGET_MS else 'FAIL'}")  # fmt: skip
    print(f"target: p95 under {TARGET_MS:.0f} ms for every view: {'PASS' if ok else 'FAIL'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
