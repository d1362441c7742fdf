"""Readiness: each task's state and, unless it is runnable, why, from the plans, state.db and git."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from . import db, taskstore
from . import plan as P
from .plan_store import Clock, Plans, load
from .policy import check_task
from .queue_models import (
    ClaimInfo,
    CompletionInfo,
    NextTask,
    State,
    TaskDetail,
    TaskSummary,
)
from .workspace import Workspace

# -- judging tasks --------------------------------------------------------------------------------------------


@dataclass
class _Verdict:
    state: State
    why: str | None = None
    runnable: bool = False  # ready, or claimed by the asking session (which resumes it)


class _Judge:
    """Decides each task's state, with the reason, from the plans, the database and git."""

    def __init__(self, ws: Workspace, plans: Plans, session: str, now: float) -> None:
        self.ws, self.plans, self.session, self.now = ws, plans, session, now
        with ws.db() as conn:
            self.states = taskstore.states(conn, now)
        self.head = ws.repo.head()
        self._verdicts: dict[tuple[str, bool], _Verdict] = {}
        self._done: dict[str, tuple[bool, str | None]] = {}

    def state(self, task_id: str) -> taskstore.TaskState:
        return self.states.get(task_id) or taskstore.TaskState()

    def on_this_branch(self, commit: str) -> bool:
        return bool(self.head) and self.ws.repo.is_ancestor(commit, self.head or "HEAD")

    def done(self, task: P.Task) -> tuple[bool, str | None]:
        """(done here, where else it was done): by the base plan's Status, or a completion in HEAD's history."""
        if task.id not in self._done:
            where = None
            result = task.status == "done"
            for c in self.state(task.id).completions:
                if self.on_this_branch(c.commit):
                    result = True
                else:
                    where = c.branch
            self._done[task.id] = (result, where)
        return self._done[task.id]

    def verdict(self, task_id: str, *, check_safety: bool = True) -> _Verdict:
        """The task's state and, unless it is runnable, why: the first check that holds it back. Remembered."""
        key = (task_id, check_safety)
        found = self._verdicts.get(key)
        if found is None:
            found = self._verdicts[key] = self._verdict(task_id, check_safety)
        return found

    def _verdict(self, task_id: str, check_safety: bool) -> _Verdict:
        task = self.plans.base_task(task_id)
        if task is None:
            return _Verdict("pending-approval", f"pending approval: not in the plan on {self.plans.base_ref} yet")
        checks = [self._approval, self._progress, self._held, self._blockers, self._claims, self._attempts]
        if check_safety:
            checks.append(self._safety)
        for check in checks:
            held = check(task)
            if held is not None:
                return held
        return _Verdict("claimed" if self.state(task.id).claim else "ready", runnable=True)

    def _approval(self, task: P.Task) -> _Verdict | None:
        if task.section == "pending":
            tests = task.get("tests_defined") if task.tests_defined is False else None
            why = "pending approval" + (f"; tests not defined yet ({tests})" if tests else "")
            return _Verdict("pending-approval", why)
        if task.section != "ready":
            return _Verdict("not-ready", "not ready" + (f": {task.get('reason')}" if task.get("reason") else ""))
        return None

    def _progress(self, task: P.Task) -> _Verdict | None:
        if task.status == "cancelled":
            return _Verdict("cancelled", "cancelled")
        done, elsewhere = self.done(task)
        if done:
            return _Verdict("done")
        if elsewhere:
            return _Verdict("review", f"done on branch {elsewhere}, which is not merged here yet")
        return None

    def _held(self, task: P.Task) -> _Verdict | None:
        """Fail closed on what the plan says about approval and safety: a value that cannot be read, a Safety
        check that failed, an Auto-approved that says no."""
        if task.held:
            name, why = next(iter(task.held.items()))
            return _Verdict("unsafe", f"unclear {name.replace('_', ' ')}: {why}; fix the task in {self.plans.path}")
        if task.safety_check == "failed":
            return _Verdict("unsafe", f"unsafe: the plan's Safety check says {task.get('safety_check')!r}")
        if task.auto_approved is False:
            return _Verdict("pending-approval", f"not approved: Auto-approved says {task.get('auto_approved')!r}")
        return None

    def _blockers(self, task: P.Task) -> _Verdict | None:
        if task.status == "blocked":
            return _Verdict("blocked", "blocked: marked BLOCKED in the plan")
        blocked = self.state(task.id).blocked
        if blocked:
            return _Verdict("blocked", f"blocked by an agent: {blocked}")
        waiting = self._waiting_for(task)
        return _Verdict("blocked", "blocked by " + "; ".join(waiting)) if waiting else None

    def _claims(self, task: P.Task) -> _Verdict | None:
        claim = self.state(task.id).claim
        if claim and claim.session != self.session:
            return _Verdict("claimed", f"claimed by {claim.session} until {taskstore.iso(claim.expires_at)}")
        return None

    def _attempts(self, task: P.Task) -> _Verdict | None:
        state = self.state(task.id)
        if state.failures < self.ws.settings.plan.max_attempts:
            return None
        last = f" (last: {state.last_failure})" if state.last_failure else ""
        return _Verdict("failed", f"failed {state.failures} times{last}; `overnight plan reset {task.id}` retries it")

    def _safety(self, task: P.Task) -> _Verdict | None:
        unsafe = self.unsafe(task)
        return _Verdict("unsafe", f"unsafe: {unsafe}") if unsafe else None

    def _waiting_for(self, task: P.Task) -> list[str]:
        waiting = []
        for dep_id in task.depends_on:
            dep = self.plans.base_task(dep_id)
            if dep is None:
                waiting.append(f"{dep_id} (not in the plan)")
            elif dep.status == "cancelled":
                waiting.append(f"{dep_id} (cancelled: drop the dependency or reopen it)")
            else:
                done, elsewhere = self.done(dep)
                if not done:
                    waiting.append(f"{dep_id} (done on {elsewhere}, not merged here)" if elsewhere else f"{dep_id}")
        return waiting

    def unsafe(self, task: P.Task) -> str | None:
        found = check_task(
            self.ws.settings,
            task.text,
            estimated_lines=task.estimated_lines,
            alignment_score=task.alignment_score,
            tests_defined=task.tests_defined,
            files=list(task.files),
            task_id=task.id,
        )
        return ", ".join(dict.fromkeys(v.rule for v in found.violations)) or None

    # -- views ----------------------------------------------------------------------------------------------

    def summary(self, task: P.Task, verdict: _Verdict | None = None) -> TaskSummary:
        verdict = verdict or self.verdict(task.id)
        base = self.plans.base_task(task.id)
        working = self.plans.working.by_id.get(task.id) if self.plans.working else None
        shown = base or task
        return TaskSummary(
            id=task.id,
            title=shown.title,
            section=base.section if base else None,
            state=verdict.state,
            priority=f"P{shown.priority}",
            depends_on=list(shown.depends_on),
            line=working.line if working else None,
            why=verdict.why,
        )

    def detail(self, task: P.Task) -> TaskDetail:
        verdict = self.verdict(task.id)
        base = self.plans.base_task(task.id)
        working = self.plans.working.by_id.get(task.id) if self.plans.working else None
        shown = base or task
        state = self.state(task.id)
        claim = None
        if state.claim:
            claim = ClaimInfo(
                session=state.claim.session,
                expires=taskstore.iso(state.claim.expires_at),
                mine=state.claim.session == self.session,
            )
        completion = None
        if state.completions:
            c = state.completions[-1]
            completion = CompletionInfo(
                session=c.session,
                branch=c.branch,
                commit=c.commit,
                receipt_id=c.receipt_id,
                completed=taskstore.iso(c.completed_at),
                on_this_branch=self.on_this_branch(c.commit),
            )
        with self.ws.db() as conn:
            history = [
                f"{taskstore.iso(r['at'])} {r['actor']} {r['event']}" + (f": {r['detail']}" if r["detail"] else "")
                for r in taskstore.events(conn, task.id)
            ]
        return TaskDetail(
            **self.summary(task, verdict).model_dump(),
            files=list(shown.files),
            alignment_score=shown.alignment_score,
            estimated_lines=shown.estimated_lines,
            tests_defined=shown.tests_defined,
            status=shown.get("status"),
            reason=shown.get("reason"),
            description=shown.get("description"),
            safety_check=shown.get("safety_check"),
            warnings=list(shown.warnings or ()),
            fields=shown.other_fields(),
            working_section=working.section
            if working and working.section != (base.section if base else None)
            else None,
            claim=claim,
            attempts=state.attempts,
            failures=state.failures,
            last_failure=state.last_failure,
            completion=completion,
            history=history,
        )


