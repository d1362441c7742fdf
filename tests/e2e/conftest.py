"""End-to-end fixtures: real third-party MCP clients that nobody on the project wrote.

The clients (Claude Code's CLI and the MCP Inspector) are pinned in tests/e2e/node/package.json and
installed by `bash scripts/test` (`npm ci --prefix tests/e2e/node`). A missing client is a failure, never a
skip: CI installs every tool the tests need through .ci/run, so an absent binary means the install is broken.

Every client runs in a clean environment built from an allow-list: a temporary HOME (so no real ~/.claude,
~/.claude.json or ~/.mcp-inspector is read or written), no API keys, no proxy variables.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from ..support.fake_anthropic import FakeAnthropic

NODE_DIR = Path(__file__).resolve().parent / "node"
BIN_DIR = NODE_DIR / "node_modules" / ".bin"
INSTALL_HINT = (
    "run `bash scripts/test` from the repository root: it installs the pinned end-to-end clients with "
    "`npm ci --prefix tests/e2e/node --no-audit --no-fund` (needs node and npm)"
)
CLIENT_TIMEOUT = 120  # seconds for one client invocation; a healthy one takes about 1.5 s

# The only variables a client inherits from the test process. Everything else (ANTHROPIC_API_KEY,
# CLAUDE_CONFIG_DIR, HTTP_PROXY/HTTPS_PROXY, XDG_* pointing at the real home, ...) is dropped.
_INHERITED = (
    "PATH",
    "LANG",
    "LC_ALL",
    "LC_CTYPE",
    "TZ",
    "TMPDIR",
    # set per test by the shared autouse fixture in tests/conftest.py
    "OVERNIGHT_HOME",
    "GIT_CONFIG_GLOBAL",
    "GIT_CONFIG_NOSYSTEM",
)


def client_environment(home: Path) -> dict[str, str]:
    """A clean environment for a third-party client whose home is `home`."""
    env = {name: os.environ[name] for name in _INHERITED if name in os.environ}
    env.update(
        HOME=str(home),
        USERPROFILE=str(home),
        XDG_CONFIG_HOME=str(home / ".config"),
        XDG_CACHE_HOME=str(home / ".cache"),
        XDG_DATA_HOME=str(home / ".local" / "share"),
        XDG_STATE_HOME=str(home / ".local" / "state"),
        # Claude Code: no self-update, no telemetry or other traffic that is not needed for the command
        DISABLE_AUTOUPDATER="1",
        CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC="1",
    )
    # A client may drop GIT_CONFIG_GLOBAL when it spawns our server (the MCP SDK's stdio client passes only
    # a few variables); git then reads $HOME/.gitconfig, so give it the same isolated identity.
    gitconfig = os.environ.get("GIT_CONFIG_GLOBAL")
    if gitconfig and Path(gitconfig).is_file():
        shutil.copyfile(gitconfig, home / ".gitconfig")
    assert not {"ANTHROPIC_API_KEY", "HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"} & env.keys()
    return env


def _client(name: str) -> Path:
    path = BIN_DIR / name
    if not path.exists():
        pytest.fail(
            f"the end-to-end client `{name}` is not installed ({path} is missing); {INSTALL_HINT}",
            pytrace=False,
        )
    if shutil.which("node") is None:
        pytest.fail(f"`node` is not on PATH, and `{name}` needs it; {INSTALL_HINT}", pytrace=False)
    return path


def _runs(argv: list[str], home: Path, expect: str, hint: str = "") -> None:
    """Fail with the client's own words if it cannot even print its version."""
    try:
        result = subprocess.run(
            argv,
            check=False,
            capture_output=True,
            text=True,
            timeout=CLIENT_TIMEOUT,
            env=client_environment(home),
            cwd=home,
        )
        problem = (
            ""
            if result.returncode == 0 and expect in result.stdout
            else (f"exit {result.returncode}:\n{result.stdout}{result.stderr}")
        )
    except (OSError, subprocess.TimeoutExpired) as e:
        problem = str(e)
    if problem:
        pytest.fail(f"`{' '.join(argv)}` does not work ({problem.strip()}){hint}; {INSTALL_HINT}", pytrace=False)


# Without its postinstall (install.cjs), the package's bin/claude.exe is a small placeholder script, not the
# native binary. tests/e2e/node/package.json allows exactly that postinstall in `allowScripts`.
_CLAUDE_PLACEHOLDER = (
    "; if it is the placeholder, @anthropic-ai/claude-code's postinstall did not run "
    "(it must not be installed with --ignore-scripts)"
)


@pytest.fixture(scope="session")
def claude_bin(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Claude Code's CLI (`claude`), checked to be the real native binary, not the postinstall placeholder."""
    path = _client("claude")
    home = tmp_path_factory.mktemp("claude-version-home")
    _runs([str(path), "--version"], home, "(Claude Code)", hint=_CLAUDE_PLACEHOLDER)
    return path


@pytest.fixture(scope="session")
def inspector_bin(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The MCP Inspector's launcher (`mcp-inspector`), used in `--cli` mode."""
    path = _client("mcp-inspector")
    _runs([str(path), "--version"], tmp_path_factory.mktemp("inspector-version-home"), "2.")
    return path


@pytest.fixture
def client_home(tmp_path: Path) -> Path:
    """An empty home folder for the client under test."""
    home = tmp_path / "home"
    home.mkdir()
    return home


@pytest.fixture
def client_env(client_home: Path) -> dict[str, str]:
    return client_environment(client_home)


@pytest.fixture(scope="session")
def overnight_cli() -> list[str]:
    """The installed `overnight` console script, next to the interpreter running the tests."""
    script = Path(sys.executable).with_name("overnight")
    if not script.exists():
        pytest.fail(f"`overnight` is not installed next to {sys.executable}; {INSTALL_HINT}", pytrace=False)
    return [str(script)]


@pytest.fixture
def fake_model() -> Iterator[FakeAnthropic]:
    with FakeAnthropic() as server:
        yield server


@pytest.fixture
def offline_env(tmp_path: Path, client_env: dict[str, str], fake_model: FakeAnthropic) -> dict[str, str]:
    """The isolated client environment, pointed at the fake model and kept off the network.

    TMPDIR too: every session writes under $TMPDIR/claude-<uid>/<its cwd, slugged>/ (task output, background
    agents' transcripts), which would otherwise pile up in the machine's /tmp."""
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    return {**client_env, **fake_model.env(), "TMPDIR": str(scratch)}
