"""A pytest plugin the gate loads into the project's test run (`-p _overnight_gate_results`): it counts the
outcomes pytest reports and writes them, as JSON, to the file `$OVERNIGHT_GATE_RESULTS` names, when the session ends.

The gate believes a passing exit code only when these counts agree (no failed or errored test, some test run):
code under test that forces the exit code, or stops the runner before it reports, leaves no counts or bad ones.
It replaced pytest's JUnit XML, which cost ~10% of a suite with many small tests to build (issue 11).

It runs in the project's interpreter, inside the sandbox: the standard library only, nothing of overnight. The
gate copies this file, alone, into a folder of its own that it puts on `PYTHONPATH`.
"""

from __future__ import annotations

import json
import os
from typing import Any

_COUNTS = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}


def pytest_collectreport(report: Any) -> None:
    if report.failed:
        _COUNTS["errors"] += 1


def pytest_runtest_logreport(report: Any) -> None:
    if report.when == "call":
        _COUNTS["tests"] += 1
        if report.failed:
            _COUNTS["failures"] += 1
        elif report.skipped:
            _COUNTS["skipped"] += 1
    elif report.failed:  # a setup or teardown that failed
        _COUNTS["errors"] += 1
    elif report.when == "setup" and report.skipped:  # skipped before it ran: no call report follows
        _COUNTS["tests"] += 1
        _COUNTS["skipped"] += 1


def pytest_sessionfinish(session: Any, exitstatus: Any) -> None:
    path = os.environ.get("OVERNIGHT_GATE_RESULTS")
    if path:
        with open(path, "w", encoding="utf-8") as out:
            json.dump({**_COUNTS, "exit": int(exitstatus)}, out)
