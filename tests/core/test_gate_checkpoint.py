"""The `checkpoint-tests` check on real repositories: the checkpoint's tests, in their checkpoint version, against
the new code, in a pytest process that never imports the agent's new test files (issue 10)."""

from __future__ import annotations

import os
from pathlib import Path

from mcp_servers.core.gate import collection, expectations, run_gate
from mcp_servers.core.git import Repo
from mcp_servers.core.models import CheckResult, GateReport
from mcp_servers.core.workspace import Workspace

from ..conftest import ADD_SUB, TEST_SUB, GitRepo, make_repo

BROKEN = "def add(a, b):\n    return a - b\n"
WEAKENED = "from app.calc import add\n\n\ndef test_add():\n    assert add(1, 2)\n"
# an import that patches the code under test, so that every test run after it passes
PATCH = "import app.calc\n\napp.calc.add.__code__ = (lambda a, b: a + b).__code__\n"
PATCHING = PATCH + "\n\ndef test_patched():\n    assert app.calc.add(1, 1) == 2\n"


def _gate(repo: GitRepo, environ: dict[str, str] | None = None, **kw: object) -> GateReport:
    return run_gate(Workspace.open(repo.root, environ=environ), **kw)  # type: ignore[arg-type]


def _checkpoint(report: GateReport) -> CheckResult:
    return next(c for c in report.checks if c.name == "checkpoint-tests")


def _first_lines(check: CheckResult) -> list[str]:
    return [f.message.splitlines()[0] for f in check.findings]


def _status(report: GateReport) -> dict[str, str]:
    return {c.name: c.status for c in report.checks}


def test_checkpoint_tests_fail_a_weakened_assertion_with_broken_code(repo: GitRepo) -> None:
    repo.write("src/app/calc.py", BROKEN)
    repo.write("tests/test_calc.py", WEAKENED)
    report = _gate(repo)
    assert not report.passed and report.receipt is None
    assert _status(report)["tests"] == "passed"  # the agent's own version of the tests is fooled
    check = _checkpoint(report)
    assert check.status == "failed" and "1 test(s) of the task's checkpoint fail" in check.summary
    assert _first_lines(check) == ["FAILED tests/test_calc.py::test_add: assert -1 == 3"]
    assert check.findings[0].path == "tests/test_calc.py"
    # the worktree as the agent left it, nothing staged (the first line's leading space is stripped)
    assert repo.status() == "M src/app/calc.py\n M tests/test_calc.py"


def test_checkpoint_tests_fail_a_deleted_test_with_broken_code(repo: GitRepo) -> None:
    repo.write("src/app/calc.py", BROKEN)
    repo.write("tests/test_calc.py", "from app.calc import add\n\n\ndef test_zero():\n    assert add(0, 0) == 0\n")
    report = _gate(repo)
    assert _status(report)["tests"] == "passed"
    check = _checkpoint(report)
    assert check.status == "failed"
    assert _first_lines(check) == ["FAILED tests/test_calc.py::test_add: assert -1 == 3"]


def test_checkpoint_tests_never_import_a_new_test_module(repo: GitRepo) -> None:
    repo.write("src/app/calc.py", BROKEN)
    repo.write("tests/test_aa_patch.py", PATCHING)  # collected first, so it patches before test_add runs
    report = _gate(repo)
    assert _status(report)["tests"] == "passed"
    check = _checkpoint(report)
    assert check.status == "failed"
    assert _first_lines(check) == ["FAILED tests/test_calc.py::test_add: assert -1 == 3"]


def test_checkpoint_tests_run_with_the_test_folder_as_the_checkpoint_had_it(repo: GitRepo) -> None:
    repo.write("src/app/calc.py", BROKEN)
    repo.write("tests/__init__.py", PATCH)  # imported before any test module in it
    report = _gate(repo)
    assert _status(report)["tests"] == "passed"
    assert _first_lines(_checkpoint(report)) == ["FAILED tests/test_calc.py::test_add: assert -1 == 3"]


def test_checkpoint_tests_accept_a_changed_expectation_the_task_names(repo: GitRepo) -> None:
    repo.write("src/app/calc.py", "def add(a, b):\n    return a + b + 1\n")
    repo.write("tests/test_calc.py", "from app.calc import add\n\n\ndef test_add():\n    assert add(1, 2) == 4\n")
    globbed = _gate(repo, task_files=["src/app/*.py", "tests/*.py"])
    assert not globbed.passed and _checkpoint(globbed).status == "failed"  # a glob approves no expectation
    report = _gate(repo, task_files=["src/app/*.py", "tests/test_calc.py"])
    assert report.passed, report.summary
    check = _checkpoint(report)
    assert check.status == "passed"
    assert check.summary.startswith("changed expectations, approved by the task's Files: tests/test_calc.py::test_add")
    assert check.data["changed"] == "tests/test_calc.py::test_add"
    assert _first_lines(check) == ["changed expectation tests/test_calc.py::test_add: assert 4 == 3"]


