"""The `tests` check: the project's test command, run under coverage.py, with a timeout on its process group."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from .. import proc
from ..config import Settings, resolve_python
from ..models import Finding
from .base import Check, GateContext, relative, result
from .progress import GateEvent, TestCounter

_PYTHON = re.compile(r"(^|/)python(\d+(\.\d+)?)?$")
_FAILED = re.compile(r"^(FAILED|ERROR) (\S+)(?: - (.*))?$")
_SUMMARY = re.compile(r"^=*\s*(\d+ (passed|failed|errors?|skipped|xfailed|xpassed|deselected|warnings?).*?)\s*=*$")
NO_TESTS_COLLECTED = 5  # pytest's exit code


def command(settings: Settings, data_file: Path) -> tuple[list[str], bool]:
    """The argv that runs the tests, wrapped in `coverage run` when coverage is on and the command allows it."""
    argv = list(settings.gate.test_command)
    if argv[0] in {"pytest", "py.test"}:
        argv = ["python", "-m", "pytest", *argv[1:]]
    argv = resolve_python(argv)
    cov = settings.gate.coverage
    if not cov.enabled or not _PYTHON.search(argv[0]) or len(argv) < 2:
        return argv, False
    wrap = [argv[0], "-m", "coverage", "run", "--branch", f"--data-file={data_file}"]
    wrap += [f"--source={s}" for s in cov.source]
    rest = argv[1:]
    return (wrap + rest, True) if rest[0] == "-m" or rest[0].endswith(".py") else (argv, False)


Run = Callable[..., proc.Completed]  # run(argv, *, timeout, env, cwd): code of the judged tree, sandboxed


def measure(
    run: Run,
    root: Path,
    settings: Settings,
    work_dir: Path,
    env: Mapping[str, str],
    on_output: proc.Output | None = None,
) -> tuple[proc.Completed, dict[str, Any] | None, str | None]:
    """Run the tests in `root`; return how they ended, the coverage data (when measured) and why it is missing.

    Everything the tests leave (coverage data, the runner's own results) is written to `work_dir`, outside the
    tested tree."""
    work_dir.mkdir(parents=True, exist_ok=True)
    data_file = work_dir / ".coverage"
    argv, wrapped = command(settings, data_file)
    argv = with_results(argv, work_dir / JUNIT)
    env = {**env, "COVERAGE_FILE": str(data_file)}
    if on_output is not None:  # a piped Python buffers its output: progress would come all at the end
        env["PYTHONUNBUFFERED"] = "1"
        completed = run(argv, cwd=root, env=env, timeout=settings.gate.test_timeout_s, on_output=on_output)
    else:
        completed = run(argv, cwd=root, env=env, timeout=settings.gate.test_timeout_s)
    if not wrapped:
        return (
            completed,
            None,
            (
                f"coverage cannot wrap the test command `{' '.join(settings.gate.test_command)}`: make it a Python "
                "command (`python -m pytest ...`) or set `gate.coverage.enabled = false` in overnight.toml"
            ),
        )
    if completed.timed_out or not data_file.exists():
        return completed, None, "the test run left no coverage data"
    report = work_dir / "coverage.json"
    made = run(
        [argv[0], "-m", "coverage", "json", f"--data-file={data_file}", "-o", str(report), "-q", "--ignore-errors"],
        cwd=root,
        env=env,
        timeout=120,
    )
    if not made.ok or not report.exists():
        return completed, None, f"coverage could not write its report: {made.describe(tail_lines=5)}"
    data = json.loads(report.read_text())
    # file names relative to the tree that was tested, whichever folder it was exported to
    data["files"] = {relative(root, name): info for name, info in data.get("files", {}).items()}
    return completed, data, None


JUNIT = "results.xml"


def with_results(argv: list[str], path: Path) -> list[str]:
    """`argv`, asking pytest (when it is pytest) for a JUnit XML report at `path`, outside the tested tree."""
    if "pytest" in argv or "pytest" in Path(argv[0]).name or any(a.endswith("/pytest") for a in argv[:1]):
        return [*argv, f"--junitxml={path}", "-o", "junit_logging=no"]
    return argv


def results(path: Path) -> dict[str, int] | None:
    """The counts in a JUnit XML report (tests, failures, errors, skipped), or None when there is none."""
    if not path.exists():
        return None
    from xml.etree import ElementTree

    try:
        root = ElementTree.parse(path).getroot()  # noqa: S314 (written by the test runner in our own work dir)
    except ElementTree.ParseError:
        return {"unreadable": 1}
    suites = [root] if root.tag == "testsuite" else root.findall("testsuite")
    counts = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    for suite in suites:
        for key in counts:
            counts[key] += int(suite.get(key, "0") or 0)
    return counts


def _run(ctx: GateContext) -> Any:
    started = time.monotonic()
    completed, coverage, missing = measure(ctx.run_code, ctx.tree_dir or ctx.root, ctx.settings,
                                           ctx.work_dir / "tests", ctx.env(), _counter(ctx))  # fmt: skip
    ctx.artifacts["coverage"] = coverage
    ctx.artifacts["coverage_missing"] = missing
    out = completed.text() + completed.stderr.decode("utf-8", "replace")
    summary = _summary_line(out)
    if completed.timed_out:
        return result(
            "tests",
            False,
            f"the test command timed out after {ctx.settings.gate.test_timeout_s:.0f}s "
            "and its process group was killed; make the tests finish or raise `gate.test_timeout_s`",
            _tail(out),
            started,
        )
    if completed.returncode == NO_TESTS_COLLECTED and "pytest" in " ".join(completed.argv):
        return result(
            "tests",
            False,
            "no tests were collected: the change must keep the test suite running",
            _tail(out),
            started,
        )
    if completed.returncode != 0:
        failed = [
            Finding(
                path=m.group(2).split("::")[0],
                message=f"{m.group(1)} {m.group(2)}" + (f": {m.group(3)}" if m.group(3) else ""),
            )
            for m in _matches(out)
        ]
        return result(
            "tests",
            False,
            f"the tests failed (exit {completed.returncode}): {summary or 'see output'}. "
            "Fix the code (or the test, if the test is wrong) and run the gate again.",
            failed or _tail(out),
            started,
        )
    disagreement = _disagreement(completed, ctx.work_dir / "tests" / JUNIT)
    if disagreement:
        return result("tests", False, disagreement, _tail(out), started)
    return result("tests", True, summary or "the test command passed", started=started)


def _counter(ctx: GateContext) -> proc.Output | None:
    """What reads the test run's output for the live view (None when nobody watches)."""
    progress = ctx.progress
    if progress is None:
        return None
    counter = TestCounter(lambda done, percent: progress(GateEvent("tests", "tests", done=done, percent=percent)))
    return counter.feed


def _disagreement(completed: proc.Completed, junit: Path) -> str | None:
    """Why a passing exit code is not believed: the runner's own results, written outside the tested tree, say
    otherwise (code under test that forces the exit code, or stops the runner from reporting)."""
    if not any(a.startswith("--junitxml=") for a in completed.argv):
        return None
    counts = results(junit)
    if counts is None:
        return ("the test command exited 0 but pytest wrote no results: something in the tested code stopped "
                "the runner before it reported (an exit forced from a test or a plugin)")  # fmt: skip
    if counts.get("unreadable"):
        return "the test command exited 0 but pytest's results cannot be read: they were tampered with"
    bad = counts["failures"] + counts["errors"]
    if bad:
        return (f"the test command exited 0 but pytest's own results count {counts['failures']} failed and "
                f"{counts['errors']} errored test(s): the exit code was forced; fix the tests")  # fmt: skip
    if counts["tests"] - counts["skipped"] <= 0:
        return "the test command exited 0 but no test ran: the change must keep the test suite running"
    return None


def _matches(out: str) -> list[re.Match[str]]:
    return [m for line in out.splitlines() if (m := _FAILED.match(line.strip()))]


def _summary_line(out: str) -> str:
    for line in reversed(out.splitlines()):
        m = _SUMMARY.match(line.strip())
        if m:
            return m.group(1)
    return ""


def _tail(out: str, lines: int = 30) -> list[Finding]:
    return [Finding(message="\n".join(out.rstrip().splitlines()[-lines:]))] if out.strip() else []


CHECK = Check(name="tests", run=_run)
