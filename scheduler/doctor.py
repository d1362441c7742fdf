"""`overnight doctor`: what is installed, configured, healthy or missing, each with what to do."""

from __future__ import annotations

import importlib.metadata
import json
import os
import shutil
import stat
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Literal

from pydantic import BaseModel

from mcp_servers.core import config, db, hooks, proc
from mcp_servers.core.errors import ConfigError, OvernightError
from mcp_servers.core.gate.tests import command as test_command
from mcp_servers.core.git import Repo
from mcp_servers.core.workspace import Workspace

from .init import available_servers

Status = Literal["ok", "warn", "missing", "error"]
_PACKAGES = ("mcp", "pydantic", "radon", "bandit", "coverage", "pytest", "click", "rich", "anyio", "apprise")


class Finding(BaseModel):
    name: str
    status: Status
    detail: str
    fix: str = ""


class Diagnosis(BaseModel):
    healthy: bool
    findings: list[Finding]


def diagnose(path: str | None = None, *, run_tests: bool = False) -> Diagnosis:
    findings = [_python(), *_packages(), _git()]
    broken: ConfigError | None = None
    try:
        ws = Workspace.open(path)
    except ConfigError as e:  # issue 11: say what is wrong with overnight.toml, then check the rest anyway
        ws, broken = _with_defaults(path), e
    except OvernightError as e:
        status: Status = "error"
        findings.append(
            Finding(
                name="repository",
                status=status,
                detail=str(e),
                fix="run `overnight doctor` inside a git repository whose overnight.toml is valid",
            )
        )
        return _done(findings)
    for check in (_repository, _config, _sandbox, _state, _mcp_json, _hook, _tests, _agents, _notify):
        if broken is not None and check is _config:
            findings.append(_broken_config(broken))
            continue
        findings.extend(_safely(check, ws))
    from . import doctor_project

    def _project(w: Workspace) -> list[Finding]:
        return doctor_project.checks(w, run_tests=run_tests)

    findings.extend(_safely(_project, ws))
    findings.extend(_servers(ws))
    return _done(findings)


def _with_defaults(path: str | None) -> Workspace:
    """The repository with the default settings, for checking the rest while its overnight.toml is broken."""
    environ = dict(os.environ)
    repo = Repo.discover(path or environ.get("OVERNIGHT_REPO") or None)
    return Workspace(repo=repo, settings=config.DEFAULTS, environ=environ, config_source="defaults (config broken)")


def _broken_config(error: ConfigError) -> Finding:
    return Finding(
        name="config",
        status="error",
        detail=str(error),
        fix=f"fix {config.CONFIG_NAME} as said (nothing runs until it is valid); "
        "the other checks here used the default settings",
    )


def _done(findings: list[Finding]) -> Diagnosis:
    return Diagnosis(healthy=not any(f.status in {"error", "missing"} for f in findings), findings=findings)


def _safely(check: Callable[[Workspace], list[Finding]], ws: Workspace) -> list[Finding]:
    try:
        return check(ws)
    except OvernightError as e:
        return [Finding(name=check.__name__.strip("_"), status="error", detail=str(e))]


def _python() -> Finding:
    version = ".".join(map(str, sys.version_info[:3]))
    return Finding(name="python", status="ok", detail=f"{version} at {sys.executable}")


def _packages() -> list[Finding]:
    found = []
    for name in _PACKAGES:
        try:
            found.append(Finding(name=f"package {name}", status="ok", detail=importlib.metadata.version(name)))
        except importlib.metadata.PackageNotFoundError:
            found.append(
                Finding(
                    name=f"package {name}",
                    status="missing",
                    detail="not installed",
                    fix=f"`{sys.executable} -m pip install overnight` installs it",
                )
            )
    return found


def _git() -> Finding:
    if not shutil.which("git"):
        return Finding(name="git", status="missing", detail="not on PATH", fix="install git 2.31 or newer")
    version = proc.run(["git", "--version"]).text().strip()
    return Finding(name="git", status="ok", detail=version)


def _repository(ws: Workspace) -> list[Finding]:
    repo = ws.repo
    head = repo.head()
    if head is None:
        return [
            Finding(
                name="repository",
                status="error",
                detail=f"{repo.root} has no commits",
                fix="make a first commit: `git add -A && git commit -m 'Initial commit'`",
            )
        ]
    op = repo.operation_in_progress()
    if op:
        return [
            Finding(
                name="repository",
                status="warn",
                detail=f"{op} is in progress",
                fix="finish or abort it before running the gate",
            )
        ]
    branch = repo.branch() or "(detached HEAD)"
    return [Finding(name="repository", status="ok", detail=f"{repo.root} on {branch} at {head[:12]}")]


def _config(ws: Workspace) -> list[Finding]:
    path = ws.repo.root / config.CONFIG_NAME
    if not path.exists():
        return [
            Finding(
                name="config",
                status="warn",
                detail=f"no {config.CONFIG_NAME}: the strict defaults apply",
                fix="`overnight init` writes a commented one",
            )
        ]
    status: Status = "warn" if "not in force" in ws.config_source or "not committed" in ws.config_source else "ok"
    fix = "commit overnight.toml (`overnight init --commit` for a new one)" if status == "warn" else ""
    detail = f"{path} is valid; in force: {ws.config_source} (policy {ws.settings.policy_hash()})"
    return [Finding(name="config", status=status, detail=detail, fix=fix)]


