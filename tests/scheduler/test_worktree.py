"""Session worktrees leave no empty folders behind once removed (issue 11, item 3): real git worktrees."""

from __future__ import annotations

from pathlib import Path

from mcp_servers.core.workspace import Workspace, lock_digest, user_state_dir
from scheduler import worktree

from ..conftest import GitRepo, make_repo


def test_removing_the_last_session_worktree_removes_the_folders_made_for_it(repo: GitRepo) -> None:
    ws = Workspace.open(repo.root)
    first = worktree.create(ws, "s-1", repo.head())
    second = worktree.create(ws, "s-2", repo.head())
    folder = first.parent
    assert folder.parent == user_state_dir() / "worktrees"
    worktree.remove(ws, first)
    assert not first.exists() and second.is_dir()  # another session's folder is kept, and so its parent
    worktree.remove(ws, second)
    assert not folder.exists() and not folder.parent.exists()
    assert user_state_dir().is_dir()  # the user's overnight folder itself stays
    assert repo.git("branch", "--list", "overnight/*").split() == ["overnight/s-1", "overnight/s-2"]
    again = worktree.create(ws, "s-3", repo.head())  # and the next session makes them again
    assert again.is_dir()


def test_a_configured_worktree_dir_is_the_persons_and_stays(tmp_path: Path) -> None:
    where = tmp_path / "trees"
    repo = make_repo(tmp_path / "r", config=f'[scheduler]\nworktree_dir = "{where}"\n')
    ws = Workspace.open(repo.root)
    path = worktree.create(ws, "s-1", repo.head())
    assert path.parent == where
    worktree.remove(ws, path)
    assert not path.exists() and where.is_dir() and list(where.iterdir()) == []


def test_removing_a_worktree_removes_its_lock_files_and_only_those(repo: GitRepo) -> None:
    ws = Workspace.open(repo.root)
    path = worktree.create(ws, "s-1", repo.head())
    with Workspace.open(path).lock("gate"), Workspace.open(path).lock("plan"), ws.lock("gate"):
        pass  # what the servers take while a session works in it (issue 12: two files left per session)
    locks = ws.state_dir / "locks"
    assert len(list(locks.iterdir())) == 3
    worktree.remove(ws, path)
    assert [p.name for p in locks.iterdir()] == [f"gate-{lock_digest(repo.root)}.lock"]  # the checkout's stays
