"""The task queue: what the plan says (tasks, approval, scope) and what state.db says happened to them.

Approval and scope are read from the plan as committed on the base ref (`OVERNIGHT_BASE`, else
`plan.base_branch`, else HEAD), never from the working tree: an agent's edit to its own copy approves nothing.
The working tree's file is what tools write (a completed task's Status line, a proposal), under a lock and
only if the file still holds what was read; every such write is journaled so the safety policy can tell it
from a hand edit.
"""

from __future__ import annotations

import math
import os
import secrets as pyrandom
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from pathlib import Path

from . import changes as ch
from . import db, receipts, taskstore
from . import plan as P
from .errors import OvernightError, UsageError
from .git import check_ref
from .models import TaskCheck
from .paths import Globs, clean_glob
from .policy import check_task
from .queue_models import (
    ClaimInfo,
    ClaimResult,
    CompletionInfo,
    CompletionResult,
    NextTask,
    PlanProblem,
    PlanSummary,
    PlanValidation,
    ProposalResult,
    SkippedTask,
    State,
    TaskDetail,
    TaskList,
    TaskSummary,
    TaskUpdate,
)
from .secrets import redact
from .workspace import Workspace

Clock = Callable[[], float]
MAX_LIST = 200
MAX_SKIPPED = 20
TITLE_MAX = 120
DESCRIPTION_MAX = 2000
NOTE_MAX = 2000


class PlanError(OvernightError):
    """The plan file cannot be read or written safely."""


# -- loading -------------------------------------------------------------------------------------------------


@dataclass
class Plans:
    path: str
    base_ref: str
    base: P.Plan | None  # the plan committed at the base ref: approval and scope
    working: P.Plan | None  # the working tree's file: what tools write and people edit
    key: tuple[object, ...] = ()  # what these plans were read from: the base blob id and the file's stat

    def base_task(self, task_id: str) -> P.Task | None:
        return self.base.by_id.get(task_id) if self.base else None

    def any_task(self, task_id: str) -> P.Task:
        for plan in (self.base, self.working):
            if plan is not None and task_id in plan.by_id:
                return plan.by_id[task_id]
        raise UsageError(f"there is no task `{task_id}` in the plan: `list_tasks` shows the ids.")


# Parsed plans, by what they were read from: a committed blob's id, or a file's path and stat. A server answers
# many calls on the same plan; a 10,000-task plan takes a noticeable fraction of a second to parse.
_BY_BLOB: dict[str, P.Plan] = {}
_BY_FILE: dict[Path, tuple[tuple[int, int, int], P.Plan]] = {}


def _remember_blob(oid: str, plan: P.Plan) -> P.Plan:
    if len(_BY_BLOB) >= 4:
        _BY_BLOB.pop(next(iter(_BY_BLOB)))
    _BY_BLOB[oid] = plan
    return plan


def base_ref(ws: Workspace) -> str:
    return ws.environ.get("OVERNIGHT_BASE") or ws.settings.plan.base_branch or "HEAD"


def load(ws: Workspace) -> Plans:
    path = ws.settings.plan.path
    ref = base_ref(ws)
    base, base_oid = None, None
    found = ws.repo.object_id(f"{check_ref(ref)}:{path}")
    if found is None:
        if ws.repo.head() is not None:
            ws.repo.resolve(ref)  # a ref that names nothing is an error; a missing plan is not
    elif found[1] == "blob":
        base_oid = found[0]
        base = _BY_BLOB.get(base_oid)
        if base is None:
            raw = ws.repo.show_file(ref, path) or b""
            base = _remember_blob(base_oid, P.parse(raw))
    working, stat = _working(ws.repo.root / path, base)
    return Plans(path=path, base_ref=ref, base=base, working=working, key=(base_oid, stat))


def _working(disk: Path, base: P.Plan | None) -> tuple[P.Plan | None, tuple[int, int, int] | None]:
    try:
        st = disk.stat()
    except FileNotFoundError:
        return None, None
    stat = (st.st_mtime_ns, st.st_size, st.st_ino)
    cached = _BY_FILE.get(disk)
    if cached is not None and cached[0] == stat:
        return cached[1], stat
    raw = disk.read_bytes()
    plan = base if base is not None and base.raw == raw else P.parse(raw)
    if len(_BY_FILE) >= 4:
        _BY_FILE.pop(next(iter(_BY_FILE)))
    _BY_FILE[disk] = (stat, plan)
    return plan, stat


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
            why=verdict.why,
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


