"""The git helper's long-lived `cat-file` readers: bounded, and still answering after being stopped."""

from __future__ import annotations

from pathlib import Path

from mcp_servers.core import git

from ..conftest import GitRepo


def _repo(root: Path) -> Path:
    root.mkdir()
    repo = GitRepo(root)
    repo.git("init", "-q", "-b", "main")
    repo.write("a.txt", f"{root.name}\n")
    repo.git("add", "a.txt")
    repo.git("-c", "user.name=t", "-c", "user.email=t@example.invalid", "commit", "-qm", "a")
    return root


def test_readers_are_bounded_and_an_evicted_one_still_answers(tmp_path: Path) -> None:
    roots = [_repo(tmp_path / f"r{i}") for i in range(git.MAX_READERS + 3)]
    first = git._reader(roots[0])
    assert first.read("HEAD:a.txt") is not None
    process = first._proc
    assert process is not None and process.poll() is None
    for root in roots[1:]:
        found = git._reader(root).read("HEAD:a.txt")
        assert found is not None and found[2] == f"{root.name}\n".encode()
    assert len(git._READERS) <= git.MAX_READERS and (roots[0], False) not in git._READERS
    assert process.poll() is not None  # the evicted reader's process was stopped (and waited for)
    # a caller still holding the evicted reader gets a fresh process, and the right answer
    again = first.read("HEAD:a.txt")
    assert again is not None and again[2] == b"r0\n"
    first._stop()  # (it is no longer among the kept readers: nothing else would stop it before exit)
