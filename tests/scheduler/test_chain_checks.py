"""Every agent of a fallback chain checked before the night (issue 13): `overnight run --dry-run` (text and
`--json`) and the session's preflight say, per agent of the chain, whether it can run: the first agent's problems
stop the session, a fallback's leave it out of the chain with a warning (a fallback whose settings are wrong stops
the session, as the first's would); a budget an agent's prices cannot enforce is said too."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from mcp_servers.core.workspace import Workspace
from scheduler import runner
from scheduler.agents import registry
from scheduler.cli import main

from ..conftest import GitRepo
from .sessions import PASS, make_planned, task_script, write_script


def _fake_codex(folder: Path) -> Path:
    """A stand-in for the Codex CLI that answers `--version` only (nothing here runs it further)."""
    folder.mkdir(parents=True, exist_ok=True)
    exe = folder / "codex"
    exe.write_text("#!/bin/sh\necho 'codex-cli 0.171.0'\n")
    exe.chmod(0o755)
    return exe


def _repo(tmp_path: Path, chain: str, tables: str = "", scheduler: str = "") -> tuple[GitRepo, Path]:
    script = write_script(tmp_path / "s.toml", task_script("*", PASS.format(name="sub")))
    config = f'max_tasks = 1\nagents = {chain}\nreplay_script = "{script}"\n{scheduler}\n{tables}'
    return make_planned(tmp_path / "r", scheduler=config), script


def _dry(repo: GitRepo, capsys: pytest.CaptureFixture[str]) -> tuple[int, dict[str, object], str]:
    code = main(["-C", str(repo.root), "run", "--dry-run", "--json"])
    data = json.loads(capsys.readouterr().out)
    main(["-C", str(repo.root), "run", "--dry-run"])
    return code, data, capsys.readouterr().out


def test_dry_run_says_of_each_agent_of_the_chain_whether_it_can_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    codex = _fake_codex(tmp_path / "bin")
    tables = (f'[agents.command]\nargv = ["no-such-agent-cli"]\n\n[agents.codex]\ncommand = "{codex}"\n'
              'base_url = "http://127.0.0.1:9/v1"\n')  # fmt: skip
    repo, _ = _repo(tmp_path, '["replay", "command", "codex"]', tables, scheduler="max_budget_usd = 2")
    code, data, text = _dry(repo, capsys)
    assert code == 0 and data["problems"] == [] and [t["id"] for t in data["tasks"]] == ["sub"]  # type: ignore[index]
    members = {m["agent"]: m for m in data["agents"]}  # type: ignore[attr-defined]
    assert list(members) == ["replay", "command", "codex"]
    assert members["replay"]["role"] == "first" and members["replay"]["can_run"] is True
    assert members["command"]["role"] == "fallback" and members["command"]["can_run"] is False
    assert "no-such-agent-cli" in members["command"]["problems"][0]
    assert members["codex"]["can_run"] is True and "is not enforced" in members["codex"]["warnings"][0]
    [left_out, unpriced] = data["warnings"]  # type: ignore[misc]
    assert left_out.startswith("agent command (fallback): cannot run (it would be left out of the chain")
    assert unpriced.startswith("agent codex: the budget per task (`max_budget_usd = 2` under [scheduler]) is not")
    assert "agent replay (the first of the chain): can run" in text and "agent codex (fallback): can run" in text
    assert "agent command (fallback): cannot run" in " ".join(text.split())
    assert "warning: agent codex: the budget per task" in " ".join(text.split())


def test_dry_run_and_preflight_stop_on_the_first_agent_or_a_fallback_with_wrong_settings(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    codex = _fake_codex(tmp_path / "bin")
    tables = f'[agents.command]\nargv = ["no-such-agent-cli"]\n\n[agents.codex]\ncommand = "{codex}"\n'
    tables += 'base_url = "http://127.0.0.1:9/v1"\nmax_budget_usd = 1\n'  # its own budget, no prices: refused
    repo, _ = _repo(tmp_path, '["command", "codex", "replay"]', tables)
    code, data, text = _dry(repo, capsys)
    assert code == 1 and "no-such-agent-cli" in data["problems"][0]  # type: ignore[index]
    [unpriced] = data["warnings"]  # type: ignore[misc]
    assert unpriced.startswith("agent codex (fallback): cannot run (it would be left out")
    assert "`max_budget_usd = 1` under [agents.codex] cannot be enforced" in unpriced
    assert "would not start" in text
    # the session's preflight: refused, and says which agent of the chain it was
    ws = Workspace.open(repo.root, environ=dict(os.environ))
    agent = registry.make("command", ws.settings.scheduler, repo.root, None, ws.settings.agents)
    record = runner.Runner(ws, agent, say=lambda _l: None).run()
    assert record is not None and record.outcome == "preflight-failed"
    assert record.problems[0].startswith("agent command (the first of the chain): ") and "no-such-agent-cli" in \
        record.problems[0]  # fmt: skip
    # a fallback that cannot be built (the replay agent without a script) refuses the dry run as the session
    broken = make_planned(tmp_path / "r2", scheduler='max_tasks = 1\nagents = ["codex", "replay"]\n\n[agents.codex]\n'
                          f'command = "{codex}"\nbase_url = "http://127.0.0.1:9/v1"\n')  # fmt: skip
    code, data, _ = _dry(broken, capsys)
    assert code == 1 and data["agents"][1]["refuses"] is True  # type: ignore[index]
    assert "agent replay (fallback): cannot run (the session would not start): the replay agent needs a script" in \
        data["problems"][0]  # type: ignore[index]  # fmt: skip


def test_the_session_warns_of_a_fallback_left_out_and_of_a_budget_not_enforced(tmp_path: Path) -> None:
    codex = _fake_codex(tmp_path / "bin")
    tables = (f'[agents.command]\nargv = ["no-such-agent-cli"]\n\n[agents.codex]\ncommand = "{codex}"\n'
              'base_url = "http://127.0.0.1:9/v1"\n')  # fmt: skip
    repo, script = _repo(tmp_path, '["replay", "command", "codex"]', tables, scheduler="max_budget_usd = 2")
    ws = Workspace.open(repo.root, environ=dict(os.environ))
    agent = registry.make("replay", ws.settings.scheduler, repo.root, script, ws.settings.agents)
    record = runner.Runner(ws, agent, say=lambda _l: None).run()
    assert record is not None and record.tasks[0].outcome == "passed"
    assert record.agents == ["replay", "codex"]  # the command agent left out, codex kept
    assert any(w.startswith("agent command was left out of the fallback chain") for w in record.warnings)
    assert any(w.startswith("agent codex: the budget per task") for w in record.warnings), record.warnings
