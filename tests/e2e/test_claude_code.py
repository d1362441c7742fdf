"""Claude Code's own CLI connects to the servers `overnight init` registers in .mcp.json.

`claude mcp list` health-checks every configured server (a real stdio connect and MCP handshake) without an
API key or a login. It exits 0 whether or not the servers connect, so these tests judge it by its text, and a
negative control proves that judgement can come out "not connected".
"""

from __future__ import annotations

import json
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from ..conftest import make_repo
from .conftest import CLIENT_TIMEOUT

pytestmark = pytest.mark.e2e

# One line per server: `<name>: <command or URL> - <glyph> <status>`, e.g.
#   quality: /abs/python -m mcp_servers.quality - ✔ Connected
#   broken: /nonexistent/python -m mcp_servers.quality - ✘ Failed to connect — ENOENT: no such file ...
#   quality: /abs/python -m mcp_servers.quality - ⏸ Pending approval (run `claude` to approve)
_SERVER_LINE = re.compile(r"^(?P<name>[^\s:]+): (?P<target>.+?) - (?P<status>(?:[^\w\s] )?[A-Z].*)$")


@dataclass(frozen=True)
class ServerHealth:
    name: str
    target: str
    status: str

    @property
    def connected(self) -> bool:
        return "Connected" in self.status and "Failed" not in self.status


def server_health(output: str, name: str) -> ServerHealth:
    """What `claude mcp list` said about server `name`; fails the test if it did not list it exactly once."""
    found = [
        ServerHealth(**m.groupdict())
        for line in output.splitlines()
        if (m := _SERVER_LINE.match(line.strip())) and m["name"] == name
    ]
    assert len(found) == 1, f"`claude mcp list` listed {name!r} {len(found)} times:\n{output}"
    return found[0]


def approve_project_servers(home: Path, names: list[str]) -> None:
    """Approve the repository's .mcp.json servers the way a person would, in the user's settings.

    In a folder never trusted interactively, `claude mcp list` shows project servers as "Pending approval"
    and does not connect to them; settings in the repository itself are ignored there.
    """
    settings = home / ".claude" / "settings.json"
    settings.parent.mkdir(parents=True, exist_ok=True)
    settings.write_text(json.dumps({"enabledMcpjsonServers": names}))


def claude_mcp_list(claude: Path, repo: Path, env: dict[str, str]) -> str:
    result = subprocess.run(
        [str(claude), "mcp", "list"],
        check=False,
        cwd=repo,
        env=env,
        capture_output=True,
        text=True,
        timeout=CLIENT_TIMEOUT,
    )
    # The exit code is 0 even when servers fail to connect; it only tells us the command itself ran.
    assert result.returncode == 0, f"`claude mcp list` failed (exit {result.returncode}):\n{result.stderr}"
    assert "Checking MCP server health" in result.stdout, result.stdout + result.stderr
    return result.stdout


def overnight_init(overnight_cli: list[str], repo: Path, env: dict[str, str]) -> dict[str, dict[str, object]]:
    """Run the real `overnight init` and return the servers it registered in .mcp.json."""
    result = subprocess.run(
        [*overnight_cli, "init"],
        check=False,
        cwd=repo,
        env=env,
        capture_output=True,
        text=True,
        timeout=CLIENT_TIMEOUT,
    )
    assert result.returncode == 0, f"`overnight init` exit {result.returncode}:\n{result.stdout}{result.stderr}"
    servers: dict[str, dict[str, object]] = json.loads((repo / ".mcp.json").read_text())["mcpServers"]
    assert Path(str(servers["quality"]["command"])).is_absolute(), servers
    return servers


def test_claude_code_connects_to_every_server_registered_by_overnight_init(
    tmp_path: Path,
    claude_bin: Path,
    overnight_cli: list[str],
    client_home: Path,
    client_env: dict[str, str],
) -> None:
    repo = make_repo(tmp_path / "repo")
    servers = overnight_init(overnight_cli, repo.root, client_env)
    assert {"quality", "project"} <= set(servers)
    approve_project_servers(client_home, sorted(servers))

    output = claude_mcp_list(claude_bin, repo.root, client_env)

    for name in sorted(servers):
        health = server_health(output, name)
        assert health.connected, f"Claude Code did not connect to `{name}`: {health.status}\n{output}"
        assert f"mcp_servers.{name}" in health.target


def test_negative_control_a_server_with_a_missing_interpreter_is_not_connected(
    tmp_path: Path,
    claude_bin: Path,
    overnight_cli: list[str],
    client_home: Path,
    client_env: dict[str, str],
) -> None:
    repo = make_repo(tmp_path / "repo")
    servers = overnight_init(overnight_cli, repo.root, client_env)
    missing = tmp_path / "no-such-venv" / "bin" / "python"
    servers["broken"] = {**servers["quality"], "command": str(missing)}
    (repo.root / ".mcp.json").write_text(json.dumps({"mcpServers": servers}, indent=2))
    approve_project_servers(client_home, ["quality", "broken"])

    output = claude_mcp_list(claude_bin, repo.root, client_env)

    broken = server_health(output, "broken")
    assert not broken.connected, f"the parser called a failed server connected: {broken.status}\n{output}"
    assert "Failed to connect" in broken.status and "ENOENT" in broken.status, output
    # Same run, same parser: the good server is still reported connected.
    assert server_health(output, "quality").connected, output


def test_negative_control_unapproved_project_servers_are_not_connected(
    tmp_path: Path,
    claude_bin: Path,
    overnight_cli: list[str],
    client_env: dict[str, str],
) -> None:
    """Without the approval in the (isolated) user settings, Claude Code does not even try to connect."""
    repo = make_repo(tmp_path / "repo")
    overnight_init(overnight_cli, repo.root, client_env)

    output = claude_mcp_list(claude_bin, repo.root, client_env)

    quality = server_health(output, "quality")
    assert not quality.connected, output
    assert "Pending approval" in quality.status, output
