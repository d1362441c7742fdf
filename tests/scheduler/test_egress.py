"""The agent's only ways out of its sandbox: a CONNECT proxy that allows listed host:port pairs and nothing else,
and a tunnel to one loopback endpoint."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from scheduler.egress import Egress


@pytest.fixture
def echo() -> Iterator[int]:
    """A service on the host's loopback that answers every connection with what it was sent, upper-cased."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)

    def serve() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            with conn:
                conn.sendall(conn.recv(100).upper())

    threading.Thread(target=serve, daemon=True).start()
    yield server.getsockname()[1]
    server.close()


def _unix(path: Path) -> socket.socket:
    conn = socket.socket(socket.AF_UNIX)
    conn.settimeout(10)
    conn.connect(str(path))
    return conn


def test_proxy_opens_a_tunnel_only_to_an_allowed_host_and_port(tmp_path: Path, echo: int) -> None:
    egress = Egress(tmp_path)
    path = egress.proxy([("127.0.0.1", echo)])
    try:
        with _unix(path) as conn:
            conn.sendall(f"CONNECT 127.0.0.1:{echo} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            assert conn.recv(100).startswith(b"HTTP/1.1 200 ")
            conn.sendall(b"hello")
            assert conn.recv(100) == b"HELLO"
        for target in (f"127.0.0.1:{echo + 1}", "169.254.169.254:80", f"localhost:{echo}", "garbage"):
            with _unix(path) as conn:
                conn.sendall(f"CONNECT {target} HTTP/1.1\r\n\r\n".encode())
                assert conn.recv(100).startswith(b"HTTP/1.1 403 "), target
        with _unix(path) as conn:  # a plain request through the proxy is not a way out either
            conn.sendall(f"GET http://127.0.0.1:{echo}/ HTTP/1.1\r\n\r\n".encode())
            assert conn.recv(100).startswith(b"HTTP/1.1 403 ")
    finally:
        egress.close()
    assert f"127.0.0.1:{echo + 1}" in egress.refused and "169.254.169.254:80" in egress.refused
    assert (path.stat().st_mode & 0o777) == 0o600


def test_tunnel_leads_to_its_one_endpoint(tmp_path: Path, echo: int) -> None:
    egress = Egress(tmp_path)
    path = egress.tunnel("model", "127.0.0.1", echo)
    try:
        with _unix(path) as conn:
            conn.sendall(b"ping")
            assert conn.recv(100) == b"PING"
    finally:
        egress.close()
