"""What the scheduler's tests share: a planned repository, scripted agents, and the proof that the person's side
(the base branch, their checkout, their index, the plan on the base branch, their `.git/config` byte for byte and
their hooks) was not touched."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from mcp_servers.core.workspace import Workspace
from scheduler import lock, report, runner
from scheduler.agents.replay import ReplayAgent

from ..conftest import FAST_CONFIG, GitRepo, make_repo
from ..support.procs import alive, processes_mentioning  # noqa: F401 (re-exported for the scheduler tests)

GOOD = "  - Alignment score: 90/100\n  - Estimated lines: 10\n  - Tests defined: Yes (tests/test_calc.py)\n"
SCOPE = "  - Files: src/app/*.py, tests/*.py\n"


def plan(*tasks: tuple[str, str]) -> str:
    body = "".join(f"- **[{task_id}]** {title}\n  - Priority: P1\n{GOOD}{SCOPE}" for task_id, title in tasks)
    return f"# Plan\n\n## Task Queue\n\n### Ready for Autonomous Execution ✅\n{body}\n### Pending Approval ⏳\n"


PLAN = plan(("sub", "Add sub()"), ("mul", "Add mul()"), ("neg", "Add neg()"))

# A task done properly: change, gate, commit through the quality server, complete, log.
PASS = """
[[task.step]]
append = "src/app/calc.py"
text = "\\n\\ndef {name}(a, b):\\n    return a - b\\n"
[[task.step]]
append = "tests/test_calc.py"
text = "\\n\\ndef test_{name}():\\n    from app.calc import {name}\\n\\n    assert {name}(3, 1) == 2\\n"
[[task.step]]
call = "quality.run_quality_gate"
[[task.step]]
call = "quality.commit"
args = {{ message = "Add {name}()", task_id = "{{task_id}}" }}
[[task.step]]
call = "project.complete_task"
args = {{ task_id = "{{task_id}}" }}
[[task.step]]
call = "memory.log_event"
args = {{ kind = "decision", text = "{name}() written like add()", task_id = "{{task_id}}" }}
"""

# A test broken: the gate fails, the commit is refused, the agent gives up.
BREAK = """
[[task.step]]
append = "src/app/calc.py"
text = "\\n\\ndef add(a, b):\\n    return a * b\\n"
[[task.step]]
call = "quality.run_quality_gate"
[[task.step]]
call = "quality.commit"
args = { message = "A faster add()", task_id = "{task_id}" }
"""

HANG = """
[[task.step]]
append = "src/app/calc.py"
text = "\\n\\nHALF = 'done'\\n"
[[task.step]]
sleep = 600
"""


def task_script(task_id: str, steps: str) -> str:
    return f'[[task]]\nid = "{task_id}"\n{steps}'


def passing(task_id: str, name: str) -> str:
    return task_script(task_id, PASS.format(name=name))


@dataclass
class Person:
    """What the person has before a session, to compare with after it."""

    branch: str
    head: str
    index: str
    status: str
    plan: str
    config: bytes
    hooks: tuple[str, ...]

    @classmethod
    def of(cls, repo: GitRepo) -> Person:
        hooks = repo.root / ".git" / "hooks"
        return cls(
            branch=repo.git("symbolic-ref", "--short", "HEAD"),
            head=repo.head(),
            index=repo.index_tree(),
            status=repo.status(),
            plan=repo.git("show", "main:PROJECT_PLAN.md"),
            config=(repo.root / ".git" / "config").read_bytes(),
            hooks=tuple(sorted(p.name for p in hooks.iterdir())) if hooks.is_dir() else (),
        )

    def assert_untouched(self, repo: GitRepo) -> None:
        assert Person.of(repo) == self
        assert repo.git("rev-parse", "main") == self.head


def make_planned(root: Path, plan_text: str = PLAN, scheduler: str = "") -> GitRepo:
    config = FAST_CONFIG + "\n[scheduler]\n" + scheduler
    repo = make_repo(root, config=config, files={"PROJECT_PLAN.md": plan_text})
    repo.write("NOTES.txt", "the person's own uncommitted work\n")  # must survive every session untouched
    return repo


def write_script(path: Path, *parts: str) -> Path:
    path.write_text("\n".join(parts), encoding="utf-8")
    return path


def run_session(repo: GitRepo, script: Path) -> tuple[report.SessionRecord, list[str]]:
    said: list[str] = []
    ws = Workspace.open(repo.root, environ=dict(os.environ))
    record = runner.Runner(ws, ReplayAgent(script), say=said.append).run()
    assert record is not None, said
    return record, said


def spawn_run(repo: GitRepo, script: Path) -> subprocess.Popen[str]:
    """`overnight run` as its own process (for signals: stop, SIGKILL)."""
    argv = [sys.executable, "-m", "scheduler", "-C", str(repo.root), "run", "--agent", "replay", "--script"]
    argv.append(str(script))
    return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def wait_for_agent(repo: GitRepo, proc: subprocess.Popen[str], timeout: float = 120) -> dict[str, object]:
    """The lock's contents once the agent is running (its pid is in the lock)."""
    path = Workspace.open(repo.root).state_dir / lock.LOCK_FILE
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"the session ended early: {proc.stdout.read() if proc.stdout else ''}")
        try:
            data = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            data = {}
        if data.get("agent_pid"):
            return data
        time.sleep(0.2)
    raise AssertionError("the agent never started")
