"""overnight on real projects nobody here wrote, of three layouts, each with its own `.venv` (issue 11, proof).

For each: `overnight init` finds the layout and the project's environment and writes them; `overnight doctor`
is clean; `overnight check --gate` passes on the unchanged tree, its tests run by the project's interpreter in
the sandbox. Then the loop a person lives with: a task approved with `overnight plan add --approve`, a replay
session (the agent sandboxed, its servers outside) landing a small change on its session branch, `overnight
review` showing it, and `overnight merge` bringing it into the base branch.

The projects are fetched as pinned sdists at run time and cached (see `projects.py`).
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from mcp_servers.core import config
from scheduler.cli import main

from .projects import PROJECTS, Prepared, Project, prepare, warm


@pytest.fixture(scope="session")
def _cache() -> None:
    warm(PROJECTS)


@pytest.fixture(autouse=True)
def _plugins_as_people_have_them(monkeypatch: pytest.MonkeyPatch) -> None:
    """A project's own pytest plugins load as they do for its people (the suite turns autoloading off for its
    sample projects, which have none)."""
    monkeypatch.delenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", raising=False)


@pytest.fixture
def real_project(_cache: None, tmp_path: Path, request: pytest.FixtureRequest) -> Prepared:
    project: Project = request.param
    return prepare(project, tmp_path / project.name)


def _json(capsys: pytest.CaptureFixture[str]) -> dict:  # type: ignore[type-arg]
    return json.loads(capsys.readouterr().out)


@pytest.mark.parametrize("real_project", PROJECTS, ids=[p.id for p in PROJECTS], indirect=True)
def test_real_project_init_doctor_and_gate_on_the_unchanged_tree(
    real_project: Prepared, capsys: pytest.CaptureFixture[str]
) -> None:
    root, project = real_project.root, real_project.project
    assert main(["-C", str(root), "init", "--commit", "--json"]) == 0
    found = _json(capsys)["found"]
    assert found["environment"]["kind"] == project.environment
    assert found["environment"]["python"] == ".venv/bin/python"
    assert found["environment"]["interpreter"]["has_coverage"] and found["environment"]["interpreter"]["has_pytest"]
    assert found["layout"]["style"] == ("src" if project.layout == "src" else "flat")
    if project.layout == "tests-in-package":
        assert found["layout"]["tests"] and all("/" in t for t in found["layout"]["tests"]), found["layout"]
    settings = config.load(root)
    assert settings.gate.python == ".venv/bin/python"
    assert settings.policy.allowed_paths[: len(project.allowed_paths)] == list(project.allowed_paths)
    assert settings.gate.coverage.source == list(project.coverage_source)

    assert main(["-C", str(root), "doctor", "--json"]) == 0
    doctor = _json(capsys)
    assert doctor["healthy"], [f for f in doctor["findings"] if f["status"] != "ok"]
    mine = {"layout", "project python", "allowed path", "protected path", "coverage source", "tests on HEAD"}
    problems = [f for f in doctor["findings"] if f["name"] in mine and f["status"] != "ok"]
    assert problems == []
    python = next(f for f in doctor["findings"] if f["name"] == "project python")
    assert str(real_project.python) in python["detail"]

    assert main(["-C", str(root), "check", "--gate", "--json"]) == 0, capsys.readouterr().out
    gate = _json(capsys)["gate"]
    assert gate["passed"], gate["summary"]
    tests = next(c for c in gate["checks"] if c["name"] == "tests")
    assert tests["status"] == "passed" and " passed" in tests["summary"]

    _session_review_and_merge(real_project, capsys)


def _session_review_and_merge(real_project: Prepared, capsys: pytest.CaptureFixture[str]) -> None:
    root, (module, test_file) = real_project.root, real_project.project.change
    dotted = module.removeprefix("src/").removesuffix(".py").replace("/", ".")
    assert main(["-C", str(root), "plan", "add", "Add the OVERNIGHT_ANSWER constant", "--files",
                 f"{module},{test_file}", "--tests", test_file, "--estimate", "8", "--alignment", "90", "--approve",
                 "--json"]) == 0  # fmt: skip
    task = _json(capsys)["id"]
    script = root.parent / f"{real_project.project.name}-session.toml"
    script.write_text(
        f'[[task]]\nid = "{task}"\n'
        f'[[task.step]]\nappend = "{module}"\ntext = "\\n\\nOVERNIGHT_ANSWER = 42\\n"\n'
        f'[[task.step]]\nappend = "{test_file}"\ntext = "\\n\\ndef test_overnight_answer():\\n    from {dotted} import '
        'OVERNIGHT_ANSWER\\n\\n    assert OVERNIGHT_ANSWER == 42\\n"\n'
        '[[task.step]]\ncall = "quality.run_quality_gate"\n'
        f'[[task.step]]\ncall = "quality.commit"\nargs = {{ message = "Add OVERNIGHT_ANSWER", task_id = "{task}" }}\n'
        f'[[task.step]]\ncall = "project.complete_task"\nargs = {{ task_id = "{task}" }}\n',
        encoding="utf-8",
    )
    base = _git(root, "rev-parse", "main")
    assert main(["-C", str(root), "run", "--agent", "replay", "--script", str(script), "--quiet", "--json"]) == 0
    run = _json(capsys)
    [done] = run["tasks"]
    assert done["task_id"] == task and done["kept"], done["reasons"]
    assert _git(root, "rev-parse", "main") == base  # nothing reached the base branch by itself
    branch = run["branch"]
    assert "OVERNIGHT_ANSWER = 42" in _git(root, "show", f"{branch}:{module}")

    assert main(["-C", str(root), "review", "--json"]) == 0
    [listed] = _json(capsys)["sessions"]
    assert listed["branch"] == branch and listed["kept"] == [task] and listed["commits"] >= 1

    assert main(["-C", str(root), "merge", run["id"], "--json"]) == 0
    merged = _json(capsys)
    assert merged["how"] == "fast-forward" and merged["tasks"] == [task]
    assert _git(root, "rev-parse", "main") == run["final_commit"]
    assert "OVERNIGHT_ANSWER = 42" in (root / module).read_text()  # the person's checkout of main moved with it
    assert main(["-C", str(root), "review", "--json"]) == 0
    assert _json(capsys)["sessions"] == []


def _git(root: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, check=True).stdout.strip()
