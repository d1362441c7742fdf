"""The person's repository as they left it: their index untouched by the gate, advice that never tells them to
delete their own setup, no folders left behind (issue 11, item 3). Real git, the real CLI, the real gate."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from mcp_servers.core import advice
from mcp_servers.core.commit import commit
from mcp_servers.core.gate import run_gate
from mcp_servers.core.models import Violation
from mcp_servers.core.workspace import Workspace
from scheduler.cli import main

from ..conftest import ADD_SUB, TEST_SUB, GitRepo, make_repo


def _state_leftovers(repo: GitRepo) -> list[str]:
    state = repo.root / ".git" / "overnight"
    return sorted(p.name for p in state.iterdir() if p.name.startswith(("gate-", "tmp")))


def test_check_gate_leaves_the_persons_index_byte_for_byte(repo: GitRepo, capsys: pytest.CaptureFixture[str]) -> None:
    repo.append("src/app/calc.py", ADD_SUB)
    repo.git("add", "src/app/calc.py")  # staged by the person
    repo.append("tests/test_calc.py", TEST_SUB)  # not staged
    repo.write("src/app/notes.txt", "a note\n")  # untracked
    index = repo.root / ".git" / "index"
    before = index.read_bytes()
    assert main(["-C", str(repo.root), "check", "--gate", "--json"]) == 0
    gate = json.loads(capsys.readouterr().out)["gate"]
    assert gate["passed"] is True  # the tree judged holds all three
    assert repo.git("ls-tree", "-r", "--name-only", gate["tree"], "src/app/notes.txt") == "src/app/notes.txt"
    assert index.read_bytes() == before
    assert repo.status().splitlines() == ["M  src/app/calc.py", " M tests/test_calc.py", "?? src/app/notes.txt"]
    repo.git("switch", "-q", "-c", "other")
    assert repo.git("diff", "--cached", "--name-only").splitlines() == ["src/app/calc.py"]  # only the person's
    assert _state_leftovers(repo) == []


def test_a_same_size_edit_right_after_the_commit_is_in_the_tree(tmp_path: Path) -> None:
    """Racy git: an edit of the same size, in the same second as the index was written. git looks at the content
    only while the index is not newer than the file, so the private index must keep the real one's mtime."""
    for attempt in range(10):
        repo = make_repo(tmp_path / f"r{attempt}")
        path = repo.root / "tests" / "test_calc.py"
        path.write_text(path.read_text().replace("== 3", "== 4"))
        if int(path.stat().st_mtime) == int((repo.root / ".git" / "index").stat().st_mtime):
            break
    time.sleep(1.1)  # the private index is made a second later
    tree = Workspace.open(repo.root).repo.worktree_tree()
    assert repo.git("cat-file", "-p", f"{tree}:tests/test_calc.py") == path.read_text().strip()


def test_a_split_index_is_read_and_nothing_is_left_in_git_dir(repo: GitRepo) -> None:
    repo.git("config", "core.splitIndex", "true")
    repo.git("update-index", "--split-index")
    repo.append("src/app/calc.py", ADD_SUB)
    repo.git("add", "src/app/calc.py")
    for n in range(4):  # enough new entries for git to write a new shared index (splitIndex.maxPercentChange)
        repo.write(f"src/app/notes{n}.txt", "a note\n")
    git_dir = repo.root / ".git"
    before = {p.name: p.read_bytes() for p in git_dir.iterdir() if p.is_file()}
    tree = Workspace.open(repo.root).repo.worktree_tree()
    assert repo.git("ls-tree", "-r", "--name-only", tree).splitlines() == [
        ".env", "README.md", "overnight.toml", "pyproject.toml", "src/app/__init__.py", "src/app/calc.py",
        *(f"src/app/notes{n}.txt" for n in range(4)), "tests/test_calc.py",
    ]  # fmt: skip
    assert {p.name: p.read_bytes() for p in git_dir.iterdir() if p.is_file()} == before


def test_the_gate_fails_no_differently_because_the_index_is_private(repo: GitRepo) -> None:
    repo.append("src/app/calc.py", ADD_SUB)
    repo.git("add", "src/app/calc.py")
    report = run_gate(Workspace.open(repo.root))  # the staged function has no test: unstaged work counts too
    assert not report.passed
    assert repo.git("diff", "--cached", "--name-only").splitlines() == ["src/app/calc.py"]


