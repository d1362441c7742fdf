"""The sandbox: everything that runs code an agent wrote or chose runs inside bubblewrap (`bwrap`).

Inside, a process sees a read-only system, the folders it was given to write, a private `/tmp`, and nothing of
the person: their home, the repository's checkout and its state directory (the database, the HMAC key, the
reports), overnight's own folder with the other sessions' worktrees are each covered by an empty folder. It
has no capabilities, its own user, PID, IPC, UTS and network namespaces (loopback only, unless the caller
forwards something in), and it dies with the process that started it. Every process started inside is gone
when the sandbox's first process ends (PID namespace), whatever it did to detach (`setsid`, double forks).

A sandbox that cannot be made is never replaced by running the command bare: callers fail closed, unless the
person turned the sandbox off (`[scheduler] sandbox = "off"`), and then every report says so.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from . import proc
from .errors import OvernightError

# System folders that hold other people's or other programs' state: never shown inside. (/tmp, /var/tmp and
# /dev/shm are the sandbox's own, empty and writable.)
HIDDEN_SYSTEM = ("/home", "/root", "/run", "/mnt", "/media", "/srv", "/var/mail", "/var/spool")
FLAGS = (
    "--unshare-user", "--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try",
    "--die-with-parent", "--new-session", "--cap-drop", "ALL",
)  # fmt: skip
INSTALL_HINT = (
    "install bubblewrap (`apt-get install bubblewrap`, `dnf install bubblewrap`) and make sure user namespaces "
    "are allowed (`sysctl kernel.unprivileged_userns_clone=1`; on Ubuntu 24.04+ an AppArmor profile that grants "
    "`userns` to bwrap); or set `sandbox = \"off\"` under [scheduler] in overnight.toml to run unsandboxed, which "
    "every report will then say"
)


class SandboxError(OvernightError):
    """No sandbox can be made here; the message says why and what to do."""


@dataclass(frozen=True)
class Box:
    """What a sandboxed command may see and change. Paths are bound at the same place inside."""

    write: tuple[Path, ...] = ()  # bound read-write
    read: tuple[Path, ...] = ()  # bound read-only (shown again under a hidden folder)
    hide: tuple[Path, ...] = ()  # covered by an empty folder
    files: tuple[tuple[Path, Path], ...] = ()  # (a file outside, where it appears inside), read-only
    chdir: Path | None = None


def own_code() -> tuple[Path, ...]:
    """What overnight itself needs to run inside: its interpreter, its packages (wherever they are installed)."""
    here = Path(__file__).resolve().parents[1]  # mcp_servers/
    found = {Path(sys.prefix), Path(sys.base_prefix), Path(sys.executable).resolve().parent, here}
    scheduler = here.parent / "scheduler"
    if scheduler.is_dir():
        found.add(scheduler)
    return tuple(sorted(found))


def person_paths(environ: Mapping[str, str], *more: Path) -> tuple[Path, ...]:
    """The person's folders a sandbox hides: the system's, their home, overnight's own folder, and `more`."""
    found = [Path(p) for p in HIDDEN_SYSTEM]
    home = environ.get("HOME")
    if home:
        found.append(Path(home))
    overnight_home = environ.get("OVERNIGHT_HOME") or (os.path.join(home, ".local", "state", "overnight")
                                                       if home else "")  # fmt: skip
    if overnight_home:
        found.append(Path(overnight_home))
    found.extend(more)
    return tuple(dict.fromkeys(found))


def command(box: Box, argv: Sequence[str], *, bwrap: str = "bwrap") -> list[str]:
    """The bwrap command line that runs `argv` in `box`.

    Mounts are made in order of depth, so a folder shown again (read or write) inside a hidden one is shown,
    and a hidden folder inside a shown one stays hidden."""
    ops: list[tuple[int, int, list[str]]] = []

    def add(path: Path, kind: int, args: list[str]) -> None:
        ops.append((len(path.parts), kind, args))

    hidden = [p for p in box.hide if os.path.lexists(p) and not os.path.islink(p)]
    for path in hidden:
        add(path, 0, ["--tmpfs", str(path)])
    for path in box.read:
        if path.exists():
            add(path, 1, ["--ro-bind", str(path), str(path)])
    for path in box.write:
        add(path, 2, ["--bind", str(path), str(path)])
    for source, target in box.files:
        add(target, 3, ["--ro-bind", str(source), str(target)])
    out = [bwrap, *FLAGS, "--unshare-net"]  # loopback only; what may leave goes through sockets bound in
    out += ["--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "--tmpfs", "/dev/shm", "--tmpfs", "/tmp",
            "--tmpfs", "/var/tmp"]
    for _depth, _kind, args in sorted(ops, key=lambda op: (op[0], op[1])):
        out += args
    for path in hidden:  # once everything inside them is mounted: nothing can be left in a hidden folder
        out += ["--remount-ro", str(path)]
    if box.chdir is not None:
        out += ["--chdir", str(box.chdir)]
    return [*out, "--", *argv]


