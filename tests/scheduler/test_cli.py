"""The `overnight` command line: called through `main([...])`, and as a real process where git runs it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mcp_servers.core import config
from scheduler.cli import main

from ..conftest import ADD_SUB, TEST_SUB, GitRepo, make_repo


def _json(capsys: pytest.CaptureFixture[str]) -> dict:  # type: ignore[type-arg]
    return json.loads(capsys.readouterr().out)


def test_cli_init_writes_config_plan_and_mcp_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    repo = make_repo(tmp_path / "r")
    assert main(["-C", str(repo.root), "init"]) == 0
    # what it found in the sample (a src layout, tests/, no docs/, no environment of its own) is written in force
    written = config.template({"policy.allowed_paths": ["src/**", "tests/**"], "gate.coverage.source": ["src"]})
    assert (repo.root / "overnight.toml").read_text() == written
    settings = config.load(repo.root)
    assert settings.policy.allowed_paths == ["src/**", "tests/**"] and settings.gate.python == ""
    plan = (repo.root / "PROJECT_PLAN.md").read_text()
    assert "### Ready for Autonomous Execution" in plan and "### Pending Approval" in plan
    servers = json.loads((repo.root / ".mcp.json").read_text())["mcpServers"]
    assert servers["quality"] == {
        "type": "stdio",
        "command": sys.executable,
        "args": ["-I", "-m", "mcp_servers.quality"],
        "env": {},
    }
    assert os.path.isabs(servers["quality"]["command"])
    key = repo.root / ".git" / "overnight" / "key"
    assert key.exists() and oct(key.stat().st_mode)[-3:] == "600"


def test_cli_init_is_idempotent_and_keeps_a_persons_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    repo = make_repo(tmp_path / "r")
    repo.write("PROJECT_PLAN.md", "# my plan\n")
    repo.write("overnight.toml", "[policy]\nmax_changed_lines = 50\n")
    repo.write(".mcp.json", json.dumps({"mcpServers": {"other": {"command": "x"}, "quality": {"command": "mine"}}}))
    assert main(["-C", str(repo.root), "init"]) == 0
    out = capsys.readouterr().out
    assert "kept" in out and "--force" in out
    assert (repo.root / "PROJECT_PLAN.md").read_text() == "# my plan\n"
    assert (repo.root / "overnight.toml").read_text() == "[policy]\nmax_changed_lines = 50\n"
    servers = json.loads((repo.root / ".mcp.json").read_text())["mcpServers"]
    assert servers["quality"] == {"command": "mine"} and servers["other"] == {"command": "x"}
    before = {p: (repo.root / p).read_bytes() for p in ("PROJECT_PLAN.md", "overnight.toml", ".mcp.json")}
    assert main(["-C", str(repo.root), "init"]) == 0  # again: nothing changes
    assert before == {p: (repo.root / p).read_bytes() for p in before}
    assert main(["-C", str(repo.root), "init", "--force"]) == 0
    servers = json.loads((repo.root / ".mcp.json").read_text())["mcpServers"]
    assert servers["quality"]["command"] == sys.executable and servers["other"] == {"command": "x"}
    # what it found in the sample (a src layout, tests/, no docs/, no environment of its own) is written in force
    written = config.template({"policy.allowed_paths": ["src/**", "tests/**"], "gate.coverage.source": ["src"]})
    assert (repo.root / "overnight.toml").read_text() == written
    settings = config.load(repo.root)
    assert settings.policy.allowed_paths == ["src/**", "tests/**"] and settings.gate.python == ""
    assert (repo.root / "PROJECT_PLAN.md").read_text() == "# my plan\n"  # the plan is never replaced


def test_cli_init_refuses_broken_mcp_json_without_force(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    repo = make_repo(tmp_path / "r")
    repo.write(".mcp.json", "{not json")
    assert main(["-C", str(repo.root), "init"]) == 2
    assert "not valid JSON" in capsys.readouterr().err
    assert (repo.root / ".mcp.json").read_text() == "{not json"


def test_cli_doctor_reports_health_and_what_to_do(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    repo = make_repo(tmp_path / "r")
    assert main(["-C", str(repo.root), "doctor", "--json"]) == 1  # no .mcp.json yet
    findings = {f["name"]: f for f in _json(capsys)["findings"]}
    assert findings[".mcp.json"]["status"] == "missing" and "overnight init" in findings[".mcp.json"]["fix"]
    assert findings["config"]["status"] == "warn"
    main(["-C", str(repo.root), "init"])
    capsys.readouterr()
    assert main(["-C", str(repo.root), "doctor", "--json"]) == 0
    findings = {f["name"]: f for f in _json(capsys)["findings"]}
    assert findings["server quality"]["status"] == "ok" and "7 tools" in findings["server quality"]["detail"]
    assert findings["state"]["status"] == "ok" and "key mode 600" in findings["state"]["detail"]
    assert findings["pre-commit hook"]["status"] == "warn"


@pytest.mark.parametrize(
    ("text", "said"),
    [
        ("[gate\nmax_files = 3\n", "overnight.toml: is not valid TOML"),
        ("[gate]\nmax_filez = 3\n", "overnight.toml:2: key `gate.max_filez`: unknown key"),
        ("[gate]\n\nmax_files = \"many\"\n", "overnight.toml:3: key `gate.max_files`: "),
    ],
)
def test_cli_doctor_on_a_broken_config_says_what_is_wrong_and_checks_the_rest(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, said: str
) -> None:
    repo = make_repo(tmp_path / "r")
    repo.write("overnight.toml", text)
    assert main(["-C", str(repo.root), "doctor", "--json"]) == 1
    findings = {f["name"]: f for f in _json(capsys)["findings"]}
    assert findings["config"]["status"] == "error" and said in findings["config"]["detail"]
    assert "fix overnight.toml" in findings["config"]["fix"]
    assert findings["repository"]["status"] == "ok"  # and the rest was checked
    assert {"state", "sandbox", ".mcp.json", "test command", "pre-commit hook"} <= set(findings)
    assert main(["-C", str(repo.root), "doctor"]) == 1  # the table too, without a crash
    assert "config" in capsys.readouterr().out


def test_cli_doctor_outside_a_repository(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["-C", str(tmp_path), "doctor", "--json"]) == 1
    repository = next(f for f in _json(capsys)["findings"] if f["name"] == "repository")
    assert repository["status"] == "error" and "not inside a git repository" in repository["detail"]


def test_cli_check_exit_codes_and_json(repo: GitRepo, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["-C", str(repo.root), "check", "--json"]) == 0
    assert _json(capsys) == {"safe": True, "violations": [], "files": [], "gate": None}
    repo.write(".env", "X=1\n")
    assert main(["-C", str(repo.root), "check", "--json"]) == 1
    data = _json(capsys)
    assert data["safe"] is False and data["gate"] is None
    assert {"rule", "path", "message"} <= set(data["violations"][0])
    assert data["files"][0]["path"] == ".env"
    assert main(["-C", str(repo.root), "check"]) == 1
    text = capsys.readouterr().out
    assert "protected-path" in text and "not safe" in text


def test_cli_check_with_gate(repo: GitRepo, capsys: pytest.CaptureFixture[str]) -> None:
    repo.append("src/app/calc.py", ADD_SUB)
    repo.append("tests/test_calc.py", TEST_SUB)
    assert main(["-C", str(repo.root), "check", "--gate", "--json"]) == 0
    data = _json(capsys)
    assert data["safe"] is True and data["gate"]["passed"] is True and data["gate"]["receipt"]["id"]
    repo.append("src/app/calc.py", "\n\ndef untested(a):\n    return a * 2\n")
    assert main(["-C", str(repo.root), "check", "--gate"]) == 1
    assert "gate failed" in capsys.readouterr().out


def test_cli_check_usage_and_environment_errors_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["-C", str(tmp_path), "check"]) == 2
    assert "not inside a git repository" in capsys.readouterr().err
    repo = make_repo(tmp_path / "r", config="[gate]\nbogus = 1\n")
    assert main(["-C", str(repo.root), "check", "--json"]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and "overnight.toml:2: key `gate.bogus`" in captured.err
    repo.write("overnight.toml", "")
    assert main(["-C", str(repo.root), "check", "--base", "nope"]) == 2
    assert main(["check", "--no-such-flag"]) == 2


def test_cli_check_respects_the_checkpoint_from_the_environment(
    repo: GitRepo, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    checkpoint = repo.head()
    repo.append("src/app/calc.py", ADD_SUB)
    repo.commit("already committed work")
    monkeypatch.setenv("OVERNIGHT_CHECKPOINT", checkpoint)
    assert main(["-C", str(repo.root), "check", "--json"]) == 0
    assert [f["path"] for f in _json(capsys)["files"]] == ["src/app/calc.py"]


def _git_commit(repo: GitRepo) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    return subprocess.run(
        ["git", "commit", "-m", "by hand"], cwd=repo.root, capture_output=True, text=True, env=env, check=False
    )


def test_cli_hook_refuses_a_commit_without_a_receipt(repo: GitRepo, capsys: pytest.CaptureFixture[str]) -> None:
    repo.write(".git/hooks/pre-commit", "#!/bin/sh\necho previous-hook-ran >&2\n", mode=0o755)
    assert main(["-C", str(repo.root), "hooks", "install"]) == 0
    assert (repo.root / ".git/hooks/pre-commit.pre-overnight").exists()
    head = repo.head()
    repo.append("src/app/calc.py", ADD_SUB)
    repo.append("tests/test_calc.py", TEST_SUB)
    repo.git("add", "-A")
    refused = _git_commit(repo)
    assert refused.returncode != 0 and "no passing gate receipt" in refused.stderr
    assert "previous-hook-ran" not in refused.stderr
    assert repo.head() == head
    assert main(["-C", str(repo.root), "check", "--gate"]) == 0
    repo.append("src/app/calc.py", "\n# staged after the gate\n")
    repo.git("add", "-A")
    other_tree = _git_commit(repo)  # the receipt is for the gated tree, not this one
    assert other_tree.returncode != 0 and "no passing gate receipt" in other_tree.stderr
    repo.git("checkout", "-q", "--", ".")
    repo.write(
        "src/app/calc.py", (repo.root / "src/app/calc.py").read_text().replace("\n# staged after the gate\n", "")
    )
    repo.git("add", "-A")
    accepted = _git_commit(repo)
    assert accepted.returncode == 0, accepted.stderr
    assert "has gate receipt" in accepted.stderr and "previous-hook-ran" in accepted.stderr
    assert repo.head() != head


def test_cli_hook_install_is_idempotent_and_uninstall_restores(
    repo: GitRepo, capsys: pytest.CaptureFixture[str]
) -> None:
    repo.write(".git/hooks/pre-commit", "#!/bin/sh\nexit 0\n", mode=0o755)
    assert main(["-C", str(repo.root), "hooks", "install"]) == 0
    assert main(["-C", str(repo.root), "hooks", "install"]) == 0
    assert "already installed" in capsys.readouterr().out
    assert main(["-C", str(repo.root), "hooks", "uninstall"]) == 0
    assert (repo.root / ".git/hooks/pre-commit").read_text() == "#!/bin/sh\nexit 0\n"
    assert not (repo.root / ".git/hooks/pre-commit.pre-overnight").exists()


def test_cli_hook_refuses_a_hooks_path_inside_the_worktree(repo: GitRepo, capsys: pytest.CaptureFixture[str]) -> None:
    repo.git("config", "core.hooksPath", ".husky")
    assert main(["-C", str(repo.root), "hooks", "install"]) == 2
    assert "--force" in capsys.readouterr().err
    assert not (repo.root / ".husky").exists()


def test_cli_version_and_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--version"]) == 0
    assert "overnight, version" in capsys.readouterr().out
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for command in ("init", "doctor", "serve", "check", "health", "hooks"):
        assert command in out


def test_cli_health_reports_hotspots(repo: GitRepo, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["-C", str(repo.root), "health", "--json"]) == 0
    data = _json(capsys)
    assert data["python_files"] == 3 and data["complexity_hotspots"]
    assert any("no coverage measured yet" in n for n in data["notes"])


def test_cli_runs_as_a_module() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "scheduler", "--version"], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0 and "overnight" in result.stdout


def test_cli_init_commit_commits_only_its_own_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    repo = make_repo(tmp_path / "r")
    repo.append("src/app/calc.py", ADD_SUB)  # the person's work in progress stays uncommitted
    repo.append("tests/test_calc.py", TEST_SUB)
    assert main(["-C", str(repo.root), "init"]) == 0
    assert "overnight init --commit" in capsys.readouterr().out  # says what to do with the new files
    head = repo.head()
    assert main(["-C", str(repo.root), "init", "--commit"]) == 0
    assert repo.git("rev-parse", "HEAD^") == head
    assert sorted(repo.git("show", "--name-only", "--format=", "HEAD").splitlines()) == [
        ".mcp.json",
        "PROJECT_PLAN.md",
        "overnight.toml",
    ]
    assert repo.git("diff", "--name-only").splitlines() == ["src/app/calc.py", "tests/test_calc.py"]
    assert main(["-C", str(repo.root), "check", "--gate"]) == 0  # the scaffolding no longer counts as a change


def test_the_cli_starts_without_the_mcp_sdk() -> None:
    """Every shell command (and the pre-commit hook git runs on each commit) starts without importing the MCP SDK,
    which alone took ~0.7 s, a quarter of the gate's fixed cost on a small project (issue 11)."""
    probe = "import sys, scheduler.cli; print(sorted(m for m in sys.modules if m == 'mcp' or m.startswith('mcp.')))"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]", done.stdout
