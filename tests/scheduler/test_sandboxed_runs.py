"""`overnight run` and its sandbox: fail closed where none can be made, say so first when a person turned it off."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from click.testing import CliRunner

from mcp_servers.core.workspace import Workspace
from scheduler import report, runner
from scheduler.agents.replay import ReplayAgent
from scheduler.cli import cli

from .sessions import Person, make_planned, passing, run_session, write_script


def test_run_refuses_to_start_where_no_sandbox_can_be_made(tmp_path: Path) -> None:
    repo = make_planned(tmp_path / "r", scheduler="max_tasks = 1\n")
    person = Person.of(repo)
    tools = tmp_path / "bin"  # everything a session needs on PATH, except bubblewrap
    tools.mkdir()
    for name in ("git", "python3", "sh"):
        found = shutil.which(name)
        assert found is not None
        (tools / name).symlink_to(found)
    env = {**os.environ, "PATH": str(tools)}
    script = write_script(tmp_path / "s.toml", passing("sub", "sub"))
    said: list[str] = []
    record = runner.Runner(Workspace.open(repo.root, environ=env), ReplayAgent(script), say=said.append).run()
    assert record is not None and record.outcome == "preflight-failed"
    assert any("no sandbox can be made" in p and "bubblewrap" in p and 'sandbox = "off"' in p
               for p in record.problems), record.problems  # fmt: skip
    assert record.tasks == [] and not record.branch
    person.assert_untouched(repo)


def test_an_unsandboxed_night_says_so_first_in_its_report_and_status(tmp_path: Path) -> None:
    repo = make_planned(tmp_path / "r", scheduler='max_tasks = 1\nsandbox = "off"\n')
    script = write_script(tmp_path / "s.toml", passing("sub", "sub"))
    record, said = run_session(repo, script)
    assert [t.outcome for t in record.tasks] == ["passed"], said
    state = Workspace.open(repo.root).state_dir
    text = (state / "reports" / f"{record.id}.md").read_text()
    assert text.splitlines()[0] == report.UNSANDBOXED
    shown = CliRunner().invoke(cli, ["-C", str(repo.root), "status"])
    assert shown.exit_code == 0 and shown.output.splitlines()[0].startswith("unsandboxed:"), shown.output


def test_a_sandboxed_night_does_not_say_it_ran_unsandboxed(tmp_path: Path) -> None:
    repo = make_planned(tmp_path / "r", scheduler="max_tasks = 1\n")
    script = write_script(tmp_path / "s.toml", passing("sub", "sub"))
    record, said = run_session(repo, script)
    assert [t.outcome for t in record.tasks] == ["passed"], said
    text = (Workspace.open(repo.root).state_dir / "reports" / f"{record.id}.md").read_text()
    assert record.sandbox == "bwrap" and "unsandboxed" not in text
