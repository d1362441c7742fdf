"""How long `scheduler.snapshot.take` costs on a 10,000-file checkout: first (reads cheap files, keeps small
ones) and later (reuses what did not change), against a plain `git status` of the same checkout.

A temp repository gets N tracked files in 100 folders (committed), 200 untracked and 2,000 ignored ones, a home
with a few dotfiles and a bare remote; 20 tracked files are then edited before the later snapshots.
Target: the later snapshot (taken after every task) under 1 s at 10,000 files.

    .venv/bin/python bench/snapshot_take.py [--files 10000] [--rounds 7]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from mcp_servers.core.workspace import Workspace
from scheduler import snapshot


def _git(root: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=root, check=True, capture_output=True)


def _build(base: Path, files: int) -> Workspace:
    root = base / "repo"
    for n in range(files):
        path = root / f"pkg{n % 100:03d}" / f"mod{n:05d}.py"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"VALUE_{n} = {n}\n" * 20)
    (root / ".gitignore").write_text("build/\n")
    _git(root, "init", "-q", "-b", "main")
    _git(root, "add", "-A")
    _git(root, "-c", "user.name=b", "-c", "user.email=b@b.invalid", "commit", "-qm", "files")
    for n in range(200):
        (root / f"untracked{n}.txt").write_text("note\n" * 10)
    (root / "build").mkdir()
    for n in range(2000):
        (root / "build" / f"out{n}.o").write_bytes(b"\0" * 2048)
    _git(base, "init", "-q", "--bare", str(base / "origin.git"))
    _git(root, "remote", "add", "origin", str(base / "origin.git"))
    _git(root, "push", "-q", "origin", "main")
    home = base / "home"
    home.mkdir()
    for name in (".bashrc", ".profile", ".gitconfig"):
        (home / name).write_text("# dotfile\n")
    return Workspace.open(root, environ={**os.environ, "HOME": str(home)})


def _median(fn: object, rounds: int) -> float:
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        fn()  # type: ignore[operator]
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--files", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        ws = _build(Path(tmp), args.files)
        root = ws.repo.root
        status = _median(lambda: subprocess.run(["git", "status", "--porcelain=v2", "--untracked-files=all"],
                                                cwd=root, check=True, capture_output=True), args.rounds)  # fmt: skip
        first = _median(lambda: snapshot.take(ws), args.rounds)
        before = snapshot.take(ws)
        for n in range(20):
            (root / f"pkg{n:03d}" / f"mod{n:05d}.py").write_text("EDITED = 1\n")
        later = _median(lambda: snapshot.take(ws, like=before), args.rounds)
        no_remote = _median(lambda: snapshot.take(ws, remotes=False), args.rounds)
        kept = sum(len(f.data or b"") for c in before.checkouts.values() for f in c.files.values())
        kept += sum(len(f.data or b"") for f in before.files.values())
        files = sum(len(c.files) for c in before.checkouts.values())
    print(f"{files} files in the checkout ({args.files} tracked), median of {args.rounds}:")
    print(f"  git status (reference)      {status * 1000:7.1f} ms")
    print(f"  take, first                 {first * 1000:7.1f} ms")
    print(f"  take, first, no ls-remote   {no_remote * 1000:7.1f} ms")
    print(f"  take, later (like=first)    {later * 1000:7.1f} ms  (20 files edited)")
    print(f"  bytes kept by the first     {kept / 1024:7.1f} KiB")
    ok = later < 1.0
    print("PASS" if ok else "FAIL", "(target: a later take under 1 s)")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
