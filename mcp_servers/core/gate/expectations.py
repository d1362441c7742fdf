"""The `checkpoint-tests` check: the tests that existed at the task's checkpoint, run in their checkpoint version
against the new code, in a pytest process that never imports the agent's new test files (issue 10).

The `tests` check runs the agent's version of the tests. An agent that weakens or deletes an assertion together
with a broken change passes it, and so does one that adds a test module whose import patches the code under test.

- The checkpoint's tests are the base tree's files that pytest collects by name (see `gate.collection`).
- The test side of a tree is those files, any new ones, and every file in a folder named `tests`, `test` or
  `testing` (helpers, `__init__.py`, data). The check runs only when the change touches the test side. Otherwise
  the `tests` check has already run exactly the checkpoint's tests, and this check is skipped at no cost.
- It runs on its own export of the new tree with the test side put back as the base had it: changed and
  deleted files restored, added ones removed. pytest (the project's test command with its options) gets the
  checkpoint's test files after `--` as its only paths, runs all of them whatever `-x` says, and writes JUnit
  results outside the tree.
- A failing checkpoint test fails the check, unless the task's `Files:` names its file literally, not through a
  wildcard: then a person approved changing that expectation, and the check passes and lists it.
"""

from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from xml.etree import ElementTree

from .. import proc
from ..config import Settings, resolve_python
from ..models import CheckResult, Finding
from ..paths import Globs
from . import collection
from .base import Check, GateContext, result, skipped

NAME = "checkpoint-tests"
_WILDCARD = re.compile(r"[*?\[]")
_PYTHON = re.compile(r"(^|/)python(\d+(\.\d+)?)?$")
# every checkpoint test runs, even past a failure or a module that does not import
_RUN_ALL = ["--maxfail=0", "--continue-on-collection-errors"]


def pytest_command(settings: Settings, python: str = "") -> tuple[list[str], list[str]] | None:
    """The test command as (what starts pytest, pytest's arguments), or None when it is not pytest."""
    argv = list(settings.gate.test_command)
    if argv[0] in {"pytest", "py.test"}:
        argv = ["python", "-m", "pytest", *argv[1:]]
    argv = resolve_python(argv, python)
    if _PYTHON.search(argv[0]) and argv[1:3] == ["-m", "pytest"]:
        return argv[:3], argv[3:]
    return (argv[:1], argv[1:]) if Path(argv[0]).name in {"pytest", "py.test"} else None


def approved(scope: list[str], path: str) -> bool:
    """Whether the task's `Files:` names this test file itself: a literal entry, not a glob that happens to match
    it (`tests/**` lets an agent add tests; changing what an existing one expects is a narrower decision)."""
    return any(not _WILDCARD.search(p) and Globs([p]).match(path) for p in scope)


def _run(ctx: GateContext) -> CheckResult:
    started = time.monotonic()
    changes = ctx.changes
    rules = collection.read(ctx.repo, changes.base)
    touched = sorted({p for f in changes.files for p in f.paths if rules.test_side(p)})
    if not touched:
        return skipped(NAME, "the change touches no test file: the `tests` check ran exactly the checkpoint's tests")
    command = pytest_command(ctx.settings, ctx.python)
    if command is None:
        return skipped(
            NAME,
            f"the test command `{' '.join(ctx.settings.gate.test_command)}` is not pytest, so the checkpoint's "
            "tests cannot be picked out: review the changes to the tests yourself",
        )
    options, roots = collection.split_paths(command[1])
    base = ctx.repo.ls_tree(changes.base_tree)
    files = rules.collected(base, roots)
    if not files:
        return skipped(NAME, "the checkpoint has no test file for pytest to run")
    tree = ctx.repo.export(changes.tree, ctx.work_dir / "checkpoint-tree")
    _restore(ctx, tree, touched, base)
    junit = ctx.work_dir / "checkpoint-tests" / "results.xml"
    junit.parent.mkdir(parents=True)
    argv = [*command[0], *options, *_RUN_ALL, f"--junitxml={junit}", "-o", "junit_logging=no", "--", *files]
    completed = ctx.run_code(argv, cwd=tree, env=ctx.env(), timeout=ctx.settings.gate.test_timeout_s)
    return _verdict(ctx, completed, outcome(junit, files), len(files), started)


def _restore(ctx: GateContext, tree: Path, touched: list[str], base: dict[str, tuple[str, str]]) -> None:
    """Put the test side of the export back as the base tree has it: what the change added is removed."""
    for path in touched:
        target = tree / path
        if target.is_symlink() or target.is_file():
            target.unlink()
    kept = [p for p in touched if p in base and base[p][0] != "160000"]
    blobs = ctx.repo.read_blobs([base[p][1] for p in kept])
    for path in kept:
        mode, oid = base[path]
        target = tree / path
        target.parent.mkdir(parents=True, exist_ok=True)
        if mode == "120000":
            os.symlink(blobs[oid], target)
        else:
            target.write_bytes(blobs[oid])
            target.chmod(0o755 if mode == "100755" else 0o644)


