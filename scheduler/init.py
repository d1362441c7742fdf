"""`overnight init`: set a repository up for overnight, idempotently, without overwriting a person's files.

Writes a commented `overnight.toml`, a `PROJECT_PLAN.md` template when there is none, and `.mcp.json`
registering every server the package provides with the absolute path of this interpreter (so it works from
an IDE and from cron with no virtualenv activated). Creates the state directory and its key.
"""

from __future__ import annotations

import importlib.resources
import importlib.util
import json
import os
import sys
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field

from mcp_servers.core import config, layout, project_env
from mcp_servers.core.errors import UsageError
from mcp_servers.core.git import Repo
from mcp_servers.core.workspace import Workspace

SERVER_NAMES = ("quality", "project", "memory")

Action = Literal["created", "updated", "unchanged", "kept", "overwritten"]


class FileAction(BaseModel):
    path: str
    action: Action
    detail: str = ""


class Found(BaseModel):
    """What `overnight init` found in the repository, and the settings it wrote from it."""

    layout: layout.Layout
    environment: project_env.Environment
    settings: dict[str, Any] = Field(default_factory=dict, description="the keys written in force, by name")
    notes: list[str] = Field(default_factory=list, description="what the person should know or do")


class InitResult(BaseModel):
    root: str
    state_dir: str
    found: Found
    files: list[FileAction]
    uncommitted: list[str] = Field(default_factory=list, description="files of ours that git does not have yet")
    commit: str | None = Field(default=None, description="the commit made with --commit")


def available_servers() -> list[str]:
    """The servers this installation provides (each is a package with a `server` module)."""
    return [name for name in SERVER_NAMES if _has_module(f"mcp_servers.{name}.server")]


