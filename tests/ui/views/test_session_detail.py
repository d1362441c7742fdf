"""One session in detail, from a real replay session: the kept diff from git, the gate's checks, the branch's
state and what merge and discard would do; security events first (issue 14)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from mcp_servers.core.errors import UsageError
from mcp_servers.core.models import CheckResult, Finding
from mcp_servers.core.workspace import Workspace
from scheduler import morning, report
from scheduler.ui.views import sessions

from ...scheduler.sessions import make_planned, passing, plan, run_session, write_script

FAKE_KEY = "sk-ant-api03-" + "Zz9" * 30  # the shape of an Anthropic key, random enough to be found


def test_a_real_session_in_detail_then_discarded(tmp_path: Path) -> None:
    repo = make_planned(tmp_path / "r", plan(("sub", "Add sub()")))
    script = write_script(tmp_path / "s.toml", passing("sub", "sub"))
    record, said = run_session(repo, script)
    assert record.outcome not in report.REFUSED, (record.problems, said)
    ws = Workspace.open(repo.root, environ=dict(os.environ))
    view = sessions.session_detail(ws, record.id)
    assert list(view.model_dump())[:2] == ["security_events", "held"]  # said first, whatever else there is
    assert view.security_events == [] and not view.unsandboxed
    [sub] = view.tasks
    assert (sub.task_id, sub.outcome, sub.agent) == ("sub", "passed", "replay"), said
    assert [c.name for c in sub.checks] and all(c.status != "failed" for c in sub.checks)
    [kept] = [c for c in sub.commits if "calc.py" in c.diff]
    assert kept.subject == "Add sub()" and "+def sub(a, b):" in kept.diff and not kept.missing
    assert repo.git("rev-parse", kept.sha) == kept.sha
    branch = view.branch
    assert branch.state == "exists" and branch.branch == record.branch and branch.commits >= 1
    merge, discard = branch.actions
    assert merge.name == "merge" and merge.possible and merge.problems == [], merge
    assert "into main by a fast-forward" in merge.would
    assert discard.possible and discard.would.startswith(f"delete {record.branch} (at {branch.tip[:12]})")
    assert repo.git("rev-parse", "main") == record.base_commit  # looking changed nothing
    # a commit on the branch that the session did not verify: merge would refuse, and says why
    repo.git("branch", "-f", "side", record.branch)
    repo.git("worktree", "add", "-q", str(tmp_path / "side"), "side")
    (tmp_path / "side" / "extra.txt").write_text("not verified\n")
    repo.git("-C", str(tmp_path / "side"), "add", "extra.txt")
    repo.git("-C", str(tmp_path / "side"), "commit", "-qm", "by hand")
    repo.git("update-ref", f"refs/heads/{record.branch}", repo.git("rev-parse", "side"))
    refused = sessions.session_detail(ws, record.id).branch.actions[0]
    assert not refused.possible and any("is not one the session verified" in p for p in refused.problems)
    # discarded: the state says so, and the kept commit's diff is still shown while git has it
    morning.discard(ws, record.id)
    after = sessions.session_detail(ws, record.id)
    assert after.branch.state == "discarded" and after.branch.actions == [] and "discarded" in after.branch.note
    assert any("+def sub(a, b):" in c.diff for c in after.tasks[0].commits)


def test_security_events_held_secrets_and_bad_ids(tmp_path: Path) -> None:
    repo = make_planned(tmp_path / "r")
    ws = Workspace.open(repo.root, environ=dict(os.environ))
    check = CheckResult(name="tests", status="failed", summary=f"1 failed: printed {FAKE_KEY}",
                        findings=[Finding(message=f"assert token == {FAKE_KEY!r}")])  # fmt: skip
    task = report.TaskRecord(task_id="t", title="<b>t</b>", outcome="failed", started="x",
                             security_events=["~/.ssh/config changed; put back"], held=["write to /etc/x"],
                             commits=["0" * 40], reasons=[f"the gate failed: {FAKE_KEY}"], checks=[check],
                             refused=[f"Bash: curl -H 'x-api-key: {FAKE_KEY}' (refused)"])  # fmt: skip
    record = report.SessionRecord(id="2026-12-05-abcdef", repo="r", branch="overnight/2026-12-05-abcdef",
                                  started="2026-12-05T22:00:00+00:00", outcome="completed", sandbox="off",
                                  security_events=["hooks changed"], tasks=[task])  # fmt: skip
    report.save(ws.state_dir, record)
    view = sessions.session_detail(ws, record.id)
    assert view.security_events == ["hooks changed", "task t: ~/.ssh/config changed; put back"]
    assert view.held == ["task t: write to /etc/x"] and view.unsandboxed
    assert view.tasks[0].commits == []  # a failed task's commits were rolled back: no diff is shown
    assert FAKE_KEY not in view.model_dump_json() and "[REDACTED:" in view.tasks[0].reasons[0]
    assert view.tasks[0].title == "<b>t</b>"  # as written (the page escapes it)
    assert view.branch.state == "gone" and view.branch.actions == []
    # a kept commit git no longer has is marked missing; a secret in a kept diff is redacted
    repo.write("src/app/keys.py", f'TOKEN = "{FAKE_KEY}"\n')
    sha = repo.commit("keys")
    task.outcome, task.commits = "passed", ["0" * 40, sha]
    report.save(ws.state_dir, record)
    missing, shown = sessions.session_detail(ws, record.id).tasks[0].commits
    assert missing.missing and not missing.diff
    assert "keys.py" in shown.diff and FAKE_KEY not in shown.diff and "REDACTED" in shown.diff
    for bad in ("../../etc/passwd", "-x", ""):
        with pytest.raises(UsageError, match="is not a session id"):
            sessions.session_detail(ws, bad)
    with pytest.raises(UsageError, match="there is no report for session"):
        sessions.session_detail(ws, "2026-12-05-ffffff")
