"""The quality gate on real repositories: real git, real pytest under coverage, real radon and bandit."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pytest

from mcp_servers.core import receipts
from mcp_servers.core.gate import gate_status, run_gate
from mcp_servers.core.models import GateReport
from mcp_servers.core.workspace import Workspace

from ..conftest import ADD_SUB, FAST_CONFIG, TEST_SUB, GitRepo, make_repo
from ..support.procs import processes_mentioning


def _gate(repo: GitRepo, **kw: object) -> GateReport:
    return run_gate(Workspace.open(repo.root), **kw)  # type: ignore[arg-type]


def _check(report: GateReport, name: str) -> tuple[str, str]:
    found = {c.name: c for c in report.checks}[name]
    return found.status, found.summary


def test_gate_passes_a_tested_change_and_signs_a_receipt(repo: GitRepo) -> None:
    repo.append("src/app/calc.py", ADD_SUB)
    repo.append("tests/test_calc.py", TEST_SUB)
    report = _gate(repo)
    assert report.passed, report.summary
    assert report.receipt is not None and report.receipt.tree == report.tree
    assert [c.name for c in report.checks] == [
        "safety",
        "tests",
        "checkpoint-tests",
        "coverage",
        "diff-coverage",
        "complexity",
        "security",
    ]
    # staged in a private index: the person's own is untouched
    assert repo.index_tree() == repo.git("rev-parse", "HEAD^{tree}")
    assert _check(report, "diff-coverage") == ("passed", "2 of 2 changed statements covered (100.0%)")


def test_gate_second_run_on_the_same_tree_answers_from_the_receipt(repo: GitRepo) -> None:
    repo.append("src/app/calc.py", ADD_SUB)
    repo.append("tests/test_calc.py", TEST_SUB)
    first = _gate(repo)
    started = time.monotonic()
    second = _gate(repo)
    assert second.cached and not first.cached
    assert second.receipt is not None and first.receipt is not None and second.receipt.id == first.receipt.id
    assert time.monotonic() - started < 5  # no test run: a full one takes seconds (the figure is in bench/)
    with Workspace.open(repo.root).db() as conn:
        assert len(receipts.last_runs(conn, 10)) == 1


def test_gate_failing_test_names_the_test_and_skips_what_depends_on_it(repo: GitRepo) -> None:
    repo.append("src/app/calc.py", ADD_SUB)
    repo.append(
        "tests/test_calc.py",
        "\n\ndef test_sub():\n    from app.calc import sub\n\n    assert sub(3, 1) == 3\n",
    )
    report = _gate(repo)
    assert not report.passed and report.receipt is None
    tests = next(c for c in report.checks if c.name == "tests")
    assert tests.status == "failed"
    assert any("tests/test_calc.py::test_sub" in f.message for f in tests.findings)
    assert _check(report, "coverage") == ("skipped", "not run: `tests` failed")
    assert "gate failed" in report.summary and "tests" in report.summary


def test_gate_unsafe_change_runs_no_check(repo: GitRepo) -> None:
    repo.write(".env", "DATABASE_URL=postgres://prod/db\n")
    repo.write("tests/test_calc.py", "import os\nos.system('touch /tmp/overnight-should-not-run')\n")
    report = _gate(repo)
    assert not report.passed
    assert _check(report, "safety")[0] == "failed"
    assert {c.status for c in report.checks if c.name != "safety"} == {"skipped"}
    assert [v.rule for v in report.violations] == ["protected-path", "outside-allowed"]


def test_gate_change_outside_the_task_scope_fails(repo: GitRepo) -> None:
    repo.append("src/app/calc.py", ADD_SUB)
    repo.append("tests/test_calc.py", TEST_SUB)
    report = _gate(repo, task_files=["src/app/calc.py"])
    assert not report.passed
    assert [(v.rule, v.path) for v in report.violations] == [("out-of-scope", "tests/test_calc.py")]
    assert _gate(repo, task_files=["src/app/*.py", "tests/**"]).passed


def test_gate_untested_code_fails_total_and_changed_line_coverage(repo: GitRepo) -> None:
    body = "".join(f"    x{i} = a * {i}\n" for i in range(12))
    repo.append("src/app/calc.py", f"\n\ndef untested(a):\n{body}    return a\n")
    report = _gate(repo)
    assert not report.passed
    status, summary = _check(report, "coverage")
    assert status == "failed" and "below the minimum of 80.00%" in summary
    status, summary = _check(report, "diff-coverage")
    assert status == "failed" and "only 1 of 14 changed statements" in summary  # the def line runs on import


def test_gate_coverage_may_not_fall_below_the_base(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "r", config="[gate.coverage]\nmin_total = 0\nmin_changed_lines = 0\n")
    repo.append("src/app/calc.py", "\n\ndef untested(a):\n    return a * 2\n")
    report = _gate(repo)
    status, summary = _check(report, "coverage")
    assert status == "failed"
    assert "fell from 100.00% (base) to" in summary
    with Workspace.open(repo.root).db() as conn:  # the base was measured once, in a worktree that is gone now
        base_tree = repo.git("rev-parse", "HEAD^{tree}")
        assert receipts.coverage_of(conn, base_tree, f"line/py{sys.version_info[0]}.{sys.version_info[1]}")
        assert receipts.coverage_of(conn, base_tree, "branch") is None  # measured one way, not another
    assert "base-worktree" not in repo.git("worktree", "list")


def test_gate_coverage_exclusion_added_by_the_change_fails(repo: GitRepo) -> None:
    repo.append("src/app/calc.py", "\n\ndef hidden(a):  # pragma: no cover\n    return a\n")
    status, summary = _check(_gate(repo), "diff-coverage")
    assert status == "failed" and "coverage exclusion" in summary


def test_gate_complex_new_function_fails_complexity(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "r", config=FAST_CONFIG + "[policy]\nmax_changed_lines = 100\n")
    branches = "".join(f"    if a == {i}:\n        return {i}\n" for i in range(12))
    repo.append("src/app/calc.py", f"\n\ndef branchy(a):\n{branches}    return -1\n")
    calls = "".join(f"    assert branchy({i}) == {i}\n" for i in range(12))
    repo.append(
        "tests/test_calc.py",
        f"\n\ndef test_branchy():\n    from app.calc import branchy\n\n{calls}    assert branchy(99) == -1\n",
    )
    report = _gate(repo)
    complexity = next(c for c in report.checks if c.name == "complexity")
    assert complexity.status == "failed"
    assert "`branchy` has cyclomatic complexity 13 (max 10)" in complexity.findings[0].message


def test_gate_touching_an_already_complex_function_without_worsening_it_passes(tmp_path: Path) -> None:
    branches = "".join(f"    if a == {i}:\n        return {i}\n" for i in range(12))
    repo = make_repo(
        tmp_path / "r",
        config=FAST_CONFIG + "[policy]\nmax_changed_lines = 100\n",
        files={"src/app/legacy.py": f"def branchy(a):\n{branches}    return -1\n"},
    )
    repo.write("src/app/legacy.py", (repo.root / "src/app/legacy.py").read_text().replace("return -1", "return -2"))
    complexity = next(c for c in _gate(repo).checks if c.name == "complexity")
    assert complexity.status == "passed", complexity


def test_gate_new_security_finding_fails_even_with_nosec(repo: GitRepo) -> None:
    repo.append(
        "src/app/calc.py",
        "\n\ndef run(cmd):\n    import subprocess\n\n    return subprocess.call(cmd, shell=True)  # nosec\n",
    )
    repo.append(
        "tests/test_calc.py",
        "\n\ndef test_run():\n    from app.calc import run\n\n    assert run('true') == 0\n",
    )
    security = next(c for c in _gate(repo).checks if c.name == "security")
    assert security.status == "failed"
    assert any("B602" in f.message for f in security.findings)


def test_gate_security_finding_already_in_the_base_is_not_new(tmp_path: Path) -> None:
    legacy = "import subprocess\n\n\ndef run(cmd):\n    return subprocess.call(cmd, shell=True)\n"
    repo = make_repo(tmp_path / "r", config=FAST_CONFIG, files={"src/app/legacy.py": legacy})
    repo.write("src/app/legacy.py", "\n\n" + legacy)  # lines move; the finding stays the same
    security = next(c for c in _gate(repo).checks if c.name == "security")
    assert security.status == "passed", security


@pytest.mark.parametrize("detach", ["", "start_new_session=True, "], ids=["child", "setsid-daemon"])
def test_gate_hanging_test_command_is_killed_with_everything_it_started(tmp_path: Path, detach: str) -> None:
    marker = f"overnight-hang-{os.getpid()}-{len(detach)}"
    hang = (
        f"import subprocess, sys, time\n\n\ndef test_hangs():\n"
        f"    subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)  # {marker}'], {detach})\n"
        f"    time.sleep(600)\n"
    )
    repo = make_repo(tmp_path / "r", config=FAST_CONFIG + "[gate]\ntest_timeout_s = 3\n")
    repo.write("tests/test_hang.py", hang)
    started = time.monotonic()
    report = _gate(repo)
    assert time.monotonic() - started < 60
    status, summary = _check(report, "tests")
    assert status == "failed" and "timed out after 3s" in summary and "process group was killed" in summary
    for _ in range(50):  # the kill is delivered; give the kernel a moment to reap
        if not processes_mentioning(marker):
            break
        time.sleep(0.1)
    else:
        pytest.fail(f"a process the tests started outlived the gate: {processes_mentioning(marker)}")


def test_gate_missing_test_command_fails_closed(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "r", config=FAST_CONFIG + '[gate]\ntest_command = "no-such-test-runner --all"\n')
    repo.append("src/app/calc.py", ADD_SUB)
    report = _gate(repo)
    assert not report.passed
    status, summary = _check(report, "tests")
    assert status == "failed" and "`no-such-test-runner` was not found" in summary


def test_gate_no_tests_collected_fails(tmp_path: Path) -> None:
    repo = make_repo(
        tmp_path / "r",
        config=FAST_CONFIG + '[gate]\ntest_command = "python -m pytest -q -k nothing_matches"\n',
    )
    repo.append("src/app/calc.py", ADD_SUB)
    status, summary = _check(_gate(repo), "tests")
    assert status == "failed"
    assert "no tests were collected" in summary or "deselected" in summary


def test_gate_extra_commands_are_checks(tmp_path: Path) -> None:
    config = FAST_CONFIG + (
        '[[gate.commands]]\nname = "lint"\nrun = ["python", "-c", "print(\'E1 bad\'); raise SystemExit(3)"]\n'
        '[[gate.commands]]\nname = "types"\nrun = "python -c pass"\n'
    )
    repo = make_repo(tmp_path / "r", config=config)
    repo.append("src/app/calc.py", ADD_SUB)
    repo.append("tests/test_calc.py", TEST_SUB)
    report = _gate(repo)
    assert _check(report, "types")[0] == "passed"
    status, summary = _check(report, "lint")
    assert status == "failed" and "exit 3" in summary
    assert "E1 bad" in next(c for c in report.checks if c.name == "lint").findings[0].message


def test_gate_runs_the_tests_on_a_fresh_export_that_they_cannot_leave(tmp_path: Path) -> None:
    config = FAST_CONFIG + "[gate.security]\nenabled = false\n"  # (bandit flags the literal paths below)
    repo = make_repo(tmp_path / "r", config=config, files={".gitignore": "*.local\n"})
    repo.write("src/app/leftover.local", "an ignored file of the worktree\n")
    state = Workspace.open(repo.root).db_path
    probe = (
        "\n\ndef test_sees_only_the_judged_tree():\n"
        "    import os\n"
        "    assert not os.path.exists('src/app/leftover.local')\n"
        f"    assert not os.path.exists({str(repo.root / 'README.md')!r})\n"
        f"    assert not os.path.exists({str(state)!r})\n"
        "    open('src/app/generated.txt', 'w').write('x')\n"
    )
    repo.append("tests/test_calc.py", probe)
    report = _gate(repo)
    assert report.passed, report.summary
    assert not (repo.root / "src/app/generated.txt").exists()  # written in the throwaway export, not here
    assert [c.name for c in report.checks if c.name == "unchanged"] == []


def test_gate_does_not_believe_an_exit_code_forced_from_a_test(repo: GitRepo) -> None:
    repo.append("src/app/calc.py", ADD_SUB)
    repo.append("tests/test_calc.py", TEST_SUB + "\n\ndef test_broken():\n    assert 1 == 2\n"
                "\n\ndef test_zz_force_success():\n    import os\n\n    os._exit(0)\n")  # fmt: skip
    report = _gate(repo)
    status, summary = _check(report, "tests")
    assert status == "failed" and "exited 0 but pytest wrote no results" in summary, summary


def test_gate_does_not_believe_an_exit_code_the_tests_ask_pytest_for(repo: GitRepo) -> None:
    """`pytest.exit(returncode=0)` after a failure: pytest reports, and its counts (our plugin's, written outside
    the tested tree) say what failed."""
    repo.append("src/app/calc.py", ADD_SUB)
    forced = "\n\ndef test_zz_force_success():\n    import pytest\n\n    pytest.exit('done', returncode=0)\n"
    repo.append("tests/test_calc.py", TEST_SUB + "\n\ndef test_broken():\n    assert 1 == 2\n" + forced)
    report = _gate(repo)
    status, summary = _check(report, "tests")
    assert status == "failed" and "count 1 failed and 0 errored" in summary, summary


def test_gate_status_follows_the_working_tree(repo: GitRepo) -> None:
    ws = Workspace.open(repo.root)
    assert gate_status(ws).clean
    repo.append("src/app/calc.py", ADD_SUB)
    repo.append("tests/test_calc.py", TEST_SUB)
    before = gate_status(ws)
    assert before.receipt is None and not before.clean and "run `run_quality_gate`" in before.advice
    report = run_gate(ws)
    after = gate_status(ws)
    assert after.receipt is not None and after.receipt.id == report.receipt.id  # type: ignore[union-attr]
    assert after.last_run is not None and after.last_run.passed
    repo.append("src/app/calc.py", "\n# later edit\n")
    assert gate_status(ws).receipt is None


def test_gate_receipt_edited_in_the_database_no_longer_counts(repo: GitRepo) -> None:
    repo.append("src/app/calc.py", ADD_SUB)
    repo.append(
        "tests/test_calc.py",
        "\n\ndef test_sub():\n    from app.calc import sub\n\n    assert sub(3, 1) == 3\n",
    )
    ws = Workspace.open(repo.root)
    failed = run_gate(ws)
    assert not failed.passed
    with ws.db() as conn:  # forge a pass: flip the flag without the key
        conn.execute("UPDATE gate_runs SET passed = 1")
        assert receipts.find(conn, ws.key(), tree=failed.tree, policy_hash=ws.settings.policy_hash()) is None
    again = run_gate(ws)
    assert not again.cached and not again.passed


def test_gate_receipt_is_bound_to_tree_and_policy(repo: GitRepo) -> None:
    repo.append("src/app/calc.py", ADD_SUB)
    repo.append("tests/test_calc.py", TEST_SUB)
    ws = Workspace.open(repo.root)
    receipt = run_gate(ws).receipt
    policy_hash = ws.settings.policy_hash()
    assert receipts.problems(receipt, tree=receipt.tree, policy_hash=policy_hash) == []  # type: ignore[union-attr]
    other_tree = repo.git("rev-parse", "HEAD^{tree}")
    assert "the receipt is for tree" in receipts.problems(receipt, tree=other_tree, policy_hash=policy_hash)[0]
    assert "policy" in receipts.problems(receipt, tree=receipt.tree, policy_hash="0" * 16)[0]  # type: ignore[union-attr]
    with ws.db() as conn:
        assert receipts.find(conn, ws.key(), tree=other_tree, policy_hash=policy_hash) is None
        assert receipts.find(conn, b"k" * 32, tree=receipt.tree, policy_hash=policy_hash) is None  # type: ignore[union-attr]