# -- the tools' work ----------------------------------------------------------------------------------------


def list_tasks(
    ws: Workspace,
    session: str,
    *,
    status: str | None = None,
    section: str | None = None,
    limit: int = 50,
    cursor: str | None = None,
    clock: Clock = time.time,
) -> TaskList:
    """A page of tasks, in plan order, filtered by state and section."""
    plans, judge = _judge(ws, session, clock)
    rows = _all_tasks(plans)
    if status:
        rows = [t for t in rows if judge.verdict(t.id).state == status]
    if section:
        rows = [t for t in rows if (base := plans.base_task(t.id)) is not None and base.section == section]
    start = _cursor(cursor)
    limit = max(1, min(limit, MAX_LIST))
    page = [judge.summary(t) for t in rows[start : start + limit]]  # models for the page only
    more = start + limit < len(rows)
    return TaskList(
        tasks=page, total=len(rows), next_cursor=str(start + limit) if more else None, base_ref=plans.base_ref
    )


def _cursor(cursor: str | None) -> int:
    if not cursor:
        return 0
    if not cursor.isdigit():
        raise UsageError(f"{cursor!r} is not a cursor: pass the `next_cursor` of the previous page.")
    return int(cursor)


def get_task(ws: Workspace, task_id: str, session: str, clock: Clock = time.time) -> TaskDetail:
    plans, judge = _judge(ws, session, clock)
    return judge.detail(plans.any_task(task_id))


def next_task(ws: Workspace, session: str, clock: Clock = time.time, exclude: Collection[str] = ()) -> NextTask:
    """The best runnable task (approved, not done, dependencies done, not claimed by another live session,
    under the attempt limit, passing validate_task), by priority then plan order, and why others were passed.

    `exclude`: tasks the caller passes over (the scheduler does not retry, in one session, a task it failed).
    """
    plans, judge = _judge(ws, session, clock)
    if exclude:
        return _next(plans, judge, frozenset(exclude))
    snapshot = _SNAPSHOTS.get(ws.repo.root)
    if snapshot is not None and snapshot.judge is judge and snapshot.answer is not None:
        return snapshot.answer
    answer = _next(plans, judge)
    if snapshot is not None and snapshot.judge is judge:
        snapshot.answer = answer
    return answer


def _next(plans: Plans, judge: _Judge, exclude: frozenset[str] = frozenset()) -> NextTask:
    if plans.base is None:
        return NextTask(
            task=None,
            skipped=[],
            skipped_total=0,
            summary=f"there is no {plans.path} on {plans.base_ref}: nothing is approved",
        )
    skipped: list[SkippedTask] = []
    tasks = _all_tasks(plans)
    if not tasks:
        return NextTask(task=None, skipped=[], skipped_total=0,
                        summary=f"the plan has no tasks: add one to {plans.path} (under Ready for Autonomous "
                                "Execution, to approve it)")  # fmt: skip
    for task in _ranked(tasks):
        verdict = judge.verdict(task.id)
        if verdict.state in {"done", "cancelled"}:
            continue
        if task.id in exclude and verdict.runnable:
            skipped.append(SkippedTask(id=task.id, reason="already tried in this session"))
            continue
        if verdict.runnable:
            detail = judge.detail(task)
            why = f"next: `{task.id}` (P{task.priority}); claim it with `claim_task`"
            return NextTask(task=detail, skipped=skipped[:MAX_SKIPPED], skipped_total=len(skipped), summary=why)
        skipped.append(SkippedTask(id=task.id, reason=verdict.why or verdict.state))
    summary = "no task is runnable" + (f": {len(skipped)} passed over" if skipped else ": every task is done")
    return NextTask(task=None, skipped=skipped[:MAX_SKIPPED], skipped_total=len(skipped), summary=summary)


