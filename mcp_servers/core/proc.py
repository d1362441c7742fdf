"""The one way the core runs a subprocess: an argv list, output captured, its own process group, a timeout.

A command that hangs is ended with its whole process group (SIGTERM, then SIGKILL), so a test suite that
spawns a server cannot outlive the gate that started it.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import IO

from .errors import OvernightError

log = logging.getLogger(__name__)

# How long a process group gets between SIGTERM and SIGKILL.
_TERM_GRACE_S = 2.0
_CHUNK = 65536

Output = Callable[[bytes], None]  # told each piece of stdout as it arrives (live progress)


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
    on_output: Output | None = None,
) -> Completed:
    """Run `argv` and return what it did. With `check`, a non-zero exit or a timeout raises ProcessError.

    A missing executable raises OvernightError naming it. On timeout the whole process group is ended.
    With `on_output`, stdout is read as it comes and each piece is handed to it too (for live progress);
    the result is the same.
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
    if on_output is not None:
        return _finish(_streamed(proc, input, timeout, on_output), argv, start, check, hint)
    timed_out = False
    try:
        out, err = proc.communicate(input, timeout=timeout)
    except subprocess.TimeoutExpired:
        timed_out = True
        out, err = _end_group(proc)
    except BaseException:
        _end_group(proc)
        raise
    return _finish((proc.returncode, out, err, timed_out), argv, start, check, hint)


def _finish(ended: tuple[int, bytes, bytes, bool], argv: tuple[str, ...], start: float, check: bool, hint: str
            ) -> Completed:  # fmt: skip
    returncode, out, err, timed_out = ended
    result = Completed(argv, returncode, out, err, time.monotonic() - start, timed_out)
    if check and not result.ok:
        raise ProcessError(result, hint)
    return result


def _streamed(proc: subprocess.Popen[bytes], input: bytes | None, timeout: float | None, on_output: Output
              ) -> tuple[int, bytes, bytes, bool]:  # fmt: skip
    """Wait for `proc` while threads read its pipes, stdout piece by piece to `on_output`; the same timeout and
    process-group ending as `run`. A callback that fails is logged, never the command's failure."""
    out: list[bytes] = []
    err: list[bytes] = []

    readers = [threading.Thread(target=_pump, args=(proc.stdout, out, on_output), daemon=True),
               threading.Thread(target=_pump, args=(proc.stderr, err, None), daemon=True)]  # fmt: skip
    for reader in readers:
        reader.start()
    if proc.stdin is not None:
        try:
            proc.stdin.write(input or b"")
            proc.stdin.close()
        except BrokenPipeError:
            pass
    timed_out = False
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        timed_out = True
        _kill_streamed(proc)
    except BaseException:
        _kill_streamed(proc)
        raise
    for reader, stream in zip(readers, (proc.stdout, proc.stderr), strict=True):
        reader.join(timeout=_TERM_GRACE_S)  # a grandchild that left the group may hold the pipe: stop waiting
        if not reader.is_alive() and stream is not None:
            stream.close()
    return proc.returncode, b"".join(list(out)), b"".join(list(err)), timed_out


def _pump(stream: IO[bytes] | None, sink: list[bytes], tell: Output | None) -> None:
    if stream is None:
        return
    fd = stream.fileno()
    while chunk := os.read(fd, _CHUNK):
        sink.append(chunk)
        if tell is not None:
            try:
                tell(chunk)
            except Exception:
                log.exception("an output callback failed")


def _kill_streamed(proc: subprocess.Popen[bytes]) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        kill_group(proc.pid, sig)
        try:
            proc.wait(timeout=_TERM_GRACE_S)
            return
        except subprocess.TimeoutExpired:
            continue
    proc.kill()
    proc.wait()


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
