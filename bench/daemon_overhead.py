"""The daemon's own cost: an idle cycle (no ready task) and a cycle of one task, against one plain `overnight run`.

Measures, in temporary repositories built alike, interleaved round by round: (a) idle: `Daemon.run()` with
`--cycles N` (N cycles, breaks of 0, the completion criteria set to none so it never completes, no ready task:
each cycle is a run refused with no work), its wall time divided by N, against one plain `Runner.run()` of the
same repository (refused with no work as well); (b) one task: `Daemon.run()` with one cycle of one task, done by
the replay agent with a script that does nothing (rolled back), against one plain `Runner.run()` of the same
task. The daemon's extra work is its lock, the cycle rows in `state.db`, the completion check and its reports.

Reference: the plain run, interleaved. Target: median ratio daemon/plain at most 1.10x, both.

Run: .venv/bin/python bench/daemon_overhead.py [--rounds 5] [--idle-cycles 5]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.scheduler_overhead import NOTHING, TASK, git  # noqa: E402 (after the path set-up above)
from mcp_servers.core.workspace import Workspace  # noqa: E402
from scheduler import daemon as daemon_module  # noqa: E402
from scheduler.agents.replay import ReplayAgent  # noqa: E402
from scheduler.daemon import Daemon  # noqa: E402
from scheduler.report import SessionRecord  # noqa: E402
from scheduler.runner import Runner  # noqa: E402

IN_RUNNER: list[float] = []


class TimedRunner(Runner):
    """The Runner the daemon makes, timed: what the daemon adds is the rest of its wall time."""

    def run(self) -> SessionRecord | None:
        started = time.perf_counter()
        try:
            return super().run()
        finally:
            IN_RUNNER.append(time.perf_counter() - started)


daemon_module.Runner = TimedRunner  # type: ignore[misc]

TARGET = 1.10
PYPROJECT = '[project]\nname = "app"\nversion = "0.1.0"\n\n[tool.pytest.ini_options]\npythonpath = ["src"]\n'
DAEMON = "[daemon]\nbreak_min = 0\nmax_cycles_per_hour = 1000\nmax_cycles_per_day = 10000\ncomplete_when = []\n"


def make_repo(root: Path, ready: bool) -> Path:
    section = "### Ready for Autonomous Execution\n" if ready else "### Pending Approval\n"
    files = {
        "pyproject.toml": PYPROJECT,
        "src/app/__init__.py": "",
        "src/app/calc.py": "def add(a, b):\n    return a + b\n",
        "tests/test_calc.py": "from app.calc import add\n\n\ndef test_add():\n    assert add(1, 2) == 3\n",
        ".gitignore": "__pycache__/\n.coverage*\n",
        "overnight.toml": f"[gate.coverage]\ncompare_base = false\n\n[scheduler]\nmax_tasks = 1\n\n{DAEMON}",
        "PROJECT_PLAN.md": f"# Plan\n\n## Task Queue\n\n{section}" + TASK.format(n=1),
    }
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "initial")
    return root


def plain(repo: Path, script: Path) -> float:
    ws = Workspace.open(repo, environ=dict(os.environ))
    started = time.perf_counter()
    Runner(ws, ReplayAgent(script), say=lambda _line: None).run()
    return time.perf_counter() - started


def daemon(repo: Path, script: Path, cycles: int) -> tuple[float, float]:
    """(wall s, the daemon's own s: outside its cycles' sessions)."""
    ws = Workspace.open(repo, environ=dict(os.environ))
    IN_RUNNER.clear()
    started = time.perf_counter()
    result = Daemon(ws, lambda _ws: ReplayAgent(script), sleep=lambda _s: None, say=lambda _line: None,
                    max_cycles=cycles).run()  # fmt: skip
    wall = time.perf_counter() - started
    assert result.outcome == "stopped" and result.report is not None, result
    assert result.report.totals.cycles == cycles, result.report.totals
    assert len(IN_RUNNER) == cycles, IN_RUNNER
    return wall, wall - sum(IN_RUNNER)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--idle-cycles", type=int, default=5)
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="overnight-bench-home-"))
    os.environ["OVERNIGHT_HOME"] = str(home)
    for name, value in (
        ("GIT_AUTHOR_NAME", "bench"),
        ("GIT_AUTHOR_EMAIL", "bench@overnight.invalid"),
        ("GIT_COMMITTER_NAME", "bench"),
        ("GIT_COMMITTER_EMAIL", "bench@overnight.invalid"),
    ):
        os.environ.setdefault(name, value)  # fmt: skip
    rows: dict[str, list[tuple[float, float, float]]] = {"idle cycle": [], "one task": []}  # (daemon, own, plain)
    with tempfile.TemporaryDirectory(prefix="overnight-bench-", ignore_cleanup_errors=True) as tmp:
        base = Path(tmp)
        script = base / "nothing.toml"
        script.write_text(NOTHING)
        for n in range(args.rounds):
            for kind, ready, cycles in (("idle cycle", False, args.idle_cycles), ("one task", True, 1)):
                first_daemon = n % 2 == 0  # interleaved, alternating which goes first
                if not first_daemon:
                    ref = plain(make_repo(base / f"{n}-{ready}-p", ready=ready), script)
                wall, own = daemon(make_repo(base / f"{n}-{ready}-d", ready=ready), script, cycles)
                if first_daemon:
                    ref = plain(make_repo(base / f"{n}-{ready}-p", ready=ready), script)
                row = (wall / cycles, own / cycles, ref)
                rows[kind].append(row)
                print(f"round {n + 1} {kind}: daemon {row[0]:.3f} s a cycle (its own {row[1] * 1000:.0f} ms), plain "
                      f"run {ref:.3f} s -> raw {row[0] / ref:.2f}x", flush=True)  # fmt: skip
    shutil.rmtree(home, ignore_errors=True)
    ok = True
    print()
    for kind, found in rows.items():
        ref = statistics.median(r[2] for r in found)
        own = statistics.median(r[1] for r in found)
        raw = statistics.median(r[0] / r[2] for r in found)
        ratio = (ref + own) / ref
        ok = ok and ratio <= TARGET
        print(f"{kind}: plain run {ref:.3f} s, the daemon's own {own * 1000:.0f} ms a cycle -> {ratio:.3f}x "
              f"(raw interleaved daemon/plain {raw:.2f}x)")  # fmt: skip
    print(f"target at most {TARGET:.2f}x: {'PASS' if ok else 'FAIL'}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