def test_checkpoint_tests_approval_comes_from_the_plan_not_the_agent(repo: GitRepo) -> None:
    task = "- **[fix]** Change add\n  - Priority: P1\n  - Files: src/app/*.py, tests/*.py\n"
    repo.write("PROJECT_PLAN.md", f"# Plan\n\n## Task Queue\n\n### Ready for Autonomous Execution ✅\n{task}")
    repo.commit("plan")
    repo.write("src/app/calc.py", "def add(a, b):\n    return a + b + 1\n")
    repo.write("tests/test_calc.py", "from app.calc import add\n\n\ndef test_add():\n    assert add(1, 2) == 4\n")
    session = {**os.environ, "OVERNIGHT_SESSION_ID": "s1", "OVERNIGHT_TASK_ID": "fix"}
    report = _gate(repo, session, task_files=["src/app/calc.py", "tests/test_calc.py"])
    assert not report.passed and _checkpoint(report).status == "failed"


def test_checkpoint_tests_are_skipped_when_the_change_touches_no_test(repo: GitRepo) -> None:
    repo.write("src/app/calc.py", "def add(a, b):\n    return b + a\n")
    report = _gate(repo)
    assert report.passed, report.summary
    check = _checkpoint(report)
    assert (check.status, check.duration_s) == ("skipped", 0.0)
    assert check.summary == "the change touches no test file: the `tests` check ran exactly the checkpoint's tests"


def test_checkpoint_tests_pass_a_new_test_with_correct_code(repo: GitRepo) -> None:
    repo.append("src/app/calc.py", ADD_SUB)
    repo.append("tests/test_calc.py", TEST_SUB)
    repo.write("tests/test_more.py", "from app.calc import sub\n\n\ndef test_sub_zero():\n    assert sub(1, 1) == 0\n")
    report = _gate(repo)
    assert report.passed, report.summary
    check = _checkpoint(report)
    assert check.status == "passed"
    assert check.summary == "1 test(s) of the checkpoint, from 1 file(s), pass against the new code"


def test_checkpoint_tests_are_skipped_for_a_test_command_that_is_not_pytest(tmp_path: Path) -> None:
    config = '[gate]\ntest_command = ["make", "test"]\n[gate.coverage]\nenabled = false\ncompare_base = false\n'
    repo = make_repo(tmp_path / "r", config=config)
    repo.write("tests/test_calc.py", WEAKENED)
    check = _checkpoint(_gate(repo))
    assert check.status == "skipped" and "`make test` is not pytest" in check.summary


def test_collection_reads_the_base_pytest_configuration(repo: GitRepo) -> None:
    pyproject = '[tool.pytest.ini_options]\npython_files = "check_*.py"\ntestpaths = ["tests"]\n'
    repo.write("pyproject.toml", pyproject)
    base = repo.commit("configure")
    rules = collection.read(Repo.discover(repo.root), base)
    assert rules.python_files == ("check_*.py",) and rules.testpaths == ("tests",)
    files = ["tests/check_a.py", "tests/test_a.py", "tests/build/check_b.py", "other/check_c.py", "tests/x/check_d.py"]
    assert rules.collected(files, []) == ["tests/check_a.py", "tests/x/check_d.py"]  # not under build/, nor other/
    assert rules.collected(files, ["other"]) == ["other/check_c.py"]
    assert rules.test_side("tests/helpers.py") and rules.test_side("src/check_x.py")
    assert not rules.test_side("src/app/calc.py")
    repo.write("pytest.ini", "")  # pytest.ini configures pytest even empty, and wins over pyproject.toml
    assert collection.read(Repo.discover(repo.root), repo.commit("ini")) == collection.Rules()


def test_collection_splits_pytest_paths_from_its_options() -> None:
    args = ["-q", "-k", "add", "tests/unit::test_x", "--cov", "src", "-x", "--tb=short", "--", "-odd"]
    assert collection.split_paths(args) == (
        ["-q", "-k", "add", "--cov", "src", "-x", "--tb=short"],
        ["tests/unit", "-odd"],
    )


def test_checkpoint_test_ids_are_rebuilt_from_junit_names() -> None:
    modules = {"tests.test_calc": "tests/test_calc.py", "tests.test_calc_more": "tests/test_calc_more.py"}
    assert expectations._test_id("tests.test_calc.TestX", "test_a[1.5]", modules) == (
        "tests/test_calc.py::TestX::test_a[1.5]"
    )
    assert expectations._test_id("tests.test_calc_more", "test_b", modules) == "tests/test_calc_more.py::test_b"
    assert expectations._test_id("", "tests.test_calc", modules) == "tests/test_calc.py"  # it did not import
    assert expectations.approved(["tests/test_calc.py"], "tests/test_calc.py")
    assert expectations.approved(["test_calc.py"], "tests/test_calc.py")
    assert not expectations.approved(["tests/*.py", "tests/**"], "tests/test_calc.py")