def claim_task(
    ws: Workspace, task_id: str, session: str, ttl_s: float | None = None, clock: Clock = time.time
) -> ClaimResult:
    """Claim a runnable task for `ttl_s` seconds (renewing the session's own claim)."""
    _plans, judge = _judge(ws, session, clock)
    verdict = judge.verdict(task_id)
    if not verdict.runnable:
        raise UsageError(
            f"task `{task_id}` cannot be claimed: {verdict.why or verdict.state}. `next_task` offers one that can."
        )
    ttl = ttl_s if ttl_s is not None else ws.settings.plan.claim_ttl_s
    if not 1 <= ttl <= 24 * 3600:
        raise UsageError(f"a claim lasts between 1 second and a day, not {ttl}.")
    with ws.db() as conn:
        try:
            claim, new = taskstore.claim(conn, task_id, session, ttl, judge.now)
        except taskstore.ClaimHeld as e:
            raise UsageError(f"{e}; pick another with `next_task`.") from e
    state = judge.state(task_id)
    return ClaimResult(
        task_id=task_id,
        session=session,
        expires=taskstore.iso(claim.expires_at),
        attempt=state.attempts + (1 if new else 0),
        renewed=not new,
    )


def release_task(ws: Workspace, task_id: str, session: str, clock: Clock = time.time) -> TaskUpdate:
    load(ws).any_task(task_id)
    with ws.db() as conn:
        try:
            released = taskstore.end_attempt(conn, task_id, session, clock(), "released")
        except taskstore.ClaimHeld as e:
            raise UsageError(f"{e}: only that session can release it.") from e
    message = "released: the task is back in the queue" if released else "this session held no claim on it"
    return TaskUpdate(task_id=task_id, status="released", recorded=released, message=message)


def update_task(
    ws: Workspace, task_id: str, status: str, session: str, note: str | None = None, clock: Clock = time.time
) -> TaskUpdate:
    """An agent reports progress: in-progress (renews its claim), blocked or failed (with a note). Never done."""
    wanted = status.strip().lower().replace("_", "-").replace(" ", "-")
    if wanted in {"done", "complete", "completed"}:
        raise UsageError(
            "an agent cannot mark a task done: commit the work with the `commit` tool, then call "
            "`complete_task`, which checks the commit's gate receipt and scope."
        )
    if wanted not in {"in-progress", "blocked", "failed"}:
        raise UsageError(f"status {status!r} is not one an agent may set: use in-progress, blocked or failed.")
    load(ws).any_task(task_id)
    if wanted == "in-progress":
        claim = claim_task(ws, task_id, session, clock=clock)
        return TaskUpdate(task_id=task_id, status=wanted, recorded=True, message=f"claimed until {claim.expires}")
    text, _ = redact(P.one_line(note or ""))
    if len(text) < 3:
        raise UsageError(f"say why the task is {wanted}: pass a `note` (what happened, what would unblock it).")
    if len(text) > NOTE_MAX:
        raise UsageError(f"the note is {len(text)} characters long; keep it under {NOTE_MAX}.")
    with ws.db() as conn:
        try:
            taskstore.end_attempt(conn, task_id, session, clock(), wanted, text)
        except taskstore.ClaimHeld as e:
            raise UsageError(str(e)) from e
    return TaskUpdate(task_id=task_id, status=wanted, recorded=True, message=f"recorded as {wanted}: {text}")


