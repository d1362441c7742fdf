"""The project's own Python environment: where it is, which interpreter runs the tests, what the sandbox shows.

overnight is often installed on its own (pipx, a tool virtualenv) while the project keeps its dependencies in
an environment of its own: a `.venv` in the repository, one managed by uv, Poetry, Hatch or tox, or the active
virtualenv. The gate must run the project's tests with that interpreter (`[gate] python`), never assume its own
is the project's (issue 11, item 2).

Inside the sandbox, the environment is shown read-only at its own path, with the base interpreter it was made
from (a pyenv or uv-managed Python under the hidden home); nothing else of the home.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tomllib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field

from . import proc
from .errors import ConfigError

Kind = Literal["venv", "uv", "poetry", "hatch", "tox", "virtualenv", "none"]

# asks an interpreter about itself: run with -I (no working directory, no PYTHON* variables on the path)
_PROBE = (
    "import importlib.util as u, json, sys\n"
    "print(json.dumps({'version': '.'.join(map(str, sys.version_info[:3])), 'prefix': sys.prefix,"
    " 'base_prefix': sys.base_prefix, 'pytest': u.find_spec('pytest') is not None,"
    " 'coverage': u.find_spec('coverage') is not None}))"
)


class Interpreter(BaseModel):
    """What an interpreter says about itself, or why it could not be asked."""

    path: str
    version: str = ""
    prefix: str = ""
    base_prefix: str = ""
    has_pytest: bool = False
    has_coverage: bool = False
    problem: str = Field(default="", description="why it cannot run the tests (empty: it can)")


class Environment(BaseModel):
    """The project's environment as detected: what kind, where, and the `[gate] python` value that names it."""

    kind: Kind
    folder: str = Field(default="", description="the environment's folder (absolute)")
    python: str = Field(default="", description="the value for `[gate] python` (relative to the root when inside)")
    how: str = Field(default="", description="how it was found")
    interpreter: Interpreter | None = None


def checkout_root(root: Path, common_dir: Path) -> Path:
    """The person's checkout: where an untracked `.venv` is and where an editable install points. A session
    worktree has no `.venv` of its own; its common git folder is the checkout's `.git`."""
    if common_dir.name == ".git" and (common_dir.parent / ".git").is_dir():
        return common_dir.parent
    return root


def interpreter_path(value: str, checkout: Path) -> str:
    """The absolute path `[gate] python` names ("" when it is empty: overnight's own interpreter)."""
    if not value:
        return ""
    path = Path(os.path.expanduser(value))
    if not path.is_absolute():
        path = checkout / path
    return os.path.abspath(path)  # never resolve: a venv's bin/python is a symlink to its base interpreter


def python_of(folder: Path) -> Path | None:
    """The interpreter of the environment in `folder`, when it has one."""
    for name in ("bin/python", "bin/python3", "Scripts/python.exe"):
        candidate = folder / name
        if os.path.lexists(candidate):
            return candidate
    return None


def probe(python: str, *, timeout: float = 60) -> Interpreter:  # noqa: PLR0911 (one return per way it fails)
    """Run `python` (outside any sandbox: only the person's commands call this) to ask what it is and has."""
    if not python:
        return Interpreter(path=python, problem="no interpreter configured")
    if not os.path.exists(python):
        return Interpreter(path=python, problem=f"`{python}` does not exist")
    if not os.access(python, os.X_OK):
        return Interpreter(path=python, problem=f"`{python}` is not executable")
    try:
        done = proc.run([python, "-I", "-c", _PROBE], timeout=timeout)
    except OSError as e:
        return Interpreter(path=python, problem=f"`{python}` could not be started: {e}")
    if not done.ok:
        return Interpreter(path=python, problem=f"`{python}` does not run: {done.describe(tail_lines=3)}")
    try:
        facts = json.loads(done.text().strip().splitlines()[-1])
    except (ValueError, IndexError):
        return Interpreter(path=python, problem=f"`{python}` did not answer as a Python 3 interpreter would")
    return Interpreter(path=python, version=facts["version"], prefix=facts["prefix"],
                       base_prefix=facts["base_prefix"], has_pytest=facts["pytest"],
                       has_coverage=facts["coverage"])  # fmt: skip


