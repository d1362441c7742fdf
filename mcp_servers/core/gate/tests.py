"""The `tests` check: the project's test command, run under coverage.py, with a timeout on its process group."""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from .. import proc
from ..config import Settings, resolve_python
from ..models import Finding
from . import interpreter, results_plugin
from .base import Check, GateContext, relative, result
from .progress import GateEvent, TestCounter

_PYTHON = re.compile(r"(^|/)python(\d+(\.\d+)?)?$")
_FAILED = re.compile(r"^(FAILED|ERROR) (\S+)(?: - (.*))?$")
_SUMMARY = re.compile(r"^=*\s*(\d+ (passed|failed|errors?|skipped|xfailed|xpassed|deselected|warnings?).*?)\s*=*$")
NO_TESTS_COLLECTED = 5  # pytest's exit code


def command(settings: Settings, data_file: Path, python: str = "") -> tuple[list[str], bool]:
    """The argv that runs the tests, wrapped in `coverage run` when coverage is on and the command allows it.
    `python`: the project's interpreter (absolute), which `python` at the start means ("": overnight's)."""
    argv = list(settings.gate.test_command)
    if argv[0] in {"pytest", "py.test"}:
        argv = ["python", "-m", "pytest", *argv[1:]]
    argv = resolve_python(argv, python)
    cov = settings.gate.coverage
    if not cov.enabled or not _PYTHON.search(argv[0]) or len(argv) < 2:
        return argv, False
    # lines, not branches: no check reads branch data, and sys.monitoring measures branches only from Python 3.14
    wrap = [argv[0], "-m", "coverage", "run", f"--data-file={data_file}"]
    wrap += [f"--source={s}" for s in cov.source]
    rest = argv[1:]
    return (wrap + rest, True) if rest[0] == "-m" or rest[0].endswith(".py") else (argv, False)


Run = Callable[..., proc.Completed]  # run(argv, *, timeout, env, cwd): code of the judged tree, sandboxed


def python_version(ctx: GateContext) -> interpreter.Version | None:
    """The version of the Python that runs the tests under coverage (None when coverage does not wrap them)."""
    argv, wrapped = command(ctx.settings, ctx.work_dir / ".coverage", ctx.python)
    if not wrapped:
        return None
    python = argv[0] if "/" not in argv[0] or Path(argv[0]).is_absolute() else str(ctx.checkout / argv[0])
    return ctx.interpreters.version(python, ctx.run_code, ctx.env())


def measure(
    run: Run,
    root: Path,
    settings: Settings,
    work_dir: Path,
    env: Mapping[str, str],
    on_output: proc.Output | None = None,
    python: str = "",
    version: interpreter.Version | None = None,
) -> tuple[proc.Completed, dict[str, Any] | None, str | None]:
    """Run the tests in `root`; return how they ended, the coverage data (when measured) and why it is missing.
    `version` is the Python's that runs them (see `python_version`): from 3.12, coverage uses sys.monitoring.

    Everything the tests leave (coverage data, the runner's own results) is written to `work_dir`, outside the
    tested tree."""
    work_dir.mkdir(parents=True, exist_ok=True)
    data_file = work_dir / ".coverage"
    argv, wrapped = command(settings, data_file, python)
    argv, counted = with_results(argv, work_dir, env)
    report = work_dir / "coverage.json"
    report.unlink(missing_ok=True)
    if wrapped:  # the report written by the same process: one interpreter start and coverage import fewer
        argv = [argv[0], "-c", _RUN_THEN_REPORT, str(report), *argv[3:]]
    env = {**env, **(interpreter.coverage_env(version) if wrapped else {}), "COVERAGE_FILE": str(data_file), **counted}
    if on_output is not None:  # a piped Python buffers its output: progress would come all at the end
        env["PYTHONUNBUFFERED"] = "1"
        completed = run(argv, cwd=root, env=env, timeout=settings.gate.test_timeout_s, on_output=on_output)
    else:
        completed = run(argv, cwd=root, env=env, timeout=settings.gate.test_timeout_s)
    if wrapped and _no_coverage(completed):
        return (
            completed,
            None,
            (
                f"coverage.py is not installed in the project's interpreter `{argv[0]}`: install it there "
                f"(`{argv[0]} -m pip install coverage`; with uv `uv add --dev coverage`), or set "
                "`gate.coverage.enabled = false` in overnight.toml"
            ),
        )
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
    if not report.exists():
        return completed, None, f"coverage could not write its report: {completed.describe(tail_lines=5)}"
    data = json.loads(report.read_text())
    # file names relative to the tree that was tested, whichever folder it was exported to
    data["files"] = {relative(root, name): info for name, info in data.get("files", {}).items()}
    return completed, data, None


