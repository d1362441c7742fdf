"""The daemon's completion criteria, judged on a real repository: the plan on the base branch, the task states,
and the gate's own test run on the base branch's tree (sandboxed)."""

from __future__ import annotations

from pathlib import Path

from mcp_servers.core.gate.trial import Trial, run_tests_on_head
from mcp_servers.core.workspace import Workspace
from scheduler.completion import Completion

from .sessions import GOOD, SCOPE, make_planned, plan


def _plan_with_p0() -> str:
    ready = f"- **[sub]** Add sub()\n  - Priority: P1\n{GOOD}{SCOPE}"
    pending = f"- **[fix]** Fix the crash\n  - Priority: P0\n{GOOD}{SCOPE}"
    return (f"# Plan\n\n## Task Queue\n\n### Ready for Autonomous Execution ✅\n{ready}\n"
            f"### Pending Approval ⏳\n{pending}\n")  # fmt: skip


def test_plan_criteria_name_what_is_left(tmp_path: Path) -> None:
    repo = make_planned(tmp_path / "r", _plan_with_p0())
    ws = Workspace.open(repo.root)
    done, verdicts = Completion(["all-approved-done", "no-open-p0"]).complete(ws)
    assert not done
    assert [(v.criterion, v.held) for v in verdicts] == [("all-approved-done", False)]  # the first that fails
    assert verdicts[0].detail == "1 of 1 approved task(s) not done: sub (ready)"
    [p0] = Completion(["no-open-p0"]).judge(ws)
    assert not p0.held and p0.detail == "1 open P0 task(s): fix"  # a P0 waiting for approval is still open
    assert Completion([]).complete(ws) == (False, [])  # no criteria: never complete


def test_test_criteria_run_the_gate_tests_on_the_base_once_per_commit(tmp_path: Path) -> None:
    repo = make_planned(tmp_path / "r", plan(("sub", "Add sub()")))
    ws = Workspace.open(repo.root)
    runs: list[str] = []

    def counted(ws: Workspace, commit: str) -> Trial:
        runs.append(commit)
        return run_tests_on_head(ws, commit)

    criteria = Completion(["tests-pass-on-base", "coverage>=50", "coverage>=100"], trial=counted)
    assert [v.held for v in criteria.judge(ws, cheap=True)] == [False, False, False]
    assert runs == []  # a status report never runs the tests
    judged = {v.criterion: v for v in criteria.judge(ws)}
    assert judged["tests-pass-on-base"].held, judged
    assert judged["coverage>=50"].held and "at least 50%" in judged["coverage>=50"].detail
    assert not judged["coverage>=100"].held or "100.00%" in judged["coverage>=100"].detail
    assert runs == [repo.head()]
    # the base moves on with a broken test: measured again, and it no longer passes
    repo.write("tests/test_broken.py", "def test_broken():\n    assert 1 == 2\n")
    repo.commit("a broken test")
    judged = {v.criterion: v for v in criteria.judge(ws)}
    assert not judged["tests-pass-on-base"].held and repo.head()[:12] in judged["tests-pass-on-base"].detail
    assert runs[-1] == repo.head() and len(runs) == 2
