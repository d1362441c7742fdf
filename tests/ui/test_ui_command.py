"""`overnight ui` itself: its settings under [ui] checked with a clear error, a taken port said plainly."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest

from mcp_servers.core.config import parse
from mcp_servers.core.errors import ConfigError

from ..conftest import GitRepo


@pytest.mark.parametrize(
    ("toml", "said"),
    [
        ('[ui]\nhost = "localhost"\n', "key `ui.host`: Value error, 'localhost' is not an IP address"),
        ("[ui]\nport = 70000\n", "key `ui.port`"),
        ('[ui]\nallowed_hosts = ["http://box.lan"]\n', "not a host name with an optional port"),
        ('[ui]\nallowed_hosts = ["*"]\n', "no scheme, path or wildcard"),
        ("[ui]\nopen = true\n", "key `ui.open`: unknown key"),
    ],
)
def test_ui_settings_are_checked(toml: str, said: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse(toml.encode(), Path("overnight.toml"))
    assert said in str(caught.value) and "overnight.toml:" in str(caught.value)


def test_ui_settings_default_to_loopback() -> None:
    ui = parse(b'[ui]\nallowed_hosts = ["Box.lan:8765"]\n', Path("overnight.toml")).ui
    assert (ui.host, ui.port, ui.allowed_hosts) == ("127.0.0.1", 8765, ["box.lan:8765"])


def test_a_taken_port_is_said_plainly(repo: GitRepo) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        argv = [sys.executable, "-m", "scheduler", "-C", str(repo.root), "ui", "--no-open", "--port", str(port)]
        done = subprocess.run(argv, check=False, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and done.stdout == ""
    assert f"port {port} on 127.0.0.1 is taken" in done.stderr and "--port 0" in done.stderr