def complete_task(
    ws: Workspace, task_id: str, session: str, commit: str | None = None, clock: Clock = time.time
) -> CompletionResult:
    """Complete a task, only with evidence: a commit on this branch whose tree has a passing gate receipt and
    whose changes stayed inside the task's scope. Records it and sets the task's Status line to DONE."""
    plans, judge = _judge(ws, session, clock)
    task = plans.base_task(task_id)
    if task is None or task.section != "ready":
        raise UsageError(f"task `{task_id}` is not approved on {plans.base_ref}, so it cannot be completed.")
    state = judge.state(task_id)
    if state.claim and state.claim.session != session:
        raise UsageError(f"task `{task_id}` is claimed by {state.claim.session}; only that session can complete it.")
    repo = ws.repo
    head = repo.require_commits()
    commit_id = repo.resolve(commit or "HEAD")
    if not repo.is_ancestor(commit_id, head):
        raise UsageError(f"commit {commit_id[:12]} is not on the current branch: complete a task with a commit of it.")
    _check_new_work(ws, plans, commit_id)
    tree = repo.tree_of(commit_id)
    with ws.db() as conn:
        hit = receipts.find(conn, ws.key(), tree=tree, policy_hash=ws.settings.policy_hash())
    if hit is None:
        raise UsageError(
            f"commit {commit_id[:12]} has no passing gate receipt for its tree: run `run_quality_gate` "
            "and commit with the `commit` tool, then complete the task."
        )
    _check_scope(ws, task, commit_id, tree, plans.path)
    branch = repo.branch() or f"detached@{head[:12]}"
    updated, note = _mark_done(ws, plans, task_id)
    done = taskstore.Completion(task_id, session, branch, commit_id, hit[0].id, clock())
    ops = [(branch, "status", {"task_id": task_id, "value": "DONE"})] if updated else []
    with ws.db() as conn:
        taskstore.record_completion(conn, done, ops=ops)
    return CompletionResult(
        task_id=task_id,
        commit=commit_id,
        branch=branch,
        receipt_id=hit[0].id,
        plan_updated=updated,
        message=f"`{task_id}` is done on {branch} ({commit_id[:12]}). {note}",
    )


def _check_new_work(ws: Workspace, plans: Plans, commit_id: str) -> None:
    """The evidence must be work done for the task: after the task's checkpoint, not already on the base."""
    repo = ws.repo
    checkpoint = ws.environ.get("OVERNIGHT_CHECKPOINT")
    if checkpoint:
        start = repo.resolve(checkpoint)
        if commit_id == start or not repo.is_ancestor(start, commit_id):
            raise UsageError(f"commit {commit_id[:12]} is not work done since the task's checkpoint {start[:12]}.")
    elif plans.base_ref != "HEAD" and repo.is_ancestor(commit_id, repo.resolve(plans.base_ref)):
        raise UsageError(f"commit {commit_id[:12]} is already on {plans.base_ref}: it is not new work for this task.")


def _check_scope(ws: Workspace, task: P.Task, commit_id: str, tree: str, plan_path: str) -> None:
    if not task.files:
        return
    checkpoint = ws.environ.get("OVERNIGHT_CHECKPOINT")
    parents = ws.repo.out("rev-list", "--parents", "-n", "1", commit_id).split()[1:]
    base = checkpoint or (parents[0] if parents else None)
    if base is None:
        return
    scope = Globs(task.files)
    outside = sorted(
        {p for f in ch.collect(ws.repo, base, tree).files for p in f.paths if p != plan_path and not scope.match(p)}
    )
    if outside:
        raise UsageError(
            f"the commit changes files outside task `{task.id}`'s scope ({', '.join(task.files)}): "
            f"{', '.join(outside[:10])}. It cannot count as this task's work."
        )


def _mark_done(ws: Workspace, plans: Plans, task_id: str) -> tuple[bool, str]:
    """Set the task's Status line to DONE in the working tree's plan, so the branch carries it for review."""
    if plans.working is None or task_id not in plans.working.by_id:
        return False, f"{plans.path} in this worktree has no `{task_id}`, so its Status line was not changed."

    def marked(_before: P.Plan, after: P.Plan) -> str | None:
        task = after.by_id.get(task_id)
        return None if task is not None and task.status == "done" else f"`{task_id}` would not read as DONE"

    try:
        _, after = edit(
            ws,
            lambda plan: P.set_field(plan, task_id, "Status", "DONE") if task_id in plan.by_id else None,
            check=marked,
        )
    except PlanError as e:
        return False, f"its Status line was not changed: {e}"
    return after is not None, f"Its Status line in {plans.path} now says DONE; commit it with the `commit` tool."


