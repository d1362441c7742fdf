"""When `overnight daemon` is done: the completion criteria of `[daemon] complete_when`, each judged from the
plan on the base branch, the task states in `state.db`, and the tests run on the base branch's tree.

- `all-approved-done`: every task in the plan's ready (approved) section is done, or done on a session branch
  waiting for review, or cancelled.
- `no-open-p0`: no task of priority P0, in any section, is open (not done, in review or cancelled).
- `tests-pass-on-base`, `coverage>=N`: the gate's own `tests` check run on an export of the base branch's tree, in
  the sandbox as the gate runs it (code an agent wrote never runs outside it); the coverage is that run's total,
  measured, never a figure read from a file a session could write. One run per base commit serves both.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

from mcp_servers.core import queue
from mcp_servers.core.errors import OvernightError
from mcp_servers.core.gate.trial import Trial, run_tests_on_head
from mcp_servers.core.queue_models import TaskSummary
from mcp_servers.core.workspace import Workspace

from . import worktree

CLOSED = frozenset({"done", "review", "cancelled"})
SESSION = "overnight-daemon"  # the session name the queue is asked under (it holds no claim)


@dataclass(frozen=True)
class Verdict:
    criterion: str
    held: bool
    detail: str


@dataclass
class Completion:
    """The criteria, judged; the base's test run remembered per base commit (it is slow)."""

    criteria: list[str]
    trial: Callable[[Workspace, str], Trial] = run_tests_on_head
    _trials: dict[str, Trial] = field(default_factory=dict)

    def judge(self, ws: Workspace, *, cheap: bool = False) -> list[Verdict]:
        """Each criterion's verdict; with `cheap`, the tests are not run (a status report), a known run is used."""
        tasks: list[TaskSummary] | None = None
        verdicts = []
        for criterion in self.criteria:
            try:
                if criterion in {"all-approved-done", "no-open-p0"}:
                    tasks = tasks if tasks is not None else all_tasks(ws)
                    verdicts.append(_plan_verdict(criterion, tasks))
                else:
                    verdicts.append(self._tests_verdict(ws, criterion, cheap))
            except OvernightError as e:  # a plan that does not parse, a detached HEAD: not complete, and why
                verdicts.append(Verdict(criterion, False, f"could not be judged: {e}"))
        return verdicts

    def complete(self, ws: Workspace) -> tuple[bool, list[Verdict]]:
        """Whether every criterion holds (never with none configured). The cheap ones first: the tests run only
        when the others hold."""
        if not self.criteria:
            return False, []
        order = sorted(self.criteria, key=lambda c: c.startswith(("coverage", "tests")))
        verdicts: list[Verdict] = []
        for criterion in order:
            verdict = Completion([criterion], self.trial, self._trials).judge(ws)[0]
            verdicts.append(verdict)
            if not verdict.held:
                return False, verdicts
        return True, verdicts

    def _tests_verdict(self, ws: Workspace, criterion: str, cheap: bool) -> Verdict:
        _name, commit = worktree.base_commit(ws)
        trial = self._trials.get(commit)
        if trial is None and cheap:
            return Verdict(criterion, False, f"not measured yet on the base ({commit[:12]})")
        if trial is None:
            trial = self._trials[commit] = self.trial(ws, commit)
        if criterion == "tests-pass-on-base":
            return Verdict(criterion, trial.passed, f"the tests on the base ({commit[:12]}): {trial.summary}")
        least = float(re.sub(r"^coverage>=", "", criterion))
        if trial.coverage is None:
            why = trial.coverage_missing or "the test run measured no coverage"
            return Verdict(criterion, False, f"coverage on the base ({commit[:12]}) not measured: {why}")
        detail = f"coverage on the base ({commit[:12]}): {trial.coverage:.2f}% (at least {least:g}%)"
        return Verdict(criterion, trial.coverage >= least, detail)


def all_tasks(ws: Workspace) -> list[TaskSummary]:
    """Every task of the plan with its state, page by page."""
    found: list[TaskSummary] = []
    cursor: str | None = None
    while True:
        page = queue.list_tasks(ws, SESSION, limit=queue.MAX_LIST, cursor=cursor)
        found += page.tasks
        if page.next_cursor is None:
            return found
        cursor = page.next_cursor


def open_approved(tasks: list[TaskSummary]) -> list[TaskSummary]:
    return [t for t in tasks if t.section == "ready" and t.state not in CLOSED]


def _plan_verdict(criterion: str, tasks: list[TaskSummary]) -> Verdict:
    if criterion == "all-approved-done":
        left = open_approved(tasks)
        approved = sum(t.section == "ready" for t in tasks)
        if left:
            named = ", ".join(f"{t.id} ({t.state})" for t in left[:10])
            return Verdict(criterion, False, f"{len(left)} of {approved} approved task(s) not done: {named}")
        return Verdict(criterion, True, f"all {approved} approved task(s) done")
    p0 = [t for t in tasks if t.priority.strip().upper() == "P0" and t.state not in CLOSED]
    if p0:
        return Verdict(criterion, False, f"{len(p0)} open P0 task(s): {', '.join(t.id for t in p0[:10])}")
    return Verdict(criterion, True, "no open P0 task")
