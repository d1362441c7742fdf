"""The agent's PreToolUse guard: what it refuses, what it lets through, and that it fails closed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from scheduler import guard

from ..conftest import GitRepo, make_repo
from .sessions import PLAN

SCOPED = "  - Files: src/app/*.py, tests/*.py\n"


@pytest.fixture
def repo(tmp_path: Path) -> GitRepo:
    return make_repo(tmp_path / "r", files={"PROJECT_PLAN.md": PLAN})


def _env(repo: GitRepo, **extra: str) -> dict[str, str]:
    return {**os.environ, "OVERNIGHT_REPO": str(repo.root), **extra}


def _bash(command: str) -> dict[str, object]:
    return {"tool_name": "Bash", "tool_input": {"command": command}}


def _write(path: str, tool: str = "Write") -> dict[str, object]:
    key = "notebook_path" if tool == "NotebookEdit" else "file_path"
    return {"tool_name": tool, "tool_input": {key: path}}


@pytest.mark.parametrize(
    "command",
    [
        "git commit -m x",
        "git add -A && git commit -qm x",
        "git -C . commit --no-verify -am x",
        "bash -c 'git commit -am x'",
        'g""it commit -m x',
        "true; git   commit",
        "git push origin HEAD",
        "pytest --no-verify",
        "git config core.hooksPath /tmp/h",
        "git -c core.hooksPath=/dev/null status",
        "git update-ref refs/heads/main HEAD",
        "git reset --soft HEAD~1",
        "git reset --hard abc1234",
        "git checkout -b other",
        "git switch main",
        "git rebase -i HEAD~3",
        "git stash",
        "overnight plan approve task_9",
        "overnight resume",
    ],
)
def test_guard_refuses_commands_that_go_around_the_gate(repo: GitRepo, command: str) -> None:
    assert guard.judge(_bash(command), _env(repo)) is not None


@pytest.mark.parametrize(
    "command",
    ["python -m pytest -q", "git status", "git diff HEAD", "git log --oneline -5", "ls src", "git checkout -- x.py"],
)
def test_guard_lets_ordinary_work_through(repo: GitRepo, command: str) -> None:
    assert guard.judge(_bash(command), _env(repo)) is None


def test_guard_checks_where_files_are_written(repo: GitRepo, tmp_path: Path) -> None:
    env = _env(repo)
    root = repo.root
    assert guard.judge(_write(str(root / "src/app/new.py")), env) is None
    assert guard.judge(_write("src/app/new.py", "Edit"), env) is None  # relative to the worktree
    assert "is protected" in str(guard.judge(_write(str(root / ".env")), env))
    assert "is protected" in str(guard.judge(_write(str(root / ".GitHub/workflows/ci.yml"), "Edit"), env))
    assert "is protected" in str(guard.judge(_write(str(root / "overnight.toml"), "MultiEdit"), env))
    assert "changes only through" in str(guard.judge(_write(str(root / "PROJECT_PLAN.md")), env))
    assert "outside the paths agents may change" in str(guard.judge(_write(str(root / "tools.py")), env))
    assert "outside the worktree" in str(guard.judge(_write(str(root / "src/../../escape.py")), env))
    assert "outside the worktree" in str(guard.judge(_write(str(tmp_path / "elsewhere.py")), env))
    assert "outside the paths" in str(guard.judge(_write(str(root / "x.ipynb"), "NotebookEdit"), env))
    # a symlink inside an allowed folder that leads to a protected file is judged where it leads
    (root / "src/app/link.py").symlink_to(root / ".env")
    assert "is protected" in str(guard.judge(_write(str(root / "src/app/link.py")), env))


def test_guard_holds_the_agent_to_its_tasks_scope(repo: GitRepo) -> None:
    env = _env(repo, OVERNIGHT_TASK_ID="sub")
    assert guard.judge(_write(str(repo.root / "src/app/calc.py")), env) is None
    assert "outside this task's Files: scope" in str(guard.judge(_write(str(repo.root / "src/other/x.py")), env))


def _hook(event: object, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    data = event if isinstance(event, str) else json.dumps(event)
    return subprocess.run([sys.executable, "-I", "-m", "scheduler.guard"], input=data, capture_output=True,
                          text=True, env=env, timeout=60, check=False)  # fmt: skip


def test_guard_as_a_hook_exits_2_with_the_reason_and_fails_closed(repo: GitRepo) -> None:
    env = _env(repo)
    refused = _hook(_bash("git commit -m x"), env)
    assert refused.returncode == 2 and refused.stderr.startswith("overnight refused this: `git commit` is refused")
    assert _hook(_bash("git status"), env).returncode == 0
    broken = _hook("{not json", env)
    assert broken.returncode == 2 and "could not check this call" in broken.stderr
    nowhere = _hook(_write("src/app/x.py"), {**os.environ, "OVERNIGHT_REPO": str(repo.root / "missing")})
    assert nowhere.returncode == 2 and "could not check this call" in nowhere.stderr
    odd = _hook({"tool_name": "Write", "tool_input": "a string"}, env)
    assert odd.returncode == 2 and "could not be read" in odd.stderr


def test_guard_ignores_the_worktrees_own_modules(repo: GitRepo) -> None:
    """Run in the worktree, `python -m scheduler.guard` must not import a `scheduler` package planted there."""
    fake = repo.root / "scheduler"
    fake.mkdir()
    (fake / "__init__.py").write_text("")
    (fake / "guard.py").write_text("raise SystemExit(0)\n")
    argv = [sys.executable, "-I", "-m", "scheduler.guard"]
    done = subprocess.run(argv, input=json.dumps(_bash("git commit")), capture_output=True, text=True, cwd=repo.root,
                          env=_env(repo), timeout=60, check=False)
    assert done.returncode == 2
