"""Inside the agent's sandbox: loopback ports that lead to Unix sockets outside, then the agent itself.

The sandbox has a network namespace of its own: loopback only, nothing of the host's. What the agent may reach
(the three MCP servers, its model's API, an allowlisted registry) is served outside on Unix sockets that the
scheduler binds into the sandbox; this process listens on `127.0.0.1:PORT` inside for each and pipes every
connection to its socket. Then it runs the agent and exits with its exit code. It is the sandbox's first
process: when it ends, the sandbox's PID namespace ends every process the agent left behind.

    python -I -m scheduler.relay --listen 40001=/run/x/quality.sock [--listen ...] -- AGENT ARGV...
"""

from __future__ import annotations

import contextlib
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence

_CHUNK = 65536
SERVER_START_S = 60.0  # how long a connection waits for its server to be listening


def _pipe(src: socket.socket, dst: socket.socket) -> None:
    with contextlib.suppress(OSError):
        while data := src.recv(_CHUNK):
            dst.sendall(data)
    with contextlib.suppress(OSError):
        dst.shutdown(socket.SHUT_WR)


def splice(a: socket.socket, b: socket.socket) -> None:
    """Pipe `a` and `b` into each other, each way in a thread; both are closed once both ways are done."""
    lock, left = threading.Lock(), [2]

    def pump(src: socket.socket, dst: socket.socket) -> None:
        _pipe(src, dst)
        with lock:
            left[0] -= 1
            last = left[0] == 0
        if last:
            a.close()
            b.close()

    for x, y in ((a, b), (b, a)):
        threading.Thread(target=pump, args=(x, y), daemon=True).start()


def accepting(listener: socket.socket, handle: Callable[[socket.socket], None]) -> None:
    """Hand every connection `listener` accepts to `handle`, in a thread, until the listener is closed."""

    def serve() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            handle(conn)

    threading.Thread(target=serve, daemon=True).start()


def forward(conn: socket.socket, connect: Callable[[], socket.socket]) -> None:
    """Splice `conn` with a new connection made by `connect`; close it when that cannot be made."""
    try:
        upstream = connect()
    except OSError:
        conn.close()
        return
    splice(conn, upstream)


def _unix_connection(path: str, wait_s: float = SERVER_START_S) -> socket.socket:
    """A connection to the Unix socket `path`, waiting while the server behind it is still starting (the agent
    starts alongside its servers, not after them)."""
    deadline = time.monotonic() + wait_s
    while True:
        upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            upstream.connect(path)
            return upstream
        except (FileNotFoundError, ConnectionRefusedError):
            upstream.close()
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
        except OSError:
            upstream.close()
            raise


def listen(port: int, target: str) -> socket.socket:
    """A listener on 127.0.0.1:`port` whose connections are piped to the Unix socket `target`."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", port))
    listener.listen(64)
    accepting(listener, lambda conn: forward(conn, lambda: _unix_connection(target)))
    return listener


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if "--" not in args:
        sys.stderr.write("usage: python -m scheduler.relay [--listen PORT=SOCKET ...] -- COMMAND...\n")
        return 2
    split = args.index("--")
    options, command = args[:split], args[split + 1 :]
    for n, option in enumerate(options):
        if option == "--listen" and n + 1 < len(options):
            port, _, target = options[n + 1].partition("=")
            listen(int(port), target)
    child = subprocess.Popen(command)
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, lambda s, _f: child.send_signal(s))
    return child.wait()


if __name__ == "__main__":
    raise SystemExit(main())
