"""`overnight` run as a person runs it: on a pseudo-terminal (stdout and stderr a tty), or piped.

What a terminal showed is kept as the raw bytes with the time each piece arrived, so a test can say that
something appeared *before* the command ended, not only that it appeared at all.
"""

from __future__ import annotations

import fcntl
import os
import re
import select
import struct
import subprocess
import sys
import termios
import time
from dataclasses import dataclass
from pathlib import Path

ANSI = re.compile(rb"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07")


@dataclass
class Seen:
    returncode: int
    pieces: list[tuple[float, bytes]]  # (seconds since the start, bytes read)

    @property
    def raw(self) -> bytes:
        return b"".join(p for _, p in self.pieces)

    @property
    def text(self) -> str:
        """What was shown, without the escape sequences (colour, cursor movement)."""
        return ANSI.sub(b"", self.raw).decode("utf-8", "replace").replace("\r\n", "\n")

    def first(self, needle: str) -> int:
        """The offset in `text` where `needle` first appears (-1 when it never does)."""
        return self.text.find(needle)


def overnight(*args: str) -> list[str]:
    return [sys.executable, "-m", "scheduler", *args]


def in_terminal(argv: list[str], *, cwd: Path | None = None, env: dict[str, str] | None = None,
                timeout: float = 300, columns: int = 100) -> Seen:  # fmt: skip
    """Run `argv` with a pseudo-terminal as its stdin, stdout and stderr, and read everything it shows."""
    leader, follower = os.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 40, columns, 0, 0))
    environ = {**os.environ, "TERM": "xterm-256color", **(env or {})}
    environ.pop("COLUMNS", None)
    started = time.monotonic()
    proc = subprocess.Popen(argv, cwd=cwd, env=environ, stdin=follower, stdout=follower, stderr=follower,
                            start_new_session=True)  # fmt: skip
    os.close(follower)
    pieces: list[tuple[float, bytes]] = []
    try:
        while time.monotonic() - started < timeout:
            ready, _, _ = select.select([leader], [], [], 0.1)
            if ready:
                try:
                    data = os.read(leader, 65536)
                except OSError:  # EIO: every writer is gone
                    break
                if not data:
                    break
                pieces.append((time.monotonic() - started, data))
            elif proc.poll() is not None:
                break  # it ended and nothing more came
        else:
            proc.kill()
    finally:
        os.close(leader)
    return Seen(proc.wait(timeout=30), pieces)


def piped(argv: list[str], *, cwd: Path | None = None, env: dict[str, str] | None = None,
          timeout: float = 300) -> subprocess.CompletedProcess[str]:  # fmt: skip
    environ = {**os.environ, **(env or {})}
    environ.pop("COLUMNS", None)
    return subprocess.run(argv, cwd=cwd, env=environ, capture_output=True, text=True, timeout=timeout, check=False)
