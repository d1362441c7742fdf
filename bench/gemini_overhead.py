"""The scheduler's own cost per task with the Gemini CLI adapter: everything but the agent.

Measures whole `overnight run` sessions (the real Runner, the sandbox, the three servers outside it, the per-run
settings, the BeforeTool hook configured, the stream read, verification, rollback, report) in a temporary
repository with 5 approved tasks, driven by the real `gemini` CLI (tests/e2e/node, pinned) against the scripted
Gemini API (tests/support/fake_gemini.py) with a model that does nothing (one final text per task): every task
ends with no commit and is rolled back. The agent's own wall clock (the CLI's process as the scheduler timed it,
its start-up included: it waits for the three MCP servers before its first request) is subtracted.
Overhead per task = (session wall time - the agents' wall time) / tasks, as in scheduler_overhead.py.

Target: under 2 s per task (the median of the rounds), as for Claude Code and the replay agent.

Run: .venv/bin/python bench/gemini_overhead.py [--rounds 3] [--tasks 5]  (after `npm ci --prefix tests/e2e/node`)
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

from bench.scheduler_overhead import make_repo  # noqa: E402 (after the path set-up above)
from mcp_servers.core.workspace import Workspace  # noqa: E402
from scheduler.agents.gemini import GeminiAgent, GeminiSettings  # noqa: E402
from scheduler.runner import Runner  # noqa: E402
from tests.support.fake_gemini import MODEL, FakeGemini  # noqa: E402

TARGET_S = 2.0
GEMINI = ROOT / "tests" / "e2e" / "node" / "node_modules" / ".bin" / "gemini"


def session(base: Path, name: str, tasks: int) -> tuple[float, float, int]:
    """(wall s, agents' s, tasks run) of one session."""
    repo = make_repo(base / name, tasks, f"max_tasks = {tasks}\nmax_consecutive_failures = {tasks + 1}\n")
    with FakeGemini(["I did nothing."] * tasks) as fake:
        environ = {**os.environ, **fake.env()}
        ws = Workspace.open(repo, environ=dict(os.environ))
        agent = GeminiAgent(ws.settings.scheduler, GeminiSettings(command=str(GEMINI), model=MODEL, base_url=fake.url),
                            environ=environ)  # fmt: skip
        started = time.perf_counter()
        record = Runner(ws, agent, say=lambda _line: None).run()
        wall = time.perf_counter() - started
    assert record is not None and record.outcome not in {"preflight-failed", "no-work"}, record
    return wall, sum(t.agent.duration_s for t in record.tasks if t.agent), len(record.tasks)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--tasks", type=int, default=5)
    args = parser.parse_args()
    if not GEMINI.exists():
        print(f"{GEMINI} is missing: run `npm ci --prefix tests/e2e/node` first", file=sys.stderr)
        return 2
    home = Path(tempfile.mkdtemp(prefix="overnight-bench-home-"))
    os.environ["OVERNIGHT_HOME"] = str(home)  # the sessions' worktrees go here, not in the real home
    for name, value in (
        ("GIT_AUTHOR_NAME", "bench"),
        ("GIT_AUTHOR_EMAIL", "bench@overnight.invalid"),
        ("GIT_COMMITTER_NAME", "bench"),
        ("GIT_COMMITTER_EMAIL", "bench@overnight.invalid"),
    ):
        os.environ.setdefault(name, value)  # fmt: skip
    rows = []
    with tempfile.TemporaryDirectory(prefix="overnight-bench-", ignore_cleanup_errors=True) as tmp:
        for n in range(args.rounds):
            wall, agents, ran = session(Path(tmp), f"gemini-{n}", args.tasks)
            rows.append((wall - agents) / ran)
            print(f"round {n + 1} gemini, do-nothing model: {ran} tasks, session {wall:.2f} s, agents {agents:.2f} s "
                  f"-> overhead {rows[-1]:.2f} s/task", flush=True)  # fmt: skip
    shutil.rmtree(home, ignore_errors=True)
    median = statistics.median(rows)
    ok = median < TARGET_S
    print(f"\nscheduler overhead per task with the Gemini CLI, median of {args.rounds}: {median:.2f} s; target under "
          f"{TARGET_S:.0f} s: {'PASS' if ok else 'FAIL'}")  # fmt: skip
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