def propose_task(
    ws: Workspace,
    session: str,
    title: str,
    description: str,
    *,
    priority: str | None = None,
    depends_on: list[str] | None = None,
    files: list[str] | None = None,
    clock: Clock = time.time,
) -> ProposalResult:
    """Append a task under Pending Approval, marked with who proposed it. The text is untrusted: one line
    each, secrets redacted, markup that could open a section, a comment or a code block neutralised."""
    title_text, n1 = redact(_inert(title))
    text, n2 = redact(_inert(description))
    if not title_text:
        raise UsageError("a proposed task needs a title.")
    if len(title_text) > TITLE_MAX or len(text) > DESCRIPTION_MAX:
        raise UsageError(f"keep the title under {TITLE_MAX} and the description under {DESCRIPTION_MAX} characters.")
    level = (priority or "P2").strip().upper()
    if level not in {"P0", "P1", "P2", "P3"}:
        raise UsageError(f"priority {priority!r} is not P0, P1, P2 or P3.")
    deps, globs = list(dict.fromkeys(depends_on or [])), [clean_glob(f) for f in files or []]
    if len(deps) > 20 or len(globs) > 20:
        raise UsageError("a proposal names at most 20 dependencies and 20 file patterns.")
    plans = load(ws)
    missing = [d for d in deps if not P.ID_PATTERN.match(d) or _find(plans, d) is None]
    if missing:
        raise UsageError(f"the proposal depends on tasks that are not in the plan: {', '.join(missing)}.")
    task_id = _new_id(plans)
    when = time.strftime("%Y-%m-%d", time.gmtime(clock()))
    block = [f"- **[{task_id}]** {title_text}", f"  - Priority: {level}"]
    block += [f"  - Depends on: {', '.join(deps)}"] if deps else []
    block += [f"  - Files: {', '.join(globs)}"] if globs else []
    block += [f"  - Description: {text}"] if text else []
    block += ["  - Status: PROPOSED", f"  - Proposed by: agent (session {session}) on {when}"]
    branch = ws.repo.branch() or "detached"
    payload = {"task_id": task_id, "block": "\n".join(block)}

    def visible(_before: P.Plan, after: P.Plan) -> str | None:
        task = after.by_id.get(task_id)
        if task is None:
            return f"the proposal `{task_id}` would not be read as a task (is a comment or a code block left open?)"
        return None if task.section == "pending" else f"the proposal `{task_id}` would not be under Pending Approval"

    _, after = edit(ws, lambda p: None if task_id in p.by_id else P.append_task(p, "pending", block), check=visible)
    if after is None:
        raise PlanError(f"a task `{task_id}` appeared in {plans.path} meanwhile; propose it again.")
    line = P.parse(after).by_id[task_id].line
    with ws.db() as conn:
        taskstore.record_op(conn, branch, "propose", task_id, payload, session, clock())
    return ProposalResult(
        task_id=task_id,
        section="pending",
        line=line,
        redacted=n1 + n2,
        message=f"proposed `{task_id}` under Pending Approval; a person approves it or not",
    )


def _inert(text: str) -> str:
    """One line, with the markup that could open a comment, a code block or a heading taken apart."""
    line = P.one_line(text)
    for opener, inert in (("<!--", "< !--"), ("-->", "-- >"), ("```", "` ` `"), ("~~~", "~ ~ ~"), ("**[", "*[")):
        line = line.replace(opener, inert)
    return line.lstrip("#> ").strip()


def _find(plans: Plans, task_id: str) -> P.Task | None:
    try:
        return plans.any_task(task_id)
    except UsageError:
        return None


def _new_id(plans: Plans) -> str:
    """A fresh id no branch is likely to have used: sequential ids collide across worktrees."""
    while True:
        candidate = "task_" + pyrandom.token_hex(3)
        if _find(plans, candidate) is None:
            return candidate


# -- the plan file: locked, compare-and-swap writes ------------------------------------------------------------


