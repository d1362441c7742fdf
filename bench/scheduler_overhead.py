"""The scheduler's own cost per task: everything but the agent and the test command.

Measures: whole `overnight run` sessions (the real Runner: lock, preflight with the three servers probed over
MCP, worktree and branch, next_task, validate, claim and its renewal, memory lessons, prompt, the agent's process
group, verification, rollback, memory records, report) in a temporary repository with 5 approved tasks, driven
by the replay agent with a script that does nothing (one `say` step): every task ends with no commit and is
rolled back, and the session goes on (max_consecutive_failures raised so all 5 run). The agent's own wall
clock (the replay child's process, as the scheduler timed it) is subtracted; no test command runs on this path.
Overhead per task = (session wall time - the agents' wall time) / tasks, so the session's fixed costs (preflight,
worktree, report) are spread over its tasks, as they are in a real night.

A second measure, the keep path: one task done properly by the replay agent (change, gate, commit, complete),
so verification runs the policy, the receipts and a fresh gate. Its overhead is the session's wall time minus the
agent's wall time minus the test command's time in the scheduler's own gate run (the `tests` check's duration).

Reference: the target is absolute. Target: under 2 s per task (the median of the rounds), both measures.

Run: .venv/bin/python bench/scheduler_overhead.py [--rounds 3] [--tasks 5]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mcp_servers.core.workspace import Workspace  # noqa: E402 (after the path set-up above)
from scheduler.agents.replay import ReplayAgent  # noqa: E402
from scheduler.runner import Runner  # noqa: E402

TARGET_S = 2.0
CALC = "def add(a, b):\n    return a + b\n"
TEST = "from app.calc import add\n\n\ndef test_add():\n    assert add(1, 2) == 3\n"
PYPROJECT = '[project]\nname = "app"\nversion = "0.1.0"\n\n[tool.pytest.ini_options]\npythonpath = ["src"]\n'
TASK = """- **[t{n}]** Task number {n}
  - Priority: P1
  - Files: src/app/*.py, tests/*.py
  - Alignment score: 90/100
  - Estimated lines: 10
  - Tests defined: Yes (tests/test_calc.py)
"""
NOTHING = '[[task]]\nid = "*"\n[[task.step]]\nsay = "I did nothing."\n'
KEEP = """[[task]]
id = "*"
[[task.step]]
append = "src/app/calc.py"
text = "\\n\\ndef sub(a, b):\\n    return a - b\\n"
[[task.step]]
append = "tests/test_calc.py"
text = "\\n\\ndef test_sub():\\n    from app.calc import sub\\n\\n    assert sub(3, 1) == 2\\n"
[[task.step]]
call = "quality.run_quality_gate"
[[task.step]]
call = "quality.commit"
args = { message = "Add sub()", task_id = "{task_id}" }
[[task.step]]
call = "project.complete_task"
args = { task_id = "{task_id}" }
"""


def git(root: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=root, check=True, capture_output=True)


def make_repo(root: Path, tasks: int, scheduler: str) -> Path:
    files = {
        "pyproject.toml": PYPROJECT,
        "src/app/__init__.py": "",
        "src/app/calc.py": CALC,
        "tests/test_calc.py": TEST,
        ".gitignore": "__pycache__/\n.coverage*\n",
        "overnight.toml": f"[gate.coverage]\ncompare_base = false\n\n[scheduler]\n{scheduler}",
        "PROJECT_PLAN.md": "# Plan\n\n## Task Queue\n\n### Ready for Autonomous Execution\n"
        + "".join(TASK.format(n=n) for n in range(1, tasks + 1)),
    }
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "initial")
    return root


def session(base: Path, name: str, tasks: int, script: str, scheduler: str) -> tuple[float, float, float, int]:
    """(wall s, agents' s, test command s, tasks run) of one session."""
    repo = make_repo(base / name, tasks, scheduler)
    script_path = base / f"{name}.toml"
    script_path.write_text(script)
    ws = Workspace.open(repo, environ=dict(os.environ))
    started = time.perf_counter()
    record = Runner(ws, ReplayAgent(script_path), say=lambda _line: None).run()
    wall = time.perf_counter() - started
    assert record is not None and record.outcome not in {"preflight-failed", "no-work"}, record
    agents = sum(t.agent.duration_s for t in record.tasks if t.agent)
    tests = sum(c.duration_s for t in record.tasks for c in t.checks if c.name == "tests")
    return wall, agents, tests, len(record.tasks)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--tasks", type=int, default=5)
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="overnight-bench-home-"))
    os.environ["OVERNIGHT_HOME"] = str(home)  # the sessions' worktrees go here, not in the real home
    for name, value in (("GIT_AUTHOR_NAME", "bench"), ("GIT_AUTHOR_EMAIL", "bench@overnight.invalid"),
                        ("GIT_COMMITTER_NAME", "bench"), ("GIT_COMMITTER_EMAIL", "bench@overnight.invalid")):
        os.environ.setdefault(name, value)
    nothing_rows, keep_rows = [], []
    with tempfile.TemporaryDirectory(prefix="overnight-bench-", ignore_cleanup_errors=True) as tmp:
        base = Path(tmp)
        for n in range(args.rounds):
            wall, agents, tests, ran = session(
                base, f"nothing-{n}", args.tasks, NOTHING,
                f"max_tasks = {args.tasks}\nmax_consecutive_failures = {args.tasks + 1}\n",
            )  # fmt: skip
            assert ran == args.tasks, ran
            per_task = (wall - agents - tests) / ran
            nothing_rows.append(per_task)
            print(f"round {n + 1} do-nothing agent: {ran} tasks, session {wall:.2f} s, agents {agents:.2f} s, "
                  f"tests {tests:.2f} s -> overhead {per_task:.2f} s/task", flush=True)  # fmt: skip
            wall, agents, tests, ran = session(base, f"keep-{n}", 1, KEEP, "max_tasks = 1\n")
            per_task = (wall - agents - tests) / ran
            keep_rows.append(per_task)
            print(f"round {n + 1} keep path: 1 task, session {wall:.2f} s, agent {agents:.2f} s, scheduler's test "
                  f"command {tests:.2f} s -> overhead {per_task:.2f} s/task", flush=True)  # fmt: skip
    shutil.rmtree(home, ignore_errors=True)
    nothing, keep = statistics.median(nothing_rows), statistics.median(keep_rows)
    ok = nothing < TARGET_S and keep < TARGET_S
    print(f"\nscheduler overhead per task, median of {args.rounds}: do-nothing agent {nothing:.2f} s, keep path "
          f"{keep:.2f} s; target under {TARGET_S:.0f} s: {'PASS' if ok else 'FAIL'}")  # fmt: skip
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