def _notify(ws: Workspace) -> list[Finding]:
    """Each `[notify]` channel: whether its secrets are there (nothing is sent: `overnight notify test` does)."""
    from .notify import Outbox

    box = Outbox.of(ws, warn=lambda line: None)
    found = []
    for channel in box.settings.channels:
        why = box.unready(channel)
        scheme = channel.url.split("://", 1)[0] if "://" in channel.url else "a URL from the env file"
        detail = f"{scheme}, hears {', '.join(channel.events)}" if why is None else why
        fix = "" if why is None else "`overnight notify test --channel " + channel.name + "` once it is fixed"
        found.append(Finding(name=f"notify {channel.name}", status="ok" if why is None else "warn", detail=detail,
                             fix=fix))  # fmt: skip
    return found


def _state(ws: Workspace) -> list[Finding]:
    key = ws.state_dir / "key"
    created = not key.exists()
    ws.key()
    mode = stat.S_IMODE(key.stat().st_mode)
    with ws.db() as conn:
        version = db.schema_version(conn)
        journal = conn.execute("PRAGMA journal_mode").fetchone()[0]
    note = " (key created now)" if created else ""
    return [
        Finding(
            name="state",
            status="ok",
            detail=f"{ws.state_dir}: database schema {version}/{len(db.MIGRATIONS)}, {journal} journal, "
            f"key mode {mode:o}{note}",
        )
    ]


def _mcp_json(ws: Workspace) -> list[Finding]:
    path = ws.repo.root / ".mcp.json"
    if not path.exists():
        return [
            Finding(
                name=".mcp.json",
                status="missing",
                detail="no .mcp.json: Claude Code will not see the servers",
                fix="run `overnight init`",
            )
        ]
    try:
        servers = json.loads(path.read_text()).get("mcpServers", {})
    except (json.JSONDecodeError, AttributeError) as e:
        return [Finding(name=".mcp.json", status="error", detail=f"not valid JSON: {e}", fix="fix it by hand")]
    found = []
    for name in available_servers():
        entry = servers.get(name)
        if not isinstance(entry, dict):
            found.append(
                Finding(
                    name=f".mcp.json {name}",
                    status="missing",
                    detail="not registered",
                    fix="run `overnight init`",
                )
            )
            continue
        command = str(entry.get("command", ""))
        if not (os.path.isabs(command) and os.access(command, os.X_OK)) and not shutil.which(command):
            found.append(
                Finding(
                    name=f".mcp.json {name}",
                    status="error",
                    detail=f"command {command!r} is not executable",
                    fix="run `overnight init --force` from the environment overnight is installed in",
                )
            )
        else:
            found.append(
                Finding(
                    name=f".mcp.json {name}",
                    status="ok",
                    detail=f"{command} {' '.join(entry.get('args', []))}",
                )
            )
    return found


def _hook(ws: Workspace) -> list[Finding]:
    if hooks.is_installed(ws):
        return [Finding(name="pre-commit hook", status="ok", detail="refuses commits without a gate receipt")]
    return [
        Finding(
            name="pre-commit hook",
            status="warn",
            detail="not installed (optional in your own checkout)",
            fix="`overnight hooks install` to refuse commits that did not pass the gate",
        )
    ]


def _tests(ws: Workspace) -> list[Finding]:
    from mcp_servers.core import project_env

    checkout = project_env.checkout_root(ws.repo.root, ws.repo.common_dir)
    python = project_env.interpreter_path(ws.settings.gate.python, checkout)
    argv, wrapped = test_command(ws.settings, Path(os.devnull), python)
    exe = argv[0]
    if not (os.path.isabs(exe) and os.access(exe, os.X_OK)) and not shutil.which(exe):
        return [
            Finding(
                name="test command",
                status="error",
                detail=f"`{exe}` is not found",
                fix="install it, or set `gate.test_command` in overnight.toml",
            )
        ]
    if ws.settings.gate.coverage.enabled and not wrapped:
        return [
            Finding(
                name="test command",
                status="warn",
                detail="coverage cannot wrap it, so the coverage checks will fail",
                fix="use `python -m ...`, or set `gate.coverage.enabled = false`",
            )
        ]
    return [Finding(name="test command", status="ok", detail=" ".join(ws.settings.gate.test_command))]


def _sandbox(ws: Workspace) -> list[Finding]:
    """Whether bubblewrap makes a sandbox here (user, PID and network namespaces), or the person turned it off."""
    from mcp_servers.core import sandbox

    if ws.settings.scheduler.sandbox == "off":
        return [Finding(name="sandbox", status="warn",
                        detail="off: agents, and every test run of the code they write, run as you, unsandboxed",
                        fix="install bubblewrap and remove `sandbox = \"off\"` from [scheduler] in overnight.toml")]
    why = sandbox.problem(ws.environ)
    if why:
        return [Finding(name="sandbox", status="error", detail=why.split(": ", 1)[0],
                        fix=why.split(": ", 1)[-1])]  # fmt: skip
    version = proc.run([sandbox.executable(ws.environ) or "bwrap", "--version"], timeout=30).text().strip()
    return [Finding(name="sandbox", status="ok",
                    detail=f"{version} makes sandboxes here (user, PID, IPC and network namespaces, no capabilities)")]


def _agents(ws: Workspace) -> list[Finding]:
    """One line per agent the settings name, from the agent registry (`scheduler.doctor_agents`)."""
    from . import doctor_agents

    return doctor_agents.checks(ws.settings, ws.environ)



def _servers(ws: Workspace) -> list[Finding]:
    """Start each server as Claude Code would and ask for `initialize` and `tools/list`."""
    from .probe import probe_all

    return [
        Finding(name=f"server {name}", status="error", detail=found.problem,
                fix=f"run `{sys.executable} -m mcp_servers.{name}` to see its errors")
        if found.problem
        else Finding(name=f"server {name}", status="ok",
                     detail=f"answers initialize and tools/list ({found.tools} tools)")
        for name, found in probe_all(ws.repo.root).items()
    ]