def edit(
    ws: Workspace,
    mutate: Callable[[P.Plan], bytes | None],
    attempts: int = 5,
    *,
    check: Callable[[P.Plan, P.Plan], str | None] | None = None,
) -> tuple[P.Plan, bytes | None]:
    """Apply `mutate` to the working tree's plan and write the result, only if the file still holds what was read.

    A person's edit that lands in between is never lost: the file is read again and the change applied again.
    A plan with errors is never written, before or after the change; nor one that lost a task, or that `check`
    (given the plans before and after) says what is wrong with. Returns the plan that was edited and the new
    bytes (None: no change).
    """
    path = ws.repo.root / ws.settings.plan.path
    with ws.lock("plan"):
        for _ in range(attempts):
            try:
                raw = path.read_bytes()
            except FileNotFoundError as e:
                raise PlanError(f"there is no {ws.settings.plan.path}: `overnight init` writes one.") from e
            plan = P.parse(raw)
            if not plan.ok:
                raise PlanError(f"{ws.settings.plan.path} has errors, so it is not written: {_problems(plan)}")
            new = mutate(plan)
            if new is None or new == raw:
                return plan, None
            _check_result(ws, plan, P.parse(new), check)
            tmp = path.with_name(f".{path.name}.overnight-{os.getpid()}")
            tmp.write_bytes(new)
            os.chmod(tmp, path.stat().st_mode & 0o7777)
            if path.read_bytes() != raw:  # someone wrote it meanwhile: read again, apply again
                tmp.unlink()
                continue
            os.replace(tmp, path)
            return plan, new
    raise PlanError(f"{ws.settings.plan.path} kept changing while it was being updated; try again.")


def _check_result(
    ws: Workspace, before: P.Plan, after: P.Plan, check: Callable[[P.Plan, P.Plan], str | None] | None
) -> None:
    """Read the edited plan back before it is written: no errors, no task lost, and what the caller asks for."""
    name = ws.settings.plan.path
    if not after.ok:
        raise PlanError(f"the change would leave {name} with errors, so it is not written: {_problems(after)}")
    lost = [task_id for task_id in before.by_id if task_id not in after.by_id]
    if lost:
        raise PlanError(f"the change would hide {', '.join(lost[:5])} in {name}, so it is not written.")
    wrong = check(before, after) if check is not None else None
    if wrong:
        raise PlanError(f"{wrong}, so {name} is not written.")


def _problems(plan: P.Plan, limit: int = 5) -> str:
    shown = [f"line {p.line}: {p.message}" if p.line else p.message for p in plan.errors[:limit]]
    more = f" (and {len(plan.errors) - limit} more)" if len(plan.errors) > limit else ""
    return "; ".join(shown) + more + ". `overnight plan validate` lists them."


# -- a person's commands -----------------------------------------------------------------------------------------


def move(ws: Workspace, task_id: str, section: str, reason: str | None = None) -> bytes | None:
    """Approve (ready) or reject (not-ready) a task: move its block in the working tree's plan."""

    def mutate(plan: P.Plan) -> bytes:
        plan.task(task_id)
        raw = P.move_task(plan, task_id, section)
        moved = P.parse(raw)
        wrong = placed(plan, moved)
        if wrong:
            raise PlanError(f"{wrong}, so {ws.settings.plan.path} is not written.")
        status = moved.by_id[task_id].status
        if section == "ready" and status in {None, "proposed", "blocked", "failed"}:
            raw = P.set_field(moved, task_id, "Status", "READY")
            moved = P.parse(raw)
        if section == "not-ready" and reason:
            raw = P.set_field(moved, task_id, "Reason", reason)
        return raw

    def placed(_before: P.Plan, after: P.Plan) -> str | None:
        task = after.by_id.get(task_id)
        if task is not None and task.section == section:
            return None
        where = f"under {task.section or 'no section'}" if task is not None else "out of the plan"
        return f"moving `{task_id}` to {P.SECTION_TITLES[section]} would put it {where}"

    return edit(ws, mutate, check=placed)[1]


def reset_task(ws: Workspace, task_id: str, clock: Clock = time.time) -> TaskUpdate:
    load(ws).any_task(task_id)
    with ws.db() as conn:
        taskstore.reset(conn, task_id, clock())
    return TaskUpdate(
        task_id=task_id,
        status="reset",
        recorded=True,
        message="claims, attempts and completions cleared: the task is offered again",
    )


# -- summary and validation --------------------------------------------------------------------------------------


