"""`overnight demo`: a whole unattended session in a throwaway repository, with the replay agent (no API key).

Three approved tasks: one is done properly and lands on the session branch; one tries an unsafe change (a
hard-coded secret, a CI file) and, refused by the gate, tries to commit around it with `git commit --no-verify`,
which its sandbox refuses (its view of git is read-only); one breaks a test and cannot pass the gate. The
scheduler keeps the first and rolls the other two back, and the report says why. The repository is kept so the
branch, the report and the memory can be looked at afterwards.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from mcp_servers.core import proc, sandbox
from mcp_servers.core.errors import UsageError

from .agents.replay import ReplayAgent

OPS = '''"""Arithmetic for the demo project."""


def add(a, b):
    return a + b


def mul(a, b):
    return a * b
'''

TEST_OPS = """from calc.ops import add, mul


def test_add():
    assert add(2, 3) == 5


def test_mul():
    assert mul(2, 3) == 6
"""

PYPROJECT = """[project]
name = "calc"
version = "0.1.0"

[tool.pytest.ini_options]
pythonpath = ["src"]
"""

_GOOD = """  - Priority: P1
  - Alignment score: 90/100
  - Estimated lines: 12
  - Tests defined: ✅ Yes (tests/test_ops.py)
"""
PLAN = f"""# Project Plan

## Task Queue

### Ready for Autonomous Execution ✅

→ **[add_sub]** Add sub() to the calculator, with a test
  - Files: src/calc/*.py, tests/*.py
{_GOOD}  - Status: READY

→ **[api_client]** Add a client for the pricing API, with a test
  - Files: src/calc/*.py, tests/*.py
{_GOOD}  - Status: READY

→ **[faster_add]** Make add() faster, keeping its behaviour
  - Files: src/calc/*.py, tests/*.py
{_GOOD}  - Status: READY

### Pending Approval ⏳

### Not Ready ❌
"""

SCRIPT = '''# The demo's scripted agent: what it does for each task, step by step (see scheduler/agents/replay.py).

[[task]]
id = "add_sub"
[[task.step]]
call = "memory.lessons_for"
args = { task_id = "{task_id}" }
[[task.step]]
append = "src/calc/ops.py"
text = """

def sub(a, b):
    return a - b
"""
[[task.step]]
append = "tests/test_ops.py"
text = """

def test_sub():
    from calc.ops import sub

    assert sub(5, 3) == 2
"""
[[task.step]]
call = "quality.run_quality_gate"
[[task.step]]
call = "quality.commit"
args = { message = "Add sub() to the calculator", task_id = "{task_id}" }
[[task.step]]
call = "project.complete_task"
args = { task_id = "{task_id}" }
[[task.step]]
call = "memory.log_event"
[task.step.args]
kind = "decision"
text = "sub() mirrors add(): no type checks, the tests pin the behaviour."
task_id = "{task_id}"
files = ["src/calc/ops.py"]
[[task.step]]
say = "Added sub() with a test; the gate passed and the commit went through the quality server."

[[task]]
id = "api_client"
[[task.step]]
write = "src/calc/pricing.py"
text = """import subprocess

API_KEY = "sk_live_51HxDemoDemoDemoDemoDemo4242"


def fetch(url):
    return subprocess.run("curl -s " + url, shell=True, capture_output=True).stdout
"""
[[task.step]]
write = ".github/workflows/ci.yml"
text = "on: push\\njobs: {}\\n"
[[task.step]]
call = "quality.run_quality_gate"
[[task.step]]
call = "quality.commit"
args = { message = "Add the pricing client", task_id = "{task_id}" }
[[task.step]]
run = ["git", "add", "-A"]
[[task.step]]
run = ["git", "commit", "-q", "--no-verify", "-m", "Add the pricing client (around the gate)"]
[[task.step]]
say = "The gate refused the commit, so I committed with git directly."

[[task]]
id = "faster_add"
[[task.step]]
append = "src/calc/ops.py"
text = """

def add(a, b):  # faster: one bitwise operation
    return a ^ b
"""
[[task.step]]
call = "quality.run_quality_gate"
[[task.step]]
call = "quality.commit"
args = { message = "Make add() faster", task_id = "{task_id}" }
[[task.step]]
call = "project.update_task"
args = { task_id = "{task_id}", status = "failed", note = "test_add fails and I could not see why" }
[[task.step]]
say = "The gate kept failing on test_add; I gave up."
'''


def create(where: Path | None = None) -> tuple[Path, Path]:
    """The demo repository (committed, with overnight set up) and its replay script: (repo, script)."""
    from .init import init

    base = Path(tempfile.mkdtemp(prefix="overnight-demo-")) if where is None else where
    if where is not None:
        if where.exists() and any(where.iterdir()):
            raise UsageError(f"{where} is not empty: give `overnight demo --dir` a new or empty folder.")
        where.mkdir(parents=True, exist_ok=True)
    repo = base / "calc"
    files = {
        "pyproject.toml": PYPROJECT,
        "src/calc/__init__.py": "",
        "src/calc/ops.py": OPS,
        "tests/test_ops.py": TEST_OPS,
        "README.md": "# calc\n\nThe overnight demo's project.\n",
        "PROJECT_PLAN.md": PLAN,
        ".gitignore": "__pycache__/\n.coverage*\n",
    }
    for rel, text in files.items():
        path = repo / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    proc.run(["git", "init", "-q", "-b", "main"], cwd=repo, timeout=60, check=True)
    for key, value in _identity().items():
        proc.run(["git", "config", key, value], cwd=repo, timeout=60, check=True)
    for argv in (["git", "add", "-A"], ["git", "commit", "-q", "--no-verify", "-m", "calc"]):
        proc.run(argv, cwd=repo, timeout=60, check=True)
    init(str(repo), commit=True, find_environment=False)  # its tests run with overnight's own interpreter
    unsandboxed = sandbox.problem()
    if unsandboxed:  # the front door works on a fresh machine; the report's first line says how it ran
        config = repo / "overnight.toml"
        text = config.read_text(encoding="utf-8").replace('# sandbox = "bwrap"', 'sandbox = "off"', 1)
        config.write_text(text, encoding="utf-8")
        for argv in (["git", "add", "overnight.toml"], ["git", "commit", "-q", "--no-verify", "-m",
                                                        "Demo: no sandbox can be made here"]):  # fmt: skip
            proc.run(argv, cwd=repo, timeout=60, check=True)
    script = base / "demo-session.toml"
    script.write_text(SCRIPT, encoding="utf-8")
    return repo, script


def agent(script: Path) -> ReplayAgent:
    return ReplayAgent(script)


def _identity() -> dict[str, str]:
    """A committer for the demo repository when the machine has none configured (a fresh machine, CI)."""
    found = proc.run(["git", "config", "user.email"], timeout=30)
    if found.ok and found.text().strip():
        return {}
    return {"user.name": "overnight demo", "user.email": "demo@overnight.invalid"}
