"""Shared fixtures: real git repositories in temporary folders, kept off the machine's real config and home."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

CALC = """\
def add(a, b):
    return a + b
"""

TEST_CALC = """\
from app.calc import add


def test_add():
    assert add(1, 2) == 3
"""

# A small, tested change to the sample project, and the tool names of the quality server's contract.
ADD_SUB = "\n\ndef sub(a, b):\n    return a - b\n"
TEST_SUB = "\n\ndef test_sub():\n    from app.calc import sub\n\n    assert sub(3, 1) == 2\n"
QUALITY_TOOLS = frozenset(
    {"validate_task", "validate_changes", "run_quality_gate", "commit", "gate_status", "get_policy", "health_report"}
)

PYPROJECT = """\
[project]
name = "sample"
version = "0.1.0"
dependencies = ["requests>=2"]

[tool.pytest.ini_options]
pythonpath = ["src"]
"""


@dataclass
class GitRepo:
    """A git repository in a temporary folder, with helpers to change it."""

    root: Path

    def git(self, *args: str, check: bool = True, env: dict[str, str] | None = None) -> str:
        result = subprocess.run(  # noqa: PLW1510 (the return code is checked below)
            ["git", *args], cwd=self.root, capture_output=True, text=True, env={**os.environ, **(env or {})}
        )
        if check and result.returncode != 0:
            raise AssertionError(f"git {' '.join(args)} failed: {result.stderr}")
        return result.stdout.strip()

    def write(self, rel: str, content: str | bytes, mode: int | None = None) -> Path:
        path = self.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)
        if mode is not None:
            path.chmod(mode)
        return path

    def append(self, rel: str, content: str) -> Path:
        path = self.root / rel
        path.write_text(path.read_text() + content)
        return path

    def commit(self, message: str = "commit") -> str:
        self.git("add", "-A")
        self.git("commit", "-q", "--no-verify", "-m", message)
        return self.git("rev-parse", "HEAD")

    def head(self) -> str:
        return self.git("rev-parse", "HEAD")

    def status(self) -> str:
        return self.git("status", "--porcelain", "--untracked-files=all")

    def index_tree(self) -> str:
        return self.git("write-tree")

    def conflicting_merge(self) -> None:
        """Leave the repository in the middle of a merge with a conflict in src/app/calc.py."""
        self.git("checkout", "-q", "-b", "other")
        self.write("src/app/calc.py", "def add(a, b):\n    return b + a\n")
        self.commit("other")
        self.git("checkout", "-q", "main")
        self.write("src/app/calc.py", "def add(a, b):\n    return a + b + 0\n")
        self.commit("main")
        self.git("merge", "other", check=False)


@pytest.fixture(autouse=True)
def _isolated_environment(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """No test reads the real git config, writes to the real home, or inherits a session's variables."""
    home = tmp_path_factory.mktemp("home")
    gitconfig = home / ".gitconfig"
    gitconfig.write_text(
        "[user]\n\tname = Overnight Tests\n\temail = tests@overnight.invalid\n"
        "[init]\n\tdefaultBranch = main\n[advice]\n\tdetachedHead = false\n",
    )
    monkeypatch.setenv("OVERNIGHT_HOME", str(home / "overnight"))
    monkeypatch.setenv("HOME", str(home))  # sessions snapshot the home's dotfiles: never the machine's real ones
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(gitconfig))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    # The sample projects' pytest (the gate's test runs, a few per gate) loads no plugins from this test venv:
    # hypothesis' alone costs every such process ~1-2 s of imports, and no sample project uses one.
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    for name in list(os.environ):
        if name.startswith(
            (
                "OVERNIGHT_REPO",
                "OVERNIGHT_SESSION",
                "OVERNIGHT_TASK",
                "OVERNIGHT_CHECKPOINT",
                "CLAUDE_CODE_",
                "GIT_DIR",
                "GIT_WORK_TREE",
                "GIT_INDEX_FILE",
            )
        ):
            monkeypatch.delenv(name)


def make_repo(root: Path, *, config: str | None = None, files: dict[str, str] | None = None) -> GitRepo:
    """A repository with a small Python project (src/app, tests/), all tests passing, committed."""
    root.mkdir(parents=True, exist_ok=True)
    repo = GitRepo(root)
    repo.git("init", "-q", "-b", "main")
    repo.write("pyproject.toml", PYPROJECT)
    repo.write("src/app/__init__.py", "")
    repo.write("src/app/calc.py", CALC)
    repo.write("tests/test_calc.py", TEST_CALC)
    repo.write("README.md", "# sample\n")
    repo.write(".env", "DATABASE_URL=postgres://localhost/dev\n")
    if config is not None:
        repo.write("overnight.toml", config)
    for rel, text in (files or {}).items():
        repo.write(rel, text)
    repo.commit("initial")
    return repo


# Most gate tests do not need the coverage ratchet, which runs the base's tests in a second worktree.
FAST_CONFIG = "[gate.coverage]\ncompare_base = false\n"


@pytest.fixture
def repo(tmp_path: Path) -> GitRepo:
    """The sample project, with the default (strict) policy and the coverage ratchet off."""
    return make_repo(tmp_path / "repo", config=FAST_CONFIG)


@pytest.fixture
def chdir(monkeypatch: pytest.MonkeyPatch) -> Iterator[object]:
    def go(path: Path) -> None:
        monkeypatch.chdir(path)

    yield go


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
