"""`overnight doctor`, the project side: the configuration checked against the tree (issue 11, item 2).

What the layout and environment are; whether the project's interpreter runs and has pytest and coverage.py;
globs of the policy that match nothing; a coverage source that does not exist; and (with `--run-tests`) the
test command on the unchanged tree, run as the gate runs it. Each finding says what to do.
"""

from __future__ import annotations

import sys
from pathlib import Path

from mcp_servers.core import config, layout, paths, project_env
from mcp_servers.core.errors import OvernightError
from mcp_servers.core.workspace import Workspace

from .doctor import Finding

_REINIT = "or run `overnight init --force` to write what it finds"


def checks(ws: Workspace, *, run_tests: bool = False) -> list[Finding]:
    """Every project-side finding, in the order a person would fix them."""
    files = _tracked(ws)
    checkout = project_env.checkout_root(ws.repo.root, ws.repo.common_dir)
    env = project_env.detect(checkout, ws.environ, own_prefix=sys.prefix)
    found = [_layout(files, env), *_interpreter(ws, env), *_globs(ws, files), *_coverage_source(ws, files)]
    found.append(_trial(ws) if run_tests else Finding(
        name="tests on HEAD", status="ok",
        detail="not run (they take as long as the test suite): `overnight doctor --run-tests` runs the test "
        "command on HEAD as the gate does, sandboxed, and says how long it took"))  # fmt: skip
    return found


def _tracked(ws: Workspace) -> list[str]:
    if ws.repo.head() is None:
        return []
    return [f for f in ws.repo.out("ls-tree", "-r", "--name-only", "-z", "HEAD").split("\0") if f]


def _layout(files: list[str], env: project_env.Environment) -> Finding:
    shape = layout.detect(files)
    where = f"; environment: {env.kind} at {env.folder} ({env.how})" if env.kind != "none" else "; " + env.how
    return Finding(name="layout", status="ok", detail=shape.describe() + where)


def _interpreter(ws: Workspace, env: project_env.Environment) -> list[Finding]:
    gate = ws.settings.gate
    checkout = project_env.checkout_root(ws.repo.root, ws.repo.common_dir)
    python = project_env.interpreter_path(gate.python, checkout)
    if not python:
        if env.kind != "none":
            return [Finding(
                name="project python", status="warn",
                detail=f"the gate runs the tests with overnight's own interpreter ({sys.executable}), but the "
                f"project has its own environment ({env.kind} at {env.folder})",
                fix=f'set `python = "{env.python}"` under [gate] in overnight.toml, {_REINIT}')]  # fmt: skip
        python = sys.executable
    facts = project_env.probe(python)
    if facts.problem:
        return [Finding(name="project python", status="error", detail=facts.problem,
                        fix="make the environment again (e.g. `python3 -m venv .venv`), or set `python` under "
                        "[gate] in overnight.toml to an interpreter that runs")]  # fmt: skip
    kind = env.kind
    found = [Finding(name="project python", status="ok", detail=f"Python {facts.version} at {python}")]
    unignored = project_env.unignored(ws.repo.root, str(Path(python).parent.parent), lambda rel: _ignored(ws, rel))
    if gate.python and unignored:
        found.append(Finding(name="project python", status="warn", detail=unignored.split(": ", 1)[0],
                             fix=unignored.split(": ", 1)[1]))  # fmt: skip
    if "pytest" in " ".join(gate.test_command) and not facts.has_pytest:
        found.append(Finding(name="project python", status="error", detail=f"pytest is not installed in {python}",
                             fix=f"`{python} -m pip install pytest` (or your project's test extras)"))  # fmt: skip
    if gate.coverage.enabled and not facts.has_coverage:
        found.append(Finding(name="project python", status="error",
                             detail=f"coverage.py is not installed in {python}, so every gate fails",
                             fix=project_env.coverage_fix(kind, python)))  # fmt: skip
    if gate.python:
        try:
            project_env.exposed(python, _hidden(ws))
        except OvernightError as e:
            found.append(Finding(name="project python", status="error", detail=str(e).split(": ", 1)[0],
                                 fix=str(e).split(": ", 1)[-1]))  # fmt: skip
    return found


def _ignored(ws: Workspace, rel: str) -> bool:
    return ws.repo.run("check-ignore", "-q", "--", rel, check=False).returncode == 0


def _hidden(ws: Workspace) -> tuple[Path, ...]:
    from mcp_servers.core import sandbox

    return sandbox.person_paths(ws.environ, ws.repo.root, ws.repo.common_dir)


def _globs(ws: Workspace, files: list[str]) -> list[Finding]:
    policy = ws.settings.policy
    found = []
    for pattern in policy.allowed_paths:
        if not any(paths.Globs([pattern]).match(f) for f in files):
            found.append(Finding(
                name="allowed path", status="warn", detail=f"`{pattern}` matches no file in the tree",
                fix=f"set `allowed_paths` under [policy] to where the code and tests are, {_REINIT}"))  # fmt: skip
    mine = [p for p in policy.all_protected if p not in config.PROTECTED_PATHS]
    for pattern in mine:
        if not any(paths.Globs([pattern], folded=True).match(f) for f in files):
            found.append(Finding(
                name="protected path", status="warn", detail=f"`{pattern}` matches no file in the tree",
                fix="check its spelling under [policy] in overnight.toml (a path with `/` is anchored at the "
                "root)"))  # fmt: skip
    return found


def _coverage_source(ws: Workspace, files: list[str]) -> list[Finding]:
    cov = ws.settings.gate.coverage
    if not cov.enabled:
        return []
    found = []
    suggestion = layout.detect(files).coverage_source
    for source in cov.source:
        name = source.strip("/")
        as_module = name.replace(".", "/")
        present = any(f == name or f.startswith(name + "/") or f.startswith(as_module + "/") or f == as_module + ".py"
                      for f in files)  # fmt: skip
        if not present:
            found.append(Finding(
                name="coverage source", status="error",
                detail=f"`{source}` is neither a folder, a file nor a module in the tree: coverage.py would "
                "measure nothing and every gate would fail with \"No data to report\"",
                fix=f"set `source = {_toml_list(suggestion)}` under [gate.coverage] in overnight.toml"))  # fmt: skip
    return found


def _toml_list(items: list[str]) -> str:
    return "[" + ", ".join(f'"{i}"' for i in items) + "]"


def _trial(ws: Workspace) -> Finding:
    from mcp_servers.core.gate.trial import run_tests_on_head

    try:
        trial = run_tests_on_head(ws)
    except OvernightError as e:
        return Finding(name="tests on HEAD", status="error", detail=str(e), fix="fix what it says, then run again")
    took = f"in {trial.seconds:.1f}s"
    if not trial.passed:
        return Finding(name="tests on HEAD", status="error", detail=f"{trial.summary} ({took})",
                       fix="the gate would fail on the unchanged tree: make the test command pass on HEAD with "
                       "the project's interpreter (`[gate] python`), or fix `test_command` under [gate]")  # fmt: skip
    if trial.coverage is None and ws.settings.gate.coverage.enabled:
        return Finding(name="tests on HEAD", status="error", detail=f"passed {took}, but {trial.coverage_missing}",
                       fix="check `source` under [gate.coverage] and that coverage.py is installed in the "
                       "project's interpreter")  # fmt: skip
    cover = f", coverage {trial.coverage:.1f}%" if trial.coverage is not None else ""
    return Finding(name="tests on HEAD", status="ok", detail=f"{trial.summary}{cover} ({took}, sandboxed)")
