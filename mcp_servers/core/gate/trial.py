"""The test command on the unchanged tree, run as the gate runs it: `overnight doctor --run-tests`.

A configuration that cannot pass the gate on the commit it was written for (a wrong interpreter, a coverage
source that does not exist, missing test dependencies) is found before the first session, not by it.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from pydantic import BaseModel

from .. import db
from ..changes import collect
from ..workspace import Workspace
from . import coverage, tests
from .base import GateContext


class Trial(BaseModel):
    """How the tests went on HEAD's tree, through the gate's own code path, sandboxed."""

    passed: bool
    summary: str
    coverage: float | None = None
    coverage_missing: str | None = None
    seconds: float
    output: str = ""


def run_tests_on_head(ws: Workspace, commit: str | None = None) -> Trial:
    """Export HEAD's tree (or `commit`'s: the daemon's "tests-pass-on-base"), run the `tests` check on it (the
    sandbox, the project's interpreter, coverage)."""
    repo = ws.repo
    head = commit or repo.require_commits()
    tree = repo.tree_of(head)
    started = time.monotonic()
    tmp = db.ensure_dir(ws.state_dir / "tmp")
    with tempfile.TemporaryDirectory(prefix="doctor-", dir=tmp) as work:
        ctx = GateContext(repo=repo, settings=ws.settings, changes=collect(repo, head, tree), work_dir=Path(work),
                          environ=ws.environ, base_coverage=lambda: None)  # fmt: skip
        ctx.tree_dir = repo.export(tree, Path(work) / "tree")
        checked = tests.CHECK.run(ctx)
    data = ctx.artifacts.get("coverage")
    output = "\n".join(f.message for f in checked.findings)
    return Trial(passed=checked.passed, summary=checked.summary,
                 coverage=coverage.percent(data) if data is not None else None,
                 coverage_missing=ctx.artifacts.get("coverage_missing"),
                 seconds=round(time.monotonic() - started, 1), output=output)  # fmt: skip