def _has_module(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except ModuleNotFoundError:  # a parent package is missing altogether
        return False


def server_entry(name: str, python: str = sys.executable) -> dict[str, Any]:
    # -I: started in the repository, Python would otherwise import a folder of its own named `mcp_servers` first
    return {"type": "stdio", "command": python, "args": ["-I", "-m", f"mcp_servers.{name}"], "env": {}}


def _write(path: Path, text: str) -> None:
    """Write via a temporary file and a rename: a crash never leaves half a file."""
    tmp = path.with_name(f".{path.name}.overnight-tmp")
    tmp.write_text(text, encoding="utf-8", newline="")
    os.replace(tmp, path)


def _plain_file(path: Path, text: str, force: bool, *, never_overwrite: bool = False) -> FileAction:
    if not path.exists():
        _write(path, text)
        return FileAction(path=path.name, action="created")
    if path.read_text(encoding="utf-8", errors="replace") == text:
        return FileAction(path=path.name, action="unchanged")
    if force and not never_overwrite:
        _write(path, text)
        return FileAction(path=path.name, action="overwritten")
    why = "a person's file is never replaced" if never_overwrite else "it differs; pass --force to replace it"
    return FileAction(path=path.name, action="kept", detail=why)


def _mcp_json(path: Path, force: bool, python: str) -> FileAction:
    wanted = {name: server_entry(name, python) for name in available_servers()}
    if path.exists():
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as e:
            if not force:
                raise UsageError(f"{path} is not valid JSON ({e}): fix it, or pass --force to replace it.") from e
            data = {}
        if not isinstance(data, dict) or not isinstance(data.get("mcpServers", {}), dict):
            raise UsageError(f"{path} has no `mcpServers` object: fix it by hand, then run `overnight init` again.")
    else:
        data = {}
    servers = data.setdefault("mcpServers", {})
    kept, changed = [], []
    for name, entry in wanted.items():
        if servers.get(name) == entry:
            continue
        if name in servers and not force:
            kept.append(name)
            continue
        servers[name] = entry
        changed.append(name)
    if not changed:
        detail = f"kept your entries for {', '.join(kept)}; pass --force to replace them" if kept else ""
        return FileAction(path=path.name, action="kept" if kept else "unchanged", detail=detail)
    existed = path.exists()
    _write(path, json.dumps(data, indent=2) + "\n")
    detail = f"registered {', '.join(changed)}" + (f"; kept your entries for {', '.join(kept)}" if kept else "")
    return FileAction(path=path.name, action="updated" if existed else "created", detail=detail)


def init(
    path: str | None = None,
    *,
    force: bool = False,
    commit: bool = False,
    python: str = sys.executable,
    find_environment: bool = True,
) -> InitResult:
    """Set up the repository containing `path`. Safe to run again: it only adds what is missing.

    The files it writes are a person's to commit: the policy refuses them from an agent. With `commit`, they
    are committed (and nothing else) as the person's own commit.
    """
    ws = Workspace.open(path)
    root = ws.repo.root
    found = discover(ws.repo, ws.environ, python, find_environment=find_environment)
    actions = [_plain_file(root / config.CONFIG_NAME, config.template(found.settings), force)]
    plan = root / ws.settings.plan.path
    if plan.exists():
        actions.append(FileAction(path=ws.settings.plan.path, action="kept", detail="the plan is a person's file"))
    else:
        plan.parent.mkdir(parents=True, exist_ok=True)
        text = importlib.resources.files("mcp_servers.core").joinpath("templates/PROJECT_PLAN.md").read_text("utf-8")
        actions.append(_plain_file(plan, text, force=False, never_overwrite=True))
    actions.append(_mcp_json(root / ".mcp.json", force, python))
    ws.key()
    with ws.db():
        pass
    ours = [config.CONFIG_NAME, ws.settings.plan.path, ".mcp.json"]
    pending = ws.repo.out("status", "--porcelain", "--untracked-files=all", "--", *ours)
    uncommitted = [line[3:] for line in pending.splitlines() if line[3:] in ours]
    made = None
    if commit and uncommitted:
        ws.repo.run("add", "--", *uncommitted)
        ws.repo.run("commit", "--quiet", "-m", "Set up overnight", "--", *uncommitted, env=_commit_env())
        made = ws.repo.out("rev-parse", "HEAD")
        uncommitted = []
    return InitResult(root=str(root), state_dir=str(ws.state_dir), found=found, files=actions,
                      uncommitted=uncommitted, commit=made)  # fmt: skip


def discover(repo: Repo, environ: Any, own_python: str = sys.executable, *, find_environment: bool = True) -> Found:
    """The layout (from the tracked files) and the project's environment (unless `find_environment` is off: a
    project made for overnight's own interpreter, the demo's), and the settings they call for."""
    files = repo.out("ls-files", "-z").split("\0") if repo.head() is not None else []
    shape = layout.detect(f for f in files if f)
    own_prefix = str(Path(own_python).parent.parent)
    env = (project_env.detect(repo.root, environ, own_prefix=own_prefix) if find_environment
           else project_env.Environment(kind="none", how="not looked for"))  # fmt: skip
    values: dict[str, Any] = {}
    notes: list[str] = []
    if shape.style != "unknown":
        values["policy.allowed_paths"] = shape.allowed_paths
        values["gate.coverage.source"] = shape.coverage_source
    else:
        notes.append("no Python package found in the tracked files: the default `allowed_paths` and coverage "
                     "`source` are kept; set them in overnight.toml")  # fmt: skip
    if env.kind != "none":
        env.interpreter = project_env.probe(project_env.interpreter_path(env.python, repo.root))
        values["gate.python"] = env.python
        notes.extend(_interpreter_notes(env))
        fix = project_env.unignored(repo.root, env.folder, lambda rel: _ignored(repo, rel))
        if fix:
            notes.append(fix)
    else:
        notes.append("no project environment found (.venv, venv, uv, Poetry, Hatch, tox or an active virtualenv): "
                     f"the gate runs the tests with overnight's own interpreter ({own_python}); if the project has "
                     "one, set `python` under [gate] in overnight.toml")  # fmt: skip
    return Found(layout=shape, environment=env, settings=values, notes=notes)


def _ignored(repo: Repo, rel: str) -> bool:
    return repo.run("check-ignore", "-q", "--", rel, check=False).returncode == 0


def _interpreter_notes(env: project_env.Environment) -> list[str]:
    found = env.interpreter
    if found is None:
        return []
    if found.problem:
        return [f"the project's interpreter cannot run: {found.problem}; fix the environment, then run "
                "`overnight doctor`"]  # fmt: skip
    notes = []
    if not found.has_pytest:
        notes.append(f"pytest is not installed in {env.python}: `{found.path} -m pip install pytest`")
    if not found.has_coverage:
        notes.append(f"coverage.py is not installed in {env.python}, so the gate's coverage checks will fail: "
                     f"{project_env.coverage_fix(env.kind, found.path)}")  # fmt: skip
    return notes


def _commit_env() -> dict[str, str]:
    """A person's commit runs their hooks: git's hook path is not overridden here."""
    from mcp_servers.core.git import git_env

    return git_env()
