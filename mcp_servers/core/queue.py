"""The task queue: what the plan says (tasks, approval, scope) and what state.db says happened to them.

Approval and scope are read from the plan as committed on the base ref (`OVERNIGHT_BASE`, else
`plan.base_branch`, else HEAD), never from the working tree: an agent's edit to its own copy approves nothing.
The working tree's file is what tools write (a completed task's Status line, a proposal), under a lock and
only if the file still holds what was read; every such write is journaled so the safety policy can tell it
from a hand edit.

The plan file itself (reading the base and working plans, the locked compare-and-swap writer) is in
`plan_store`, and each task's state with its reason in `readiness`; this module holds the tools' work and a
person's commands.
"""

from __future__ import annotations

import os
import secrets as pyrandom
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass

from . import changes as ch
from . import plan as P
from . import receipts, taskstore
from .errors import UsageError
from .models import TaskCheck
from .paths import Globs, clean_glob
from .plan_store import Clock, PlanError, Plans, edit, load
from .policy import check_task
from .queue_models import (
    ClaimResult,
    CompletionResult,
    NextTask,
    PlanProblem,
    PlanSummary,
    PlanValidation,
    ProposalResult,
    SkippedTask,
    TaskDetail,
    TaskList,
    TaskSummary,
    TaskUpdate,
)
from .readiness import _SNAPSHOTS, _all_tasks, _Judge, _judge, _ranked
from .secrets import redact
from .workspace import Workspace

MAX_LIST = 200
MAX_SKIPPED = 20
TITLE_MAX = 120
DESCRIPTION_MAX = 2000
NOTE_MAX = 2000


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


def columns(
    ws: Workspace, session: str, column: Callable[[str, str | None], str], shown: int, clock: Clock = time.time
) -> tuple[dict[str, list[TaskSummary]], dict[str, int], TaskList]:
    """Every task of the plan judged once and sorted into `column(state, section on the base)`: the first `shown`
    of each column as summaries (in plan order), the count of each, and the plan's totals (`tasks` left empty).
    For a board of a big plan, where paging `list_tasks` would judge the whole plan once a page."""
    plans, judge = _judge(ws, session, clock)
    rows = _all_tasks(plans)
    cards: dict[str, list[TaskSummary]] = {}
    counts: dict[str, int] = {}
    for task in rows:
        verdict = judge.verdict(task.id)
        base = plans.base_task(task.id)
        key = column(verdict.state, base.section if base else None)
        counts[key] = counts.get(key, 0) + 1
        if counts[key] <= shown:
            cards.setdefault(key, []).append(judge.summary(task, verdict))
    return cards, counts, TaskList(tasks=[], total=len(rows), next_cursor=None, base_ref=plans.base_ref)


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
