"""One agent run, confined: the judge outside the sandbox, the agent inside, and the only ways between them.

    scheduler ── starts ──> quality / project / memory servers (outside: they hold the key, write state.db, move
       │                    refs), each on a Unix socket, behind a bearer token made for this run
       └── starts ──> bwrap: relay ──> agent      sees: a read-only system, its worktree (writable), a read-only
                                                   view of git without overnight's state or the person's config,
                                                   a private /tmp, a home of its own; reaches the servers and its
                                                   model's API through the relay, nothing else

The agent never sees `state.db`, the HMAC key, reports, the person's checkout, other worktrees or their home.
When the run ends (or the scheduler dies), every process it started is gone: the sandbox's PID namespace and
`--die-with-parent` for the agent's side, PR_SET_PDEATHSIG for the servers.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from mcp_servers.core import sandbox
from mcp_servers.core.errors import OvernightError
from mcp_servers.core.workspace import Workspace

log = logging.getLogger(__name__)
SERVERS = ("quality", "project", "memory")
PROXY_PORT = 47000
SERVER_PORTS = {"quality": 47001, "project": 47002, "memory": 47003}
# git settings a read-only view of the repository needs; everything else in the person's config (remotes with
# their credentials, aliases, hooks, fsmonitor, credential helpers, includes) stays outside.
_GIT_KEYS = ("core.repositoryformatversion", "core.bare", "core.filemode", "core.symlinks", "core.ignorecase",
             "core.precomposeunicode", "core.logallrefupdates", "extensions.objectformat", "extensions.refstorage",
             "extensions.worktreeconfig")  # fmt: skip


def die_with_parent() -> None:
    """In a child, before exec: SIGKILL when the process (thread) that started it dies (Linux)."""
    with contextlib.suppress(Exception):
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def endpoint(url: str) -> tuple[str, int]:
    """(host, port) of a URL, with the scheme's default port."""
    parts = urlsplit(url)
    if not parts.hostname:
        raise OvernightError(f"{url!r} is not a URL with a host: check the agent's base URL setting")
    return parts.hostname.lower(), parts.port or (443 if parts.scheme == "https" else 80)


def is_loopback(host: str) -> bool:
    return host in {"localhost", "::1"} or host.startswith("127.")


@dataclass
class Confinement:
    """What an adapter needs to start its agent confined: the MCP servers' entries, the environment additions,
    the home folder, and `wrap(argv)`, the command line that runs `argv` in the sandbox."""

    mode: str
    folder: Path
    home: Path
    mcp_servers: dict[str, dict[str, Any]]
    env: dict[str, str] = field(default_factory=dict)
    box: sandbox.Box | None = None
    bwrap: str = "bwrap"
    listen: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)

    def wrap(self, argv: Sequence[str], python: str = sys.executable) -> list[str]:
        if self.box is None:  # sandbox = "off": the person chose to run the agent as themselves
            return list(argv)
        inner = [python, "-I", "-m", "scheduler.relay", *self.listen, "--", *argv]
        return sandbox.command(self.box, inner, bwrap=self.bwrap)

    def write_config(self, name: str, data: Any) -> Path:
        """A per-run file (MCP config, settings) the agent may read but not change."""
        path = self.folder / "config" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # it holds the run's bearer token
        with os.fdopen(fd, "w") as handle:
            handle.write(json.dumps(data, indent=2))
        return path


