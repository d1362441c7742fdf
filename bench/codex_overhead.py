"""The scheduler's own cost per task with the Codex CLI adapter (issue 13): everything but the agent.

Whole `overnight run` sessions (the real Runner, the real `codex` CLI in the real sandbox, our three servers
outside it) in a temporary repository with 5 approved tasks, against a scripted Responses API on 127.0.0.1 that
answers every request "I did nothing." (tests/support/fake_openai.py): every task ends with no commit and is
rolled back. Overhead per task = (session wall time - the agents' wall time) / tasks, as in
bench/scheduler_overhead.py; the agent's own time (codex's start-up, its MCP handshakes) is printed beside it.

Target: under 2 s per task (the median of the rounds), as for Claude Code.

Run: .venv/bin/python bench/codex_overhead.py [--rounds 3] [--tasks 5] (needs `npm ci --prefix tests/e2e/node`)
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
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

from scheduler_overhead import TARGET_S, make_repo  # noqa: E402 (after the path set-up above)

from mcp_servers.core.workspace import Workspace  # noqa: E402
from scheduler.agents.codex import CodexAgent, CodexSettings  # noqa: E402
from scheduler.runner import Runner  # noqa: E402
from tests.support.fake_openai import FakeOpenAI  # noqa: E402

CODEX = ROOT / "tests" / "e2e" / "node" / "node_modules" / ".bin" / "codex"


def session(base: Path, name: str, tasks: int, fake: FakeOpenAI) -> tuple[float, float, int]:
    """(wall s, agents' s, tasks run) of one session."""
    repo = make_repo(base / name, tasks, f"max_tasks = {tasks}\nmax_consecutive_failures = {tasks + 1}\n")
    fake.set_script(["I did nothing."] * tasks)
    ws = Workspace.open(repo, environ=dict(os.environ))
    settings = CodexSettings(command=str(CODEX), base_url=fake.url, model="fake-model", request_max_retries=0)
    agent = CodexAgent(ws.settings.scheduler, settings)
    started = time.perf_counter()
    record = Runner(ws, agent, say=lambda _line: None).run()
    wall = time.perf_counter() - started
    assert record is not None and record.outcome not in {"preflight-failed", "no-work"}, record
    assert all(t.agent and not t.agent.is_error for t in record.tasks), [t.agent for t in record.tasks]
    return wall, sum(t.agent.duration_s for t in record.tasks if t.agent), len(record.tasks)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--tasks", type=int, default=5)
    args = parser.parse_args()
    if not CODEX.exists():
        print(f"{CODEX} is missing: run `npm ci --prefix tests/e2e/node`", file=sys.stderr)
        return 2
    home = Path(tempfile.mkdtemp(prefix="overnight-bench-home-"))
    os.environ["OVERNIGHT_HOME"] = str(home)  # the sessions' worktrees go here, not in the real home
    for key, value in (
        ("GIT_AUTHOR_NAME", "bench"),
        ("GIT_AUTHOR_EMAIL", "bench@overnight.invalid"),
        ("GIT_COMMITTER_NAME", "bench"),
        ("GIT_COMMITTER_EMAIL", "bench@overnight.invalid"),
    ):
        os.environ.setdefault(key, value)  # fmt: skip
    rows = []
    with (
        FakeOpenAI() as fake,
        tempfile.TemporaryDirectory(prefix="overnight-bench-", ignore_cleanup_errors=True) as tmp,
    ):
        for n in range(args.rounds):
            wall, agents, ran = session(Path(tmp), f"codex-{n}", args.tasks, fake)
            assert ran == args.tasks, ran
            rows.append((wall - agents) / ran)
            print(f"round {n + 1} codex, do-nothing model: {ran} tasks, session {wall:.2f} s, agents {agents:.2f} s "
                  f"({agents / ran:.2f} s each) -> overhead {rows[-1]:.2f} s/task", flush=True)  # fmt: skip
    shutil.rmtree(home, ignore_errors=True)
    median = statistics.median(rows)
    ok = median < TARGET_S
    print(f"\nscheduler overhead per task with codex, median of {args.rounds}: {median:.2f} s; target under "
          f"{TARGET_S:.0f} s: {'PASS' if ok else 'FAIL'}")  # fmt: skip
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
