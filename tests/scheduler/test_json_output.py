"""`--json` on every command that reports something: one JSON document on stdout, nothing else there."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from scheduler.cli import main

from ..conftest import make_repo
from .sessions import make_planned
from .test_run_cli import FAKE_CRONTAB


def _json(capsys: pytest.CaptureFixture[str], *argv: str, code: int = 0) -> Any:
    assert main(list(argv)) == code, capsys.readouterr().err
    return json.loads(capsys.readouterr().out)


def test_init_and_hooks_print_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    repo = make_repo(tmp_path / "r")
    at = ("-C", str(repo.root))
    made = _json(capsys, *at, "init", "--json")
    assert {f["path"] for f in made["files"]} >= {"overnight.toml", "PROJECT_PLAN.md", ".mcp.json"}
    assert made["state_dir"] and made["commit"] is None
    assert _json(capsys, *at, "hooks", "status", "--json", code=1)["installed"] is False
    installed = _json(capsys, *at, "hooks", "install", "--json")
    assert installed["result"] == "installed" and installed["installed"] is True
    assert installed["path"].endswith("pre-commit")
    assert _json(capsys, *at, "hooks", "status", "--json")["installed"] is True
    uninstalled = _json(capsys, *at, "hooks", "uninstall", "--json")
    assert uninstalled == {"path": installed["path"], "result": "removed", "installed": False}


def test_cron_prints_json(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    tool = tmp_path / "bin" / "crontab"
    tool.parent.mkdir()
    tool.write_text(FAKE_CRONTAB)
    tool.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tool.parent}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("CRONTAB_FILE", str(tmp_path / "crontab.txt"))
    repo = make_planned(tmp_path / "r")
    at = ("-C", str(repo.root))
    assert _json(capsys, *at, "cron", "show", "--json", code=1)["line"] is None
    installed = _json(capsys, *at, "cron", "install", "--json")
    assert installed["action"] == "added" and installed["line"].startswith("0 2 * * * cd ")
    assert installed["env_file"] and installed["log"] and "created" in installed["env_note"]
    shown = _json(capsys, *at, "cron", "show", "--json")
    assert shown["line"] == installed["line"] and shown["log"] == installed["log"]
    assert _json(capsys, *at, "cron", "remove", "--json")["removed"] is True
    assert _json(capsys, *at, "cron", "remove", "--json")["removed"] is False


def test_plan_edits_print_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    repo = make_planned(tmp_path / "r")
    at = ("-C", str(repo.root))
    rejected = _json(capsys, *at, "plan", "reject", "sub", "--reason", "later", "--json")
    assert rejected["changed"] is True and rejected["section"] == "not-ready"
    assert rejected["commit"] == repo.head()
    approved = _json(capsys, *at, "plan", "approve", "sub", "--no-commit", "--json")
    assert approved["changed"] is True and approved["commit"] is None and "commit it" in approved["message"]
    again = _json(capsys, *at, "plan", "approve", "sub", "--json")
    assert again["changed"] is False
    reset = _json(capsys, *at, "plan", "reset", "sub", "--json")
    assert reset["task_id"] == "sub" and reset["message"]


def test_memory_and_the_kill_switch_print_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    repo = make_planned(tmp_path / "r")
    at = ("-C", str(repo.root))
    added = _json(capsys, *at, "memory", "add", "the parser is slow on big files", "--json")
    assert isinstance(added["id"], int)
    records = _json(capsys, *at, "memory", "export", "--json")
    assert any(r.get("text") == "the parser is slow on big files" for r in records), records
    target = tmp_path / "memory.jsonl"
    written = _json(capsys, *at, "memory", "export", "-o", str(target), "--json")
    assert written == {"path": str(target), "records": len(records)}
    other = make_planned(tmp_path / "other")
    imported = _json(capsys, "-C", str(other.root), "memory", "import", str(target), "--json")
    assert imported["entries"] >= 1
    stopped = _json(capsys, *at, "stop", "--json")
    assert stopped["kill_switch"] is True and "kill switch set" in stopped["message"]
    assert _json(capsys, *at, "resume", "--json")["kill_switch"] is False
