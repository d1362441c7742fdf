"""Outside the agent's sandbox: the only ways out of it, each a Unix socket the scheduler binds in.

- a *tunnel* per loopback endpoint the agent needs as it is (a model server on 127.0.0.1, as in the tests):
  inside, the same port on the sandbox's own loopback leads here, and here to that host and port;
- one *proxy* for everything else: an HTTP CONNECT proxy (`HTTPS_PROXY` inside) that opens a tunnel only to an
  allowed `host:port` (the model's API, the person's `network_allow`) and refuses any other with 403.

Nothing else leaves the sandbox: not the LAN, not other loopback services, not the cloud's metadata address.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from .relay import accepting, forward, splice

log = logging.getLogger(__name__)
_MAX_HEAD = 16384


def _unix_listener(path: Path) -> socket.socket:
    path.unlink(missing_ok=True)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    path.chmod(0o600)
    listener.listen(64)
    return listener


def _read_head(conn: socket.socket) -> bytes | None:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(4096)
        if not chunk or len(data) > _MAX_HEAD:
            return None
        data += chunk
    return data


@dataclass
class Egress:
    """The listeners of one agent run; `close()` ends them (and with them every connection through them)."""

    folder: Path
    allowed: set[tuple[str, int]] = field(default_factory=set)
    listeners: list[socket.socket] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)

    def tunnel(self, name: str, host: str, port: int) -> Path:
        """A socket whose connections go straight to `host:port`."""
        path = self.folder / f"{name}.sock"

        def connect() -> socket.socket:
            upstream = socket.create_connection((host, port), timeout=30)
            upstream.settimeout(None)
            return upstream

        accepting(self._listen(path), lambda conn: forward(conn, connect))
        return path

    def proxy(self, allowed: Iterable[tuple[str, int]]) -> Path:
        """A socket that speaks HTTP CONNECT to the allowed `(host, port)` pairs only."""
        self.allowed |= {(h.lower(), p) for h, p in allowed}
        path = self.folder / "proxy.sock"
        accepting(self._listen(path), lambda conn: threading.Thread(target=self._connect, args=(conn,),
                                                                     daemon=True).start())  # fmt: skip
        return path

    def _listen(self, path: Path) -> socket.socket:
        listener = _unix_listener(path)
        self.listeners.append(listener)
        return listener

    def _connect(self, conn: socket.socket) -> None:
        head = _read_head(conn)
        line = head.split(b"\r\n", 1)[0].decode("latin-1") if head else ""
        parts = line.split()
        target = parts[1] if len(parts) == 3 and parts[0] == "CONNECT" else ""
        host, _, port = target.rpartition(":")
        key = (host.strip("[]").lower(), int(port)) if port.isdigit() else None
        if key is None or key not in self.allowed:
            self.refused.append(target or line[:200])
            log.warning("the sandbox's proxy refused %r (not in the allowlist)", line[:200])
            with contextlib.suppress(OSError):
                conn.sendall(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            conn.close()
            return
        try:
            upstream = socket.create_connection(key, timeout=30)
            upstream.settimeout(None)
        except OSError as e:
            with contextlib.suppress(OSError):
                conn.sendall(f"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nX-Reason: {e}\r\n\r\n".encode())
            conn.close()
            return
        conn.sendall(b"HTTP/1.1 200 Connection Established\r\n\r\n")
        splice(conn, upstream)

    def close(self) -> None:
        for listener in self.listeners:
            with contextlib.suppress(OSError):
                listener.close()
        self.listeners.clear()