# `coverage run ...` and then `coverage json` of its data, in one process: argv is the report's path, then the
# arguments of `coverage run`; the exit status is the run's (the tests'). Code under test can meddle with the
# report as it could with the data file: what the gate trusts of either is bounded elsewhere (the base measured
# apart, the receipt bound to the tree).
_RUN_THEN_REPORT = """import sys
from coverage.cmdline import main
report, args = sys.argv[1], sys.argv[2:]
del sys.argv[1:]
status = main(args)
data = next(a for a in args if a.startswith("--data-file="))
main(["json", data, "-o", report, "-q", "--ignore-errors"])
sys.exit(status)
"""
RESULTS = "results.json"
PLUGIN = "_overnight_gate_results"


def with_results(argv: list[str], work_dir: Path, env: Mapping[str, str]) -> tuple[list[str], dict[str, str]]:
    """`argv` and the environment that make pytest (when it is pytest) count its outcomes into `work_dir`, outside
    the tested tree, through our plugin (`results_plugin`), copied alone into a folder put on `PYTHONPATH`."""
    if not ("pytest" in argv or "pytest" in Path(argv[0]).name or any(a.endswith("/pytest") for a in argv[:1])):
        return argv, {}
    folder = work_dir / "plugin"
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(Path(results_plugin.__file__), folder / f"{PLUGIN}.py")
    (work_dir / RESULTS).unlink(missing_ok=True)
    path = os.pathsep.join(p for p in (str(folder), env.get("PYTHONPATH", "")) if p)
    return [*argv, "-p", PLUGIN], {"PYTHONPATH": path, "OVERNIGHT_GATE_RESULTS": str(work_dir / RESULTS)}


def _no_coverage(completed: proc.Completed) -> bool:
    """The interpreter has no coverage.py: `python -m coverage` failed before anything ran."""
    return completed.returncode == 1 and re.search(rb"No module named '?coverage", completed.stderr) is not None


def results(path: Path) -> dict[str, int] | None:
    """The counts our plugin wrote (tests, failures, errors, skipped), or None when there are none."""
    if not path.exists():
        return None
    try:
        counts = json.loads(path.read_text(encoding="utf-8"))
        return {key: int(counts[key]) for key in ("tests", "failures", "errors", "skipped")}
    except (ValueError, KeyError, TypeError):
        return {"unreadable": 1}


def _run(ctx: GateContext) -> Any:
    started = time.monotonic()
    completed, coverage, missing = measure(ctx.run_code, ctx.tree_dir or ctx.root, ctx.settings,
                                           ctx.work_dir / "tests", ctx.env(), _counter(ctx),
                                           python=ctx.python, version=python_version(ctx))  # fmt: skip
    ctx.artifacts["coverage"] = coverage
    ctx.artifacts["coverage_missing"] = missing
    out = completed.text() + completed.stderr.decode("utf-8", "replace")
    summary = _summary_line(out)
    if missing and _no_coverage(completed):
        return result("tests", False, missing, _tail(out), started)
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
    disagreement = _disagreement(completed, ctx.work_dir / "tests" / RESULTS)
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


def _disagreement(completed: proc.Completed, counted: Path) -> str | None:
    """Why a passing exit code is not believed: the runner's own results, written outside the tested tree, say
    otherwise (code under test that forces the exit code, or stops the runner from reporting)."""
    if PLUGIN not in completed.argv:
        return None
    counts = results(counted)
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