def validate(ws: Workspace) -> PlanValidation:
    plans = load(ws)
    errors: list[PlanProblem] = []
    warnings: list[PlanProblem] = []
    for where, plan in (("working tree", plans.working), ("base", plans.base)):
        if plan is None:
            continue
        if where == "base" and plans.working is not None and plan.raw == plans.working.raw:
            continue  # the same bytes: the same problems
        for p in plan.problems:
            item = PlanProblem(line=p.line, code=p.code, message=p.message, where=where)  # type: ignore[arg-type]
            (errors if p.severity == "error" else warnings).append(item)
    if plans.working is None:
        errors.append(
            PlanProblem(
                line=None,
                code="missing",
                where="working tree",
                message=f"there is no {plans.path}: `overnight init` writes one",
            )
        )
    count = len(plans.working.tasks) if plans.working else len(plans.base.tasks) if plans.base else 0
    return PlanValidation(
        ok=not errors, path=plans.path, base_ref=plans.base_ref, tasks=count, errors=errors, warnings=warnings
    )


def summary(ws: Workspace, session: str, clock: Clock = time.time) -> PlanSummary:
    plans, judge = _judge(ws, session, clock)
    tasks = _all_tasks(plans)
    by_section: dict[str, int] = {}
    by_state: dict[str, int] = {}
    blocked: list[SkippedTask] = []
    for task in tasks:
        verdict = judge.verdict(task.id)
        base = plans.base_task(task.id)
        section = base.section if base and base.section else "not on base"
        by_section[section] = by_section.get(section, 0) + 1
        by_state[verdict.state] = by_state.get(verdict.state, 0) + 1
        if verdict.state in {"blocked", "failed", "unsafe", "review"} and len(blocked) < MAX_SKIPPED:
            blocked.append(SkippedTask(id=task.id, reason=verdict.why or verdict.state))
    counted = len(tasks) - by_state.get("cancelled", 0)
    nxt = next_task(ws, session, clock)
    problems = len(plans.working.errors) if plans.working else 0
    return PlanSummary(
        path=plans.path,
        base_ref=plans.base_ref,
        tasks=len(tasks),
        by_section=by_section,
        by_state=by_state,
        done_ratio=round(by_state.get("done", 0) / counted, 4) if counted else 0.0,
        blocked=blocked,
        next=nxt.task,
        problems=problems,
    )


# -- what the safety policy asks ------------------------------------------------------------------------------------


def check_plan_task(ws: Workspace, task_id: str) -> TaskCheck:
    """validate_task for a task of the plan: its text and fields as the base branch has them."""
    task = load(ws).any_task(task_id)
    return check_task(ws.settings, task.text, estimated_lines=task.estimated_lines,
                      alignment_score=task.alignment_score, tests_defined=task.tests_defined,
                      files=list(task.files), task_id=task.id)  # fmt: skip


def task_scope(ws: Workspace) -> list[str] | None:
    """The Files: scope of the task the session works on (OVERNIGHT_TASK_ID), read from the base plan."""
    task_id = ws.task_id
    if not task_id:
        return None
    task = load(ws).base_task(task_id)
    return list(task.files) if task and task.files else None


@dataclass
class PlanGuard:
    """Tells the policy whether a change to the plan file is exactly what the project tools wrote."""

    path: str
    ops: list[tuple[str, str, dict[str, str]]]

    def accepts(self, old: bytes, new: bytes) -> bool:
        """Replaying the journaled tool edits on the old bytes gives exactly the new bytes."""
        current = old
        for op, task_id, payload in self.ops:
            plan = P.parse(current)
            if not plan.ok:
                return False
            if op == "status" and task_id in plan.by_id:
                current = P.set_field(plan, task_id, "Status", payload["value"])
            elif op == "propose" and task_id not in plan.by_id:
                current = P.append_task(plan, "pending", payload["block"].split("\n"))
        return current == new


def plan_guard(ws: Workspace) -> PlanGuard:
    branch = ws.repo.branch() or "detached"
    with ws.db() as conn:
        return PlanGuard(path=ws.settings.plan.path, ops=taskstore.ops(conn, branch))


def server_session(environ: Mapping[str, str] | None = None) -> str:
    """This process's session id when none is given (an IDE session): stable for the server's lifetime."""
    env = os.environ if environ is None else environ
    return env.get("OVERNIGHT_SESSION_ID") or env.get("CLAUDE_CODE_SESSION_ID") or _PROCESS_SESSION


_PROCESS_SESSION = f"local-{os.getpid()}-{pyrandom.token_hex(3)}"
