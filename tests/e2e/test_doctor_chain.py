"""`overnight doctor` names every agent of a fallback chain (issue 13's proof), with the real CLIs: each agent, its
place in the chain, whether its CLI is installed (its version) and authenticated, and what to do; here the Codex
CLI is not on PATH, Claude Code and the Gemini CLI are. A budget its prices cannot enforce has a line of its own."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from scheduler.cli import main

from ..scheduler.sessions import make_planned
from ..support.fake_gemini import DUMMY_API_KEY
from .conftest import _client

pytestmark = pytest.mark.e2e


def test_doctor_names_each_agent_of_the_chain_with_a_cli_missing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in ("claude", "gemini"):  # not codex
        (bin_dir / name).symlink_to(_client(name).resolve())
    home = tmp_path / "home"
    home.mkdir()
    path = os.pathsep.join([str(bin_dir), str(Path(sys.executable).parent), "/usr/bin", "/bin"])
    monkeypatch.setenv("PATH", path)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-fake-offline")
    monkeypatch.setenv("GEMINI_API_KEY", DUMMY_API_KEY)
    for name in ("OPENAI_API_KEY", "CODEX_API_KEY", "CODEX_HOME", "GOOGLE_API_KEY", "GEMINI_CLI_HOME"):
        monkeypatch.delenv(name, raising=False)
    repo = make_planned(tmp_path / "r", scheduler='agents = ["claude", "codex", "gemini"]\nmax_budget_usd = 2\n\n'
                        '[agents.codex]\nmax_budget_usd = 1\n')  # fmt: skip
    main(["-C", str(repo.root), "doctor", "--json"])
    findings = {f["name"]: f for f in json.loads(capsys.readouterr().out)["findings"]}
    claude, codex, gemini = (findings[f"agent {n}"] for n in ("claude", "codex", "gemini"))
    assert claude["status"] == "ok" and "Claude Code (sessions start with it): 2.1.330" in claude["detail"]
    assert "authenticated" in claude["detail"]
    assert codex["status"] == "warn" and codex["detail"].startswith(
        "Codex CLI (fallback 1 of the chain): not installed"
    )
    assert "npm install -g @openai/codex@0.171.0" in codex["fix"]
    assert gemini["status"] == "ok" and gemini["detail"].startswith("Gemini CLI (fallback 2 of the chain): Gemini CLI")
    # codex's own budget cannot be priced: an error; gemini's, from [scheduler]: a warning; claude's CLI enforces it
    assert findings["agent codex budget"]["status"] == "error"
    assert "`max_budget_usd = 1` under [agents.codex] cannot be enforced" in findings["agent codex budget"]["detail"]
    assert "input_usd_per_mtok" in findings["agent codex budget"]["fix"]
    assert findings["agent gemini budget"]["status"] == "warn" and "agent claude budget" not in findings