def test_commit_leaves_the_index_at_the_committed_tree(repo: GitRepo) -> None:
    repo.append("src/app/calc.py", ADD_SUB)
    repo.append("tests/test_calc.py", TEST_SUB)
    repo.git("add", "tests/test_calc.py")  # part of the work staged, part not
    result = commit(Workspace.open(repo.root), "Add sub()")
    assert repo.git("rev-parse", "HEAD^{tree}") == result.tree
    assert repo.index_tree() == result.tree  # what `git status` compares with: nothing staged backwards
    assert repo.status() == ""


def test_person_check_after_init_says_the_setup_is_theirs_to_commit(
    repo: GitRepo, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["-C", str(repo.root), "init", "--force"]) == 0  # rewrites overnight.toml: a protected file
    capsys.readouterr()
    assert main(["-C", str(repo.root), "check"]) == 1  # the verdict is an agent's: no receipt for this tree
    text = capsys.readouterr().out
    assert "overnight.toml" in text and "protected from agents, not from you" in text
    assert "git commit" in text and "rm " not in text and "git checkout" not in text
    assert main(["-C", str(repo.root), "check", "--json"]) == 1
    data = json.loads(capsys.readouterr().out)
    toml = [v for v in data["violations"] if v["path"] == "overnight.toml"]
    assert [v["rule"] for v in toml] == ["protected-path", "too-large"]  # not also "outside the allowed paths"
    assert "git add -A -- overnight.toml && git commit" in toml[0]["fix"]


def test_person_check_gate_words_the_safety_findings_for_the_person(
    repo: GitRepo, capsys: pytest.CaptureFixture[str]
) -> None:
    repo.append("overnight.toml", "\n# mine\n")
    assert main(["-C", str(repo.root), "check", "--gate", "--json"]) == 1
    gate = json.loads(capsys.readouterr().out)["gate"]
    safety = next(c for c in gate["checks"] if c["name"] == "safety")
    assert safety["status"] == "failed" and gate["receipt"] is None
    assert all("rm " not in f["message"] and "git checkout" not in f["message"] for f in safety["findings"])
    assert any("not from you" in f["message"] for f in safety["findings"])


def test_an_agent_in_a_session_is_told_to_undo_the_change(
    repo: GitRepo, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    repo.write(".claude/settings.json", "{}\n")
    repo.append("overnight.toml", "\n# an agent's edit\n")
    monkeypatch.setenv("OVERNIGHT_SESSION_ID", "s-1")
    assert main(["-C", str(repo.root), "check", "--json"]) == 1
    data = json.loads(capsys.readouterr().out)
    fixes = {v["path"]: v["fix"] for v in data["violations"] if v["rule"] == "protected-path"}
    assert "git checkout" in fixes["overnight.toml"]
    assert "rm -- '.claude/settings.json'" in fixes[".claude/settings.json"]
    assert not any("not from you" in v["message"] for v in data["violations"])


def test_person_advice_keeps_every_other_violation_and_quotes_paths() -> None:
    found = [
        Violation(rule="protected-path", path="my setup.toml", message="`my setup.toml` is protected (pattern `x`) "
                  "and was added; only a person may change it", fix="remove it (`rm -- 'my setup.toml'`)"),
        Violation(rule="outside-allowed", path="my setup.toml", message="outside", fix="rm"),
        Violation(rule="outside-allowed", path="other.py", message="outside", fix="rm other"),
        Violation(rule="secret", path="my setup.toml", message="a key", fix="remove the line"),
    ]  # fmt: skip
    advised = advice.for_person(found)
    assert [(v.rule, v.path) for v in advised] == [
        ("protected-path", "my setup.toml"),
        ("outside-allowed", "other.py"),
        ("secret", "my setup.toml"),
    ]
    assert "'my setup.toml'" in advised[0].fix and "only a person" not in advised[0].message


def test_no_gate_folder_is_left_in_the_state_dir_when_a_check_crashes(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "r", config='[gate]\ntest_command = ["no-such-runner-xyz"]\n')
    repo.append("src/app/calc.py", ADD_SUB)
    report = run_gate(Workspace.open(repo.root))
    assert not report.passed
    assert _state_leftovers(repo) == []
