"""`overnight service install | remove | status`: `overnight daemon` as a systemd user service, the alternative to
cron. One unit per repository, `~/.config/systemd/user/overnight-<slug>.service`: the current interpreter's
overnight, the repository as its working directory, `Restart=on-failure`, and the secrets from the 0600 env file
`overnight cron install` uses too (`EnvironmentFile=`), never written into the unit.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from mcp_servers.core import proc
from mcp_servers.core.errors import UsageError
from mcp_servers.core.workspace import Workspace

from .cron import ensure_env_file, env_file, log_file

NO_SYSTEMCTL = (
    "`systemctl` was not found (this machine does not run systemd, or not for your user): the unit "
    "file is written, but nothing enables or starts it; `overnight cron install` is the alternative"
)
STOP_TIMEOUT_S = 600  # SIGTERM ends the cycle in hand cleanly (the agent stopped, rolled back, the report written)


def unit_name(ws: Workspace) -> str:
    """`overnight-<the repository's folder name>-<a digest of its path>.service` (two clones never collide)."""
    root = ws.repo.root
    slug = re.sub(r"[^a-z0-9]+", "-", root.name.lower()).strip("-")[:40] or "repo"
    return f"overnight-{slug}-{hashlib.sha256(str(root).encode()).hexdigest()[:8]}.service"


def unit_dir(environ: Mapping[str, str] | None = None) -> Path:
    environ = os.environ if environ is None else environ
    config = environ.get("XDG_CONFIG_HOME") or str(Path(environ.get("HOME") or Path.home()) / ".config")
    return Path(config) / "systemd" / "user"


def unit_path(ws: Workspace, environ: Mapping[str, str] | None = None) -> Path:
    return unit_dir(environ) / unit_name(ws)


def _quote(word: str) -> str:
    """One word of ExecStart=, as systemd reads it: quoted, with its specifiers (%) and variables ($) literal."""
    if any(c in word for c in "\n\r\0"):
        raise UsageError(f"{word!r} cannot be written into a systemd unit (it holds a newline or NUL)")
    escaped = word.replace("\\", "\\\\").replace('"', '\\"').replace("%", "%%").replace("$", "$$")
    return f'"{escaped}"'


def _path_value(path: Path) -> str:
    """A path setting (WorkingDirectory=, EnvironmentFile=): specifiers escaped; no newline."""
    text = str(path)
    if any(c in text for c in "\n\r\0"):
        raise UsageError(f"{text!r} cannot be written into a systemd unit (it holds a newline or NUL)")
    return text.replace("%", "%%")


def unit(ws: Workspace, environ: Mapping[str, str] | None = None) -> str:
    """The unit file's text for this repository."""
    environ = os.environ if environ is None else environ
    root = ws.repo.root
    argv = [sys.executable, "-m", "scheduler", "-C", str(root), "daemon"]
    path = environ.get("PATH", "/usr/local/bin:/usr/bin:/bin")
    return "\n".join([
        "# Written by `overnight service install`; `overnight service remove` deletes it.",
        "[Unit]",
        f"Description=overnight daemon for {_path_value(root)}",
        "",
        "[Service]",
        "Type=simple",
        f"WorkingDirectory={_path_value(root)}",
        f"EnvironmentFile={_path_value(env_file(ws))}",
        f"Environment={_quote('PATH=' + path)}",
        f"ExecStart={' '.join(_quote(word) for word in argv)}",
        "Restart=on-failure",
        "RestartSec=60",
        "KillMode=mixed",
        "KillSignal=SIGTERM",
        f"TimeoutStopSec={STOP_TIMEOUT_S}",
        f"StandardOutput=append:{_path_value(log_file(ws).with_name('daemon.log'))}",
        "StandardError=inherit",
        "",
        "[Install]",
        "WantedBy=default.target",
        "",
    ])  # fmt: skip


def systemctl() -> str | None:
    return shutil.which("systemctl")


def _systemctl(*args: str) -> proc.Completed | None:
    exe = systemctl()
    if exe is None:
        return None
    return proc.run([exe, "--user", *args], timeout=60)


@dataclass(frozen=True)
class Installed:
    path: Path
    action: str  # written | replaced | unchanged
    env_note: str
    notes: list[str]


def install(ws: Workspace, *, start: bool = True) -> Installed:
    """Write (or replace) the unit, make the env file, and enable and start it when systemd is there."""
    text = unit(ws)
    path = unit_path(ws)
    action = "written"
    if path.exists():
        action = "unchanged" if path.read_text() == text else "replaced"
    if action != "unchanged":
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(text)
        tmp.replace(path)
    env, note = ensure_env_file(ws)
    notes = []
    if systemctl() is None:
        notes.append(NO_SYSTEMCTL)
    else:
        steps = [("daemon-reload",), ("enable", "--now", path.name) if start else ("enable", path.name)]
        for step in steps:
            done = _systemctl(*step)
            if done is not None and not done.ok:
                notes.append(f"`systemctl --user {' '.join(step)}` failed ({done.describe(tail_lines=3)}): the "
                             "unit is written; run it by hand once the user's systemd runs (`loginctl "
                             "enable-linger` keeps it running after you log out)")  # fmt: skip
                break
    return Installed(path, action, f"{env}: {note}", notes)


def remove(ws: Workspace) -> tuple[bool, list[str]]:
    """Disable, stop and delete the unit: (whether there was one, notes)."""
    path = unit_path(ws)
    notes = []
    if systemctl() is not None:
        done = _systemctl("disable", "--now", path.name)
        if done is not None and not done.ok and path.exists():
            notes.append(f"`systemctl --user disable --now {path.name}` failed ({done.describe(tail_lines=3)})")
    existed = path.exists()
    path.unlink(missing_ok=True)
    if existed and systemctl() is not None:
        _systemctl("daemon-reload")
    return existed, notes


def status(ws: Workspace) -> dict[str, object]:
    """installed (the unit file), enabled and active (systemd's word, or None without systemctl)."""
    path = unit_path(ws)
    data: dict[str, object] = {"unit": path.name, "path": str(path), "installed": path.exists(), "enabled": None,
                               "active": None, "systemctl": systemctl() is not None, "problem": None}  # fmt: skip
    if systemctl() is None:
        data["problem"] = NO_SYSTEMCTL
        return data
    for key, verb in (("enabled", "is-enabled"), ("active", "is-active")):
        done = _systemctl(verb, path.name)
        if done is not None:
            data[key] = done.text().strip() or done.stderr.decode("utf-8", "replace").strip()[:200]
    return data