def executable(environ: Mapping[str, str] | None = None) -> str | None:
    """The bwrap binary on PATH, or None."""
    environ = os.environ if environ is None else environ
    return shutil.which("bwrap", path=environ.get("PATH"))


def problem(environ: Mapping[str, str] | None = None) -> str | None:
    """Why no sandbox can be made here (None when one can): bwrap missing, or it cannot make its namespaces."""
    if not sys.platform.startswith("linux"):
        return f"the sandbox needs Linux and bubblewrap; this is {sys.platform}. Run overnight on Linux, or " + (
            INSTALL_HINT.split("; or ", 1)[1]
        )
    exe = executable(environ)
    if exe is None:
        return f"bubblewrap (`bwrap`) is not installed: {INSTALL_HINT}"
    try:
        tried = proc.run(command(Box(), ["true"], bwrap=exe), timeout=30)
    except Exception as e:  # it could not even be started
        return f"`{exe}` could not be run ({e}): {INSTALL_HINT}"
    if not tried.ok:
        why = (tried.stderr.decode("utf-8", "replace").strip() or f"exit {tried.returncode}").splitlines()[-1]
        return f"bubblewrap cannot make a sandbox here ({why}): {INSTALL_HINT}"
    return None


def require(environ: Mapping[str, str] | None = None) -> str:
    """The bwrap binary, checked to work; SandboxError with the reason otherwise."""
    why = problem(environ)
    if why:
        raise SandboxError(why)
    return executable(environ) or "bwrap"


# Variables a sandboxed command inherits; everything else (API keys, tokens, cloud credentials) stays outside.
KEPT_ENV = ("PATH", "LANG", "LANGUAGE", "TZ", "TERM", "NO_COLOR", "VIRTUAL_ENV", "SOURCE_DATE_EPOCH")
KEPT_PREFIXES = ("LC_", "PYTHON", "PYTEST_", "COVERAGE_", "OVERNIGHT_SESSION_ID", "OVERNIGHT_TASK_ID")


def clean_env(environ: Mapping[str, str], **extra: str) -> dict[str, str]:
    """The environment of a sandboxed command: locale, paths and Python's settings; no credentials."""
    env = {k: v for k, v in environ.items() if k in KEPT_ENV or k.startswith(KEPT_PREFIXES)}
    env.update(HOME="/tmp", TMPDIR="/tmp")  # the sandbox's /tmp is its own
    env.update(extra)
    return env


def run(
    argv: Sequence[str],
    *,
    mode: str,
    cwd: Path,
    write: tuple[Path, ...],
    hide: tuple[Path, ...],
    env: Mapping[str, str],
    timeout: float | None,
    on_output: proc.Output | None = None,
) -> proc.Completed:
    """Run `argv` in `cwd` inside a sandbox that may write only `write` and sees nothing of `hide` (with
    `mode` "off", as it is, which the caller's report must say). A sandbox that cannot be made fails.
    `on_output` is told the command's stdout as it comes (live progress)."""
    if mode == "off":
        return proc.run(argv, cwd=cwd, env=env, timeout=timeout, on_output=on_output)
    exe = executable(env) or executable()
    if exe is None:
        raise SandboxError(f"bubblewrap (`bwrap`) is not installed, so nothing was run: {INSTALL_HINT}")
    box = Box(write=write, read=own_code(), hide=hide, chdir=cwd)
    done = proc.run(command(box, argv, bwrap=exe), cwd=cwd, env=env, timeout=timeout, on_output=on_output)
    if done.returncode == 1 and done.stderr.startswith(b"bwrap: "):
        why = done.stderr.decode("utf-8", "replace").strip().splitlines()[0]
        if why.startswith("bwrap: execvp "):
            raise OvernightError(f"`{argv[0]}` was not found: is it installed and on PATH? (the sandbox shows the "
                                 f"system read-only and hides home folders: {why})")  # fmt: skip
        raise SandboxError(f"the sandbox could not be made ({why}), so nothing was run: {INSTALL_HINT}")
    return done