def coverage_fix(env_kind: str, python: str) -> str:
    """How to add coverage.py to the project's environment."""
    if env_kind == "uv":
        return "`uv add --dev coverage` (or run the tests with `uv run --with coverage`)"
    if env_kind == "poetry":
        return "`poetry add --group dev coverage`"
    if env_kind == "hatch":
        return "add `coverage` to the default environment's `dependencies` in your Hatch config"
    return f"`{python} -m pip install coverage`"


def exposed(python: str, hidden: tuple[Path, ...]) -> tuple[Path, ...]:
    """The folders the sandbox shows read-only so that `python` runs inside: its environment (the folder with
    `pyvenv.cfg`) and its base interpreter's prefix (symlinks of bin/python resolved, `home` of pyvenv.cfg).

    Fails closed: a folder that is, or holds, a hidden one (the home, the checkout, the state directory) is never
    shown; the person must move the environment (ConfigError says so)."""
    exe = Path(python)
    found: list[Path] = []
    venv = exe.parent.parent
    if (venv / "pyvenv.cfg").is_file():
        found.append(venv)
        home = _cfg_home(venv / "pyvenv.cfg")
        if home:
            found.append(Path(home).resolve().parent)
    real = exe.resolve()
    found.append(real.parent.parent if real.parent.name == "bin" else real.parent)
    shown: list[Path] = []
    for folder in dict.fromkeys(found):
        if not folder.is_dir():
            continue
        for secret in hidden:
            if _holds(folder, secret):
                raise ConfigError(
                    f"the project's interpreter `{python}` needs `{folder}` shown to the tests, but that folder holds "
                    f"`{secret}`, which the sandbox hides: put the environment in its own folder (e.g. "
                    "`python3 -m venv .venv` in the repository) and set `[gate] python` to it"
                )
        shown.append(folder)
    return tuple(shown)


def unignored(root: Path, folder: str, ignored: Callable[[str], bool]) -> str | None:
    """The fix when the environment's `folder` is inside the repository at `root` but git does not ignore it
    (every gate would count its thousands of files as the change), else None. `ignored(rel)` asks git."""
    try:
        rel = Path(folder).relative_to(os.path.abspath(root)).as_posix()
    except ValueError:
        return None
    if ignored(rel + "/"):
        return None
    return (f"git does not ignore `{rel}/`, so every gate would count the environment as part of the change: "
            f"add `{rel}/` to .git/info/exclude (your own) or to .gitignore")  # fmt: skip


def _holds(folder: Path, secret: Path) -> bool:
    a, b = os.path.abspath(folder), os.path.abspath(secret)
    return a == b or b.startswith(a.rstrip("/") + "/")


def _cfg_home(cfg: Path) -> str:
    for line in cfg.read_text(encoding="utf-8", errors="replace").splitlines():
        key, sep, value = line.partition("=")
        if sep and key.strip() == "home":
            return value.strip()
    return ""


# -- detection ------------------------------------------------------------------------------------------------


def _pyproject(root: Path) -> dict[str, object]:
    try:
        return tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError):
        return {}


def _tool(root: Path, name: str) -> bool:
    tool = _pyproject(root).get("tool")
    return isinstance(tool, dict) and name in tool


def _found(kind: Kind, folder: Path, root: Path, how: str) -> Environment | None:
    python = python_of(folder)
    if python is None:
        return None
    absolute = os.path.abspath(python)
    try:
        value = Path(absolute).relative_to(os.path.abspath(root)).as_posix()
    except ValueError:
        value = absolute
    return Environment(kind=kind, folder=os.path.abspath(folder), python=value, how=how)