@contextlib.contextmanager
def confine(ws: Workspace, worktree: Path, job_env: Mapping[str, str], *, endpoints: Sequence[str] = (),
            read: Sequence[Path] = (), logs: Path | None = None) -> Iterator[Confinement]:  # fmt: skip
    """Start the judge and the ways out for one agent run in `worktree`, and take them down after it.

    `job_env` holds the run's OVERNIGHT_* variables, which the servers take as their context. `endpoints` are the
    base URLs the agent must reach (its model's API); `read` what it must read of the machine (its CLI's install)."""
    mode = ws.settings.scheduler.sandbox
    base = tempfile.gettempdir()
    # Unix socket paths are short (108 bytes): a long $TMPDIR would leave no room for them
    folder = Path(tempfile.mkdtemp(prefix="overnight-run-", dir=base if len(base) <= 48 else "/tmp"))  # noqa: S108
    home = folder / "home"
    home.mkdir()
    stack = contextlib.ExitStack()
    try:
        if mode == "off":
            yield Confinement(mode, folder, home, _stdio_servers(worktree, job_env))
            return
        bwrap = sandbox.require(ws.environ)
        sockets = folder / "sockets"
        sockets.mkdir()
        token = secrets.token_urlsafe(32)
        stack.enter_context(_judge(worktree, job_env, sockets, token, logs or folder))
        from .egress import Egress

        egress = Egress(sockets)
        stack.callback(egress.close)
        listen: list[str] = []
        for name, port in SERVER_PORTS.items():
            listen += ["--listen", f"{port}={sockets / name}.sock"]
        remote = []
        for url in endpoints:
            host, port = endpoint(url)
            if is_loopback(host):  # the same port on the sandbox's own loopback leads to it
                if port == PROXY_PORT or port in SERVER_PORTS.values():
                    raise OvernightError(f"the agent's endpoint {url} uses a port the sandbox keeps for itself")
                listen += ["--listen", f"{port}={egress.tunnel(f'tunnel-{port}', host, port)}"]
            else:
                remote.append((host, port))
        for item in ws.settings.scheduler.network_allow:
            allowed_host, _, allowed_port = item.rpartition(":")
            remote.append((allowed_host, int(allowed_port)))
        listen += ["--listen", f"{PROXY_PORT}={egress.proxy(remote)}"]
        proxy = f"http://127.0.0.1:{PROXY_PORT}"
        env = {"HTTPS_PROXY": proxy, "https_proxy": proxy, "HTTP_PROXY": proxy, "http_proxy": proxy,
               "NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost", "HOME": str(home)}  # fmt: skip
        git_view = _git_view(ws, folder)
        box = sandbox.Box(
            write=(worktree, home),
            # the worktree's `.git` file too: pointed elsewhere, it would send the servers to a repository of the
            # agent's making
            read=(*sandbox.own_code(), ws.repo.common_dir, worktree / ".git", sockets, folder / "config", *read),
            hide=(*sandbox.person_paths(ws.environ, ws.repo.root, ws.repo.common_dir, folder), ws.state_dir),
            files=git_view,
            chdir=worktree,
        )
        servers = {name: {"type": "http", "url": f"http://127.0.0.1:{port}/mcp",
                          "headers": {"Authorization": f"Bearer {token}"}}
                   for name, port in SERVER_PORTS.items()}  # fmt: skip
        confinement = Confinement(mode, folder, home, servers, env, box, bwrap, listen)
        try:
            yield confinement
        finally:
            confinement.refused = list(egress.refused)
    finally:
        stack.close()
        shutil.rmtree(folder, ignore_errors=True)


def _stdio_servers(worktree: Path, job_env: Mapping[str, str], python: str = sys.executable) -> dict[str, Any]:
    """Unsandboxed: the agent starts the servers itself over stdio, as before the sandbox."""
    env = {k: v for k, v in job_env.items() if k.startswith("OVERNIGHT_")}
    return {
        name: {
            "type": "stdio",
            "command": python,
            # -I: started in the worktree, Python would otherwise import the agent's files before ours
            "args": ["-I", "-m", f"mcp_servers.{name}", "--repo", str(worktree)],
            "env": env,
            "timeout": 900_000,  # the gate runs the test suite: give tool calls their time
        }
        for name in SERVERS
    }


def _git_view(ws: Workspace, folder: Path) -> tuple[tuple[Path, Path], ...]:
    """The files that replace the person's git configuration inside the sandbox: only what reading needs."""
    source = ws.repo.common_dir / "config"
    lines = []
    found = ws.repo.run("config", "--file", str(source), "--get-regexp", r"^(core|extensions)\.", check=False)
    for line in found.text().splitlines():
        key, _, value = line.partition(" ")
        if key.lower() in _GIT_KEYS:
            lines.append((key, value))
    sanitized = folder / "gitconfig"
    text = ""
    for section in ("core", "extensions"):
        entries = [(k.split(".", 1)[1], v) for k, v in lines if k.lower().startswith(section + ".")]
        if entries:
            text += f"[{section}]\n" + "".join(f"\t{k} = {v}\n" for k, v in entries)
    sanitized.write_text(text)
    return ((sanitized, source),)


@contextlib.contextmanager
def _judge(worktree: Path, job_env: Mapping[str, str], sockets: Path, token: str, logs: Path) -> Iterator[None]:
    """The three MCP servers for this run, outside the sandbox, each on its Unix socket, behind `token`."""
    from mcp_servers.serving import TOKEN_ENV  # (here: the servers' package imports the MCP SDK, ~0.7 s)

    env = {**os.environ, **{k: v for k, v in job_env.items() if k.startswith("OVERNIGHT_")}, TOKEN_ENV: token}
    env.pop("CLAUDE_CODE_SESSION_ID", None)
    procs: dict[str, subprocess.Popen[bytes]] = {}
    logs.mkdir(parents=True, exist_ok=True)
    try:
        for name in SERVERS:
            argv = [sys.executable, "-I", "-m", f"mcp_servers.{name}", "--transport", "http", "--uds",
                    str(sockets / f"{name}.sock"), "--repo", str(worktree)]  # fmt: skip
            with (logs / f"server-{name}.log").open("ab") as err:
                procs[name] = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                               stderr=err, preexec_fn=die_with_parent)  # noqa: PLW1509 (one prctl call)
        # not waited for: the agent starts alongside them, and the relay holds its first connections until they
        # listen. Unsandboxed, the agent's CLI starts them itself alongside its own start-up just the same.
        yield
    finally:
        for name, child in procs.items():
            if child.poll() is not None:  # it stopped while the agent worked: the run's log says why
                tail = (logs / f"server-{name}.log").read_text(errors="replace")[-1500:]
                log.warning("the %s server stopped during the run (exit %s): %s", name, child.returncode, tail)
            child.terminate()
        for child in procs.values():
            try:
                child.wait(timeout=10)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