@dataclass
class _Snapshot:
    key: tuple[object, ...]
    valid_until: float
    plans: Plans
    judge: _Judge
    settings: object  # held so that the id() in the key stays this object's
    answer: NextTask | None = None


_SNAPSHOTS: dict[Path, _Snapshot] = {}


def _judge(ws: Workspace, session: str, clock: Clock) -> tuple[Plans, _Judge]:
    """The plans and a judge of them, reused while nothing they depend on has changed: the plans' sources,
    HEAD, the settings, the database (any process's commit changes its data_version) and the next claim expiry."""
    now = clock()
    plans = load(ws)
    key = (plans.key, ws.repo.head(), session, id(ws.settings), ws.environ.get("OVERNIGHT_CHECKPOINT"),
           db.data_version(ws.db_path))  # fmt: skip
    found = _SNAPSHOTS.get(ws.repo.root)
    if found is not None and found.key == key and now < found.valid_until:
        found.judge.now = now
        return found.plans, found.judge
    judge = _Judge(ws, plans, session, now)
    expiries = [s.claim.expires_at for s in judge.states.values() if s.claim]
    _SNAPSHOTS[ws.repo.root] = _Snapshot(key, min(expiries, default=math.inf), plans, judge, ws.settings)
    return plans, judge


def _all_tasks(plans: Plans) -> list[P.Task]:
    """Every task once: the base plan's, then those only the working tree has (proposals), in file order."""
    seen: dict[str, P.Task] = {}
    for plan in (plans.base, plans.working):
        for task in plan.tasks if plan else ():
            seen.setdefault(task.id, task)
    return list(seen.values())


def _ranked(tasks: list[P.Task]) -> list[P.Task]:
    return sorted(tasks, key=lambda t: (t.priority, t.order))