def _run_tool(argv: list[str], root: Path, environ: Mapping[str, str]) -> str:
    exe = shutil.which(argv[0], path=environ.get("PATH"))
    if exe is None:
        return ""
    try:
        done = proc.run([exe, *argv[1:]], cwd=root, timeout=60)
    except OSError:
        return ""
    return done.text().strip().splitlines()[-1] if done.ok and done.text().strip() else ""


def _uv(root: Path, environ: Mapping[str, str]) -> Environment | None:
    if not ((root / "uv.lock").exists() or _tool(root, "uv")):
        return None
    where = environ.get("UV_PROJECT_ENVIRONMENT")
    folder = (root / where) if where else root / ".venv"
    how = "uv project (uv.lock / [tool.uv])" + (", $UV_PROJECT_ENVIRONMENT" if where else "")
    return _found("uv", folder, root, how)


def _poetry(root: Path, environ: Mapping[str, str]) -> Environment | None:
    if not ((root / "poetry.lock").exists() or _tool(root, "poetry")):
        return None
    path = _run_tool(["poetry", "env", "info", "-p"], root, environ)
    if path:
        return _found("poetry", Path(path), root, "`poetry env info -p`")
    name = _project_name(root)
    home = Path(environ.get("HOME", "~"))
    base = Path(environ.get("POETRY_VIRTUALENVS_PATH") or home / ".cache/pypoetry/virtualenvs")
    for folder in sorted(base.glob(f"{name}-*-py*"), reverse=True) if name else []:
        if env := _found("poetry", folder, root, f"Poetry's virtualenvs folder ({base})"):
            return env
    return None


def _hatch(root: Path, environ: Mapping[str, str]) -> Environment | None:
    if not ((root / "hatch.toml").exists() or _tool(root, "hatch")):
        return None
    path = _run_tool(["hatch", "env", "find"], root, environ)
    return _found("hatch", Path(path), root, "`hatch env find`") if path else None


def _tox(root: Path) -> Environment | None:
    if not ((root / "tox.ini").exists() or _tool(root, "tox")):
        return None
    tox = root / ".tox"
    names = sorted((p.name for p in tox.iterdir() if p.is_dir()), key=_tox_rank) if tox.is_dir() else []
    for name in names:
        if env := _found("tox", tox / name, root, f"tox environment `{name}`"):
            return env
    return None


def _tox_rank(name: str) -> tuple[int, str]:
    """py3XX environments first (newest first), then the others by name."""
    m = re.fullmatch(r"py3(\d+)", name)
    return (0, f"{999 - int(m.group(1)):03d}") if m else (1, name)


def _project_name(root: Path) -> str:
    project = _pyproject(root).get("project")
    name = project.get("name") if isinstance(project, dict) else None
    if not isinstance(name, str):
        tool = _pyproject(root).get("tool")
        poetry = tool.get("poetry") if isinstance(tool, dict) else None
        name = poetry.get("name") if isinstance(poetry, dict) else None
    return re.sub(r"[-_.]+", "-", name).lower() if isinstance(name, str) else ""


def detect(root: Path, environ: Mapping[str, str], *, own_prefix: str = "") -> Environment:
    """The project's environment: uv, a `.venv`/`venv` in the repository, Poetry, Hatch, tox, then the active
    virtualenv (unless it is overnight's own, `own_prefix`). Kind "none" when nothing is found."""
    finders: list[Callable[[], Environment | None]] = [
        lambda: _uv(root, environ),
        lambda: _found("venv", root / ".venv", root, "`.venv` in the repository"),
        lambda: _found("venv", root / "venv", root, "`venv` in the repository"),
        lambda: _poetry(root, environ),
        lambda: _hatch(root, environ),
        lambda: _tox(root),
    ]
    for find in finders:
        env = find()
        if env is not None:
            return env
    active = environ.get("VIRTUAL_ENV", "")
    if active and os.path.abspath(active) != os.path.abspath(own_prefix or "/nonexistent"):
        env = _found("virtualenv", Path(active), root, "the active virtualenv ($VIRTUAL_ENV)")
        if env is not None:
            return env
    return Environment(kind="none", how="no project environment found: the gate uses overnight's own interpreter")
