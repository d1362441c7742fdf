"""`overnight cron install | remove | show`: one crontab line per repository that starts `overnight run` at night.

The line holds absolute paths only (cron's PATH and working directory are not the shell's), appends to a log file
under the state directory, runs `overnight gc` after the session (old run logs and reports go, and the log keeps
its newest part), and names an env file (mode 0600, created empty with comments) that `overnight run`
reads for secrets such as ANTHROPIC_API_KEY: nothing secret is ever written into the crontab itself.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import stat
import sys
from collections.abc import Mapping
from pathlib import Path

from mcp_servers.core import proc
from mcp_servers.core.errors import UsageError
from mcp_servers.core.workspace import Workspace

DEFAULT_SCHEDULE = "0 2 * * *"
ENV_FILE = "cron.env"
_MARK = "# overnight:"
_FIELD = r"(\*|\d+(-\d+)?(,\d+(-\d+)?)*)(/\d+)?"
_NAMES = r"[A-Za-z]{3}(-[A-Za-z]{3})?(,[A-Za-z]{3})*"
_SCHEDULE = re.compile(rf"^({_FIELD}|{_NAMES})(\s+({_FIELD}|{_NAMES})){{4}}$|^@(daily|midnight|hourly|weekly|nightly)$")
_ENV_TEMPLATE = """\
# Secrets for `overnight run` started by cron (this file is mode 0600; keep it so).
# One KEY=value per line. Claude Code needs one of:
# ANTHROPIC_API_KEY=...
# CLAUDE_CODE_OAUTH_TOKEN=...   (from `claude setup-token`)
"""


def env_file(ws: Workspace) -> Path:
    return ws.state_dir / ENV_FILE


def log_file(ws: Workspace) -> Path:
    path = ws.state_dir / "logs" / "cron.log"
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


MISSING = ("`crontab` was not found: install cron (Debian: `apt-get install cron`) and try again; "
           "`overnight cron show` prints the line to add by hand.")


def available() -> bool:
    """Whether `crontab` is on PATH (`cron show` works without it; `install` and `remove` need it)."""
    return shutil.which("crontab") is not None


def _crontab() -> str:
    exe = shutil.which("crontab")
    if exe is None:
        raise UsageError(MISSING)
    return exe


def read_crontab() -> list[str]:
    """The user's crontab, line by line (empty when there is none yet)."""
    result = proc.run([_crontab(), "-l"], timeout=30)
    if result.ok:
        return result.text().splitlines()
    if "no crontab" in result.stderr.decode("utf-8", "replace").lower():
        return []
    raise UsageError(f"`crontab -l` failed: {result.describe(tail_lines=5)}")


def _write_crontab(lines: list[str]) -> None:
    text = "\n".join(lines).rstrip("\n") + "\n" if lines else ""
    result = proc.run([_crontab(), "-"], input=text.encode(), timeout=30)
    if not result.ok:
        raise UsageError(f"`crontab -` refused the new table (nothing changed): {result.describe(tail_lines=5)}")


def marker(ws: Workspace) -> str:
    return f"{_MARK} {ws.repo.root}"


def line(ws: Workspace, schedule: str, environ: Mapping[str, str] | None = None) -> str:
    """The crontab line for this repository."""
    if not _SCHEDULE.match(schedule.strip()):
        raise UsageError(f"{schedule!r} is not a cron schedule: five fields, e.g. \"0 2 * * *\" (02:00 every day).")
    environ = os.environ if environ is None else environ
    path = environ.get("PATH", "/usr/local/bin:/usr/bin:/bin")
    python, log = shlex.quote(sys.executable), shlex.quote(str(log_file(ws)))
    command = (
        f"cd {shlex.quote(str(ws.repo.root))} && PATH={shlex.quote(path)} {python} -m scheduler "
        f"run --env-file {shlex.quote(str(env_file(ws)))} >> {log} 2>&1; "
        # then the state directory kept bounded (old run logs and reports, this log's oldest part), as the daemon
        # does once a day
        f"PATH={shlex.quote(path)} {python} -m scheduler -C {shlex.quote(str(ws.repo.root))} gc >> {log} 2>&1"
    )
    return f"{schedule.strip()} {command} {marker(ws)}"


def ensure_env_file(ws: Workspace) -> tuple[Path, str]:
    """Create the env file (0600) if missing; make an existing one 0600. (path, what was done)."""
    path = env_file(ws)
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(_ENV_TEMPLATE)
        return path, "created (mode 0600): put ANTHROPIC_API_KEY or CLAUDE_CODE_OAUTH_TOKEN in it"
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        path.chmod(0o600)
        return path, f"kept; its mode was {mode:04o}, now 0600"
    return path, "kept (mode 0600)"


def install(ws: Workspace, schedule: str = DEFAULT_SCHEDULE) -> tuple[str, str, str]:
    """Add or replace this repository's line. (the line, the env file note, 'added' | 'replaced' | 'unchanged')."""
    new = line(ws, schedule)
    current = read_crontab()
    mine = marker(ws)
    kept = [entry for entry in current if not entry.rstrip().endswith(mine)]
    action = "added" if len(kept) == len(current) else "replaced"
    if new in current and len(kept) == len(current) - 1:
        action = "unchanged"
    else:
        _write_crontab([*kept, new])
    path, note = ensure_env_file(ws)
    return new, f"{path}: {note}", action


def remove(ws: Workspace) -> bool:
    """Remove this repository's line; False when there was none."""
    current = read_crontab()
    kept = [entry for entry in current if not entry.rstrip().endswith(marker(ws))]
    if len(kept) == len(current):
        return False
    _write_crontab(kept)
    return True


def show(ws: Workspace) -> str | None:
    return next((entry for entry in read_crontab() if entry.rstrip().endswith(marker(ws))), None)


def load_env_file(path: Path) -> dict[str, str]:
    """The secrets for a run: refused when others may read the file (it would leak them), or it cannot be read."""
    from dotenv import dotenv_values

    try:
        mode = stat.S_IMODE(path.stat().st_mode)
    except OSError as e:
        raise UsageError(f"the env file {path} cannot be read ({e.strerror}): `overnight cron install` makes one"
                         ) from e
    if mode & 0o077:
        raise UsageError(f"the env file {path} has mode {mode:04o}, so others may read its secrets: `chmod 600 {path}`")
    values = dotenv_values(path)
    return {k: v for k, v in values.items() if v is not None}
