"""What a gate check is: a name, the checks it needs first, a switch in the config, and `run(ctx)`.

Checks are plugins (pre-commit's languages are the model): one small module each, registered in a list in
`gate/__init__.py`. A check that cannot run has failed, with the reason; it never passes by default.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import proc, sandbox
from ..changes import ChangeSet
from ..config import Settings
from ..git import Repo
from ..models import CheckResult, Finding
from .progress import Progress

MAX_FINDINGS = 50


@dataclass
class GateContext:
    """Everything a check may read. `artifacts` carries results between checks (the tests' coverage data)."""

    repo: Repo
    settings: Settings
    changes: ChangeSet
    work_dir: Path
    environ: Mapping[str, str]
    base_coverage: Callable[[], float | None]
    artifacts: dict[str, Any] = field(default_factory=dict)
    tree_dir: Path | None = None  # a fresh export of the judged tree: code runs there, never in the worktree
    # the task's `Files:` as a person wrote them, never an agent's own `task_files`: what may change expectations
    approved_scope: list[str] = field(default_factory=list)
    progress: Progress | None = None  # told what the checks do as they run (a terminal's live view); never a server

    @property
    def root(self) -> Path:
        return self.repo.root

    def hidden(self) -> tuple[Path, ...]:
        """What code run by the gate must not see: the person's folders, the checkout, the state directory."""
        return sandbox.person_paths(self.environ, self.repo.root, self.repo.common_dir)

    def run_code(self, argv: list[str], *, timeout: float | None, env: dict[str, str], write: tuple[Path, ...] = (),
                 cwd: Path | None = None, on_output: proc.Output | None = None) -> proc.Completed:  # fmt: skip
        """Run code of the judged tree (its tests, the configured commands) in the sandbox, in the export:
        no network, a private /tmp, nothing of the person's visible, every process gone when it ends."""
        where = cwd or self.tree_dir or self.root
        return sandbox.run(argv, mode=self.settings.scheduler.sandbox, cwd=where, write=(self.work_dir, *write),
                           hide=self.hidden(), env=env, timeout=timeout, on_output=on_output)  # fmt: skip

    def python_files(self, under: list[str] | None = None) -> list[str]:
        """Changed (not deleted) Python files, optionally only those under the given directories."""
        found = []
        for f in self.changes.files:
            if f.status == "D" or not f.path.endswith(".py") or f.new_mode not in {"100644", "100755"}:
                continue
            if under is None or any(_under(f.path, d) for d in under):
                found.append(f.path)
        return found

    def env(self, **extra: str) -> dict[str, str]:
        """The environment for a command the gate runs: no credentials, no bytecode or pytest cache written."""
        env = sandbox.clean_env(self.environ)
        env["PYTHONDONTWRITEBYTECODE"] = "1"
        env["PYTEST_ADDOPTS"] = (env.get("PYTEST_ADDOPTS", "") + " -p no:cacheprovider").strip()
        env.update(extra)
        return env


def _under(path: str, directory: str) -> bool:
    directory = directory.strip("/")
    return directory in {"", "."} or path == directory or path.startswith(directory + "/")


@dataclass(frozen=True)
class Check:
    name: str
    run: Callable[[GateContext], CheckResult]
    enabled: Callable[[Settings], bool] = lambda _s: True
    needs: tuple[str, ...] = ()


def result(
    name: str,
    passed: bool,
    summary: str,
    findings: list[Finding] | None = None,
    started: float | None = None,
    **data: float | int | str | None,
) -> CheckResult:
    """A CheckResult with its findings cut to a readable number and its duration filled in."""
    findings = findings or []
    return CheckResult(
        name=name,
        status="passed" if passed else "failed",
        summary=summary,
        findings=findings[:MAX_FINDINGS],
        findings_total=len(findings),
        duration_s=round(time.monotonic() - started, 3) if started is not None else 0.0,
        data=data,
    )


def skipped(name: str, why: str) -> CheckResult:
    return CheckResult(name=name, status="skipped", summary=why)


def line_ranges(lines: list[int]) -> str:
    """`[1, 2, 3, 7]` -> `1-3, 7`."""
    spans: list[str] = []
    for n in sorted(set(lines)):
        if spans and n == int(spans[-1].split("-")[-1]) + 1:
            spans[-1] = f"{spans[-1].split('-')[0]}-{n}"
        else:
            spans.append(str(n))
    return ", ".join(spans)


def relative(root: Path, path: str) -> str:
    """A path from a tool's report, relative to the repository root."""
    p = Path(path)
    if p.is_absolute():
        try:
            return p.relative_to(root).as_posix()
        except ValueError:
            try:
                return p.resolve().relative_to(root.resolve()).as_posix()
            except ValueError:
                return path
    return p.as_posix().removeprefix("./") if os.sep == "/" else p.as_posix()
