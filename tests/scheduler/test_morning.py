"""The morning from the shell: `overnight review | merge | discard`, `run --task | --max-tasks | --dry-run`, and
`overnight commit -m`, on real repositories and real replay sessions (issue 11)."""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path

import pytest

from mcp_servers.core import config
from mcp_servers.core.errors import ConfigError
from mcp_servers.core.workspace import Workspace
from scheduler import worktree
from scheduler.cli import main

from ..conftest import ADD_SUB, TEST_SUB, GitRepo
from .sessions import GOOD, SCOPE, make_planned, passing, write_script

PERSON = "Overnight Tests <tests@overnight.invalid>"


def _cli(repo: GitRepo, *args: str) -> int:
    return main(["-C", str(repo.root), *args])


def _commit(repo: GitRepo, path: str, message: str) -> str:
    """The person commits one file (their uncommitted NOTES.txt stays out of it)."""
    repo.git("add", "--", path)
    repo.git("commit", "-q", "--no-verify", "-m", message)
    return repo.head()


def _json(repo: GitRepo, capsys: pytest.CaptureFixture[str], *args: str) -> object:
    assert _cli(repo, *args, "--json") == 0, capsys.readouterr()
    return json.loads(capsys.readouterr().out)


def _one_session(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> tuple[GitRepo, dict[str, object]]:
    """A finished session that kept `sub` on its branch, run with `--max-tasks 1` over a config allowing five."""
    repo = make_planned(tmp_path / "r")
    script = write_script(tmp_path / "s.toml", passing("sub", "sub"), passing("mul", "mul"))
    assert _cli(repo, "run", "--agent", "replay", "--script", str(script), "--max-tasks", "1") == 0
    assert "the task limit (1)" in capsys.readouterr().out
    review = _json(repo, capsys, "review")
    assert isinstance(review, dict)
    [item] = review["sessions"]
    return repo, item


def test_review_merge_refusals_and_discard(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    repo, item = _one_session(tmp_path, capsys)
    session, branch, tip = str(item["session"]), str(item["branch"]), str(item["tip"])
    assert item["kept"] == ["sub"] and item["rolled_back"] == [] and item["base_branch"] == "main"
    assert item["commits"] == 2 and item["files_changed"] == 3 and int(str(item["insertions"])) >= 6
    assert str(item["report"]).endswith(f"{session}.md") and Path(str(item["report"])).exists()
    # the agent's commit is authored by the agent identity, the person committed it
    work = repo.git("log", "--format=%H", f"main..{tip}").split()[-1]
    assert repo.git("log", "-1", "--format=%an <%ae>|%cn <%ce>", work) == (
        f"overnight agent <overnight-agent@localhost>|{PERSON}"
    )
    assert _cli(repo, "review") == 0
    text = capsys.readouterr().out
    assert session in text and "kept: sub; rolled back: none" in text and "2 commit(s), 3 file(s)" in text

    main_before, status_before = repo.head(), repo.status()

    def untouched() -> None:
        assert repo.head() == main_before and repo.status() == status_before
        assert repo.git("symbolic-ref", "HEAD") == "refs/heads/main"
        assert not (repo.root / ".git" / "MERGE_HEAD").exists()

    # commits added to the branch after the session (one dressed as the scheduler's plan update, changing code
    # too): refused, nothing changed
    evil = repo.git("commit-tree", f"{tip}^{{tree}}", "-p", tip, "-m", "looks harmless")
    forged = repo.git("commit-tree", f"{main_before}^{{tree}}", "-p", evil, "-m", "Mark sub done",
                      "-m", "Overnight-Task: sub\nOvernight-Plan-Update: by the scheduler")  # fmt: skip
    repo.git("update-ref", f"refs/heads/{branch}", forged)
    assert _cli(repo, "merge", session) == 1
    err = capsys.readouterr().err
    assert "does not verify" in err and "moved since the session ended" in err
    assert f"commit {evil[:12]} (looks harmless) is not one the session verified" in err
    assert f"commit {forged[:12]} (Mark sub done) is not one the session verified" in err
    assert "Overnight-Task: sub" in repo.git("log", "-1", "--format=%B", forged)
    untouched()
    repo.git("update-ref", f"refs/heads/{branch}", tip)

    # uncommitted changes in a file the merge changes: refused before anything moves
    repo.append("src/app/calc.py", "# the person's edit\n")
    status_dirty = repo.status()
    assert _cli(repo, "merge", session[:12]) == 1
    assert "uncommitted changes in files the merge changes" in capsys.readouterr().err
    assert repo.head() == main_before and repo.status() == status_dirty
    repo.git("checkout", "--", "src/app/calc.py")

    # a conflict with the person's own commit on main: refused, base and checkout untouched
    repo.append("src/app/calc.py", "\n\ndef mul(a, b):\n    return a * b\n")
    conflicting = _commit(repo, "src/app/calc.py", "person adds mul")
    status_conflict = repo.status()
    assert _cli(repo, "merge", branch) == 1
    err = capsys.readouterr().err
    assert "conflicts with main; nothing was changed" in err and "src/app/calc.py" in err
    assert repo.head() == conflicting and repo.status() == status_conflict
    assert not (repo.root / ".git" / "MERGE_HEAD").exists()
    repo.git("reset", "-q", "--hard", main_before)
    untouched()

    # the base not checked out: a fast-forward of its ref alone, the checkout untouched
    repo.git("switch", "-q", "-c", "work")
    assert _cli(repo, "merge", session) == 0
    said = capsys.readouterr().out
    assert "(fast-forward)" in said and "main is not checked out: only its ref moved" in said
    assert repo.git("rev-parse", "main") == tip and repo.head() == main_before and repo.status() == status_before
    assert _json(repo, capsys, "review") == {"sessions": [], "running": None}
    assert f"merged into main as {tip[:12]} (fast-forward)" in repo.root.joinpath(str(item["report"])).read_text()

    # the base moved on meanwhile (checked out this time): a merge commit, the checkout updated
    repo.git("branch", "-f", "main", main_before)
    repo.git("switch", "-q", "main")
    repo.append("README.md", "more words\n")
    person = _commit(repo, "README.md", "person edits the README")
    done = _json(repo, capsys, "merge", session)
    assert isinstance(done, dict) and done["how"] == "merge commit" and done["before"] == person
    assert done["checkout"] == str(repo.root) and done["tasks"] == ["sub"]
    assert repo.git("rev-list", "--parents", "-1", "main").split()[1:] == [person, tip]
    assert "def sub" in (repo.root / "src/app/calc.py").read_text() and "more words" in repo.git("show", ":README.md")
    assert repo.status() == status_before  # NOTES.txt, the person's uncommitted file, is still there
    assert _cli(repo, "merge", session) == 1
    assert "already in main" in capsys.readouterr().err

    # discard: asks first (refused without a terminal), then deletes the branch and a worktree left behind
    ws = Workspace.open(repo.root)
    left = worktree.location(ws, session)
    repo.git("worktree", "add", "-q", str(left), branch)
    assert _cli(repo, "discard", session) == 2
    assert "needs a confirmation" in capsys.readouterr().err
    assert repo.git("rev-parse", "--verify", "-q", branch, check=False) == tip
    assert _cli(repo, "discard", session, "--yes") == 0
    assert f"deleted {branch}" in capsys.readouterr().out
    assert repo.git("rev-parse", "--verify", "-q", branch, check=False) == "" and not left.exists()
    assert "discarded; the branch was at" in repo.root.joinpath(str(item["report"])).read_text()
    assert _cli(repo, "discard", session, "--yes") == 2
    assert "no session branch matches" in capsys.readouterr().err


def _state(repo: GitRepo) -> tuple[object, ...]:
    """What a dry run must leave as it was: the state database's rows, refs, worktrees, reports, run folders."""
    ws = Workspace.open(repo.root)
    with sqlite3.connect(ws.db_path) as conn:
        dump = tuple(conn.iterdump())
    files = tuple(sorted(str(p.relative_to(ws.state_dir)) for p in ws.state_dir.rglob("*")
                         if not p.name.startswith("state.db")))  # fmt: skip
    return dump, repo.git("show-ref"), repo.git("worktree", "list", "--porcelain"), files, repo.status()


def test_run_dry_run_writes_nothing_then_task_runs_one(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pending = f"- **[later]** Add div()\n  - Priority: P1\n{GOOD}{SCOPE}"
    plan = (
        "# Plan\n\n## Task Queue\n\n### Ready for Autonomous Execution ✅\n"
        + "".join(f"- **[{t}]** Add {t}()\n  - Priority: P1\n{GOOD}{SCOPE}" for t in ("sub", "mul", "neg"))
        + f"\n### Pending Approval ⏳\n{pending}"
    )
    repo = make_planned(tmp_path / "r", plan_text=plan)
    script = write_script(tmp_path / "s.toml", passing("sub", "sub"), passing("mul", "mul"), passing("neg", "neg"))
    replay = ("--agent", "replay", "--script", str(script))
    with Workspace.open(repo.root).db():  # the state database exists, as after any earlier command
        pass
    before = _state(repo)
    assert _cli(repo, "run", *replay, "--dry-run", "--max-tasks", "2") == 0
    said = capsys.readouterr().out
    assert "1. sub (P1) Add sub()" in said and "2. mul (P1) Add mul()" in said and "neg (P1)" not in said
    assert "`neg` would be ready too, beyond the task limit (2)" in said
    assert "passed over: later: pending approval" in said
    assert "the prompt of sub:" in said and "You are working unattended on task `sub`" in said
    assert _cli(repo, "run", *replay, "--dry-run", "--task", "neg") == 0
    said = capsys.readouterr().out
    assert "1. neg (P1) Add neg()" in said and "sub (P1)" not in said and "task `neg`" in said
    short = write_script(tmp_path / "short.toml", passing("sub", "sub"))  # no steps for neg: it would be refused
    assert _cli(repo, "run", "--agent", "replay", "--script", str(short), "--dry-run", "--task", "neg") == 1
    assert "has no steps for `neg`" in capsys.readouterr().out
    assert _cli(repo, "run", *replay, "--task", "later") == 2
    assert "task `later` may not run: pending approval" in capsys.readouterr().err
    assert _cli(repo, "run", *replay, "--dry-run", "--task", "later") == 1
    assert "no task would run: task `later` may not run: pending approval" in capsys.readouterr().out
    assert _cli(repo, "run", *replay, "--task", "nosuch") == 2
    assert "no task `nosuch`" in capsys.readouterr().err
    assert _state(repo) == before
    # a real run of one named task: that one only, though `sub` ranks first and five are allowed
    assert _cli(repo, "run", *replay, "--task", "mul") == 0
    said = capsys.readouterr().out
    assert "`mul` Add mul(): ✅ kept" in said and "`sub`" not in said
    status = _json(repo, capsys, "status")
    assert isinstance(status, dict) and status["sessions"][0]["tasks_done"] == 1


def test_commit_gates_and_commits_as_the_person(repo: GitRepo, capsys: pytest.CaptureFixture[str]) -> None:
    assert _cli(repo, "hooks", "install") == 0
    capsys.readouterr()
    head = repo.head()
    repo.append("src/app/calc.py", "\n\ndef add(a, b):\n    return a * b\n")  # breaks test_add
    assert _cli(repo, "commit", "-m", "A faster add()") == 1
    assert "nothing was committed because the gate failed" in capsys.readouterr().err
    assert repo.head() == head
    repo.git("checkout", "HEAD", "--", "src/app/calc.py")  # (HEAD: today's gate stages into the index)
    repo.append("src/app/calc.py", ADD_SUB)
    repo.append("tests/test_calc.py", TEST_SUB)
    assert _cli(repo, "commit", "-m", "Add sub()") == 0
    said = capsys.readouterr().out
    assert "committed" in said and "Add sub()" in said and "hook is not installed" not in said
    new = repo.head()
    assert repo.git("rev-parse", f"{new}^") == head
    assert repo.git("log", "-1", "--format=%an <%ae>|%cn <%ce>") == f"{PERSON}|{PERSON}"
    assert "Overnight-Receipt: " in repo.git("log", "-1", "--format=%B")
    assert repo.status() == "" and repo.index_tree() == repo.git("rev-parse", "HEAD^{tree}")
    assert _cli(repo, "commit", "-m", "again") == 1
    assert "nothing to commit" in capsys.readouterr().err
    os.environ["OVERNIGHT_SESSION_ID"] = "2026-01-01-abcdef"
    try:
        assert _cli(repo, "commit", "-m", "from inside a session") == 2
    finally:
        del os.environ["OVERNIGHT_SESSION_ID"]
    assert "a person's command" in capsys.readouterr().err


def test_agent_identity_is_checked(tmp_path: Path) -> None:
    good = config.parse(b'[scheduler]\nagent_name = "bot"\nagent_email = "bot@example.invalid"\n', tmp_path / "o")
    assert (good.scheduler.agent_name, good.scheduler.agent_email) == ("bot", "bot@example.invalid")
    with pytest.raises(ConfigError, match="cannot be part of a git identity"):
        config.parse(b'[scheduler]\nagent_name = "bot <evil@x>"\n', tmp_path / "o")
