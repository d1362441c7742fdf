"""Bad input gets a clear error and changes nothing: every case the quality server's issue lists."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from mcp_servers.core import policy
from mcp_servers.core.errors import ConfigError, GitError, UsageError
from mcp_servers.core.gate import run_gate
from mcp_servers.core.workspace import Workspace

from ..conftest import GitRepo, make_repo


def _snapshot(repo: GitRepo) -> tuple[str, str, str]:
    return repo.head(), repo.git("ls-files", "--stage"), repo.status()


def test_bad_input_not_a_git_repository(tmp_path: Path) -> None:
    with pytest.raises(GitError, match=r"not inside a git repository.*git init"):
        Workspace.open(tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_bad_input_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"is not a directory"):
        Workspace.open(tmp_path / "nope")


def test_bad_input_repository_with_no_commits(tmp_path: Path) -> None:
    repo = GitRepo(tmp_path)
    repo.git("init", "-q")
    repo.write("src/a.py", "x = 1\n")
    ws = Workspace.open(tmp_path)
    for call in (lambda: policy.check_changes(ws.repo, ws.settings), lambda: run_gate(ws)):
        with pytest.raises(GitError, match=r"no commits yet.*git commit -m 'Initial commit'"):
            call()
    assert repo.git("ls-files") == ""  # nothing was staged


def test_bad_input_detached_head_refuses_the_gate_but_not_a_read(repo: GitRepo) -> None:
    repo.git("checkout", "-q", "--detach")
    repo.append("src/app/calc.py", "\n# note\n")
    before = _snapshot(repo)
    ws = Workspace.open(repo.root)
    with pytest.raises(GitError, match=r"HEAD is detached"):
        run_gate(ws)
    assert _snapshot(repo) == before
    assert policy.check_changes(ws.repo, ws.settings).safe  # judging a tree is fine on a detached HEAD
    assert _snapshot(repo) == before


def test_bad_input_merge_in_progress(repo: GitRepo) -> None:
    repo.conflicting_merge()
    before = _snapshot(repo)
    with pytest.raises(GitError, match=r"middle of a merge"):
        run_gate(Workspace.open(repo.root))
    assert _snapshot(repo) == before


def test_bad_input_unknown_base_ref(repo: GitRepo) -> None:
    ws = Workspace.open(repo.root)
    with pytest.raises(UsageError, match=r"'no-such-ref' does not name a commit"):
        policy.check_changes(ws.repo, ws.settings, base="no-such-ref")
    with pytest.raises(UsageError, match=r"not a usable git ref"):
        policy.check_changes(ws.repo, ws.settings, base="--output=/tmp/x")


def test_bad_input_hundred_thousand_line_diff_is_judged_quickly(repo: GitRepo) -> None:
    repo.write("src/app/huge.py", "".join(f"x{i} = {i}\n" for i in range(100_000)))
    ws = Workspace.open(repo.root)
    started = time.monotonic()
    report = policy.check_changes(ws.repo, ws.settings)
    assert time.monotonic() - started < 30
    assert not report.safe
    assert [v.rule for v in report.violations] == ["too-large"]
    assert "100000 changed lines" in report.violations[0].message
    # it names the files that made it too large
    too_large = report.violations[0]
    assert too_large.path == "src/app/huge.py" and "src/app/huge.py +100000/-0" in too_large.message
    assert report.lines_added == 100_000


def test_bad_input_undecodable_file_name(repo: GitRepo) -> None:
    name = os.fsencode(str(repo.root / "src" / "app")) + b"/bad\xff\xfename.py"
    with open(name, "w") as handle:
        handle.write("x = 1\n")
    ws = Workspace.open(repo.root)
    report = policy.check_changes(ws.repo, ws.settings)
    assert not report.safe
    rules = {v.rule for v in report.violations}
    assert "undecodable-path" in rules
    undecodable = next(v for v in report.violations if v.rule == "undecodable-path")
    assert undecodable.path == "src/app/bad\ufffd\ufffdname.py"
    report.model_dump_json()  # the answer can still be sent as JSON


def test_bad_input_invalid_config_stops_before_anything_runs(repo: GitRepo) -> None:
    repo.write("overnight.toml", "[policy]\nmax_changed_lines = -5\n")
    repo.append("src/app/calc.py", "\n# change\n")
    before = _snapshot(repo)
    with pytest.raises(
        ConfigError, match=r"overnight.toml:2: key `policy.max_changed_lines`.*greater than or equal to 1"
    ):
        Workspace.open(repo.root)
    assert _snapshot(repo) == before


def test_bad_input_bad_task_scope(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "r")
    ws = Workspace.open(repo.root)
    for scope in (["../outside/**"], ["/etc/passwd"], ["--all"]):
        with pytest.raises(UsageError):
            policy.check_changes(ws.repo, ws.settings, task_files=scope)
