"""Which Python runs the tests, and so how coverage.py measures them.

On Python 3.12 and newer, coverage.py can measure through `sys.monitoring` (`COVERAGE_CORE=sysmon`), which costs a
fraction of its C tracer. It does so only for line coverage before Python 3.14 (with `--branch` it warns and falls
back to the tracer); no check of the gate reads branch data, so the gate measures lines. The version is read
without running anything where it can be (the interpreter's real file name, `python3.12`; the `pyvenv.cfg` of the
virtual environment it belongs to), else asked of the interpreter once, in the sandbox, and remembered per path and
modification time for as long as the caller keeps the `Interpreters` (a gate run: its tree and its base).
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Callable
from pathlib import Path

from .. import proc

SYSMON_SINCE = (3, 12)
_NAMED = re.compile(r"^python(\d+)\.(\d+)$")
_CFG = re.compile(r"^\s*version(?:_info)?\s*=\s*(\d+)\.(\d+)", re.MULTILINE)
_PROBE = "import sys; print('%d.%d' % sys.version_info[:2])"
Version = tuple[int, int]
Run = Callable[..., proc.Completed]  # run(argv, *, timeout, env): sandboxed


def _where(argv0: str) -> Path | None:
    found = argv0 if os.sep in argv0 else shutil.which(argv0)
    return Path(found) if found else None


def from_files(path: Path) -> Version | None:
    """The version a Python executable's files tell, or None: its real name, else its venv's `pyvenv.cfg`."""
    named = _NAMED.match(Path(os.path.realpath(path)).name)
    if named:
        return int(named.group(1)), int(named.group(2))
    for cfg in (path.parent.parent / "pyvenv.cfg", path.parent / "pyvenv.cfg"):
        try:
            found = _CFG.search(cfg.read_text(errors="replace"))
        except OSError:
            continue
        if found:
            return int(found.group(1)), int(found.group(2))
    return None


class Interpreters:
    """Python versions by executable, read once per path and modification time."""

    def __init__(self) -> None:
        self._known: dict[tuple[str, int], Version | None] = {}

    def version(self, argv0: str, run: Run, env: dict[str, str]) -> Version | None:
        """The version of the Python that `argv0` starts, or None when it cannot be told (not a Python)."""
        path = _where(argv0)
        if path is None:
            return None
        try:
            key = (str(path), os.stat(path).st_mtime_ns)
        except OSError:
            return None
        if key not in self._known:
            self._known[key] = from_files(path) or _probe(str(path), run, env)
        return self._known[key]


def _probe(python: str, run: Run, env: dict[str, str]) -> Version | None:
    done = run([python, "-I", "-S", "-c", _PROBE], env=env, timeout=30)
    found = re.fullmatch(r"(\d+)\.(\d+)", done.text().strip()) if done.ok else None
    return (int(found.group(1)), int(found.group(2))) if found else None


def coverage_env(version: Version | None) -> dict[str, str]:
    """What the test run's environment gets for coverage.py to measure through sys.monitoring where it can."""
    return {"COVERAGE_CORE": "sysmon"} if version is not None and version >= SYSMON_SINCE else {}


def mode(version: Version | None) -> str:
    """How coverage was measured, as remembered with a tree's figures: only figures measured the same way are
    compared (line coverage, under the same Python minor version)."""
    return f"line/py{version[0]}.{version[1]}" if version else "line"
