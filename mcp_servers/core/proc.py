"""The one way the core runs a subprocess: an argv list, output captured, its own process group, a timeout.

A command that hangs is ended with its whole process group (SIGTERM, then SIGKILL), so a test suite that
spawns a server cannot outlive the gate that started it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from .errors import OvernightError

# How long a process group gets between SIGTERM and SIGKILL.
_TERM_GRACE_S = 2.0


@dataclass(frozen=True)
class Completed:
    """What a finished (or killed) command left behind."""

    argv: tuple[str, ...]
    returncode: int
    stdout: bytes
    stderr: bytes
    duration_s: float
    timed_out: bool = False

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not self.timed_out

    def text(self) -> str:
        """stdout, decoded leniently (tools print what they like)."""
        return self.stdout.decode("utf-8", "replace")

    def describe(self, tail_lines: int = 40) -> str:
        """The command, how it ended and the end of its output, for an error message."""
        how = f"timed out after {self.duration_s:.0f}s" if self.timed_out else f"exit {self.returncode}"
        parts = [f"`{' '.join(self.argv)}` ({how})"]
        for name, data in (("stdout", self.stdout), ("stderr", self.stderr)):
            lines = data.decode("utf-8", "replace").rstrip().splitlines()
            if lines:
                shown = lines[-tail_lines:]
                more = f" (last {len(shown)} of {len(lines)} lines)" if len(lines) > len(shown) else ""
                parts.append(f"{name}{more}:\n" + "\n".join(f"    {line}" for line in shown))
        return "\n".join(parts)


class ProcessError(OvernightError):
    """A command failed; the message carries the command, its exit and the end of its output."""

    def __init__(self, result: Completed, hint: str = "") -> None:
        self.result = result
        message = result.describe()
        super().__init__(f"{message}\n{hint}" if hint else message)


def run(
    argv: Sequence[str],
    *,
    cwd: str | os.PathLike[str] | None = None,
    env: Mapping[str, str] | None = None,
    input: bytes | None = None,
    timeout: float | None = None,
    check: bool = False,
    hint: str = "",
) -> Completed:
    """Run `argv` and return what it did. With `check`, a non-zero exit or a timeout raises ProcessError.

    A missing executable raises OvernightError naming it. On timeout the whole process group is ended.
    """
    argv = tuple(str(a) for a in argv)
    start = time.monotonic()
    try:
        proc = subprocess.Popen(
            argv,
            cwd=cwd,
            env=dict(env) if env is not None else None,
            stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
    except FileNotFoundError as e:
        raise OvernightError(f"`{argv[0]}` was not found: is it installed and on PATH? ({e})") from e
    except PermissionError as e:
        raise OvernightError(f"`{argv[0]}` could not be run: {e}") from e
    timed_out = False
    try:
        out, err = proc.communicate(input, timeout=timeout)
    except subprocess.TimeoutExpired:
        timed_out = True
        out, err = _end_group(proc)
    except BaseException:
        _end_group(proc)
        raise
    result = Completed(argv, proc.returncode, out, err, time.monotonic() - start, timed_out)
    if check and not result.ok:
        raise ProcessError(result, hint)
    return result


def _end_group(proc: subprocess.Popen[bytes]) -> tuple[bytes, bytes]:
    """SIGTERM the process group, SIGKILL it if it lingers, and collect what it printed."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        kill_group(proc.pid, sig)
        try:
            return proc.communicate(timeout=_TERM_GRACE_S)
        except subprocess.TimeoutExpired:
            continue
    # A grandchild that left the group (setsid) still holds our pipes: stop reading them.
    proc.kill()
    proc.wait()
    for stream in (proc.stdout, proc.stderr):
        if stream is not None:
            stream.close()
    return b"", b""


def kill_group(pgid: int, sig: signal.Signals = signal.SIGTERM) -> bool:
    """Send `sig` to a process group; False when the group is already gone."""
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        return False
    except PermissionError:
        return False
    return True