@dataclass
class Outcome:
    """What pytest's JUnit results say: how many tests it reported, and the failed ones as (test id, message)."""

    ran: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)


def outcome(junit: Path, files: list[str]) -> Outcome | None:
    """Read pytest's JUnit results; test ids are rebuilt from the dotted class names (None: no readable results)."""
    try:
        root = ElementTree.parse(junit).getroot()  # noqa: S314 (written by pytest in our own work dir)
    except (OSError, ElementTree.ParseError):
        return None
    modules = {f.removesuffix(".py").replace("/", "."): f for f in files}
    found = Outcome()
    for case in root.iter("testcase"):
        found.ran += 1
        bad = next((c for c in case if c.tag in {"failure", "error"}), None)
        if bad is not None:
            found.failed.append((_test_id(case.get("classname", ""), case.get("name", ""), modules), _message(bad)))
    return found


def _test_id(classname: str, name: str, modules: dict[str, str]) -> str:
    """`tests/test_calc.py::TestX::test_a` from classname `tests.test_calc.TestX` and name `test_a` (a module that
    failed to import has no classname, and its dotted name as the name)."""
    dotted = classname or name
    module = max((m for m in modules if dotted == m or dotted.startswith(m + ".")), key=len, default=None)
    if module is None:
        return f"{classname}::{name}" if classname else name
    inner = dotted[len(module) + 1 :].replace(".", "::")
    parts = [modules[module], *([inner] if inner else []), *([name] if classname else [])]
    return "::".join(parts)


def _message(element: ElementTree.Element) -> str:
    message = element.get("message", "")
    if message in {"", "collection failure"}:
        lines = [line for line in (element.text or "").splitlines() if line.startswith("E ")]
        message = lines[-1][1:].strip() if lines else message or "failed"
    return message[:500]


def _incomplete(found: Outcome | None, code: int) -> str | None:
    """Why pytest's exit code and its own results do not make a whole run (None: they do)."""
    if found is None:
        return "pytest wrote no readable results"
    if code == 0 and found.failed:
        return "pytest exited 0 but its own results count failed tests: the exit code was forced"
    if not found.failed and (code != 0 or found.ran == 0):
        return "no checkpoint test was collected" if code in {0, 5} else "pytest failed without a failed test"
    return None


def _verdict(
    ctx: GateContext, completed: proc.Completed, found: Outcome | None, files: int, started: float
) -> CheckResult:
    out = (completed.text() + completed.stderr.decode("utf-8", "replace")).rstrip().splitlines()
    tail = [Finding(message="\n".join(out[-30:]))] if out else []
    if completed.timed_out:
        limit = ctx.settings.gate.test_timeout_s
        return result(NAME, False, f"the checkpoint's tests timed out after {limit:.0f}s", tail, started)
    why = _incomplete(found, completed.returncode)
    if why or found is None:
        return result(
            NAME,
            False,
            f"the checkpoint's tests did not run through (exit {completed.returncode}): {why}",
            tail,
            started,
        )
    changed = [(i, m) for i, m in found.failed if approved(ctx.approved_scope, i.split("::")[0])]
    broken = [(i, m) for i, m in found.failed if (i, m) not in changed]
    listed = ", ".join(i for i, _ in changed)
    if broken:
        also = f"; {len(changed)} more fail as the task's Files: allows ({listed})" if changed else ""
        return result(
            NAME,
            False,
            f"{len(broken)} test(s) of the task's checkpoint fail against the new code, run in their checkpoint "
            f"version{also}. Fix the code; a test whose expectation must change needs a person to name its file "
            "in the task's Files:",
            [Finding(path=i.split("::")[0], message=f"FAILED {i}: {m}") for i, m in broken],
            started,
            ran=found.ran,
        )
    if changed:
        return result(
            NAME,
            True,
            f"changed expectations, approved by the task's Files: {listed}; the other "
            f"{found.ran - len(changed)} checkpoint test(s) pass",
            [Finding(path=i.split("::")[0], message=f"changed expectation {i}: {m}") for i, m in changed],
            started,
            ran=found.ran,
            changed=listed,
        )
    summary = f"{found.ran} test(s) of the checkpoint, from {files} file(s), pass against the new code"
    return result(NAME, True, summary, started=started, ran=found.ran)


CHECK = Check(name=NAME, run=_run)
