"""The git helper's long-lived `cat-file` readers (bounded, still answering after being stopped) and the names it
remembers while the ref store is unchanged."""

from __future__ import annotations

import random
import subprocess
import time
from pathlib import Path

import pytest

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


# -- names remembered while the ref store is unchanged ------------------------------------------------------


@pytest.fixture
def later(monkeypatch: pytest.MonkeyPatch) -> None:
    """The clock moved on past RACY_S, so the files the test just wrote count as settled (the cache engages)."""
    monkeypatch.setattr(git, "_now_ns", lambda: time.time_ns() + int(10 * git.RACY_S * 1e9))


def _cached(repo: git.Repo, name: str) -> bool:
    return any(key[0] == str(repo.root) and key[2] == name for key in git._NAMED)


def _truth(root: Path, name: str) -> str | None:
    result = subprocess.run(
        ["git", "rev-parse", "--verify", "--quiet", name], check=False, cwd=root, capture_output=True, text=True
    )
    return result.stdout.strip() or None


def test_a_settled_name_is_remembered_and_a_fresh_one_is_not(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    repo = git.Repo.discover(_repo(tmp_path / "r"))
    assert repo.head() == _truth(repo.root, "HEAD")
    assert not _cached(repo, "HEAD^{commit}")  # just committed: racy, read every time
    monkeypatch.setattr(git, "_now_ns", lambda: time.time_ns() + int(10 * git.RACY_S * 1e9))
    assert repo.head() == _truth(repo.root, "HEAD")
    assert _cached(repo, "HEAD^{commit}")
    commit = repo.head()
    assert repo.read_object(f"{commit}:a.txt") is not None and _cached(repo, f"{commit}:a.txt")  # immutable
    assert repo.read_object(f"{commit}:no-such-file") is None and _cached(repo, f"{commit}:no-such-file")
    absent = "0" * 40  # an object this repository does not have (yet): never remembered as missing
    assert repo.read_object(f"{absent}:a.txt") is None and not _cached(repo, f"{absent}:a.txt")


@pytest.mark.usefixtures("later")
def test_commits_resets_checkouts_and_detached_heads_are_seen_at_once(tmp_path: Path) -> None:
    root = _repo(tmp_path / "r")
    work = GitRepo(root)
    repo = git.Repo.discover(root)
    first = repo.head()
    work.write("a.txt", "second\n")
    second = work.commit("second")
    assert repo.head() == second and repo.read_object("HEAD:a.txt") == (_truth(root, "HEAD:a.txt"), "blob", b"second\n")
    work.git("reset", "-q", "--hard", str(first))  # the ref file is rewritten with the same size
    assert repo.head() == first and repo.read_object("HEAD:a.txt")[2] == b"r\n"  # type: ignore[index]
    work.git("checkout", "-q", "-b", "side")
    work.write("a.txt", "side\n")
    side = work.commit("side")
    assert repo.head() == side and repo.object_id("main:a.txt") == (_truth(root, "main:a.txt"), "blob")
    work.git("checkout", "-q", "--detach", str(first))
    assert repo.head() == first
    work.write("a.txt", "detached\n")
    detached = work.commit("on a detached HEAD")
    assert repo.head() == detached and repo.read_object("HEAD:a.txt")[2] == b"detached\n"  # type: ignore[index]
    work.git("checkout", "-q", "main")
    assert repo.head() == first == _truth(root, "main")


@pytest.mark.usefixtures("later")
def test_packed_refs_tags_that_shadow_a_branch_and_symbolic_refs(tmp_path: Path) -> None:
    root = _repo(tmp_path / "r")
    work = GitRepo(root)
    repo = git.Repo.discover(root)
    first = repo.head()
    work.git("pack-refs", "--all")  # refs/heads/main now lives in packed-refs only
    assert not (root / ".git/refs/heads/main").exists()
    assert repo.object_id("main^{commit}") == (first, "commit")
    work.write("a.txt", "two\n")
    second = work.commit("two")  # a loose ref appears again, ahead of the packed one
    assert repo.object_id("main^{commit}") == (second, "commit") == (_truth(root, "main"), "commit")
    work.git("update-ref", "refs/heads/main", str(first))
    work.git("pack-refs", "--all")
    assert repo.resolve("main") == first
    work.git("tag", "main", second)  # refs/tags/main comes before refs/heads/main in git's order
    assert repo.resolve("main") == second == _truth(root, "main^{commit}")
    work.git("tag", "-d", "main")
    work.git("symbolic-ref", "refs/heads/alias", "refs/heads/main")
    assert repo.resolve("alias") == first
    work.git("update-ref", "refs/heads/main", second)
    assert repo.resolve("alias") == second  # followed through the symbolic ref


@pytest.mark.usefixtures("later")
def test_linked_worktrees_have_their_own_head(tmp_path: Path) -> None:
    root = _repo(tmp_path / "r")
    work = GitRepo(root)
    work.git("worktree", "add", "-q", "-b", "feature", str(tmp_path / "wt"))
    main_repo, linked = git.Repo.discover(root), git.Repo.discover(tmp_path / "wt")
    assert main_repo.head() == linked.head()
    other = GitRepo(tmp_path / "wt")
    other.write("a.txt", "feature\n")
    feature = other.commit("feature")
    assert linked.head() == feature and main_repo.head() != feature
    assert main_repo.resolve("feature") == feature and linked.resolve("main") == main_repo.head()
    work.write("a.txt", "main moved\n")
    moved = work.commit("main moved")
    assert linked.resolve("main") == moved and linked.head() == feature


@pytest.mark.usefixtures("later")
def test_random_ref_changes_agree_with_git(tmp_path: Path) -> None:
    """A reference model: after each random change to the ref store, every name answers what git says."""
    root = _repo(tmp_path / "r")
    work = GitRepo(root)
    repo = git.Repo.discover(root)
    work.git("branch", "other")
    rng = random.Random(5)  # noqa: S311 (a reproducible test sequence)
    names = ["HEAD^{commit}", "HEAD:a.txt", "main:a.txt", "main^{commit}", "other^{commit}", "other:a.txt"]
    for step in range(40):
        action = rng.choice(["commit", "reset", "switch", "detach", "pack", "tag", "untag", "update"])
        commits = work.git("rev-list", "--all").split()
        if action == "commit":
            work.write("a.txt", f"step {step}\n")
            work.commit(f"step {step}")
        elif action == "reset":
            work.git("reset", "-q", "--hard", rng.choice(commits))
        elif action == "switch":
            work.git("checkout", "-q", rng.choice(["main", "other"]))
        elif action == "detach":
            work.git("checkout", "-q", "--detach", rng.choice(commits))
        elif action == "pack":
            work.git("pack-refs", "--all")
        elif action == "tag":
            work.git("tag", "-f", rng.choice(["main", "other"]), rng.choice(commits))
        elif action == "untag":
            work.git("tag", "-d", "main", "other", check=False)
        else:
            work.git("update-ref", f"refs/heads/{rng.choice(['main', 'other'])}", rng.choice(commits))
        for name in names:
            found = repo.object_id(name)
            assert (found[0] if found else None) == _truth(root, name), (step, action, name)
