"""The person's side an escape attempt aims at, and its fingerprint: what must be byte-identical afterwards."""

from __future__ import annotations

import hashlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from mcp_servers.core.workspace import Workspace

from ..conftest import FAST_CONFIG, GitRepo, make_repo

CONFIG = FAST_CONFIG + "[gate.security]\nenabled = false\n[gate.complexity]\nenabled = false\n"


@dataclass
class Scene:
    """The person's side, with everything an escaping test might aim at."""

    repo: GitRepo
    home: Path
    other: Path
    remote: Path
    port: int
    marker: str

    def paths(self) -> dict[str, str]:
        ws = Workspace.open(self.repo.root)
        site = Path(next(p for p in sys.path if p.endswith("site-packages")))
        return {
            "repo": str(self.repo.root), "home": str(self.home), "other": str(self.other), "remote": str(self.remote),
            "state": str(ws.state_dir), "site": str(site), "port": str(self.port), "marker": self.marker,
            "source": str(Path(__import__("mcp_servers").__file__).parent),
            "other_commit": self.repo.git("rev-parse", "other"), "base": self.repo.head(),
            "forged_tree": self.repo.git("rev-parse", "other^{tree}"),
        }  # fmt: skip

    def fingerprint(self) -> dict[str, str]:
        """Everything of the person's that must not change, as digests."""
        found: dict[str, str] = {}
        for root in (self.home, self.repo.root, self.other, self.remote):
            for path in sorted(root.rglob("*")):
                rel = str(path)
                if ("/.git/overnight" in rel or path.is_dir() or "/objects/" in rel
                        or rel.endswith(("/index", ".lock", "/packed-refs"))):  # refs: compared as refs, below
                    continue
                found[rel] = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
        found["refs"] = self.repo.git("for-each-ref")
        found["remote refs"] = self.repo.git("ls-remote", str(self.remote))
        site = Path(self.paths()["site"])
        found["site"] = " ".join(sorted(p.name for p in site.iterdir()))
        found["source"] = " ".join(sorted(p.name for p in Path(self.paths()["source"]).iterdir()))
        return found


def make_scene(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, files: dict[str, str] | None = None,
               config: str = CONFIG) -> Iterator[Scene]:
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    (home / ".bashrc").write_text("# the person's shell\n")
    (home / ".ssh" / "id_ed25519").write_text("not a real key, but the person's\n")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-" + "escape0test" * 3)
    repo = make_repo(tmp_path / "repo", config=config, files=files)
    repo.write("NOTES.txt", "the person's own uncommitted work\n")
    repo.git("branch", "other")
    repo.git("checkout", "-q", "other")
    repo.append("README.md", "another line\n")
    repo.commit("other")
    repo.git("checkout", "-q", "main")
    other = tmp_path / "other-worktree"
    repo.git("worktree", "add", "-q", str(other), "other")
    remote = tmp_path / "remote.git"
    subprocess.run(["git", "init", "-q", "--bare", str(remote)], check=True)
    repo.git("push", "-q", str(remote), "main")
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    server.settimeout(0.1)
    marker = f"overnight-escape-{os.getpid()}-{time.monotonic_ns()}"
    # another of the person's processes, with a credential in its environment (their shell, an editor)
    shell = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"],
                             env={**os.environ, "ANTHROPIC_API_KEY": "sk-ant-" + "escape0test" * 3})  # fmt: skip
    try:
        yield Scene(repo, home, other, remote, server.getsockname()[1], marker)
    finally:
        shell.kill()
        shell.wait()
        try:
            conn, _ = server.accept()
            conn.close()
            raise AssertionError("an escaping test reached a service on the host's loopback")
        except TimeoutError:
            pass
        finally:
            server.close()
