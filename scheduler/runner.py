"""`overnight run`: one unattended session, from the lock to the morning report.

lock (a second run exits at once) → recover what a dead session left → preflight (kill switch, agent, the three
servers, a ready task) → worktree on `overnight/<date>-<id>` from the base branch → for each task `next_task`
offers: validate, claim (renewed while the agent works), prompt, agent in its own process group under a wall
clock → verify, trusting nothing → keep (complete the task on the branch) or roll back to the checkpoint →
record in memory (a run the model's API stopped is released instead, and waited out or retried: `infra`) → stop
on no ready task, the task limit, the time limit, consecutive failures, the kill switch →
report, and the memory session closed with its run record.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import threading
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from mcp_servers.core import db, memory, queue, refusals, taskstore
from mcp_servers.core.errors import OvernightError
from mcp_servers.core.gate.progress import Progress
from mcp_servers.core.queue_models import NextTask, TaskDetail
from mcp_servers.core.workspace import Workspace

from . import activity, chain, infra, prompt, report, session_memory, snapshot, task_files, verify, worktree
from .agents import Agent, AgentEvent, AgentJob, AgentResult, held_attempts, registry
from .confine import confine
from .control import stop_file
from .delivery import deliver
from .events import RunEvent, Teller, kept
from .journal import Journal, teller
from .limits import SessionLimits, commits_between
from .lock import run_lock, stopped_by_signals, update_lock
from .notify import Notifier
from .offer import offer
from .preflight import preflight, takes
from .recovery import recover

Clock = Callable[[], float]


# -- the session ----------------------------------------------------------------------------------------------


@dataclass
class Runner:
    ws: Workspace
    agent: Agent
    clock: Clock = time.time
    say: Callable[[str], None] = lambda line: print(line, flush=True)
    # told what happens as it happens (the CLI's live view); without it, `say` says each event's line (but the
    # agent's own activity, which only a live view shows)
    events: Callable[[RunEvent], None] | None = None
    stop: threading.Event = field(default_factory=threading.Event)
    record: report.SessionRecord | None = None
    kept: str = ""
    current: report.TaskRecord | None = None
    began: float = 0.0
    person: snapshot.Snapshot | None = None  # what the person owns, taken before the session's worktree exists
    only_task: str | None = None  # `overnight run --task ID`: that task alone, if it may run
    max_tasks: int | None = None  # `overnight run --max-tasks N`: the config's limit, overridden for this run
    notifier: Notifier | None = None  # `[notify]` channels (one of its own unless given, e.g. by a daemon)
    sleep: infra.Sleep | None = None  # waits (a usage limit's reset, a retry, a rate limit's pause): True when
    # stopped; default stop.wait (tests move a clock)
    max_hours: float | None = None  # the daemon's `cycle_hours`: the config's time limit, overridden
    quota: SessionLimits | None = None  # the rate limits and budgets of `[limits]`, across sessions
    fallbacks: Sequence[Agent] | None = None  # the chain after `agent` (issue 13); None: `[scheduler] agents`
    journal: Journal | None = None  # every event, for `overnight ui` (issue 14): set once the lock is taken

    def run(self) -> report.SessionRecord | None:
        """Run a session; None when another one holds the lock."""
        own = self.notifier is None
        self.notifier = self.notifier or Notifier.of(self.ws)
        try:
            return self._run()
        finally:
            if self.journal is not None:  # (a session that raised too: the daemon runs many in one process)
                self.journal.close()
                self.journal = None
            if own:
                self.notifier.close()
                self.notifier = None

    def _run(self) -> report.SessionRecord | None:
        ws = self.ws
        self.began = time.time()  # wall time, as the names of damaged databases moved aside carry it
        session = f"{time.strftime('%Y-%m-%d', time.gmtime(self.clock()))}-{secrets.token_hex(3)}"
        info = {"pid": os.getpid(), "session": session, "started": report.now_iso()}
        with run_lock(ws, info) as (taken, other):
            if not taken:
                held = other or {}
                self._tell(RunEvent("end", f"overnight: another session ({held.get('session')}, pid "
                                    f"{held.get('pid')}) is running; nothing to do", outcome="already-running"))
                return None
            self.journal = Journal(ws.state_dir, session)
            moved = db.ensure_sound(ws.db_path)  # once a session, not per connection: damage found early
            done = [f"the state database was damaged: moved it to {moved} and started a new one"] if moved else []
            done += recover(ws, other, self.clock) if other else []
            done += report.close_dead(ws.state_dir, session)
            for path in worktree.orphans(ws):
                worktree.remove(ws, path)
                done.append(f"removed the orphaned worktree {path} (its branch stays)")
            for line in done:
                self.say(f"overnight: recovery: {line}")
            with self._signals():
                record = self._session(session)
            if self.notifier is not None:  # sent (a bounded wait); those that failed are warnings in its report
                self.notifier.settle(record, ws.state_dir)
            return record

    @contextlib.contextmanager
    def _signals(self) -> Iterator[None]:
        """`overnight stop` sends SIGTERM: end the agent, roll back, write the report, then exit."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        ended = threading.Event()  # (the daemon runs many sessions in one process: the watcher ends with each)
        watcher = threading.Thread(target=self._watch_kill_switch, args=(ended,), daemon=True)
        with stopped_by_signals(self.stop):
            watcher.start()
            try:
                yield
            finally:
                ended.set()

    def _watch_kill_switch(self, ended: threading.Event) -> None:
        while not self.stop.is_set() and not ended.is_set():
            if stop_file(self.ws).exists():
                self.stop.set()
                return
            ended.wait(0.5)

    def _session(self, session: str) -> report.SessionRecord:
        ws = self.ws
        record = self.record = report.SessionRecord(id=session, repo=str(ws.repo.root), started=report.now_iso(),
                                                    agent=self.agent.name,
                                                    sandbox=ws.settings.scheduler.sandbox)  # fmt: skip
        problems = preflight(ws, self.agent)
        if problems:
            return self._finish(record, "preflight-failed", "preflight failed", problems=problems)
        try:  # a detached HEAD with no base branch set, a plan that does not parse: said before anything starts
            ready, problems = self._first_task(record, session)
        except OvernightError as e:
            return self._finish(record, "preflight-failed", "preflight failed", problems=[str(e)])
        if problems:
            return self._finish(record, "preflight-failed", "preflight failed", problems=problems)
        if ready.task is None:
            return self._finish(record, "no-work", f"no ready task ({ready.summary})")
        base_name, base = record.base_branch, record.base_commit
        record.branch = ws.settings.scheduler.branch_prefix + session
        try:
            self.person = snapshot.take(ws, session_root=worktree.location(ws, session), session_branch=record.branch)
        except OvernightError as e:  # nothing may start that could not be compared afterwards
            return self._finish(record, "preflight-failed", "preflight failed", problems=[f"the snapshot of what "
                                f"you own could not be taken: {e}"])  # fmt: skip
        root = worktree.create(ws, session, base)
        update_lock(ws, worktree=str(root), branch=record.branch, kept=base)
        report.save(ws.state_dir, record)
        memory.start_session(self._wt(root, session, base), session=session, source="scheduler", clock=self.clock,
                             goal=f"overnight run on {record.branch} from {base_name}")  # fmt: skip
        self._tell(RunEvent("session", f"overnight: session {session} on {record.branch} (worktree {root})",
                            session=session))  # fmt: skip
        self.kept = base  # the branch's last verified commit: nothing past it survives an error
        self.quota = SessionLimits(ws, session, record, self.clock, self.stop, self._tell, self.sleep)
        try:
            outcome, why = self._loop(root, session, base, record)
        except Exception as e:  # a bug, a broken repository: the night still ends clean, with a report
            outcome, why = "error", f"the scheduler hit an error ({type(e).__name__}: {e}); unverified work was dropped"
            record.problems.append(traceback.format_exc()[-4000:])
            self._abandon(root, session)
            if self.current is not None:  # the task in hand when it happened
                self.current.reasons = [why]
                record.tasks.append(self.current)
        finally:
            self.quota.close()
            try:
                record.final_commit = worktree.head(root)
            except OvernightError:  # the worktree is broken: the branch keeps only what was verified
                ws.repo.run("update-ref", f"refs/heads/{record.branch}", self.kept)
                record.final_commit = self.kept
            worktree.remove(ws, root)
            if record.final_commit == base:
                ws.repo.run("branch", "-D", record.branch, check=False)  # nothing kept: no empty branch left
            record.security_events += self._security_events()  # what changed after the last task's check
        if record.final_commit != base and _security_events_in(record):
            record.delivery.append("not pushed: this session has security events; read them first, then push "
                                   f"by hand (`git push REMOTE {record.branch}`)")  # fmt: skip
        elif record.final_commit != base:
            deliver(ws, record, clock=self.clock)
        return self._finish(record, outcome, why)

    def _first_task(self, record: report.SessionRecord, session: str) -> tuple[NextTask, list[str]]:
        """The base and the first ready task; and what stops the agent from taking the tasks the session would
        take (e.g. a replay script without their steps: refused before any attempt is used, issue 11)."""
        ws = self.ws
        record.base_branch, record.base_commit = worktree.base_commit(ws)
        at_base = Workspace.open(ws.repo.root, environ={**ws.environ, "OVERNIGHT_BASE": record.base_commit})
        ready = offer(at_base, session, only=self.only_task)
        if ready.task is None:
            return ready, []
        limit = self.max_tasks or ws.settings.scheduler.max_tasks
        ids = takes(at_base, session, ready.task.id, limit, self.only_task, self.clock)
        self.fallbacks = chain.prepare(ws, self.agent, self.fallbacks, ids, record)
        return ready, self.agent.task_problems(ids)

    def _refused(self, record: report.SessionRecord) -> None:
        """A run refused at preflight: logged in the state database, not as a session (no report, no memory)."""
        try:
            with self.ws.db() as conn:
                refusals.record(conn, at=self.clock(), session=record.id, outcome=record.outcome,
                                reason=record.stop_reason, problems=record.problems)  # fmt: skip
        except OvernightError as e:  # (a state database that cannot be written is said, not fatal here)
            record.warnings.append(f"the refusal could not be logged: {e}")
        self._tell(RunEvent("end", f"overnight: run refused at preflight ({record.outcome}): {record.stop_reason}",
                            session=record.id, outcome=record.outcome, reason=record.stop_reason))  # fmt: skip

    def _abandon(self, root: Path, session: str) -> None:
        """After an error: back to the last verified commit, and the session's claims settled as interrupted."""
        with contextlib.suppress(OvernightError):
            worktree.rollback(root, self.kept)
        branch = self.ws.settings.scheduler.branch_prefix + session
        # from the main repository, whatever state the worktree is in
        self.ws.repo.run("update-ref", f"refs/heads/{branch}", self.kept)
        now = self.clock()
        with self.ws.db() as conn:
            for task_id, state in taskstore.states(conn, now).items():
                if state.claim and state.claim.session == session:
                    taskstore.settle(conn, task_id, session, now, "interrupted", "the scheduler hit an error")

    def _wt(self, root: Path, session: str, base: str, **extra: str) -> Workspace:
        env = {**self.ws.environ, "OVERNIGHT_SESSION_ID": session, "OVERNIGHT_BASE": base, **extra}
        env.pop("CLAUDE_CODE_SESSION_ID", None)
        return Workspace.open(root, environ=env)

    def _loop(self, root: Path, session: str, base: str, record: report.SessionRecord) -> tuple[str, str]:
        deadline = self.clock() + (self.max_hours or self.ws.settings.scheduler.max_hours) * 3600
        failures_in_row = 0
        agents = chain.Chain.of(self.ws, [self.agent, *(self.fallbacks or ())], session, self.clock,
                                self.sleep or self.stop.wait, self._tell, self.ws.settings.infra)  # fmt: skip
        while True:
            stop = self._stop_reason(record, deadline, failures_in_row)
            if stop:
                self._quota().release()  # a run admitted before a pause that will not happen now
                return stop
            tried = [t.task_id for t in record.tasks]  # a task that failed is not tried again in the same session
            found = offer(self._wt(root, session, base), session, only=self.only_task, exclude=tried, clock=self.clock)
            if found.task is None:
                self._quota().release()
                return "completed", f"no ready task ({found.summary})"
            self.agent = agents.pick()  # the first agent of the chain that may run (issue 13)
            stop, waited = self._may_run(agents.guard, record, deadline)
            if stop:
                return stop
            if waited:  # the queue may have changed meanwhile
                continue
            before = self.kept
            task = self._task(root, session, base, found.task, deadline)
            if task.agent is None:  # refused before any work: no agent run to count
                self._quota().release()
            self._quota().kept(commits_between(self.ws, before, self.kept), task.task_id)
            self.current = None
            if task.infra is not None:  # the API stopped it: not a failure; wait or retry, then the same task
                stop = agents.after_stop(record, task, deadline)  # the next agent, else wait or end
                report.save(self.ws.state_dir, record)
                if stop:
                    return stop
                continue
            if task.agent is not None and not (task.agent.timed_out or task.agent.stopped):
                agents.guard.succeeded()
            task.runs = agents.runs(task)
            record.tasks.append(task)
            report.save(self.ws.state_dir, record)
            failures_in_row = 0 if task.outcome == "passed" else failures_in_row + 1
            if task.outcome == "stopped":
                return "stopped", "the kill switch (`overnight stop`)"

    def _may_run(self, guard: infra.Guard, record: report.SessionRecord, deadline: float
                 ) -> tuple[tuple[str, str] | None, bool]:  # fmt: skip
        """Whether an agent run may start now (issue 12): no open circuit breaker for the agent, then a rate limit
        or budget of `[limits]` admits it (and counts it). (why the session ends, or None; whether it waited)"""
        stop, waited = guard.before_run(record, deadline)
        if stop or waited:
            if stop:
                self._quota().release()
            return stop, waited
        # the run's reservation lasts as long as this agent's own wall clock (its `timeout_min`, issue 13)
        admitted = self._quota().admit(deadline, registry.timeout_min(self.agent, self.ws.settings.scheduler) * 60)
        return admitted.stop, admitted.waited

    def _stop_reason(self, record: report.SessionRecord, deadline: float, failures_in_row: int
                     ) -> tuple[str, str] | None:  # fmt: skip
        limits = self.ws.settings.scheduler
        if self.stop.is_set():
            return "stopped", "the kill switch (`overnight stop`)"
        limit = self.max_tasks or limits.max_tasks
        if len(record.tasks) >= limit:
            return "completed", f"the task limit ({limit})"
        if self.clock() >= deadline:
            return "completed", f"the time limit ({self.max_hours or limits.max_hours:g} hours)"
        if failures_in_row >= limits.max_consecutive_failures:
            return "failed", f"{failures_in_row} failed tasks in a row"
        if limits.max_session_usd and record.cost_usd >= limits.max_session_usd:
            return "completed", f"the budget (${record.cost_usd:.2f} of ${limits.max_session_usd:.2f} spent)"
        return None

    def _task(self, root: Path, session: str, base: str, task: TaskDetail, deadline: float) -> report.TaskRecord:
        limits = self.ws.settings.scheduler
        started = time.monotonic()
        checkpoint = worktree.head(root)
        wt = self._wt(root, session, base, OVERNIGHT_TASK_ID=task.id, OVERNIGHT_CHECKPOINT=checkpoint)
        self._tell(RunEvent("task", f"overnight: task {task.id}: {task.title}", session=session, task_id=task.id,
                            title=task.title))  # fmt: skip
        record = report.TaskRecord(task_id=task.id, title=task.title, outcome="failed", started=report.now_iso(),
                                   attempt=task.attempts + 1)  # fmt: skip
        self.current = record
        timeout = max(1.0, min(registry.timeout_min(self.agent, limits) * 60, deadline - self.clock()))
        checked = queue.check_plan_task(wt, task.id)  # next_task judged it too; the scheduler asks again itself
        if not checked.ok:
            record.reasons = [f"validate_task refused it: [{v.rule}] {v.message}" for v in checked.violations]
            self._tell(RunEvent("outcome", f"overnight: task {task.id}: refused before any work ({record.reasons[0]})",
                                session=session, task_id=task.id, title=task.title, outcome=record.outcome,
                                reason=record.reasons[0], cost_usd=self._cost()))  # fmt: skip
            return record
        queue.claim_task(wt, task.id, session, ttl_s=timeout + 300, clock=self.clock)
        files = task_files.files_in_scope(wt, task.files)
        lessons = memory.lessons_for(wt, files=files or None, task_id=task.id).entries
        text = prompt.build(task, wt.settings, lessons, memory.open_next_steps(wt).steps,
                            registry.tool_names(self.agent))  # its tools as its CLI names them
        # (a run the API stopped is not an attempt: the next one gets a folder of its own all the same)
        run_dir = infra.fresh(self.ws.state_dir / "runs" / session / f"{task.id}-{record.attempt}")
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "prompt.md").write_text(text, encoding="utf-8")
        job = AgentJob(task_id=task.id, prompt=text, worktree=root, env=task_files.job_env(wt), run_dir=run_dir,
                       timeout_s=timeout, stop=self.stop,
                       on_start=lambda pid: update_lock(self.ws, task=task.id, agent_pid=pid, title=task.title,
                                                         task_started=report.now_iso(), agent=self.agent.name),
                       on_event=self._agent_events(session, task, started))  # fmt: skip
        with (task_files.renewing(wt, task.id, session, timeout + 300, self.clock),
              confine(self.ws, root, job.env, endpoints=self.agent.endpoints(), read=self.agent.reads(),
                      logs=run_dir) as job.confinement):  # fmt: skip
            result = self.agent.run(job)
        self._quota().ran(result.cost_usd, task.id, result.log, result.agent)  # spent, whatever the verdict
        if job.confinement.refused:
            refused = [f"network: the sandbox refused a connection to {t}" for t in job.confinement.refused]
            result.refused += refused
            result.failures += [("network", r) for r in refused]
        record.agent = result
        record.refused = result.refused  # each with its reason; permission_denials (calls only) stay in `agent`
        record.held = held_attempts(result.failures, task_files.person_paths(self.ws, root))
        branch = self.ws.settings.scheduler.branch_prefix + session
        record.security_events = self._security_events()
        tampered = [f"security event: {e}" for e in record.security_events]
        if not worktree.attached(root, branch):
            tampered.append(f"the agent moved the worktree's HEAD off {branch} (put back)")
            worktree.reattach(root, branch)
        if tampered and not (result.stopped or result.timed_out):
            record.reasons = tampered
            self._roll_back(wt, root, session, task, checkpoint, record)
        elif result.infra is not None:  # the model's API stopped it: released, not failed (issue 12)
            record.infra = result.infra
            infra.release(wt, root, session, task, checkpoint, record, result.infra, self.clock)
        else:
            self._judge(wt, root, session, task, checkpoint, record, result)
            self._judge_security(wt, root, session, task, checkpoint, record, tampered)
        record.duration_s = round(time.monotonic() - started, 1)
        update_lock(self.ws, task=None, agent_pid=None)
        reason = record.reasons[0].splitlines()[0] if record.reasons and record.reasons[0].strip() else None
        cost = self._cost() + (result.cost_usd or 0.0)  # this task is not in the session's record yet
        self._tell(infra.outcome_event(session, record, cost) if record.infra else
                   RunEvent("outcome", f"overnight: task {task.id}: {kept(record.outcome)}" + (f": {reason}" if reason
                            else "") + f" ({record.duration_s:.0f}s, ${cost:.2f} so far)", session=session,
                            task_id=task.id, title=task.title, outcome=record.outcome, reason=reason,
                            seconds=record.duration_s, cost_usd=cost,
                            security=tuple(record.security_events)))  # fmt: skip
        return record

    def _quota(self) -> SessionLimits:
        if self.quota is None:
            raise OvernightError("the session's limits are not set up")  # (a bug: `_session` sets them)
        return self.quota

    def _tell(self, event: RunEvent) -> None:
        self._teller()(event)
        if self.notifier is not None:
            self.notifier.tell(event)

    def _teller(self) -> Teller:
        return teller(self.say, self.events, self.journal)

    def _cost(self) -> float:
        return self.record.cost_usd if self.record is not None else 0.0

    def _gate_events(self, task: TaskDetail) -> Progress | None:
        return self._teller().verification(self.record.id if self.record else "", task.id, task.title)

    def _agent_events(self, session: str, task: TaskDetail, started: float) -> Callable[[AgentEvent], None] | None:
        return self._teller().agent(session, task.id, task.title, started, self._cost())

    def _security_events(self) -> list[str]:
        """What the person owns that changed since the session began, put back: each a security event."""
        if self.person is None:
            return []
        try:
            return snapshot.check(self.ws, self.person)
        except (OvernightError, OSError) as e:  # fail closed: what could not be compared counts as changed
            return [f"what you own could not be compared with the snapshot ({type(e).__name__}: {e}); look at "
                    "your checkout, its `.git` and your home by hand"]  # fmt: skip

    def _judge_security(self, wt: Workspace, root: Path, session: str, task: TaskDetail, checkpoint: str,
                        record: report.TaskRecord, tampered: list[str]) -> None:  # fmt: skip
        """After the verdict: the gate ran the agent's tests, which run as the person too. Any security event
        fails the task, even one that passed."""
        late = self._security_events()
        record.security_events += late
        found = tampered + [f"security event: {e}" for e in late]
        if not found:
            return
        record.reasons = found + [r for r in record.reasons if r not in found]
        if record.outcome == "passed":
            record.outcome, self.kept = "failed", checkpoint
            update_lock(self.ws, kept=self.kept)
            self._roll_back(wt, root, session, task, checkpoint, record)

    def _judge(self, wt: Workspace, root: Path, session: str, task: TaskDetail, checkpoint: str,
               record: report.TaskRecord, result: AgentResult) -> None:  # fmt: skip
        if result.stopped or result.timed_out:  # what it did before it was ended, for the report
            record.activity = activity.read(result.log, task_files.changed(wt, checkpoint), result.agent, str(root))
        if result.stopped:
            record.outcome, record.reasons = "stopped", ["stopped by `overnight stop`: the work was rolled back"]
            self._roll_back(wt, root, session, task, checkpoint, record, settle=False)
            return
        if result.timed_out:
            record.outcome = "timed-out"
            record.reasons = [f"the agent ran past the task's wall clock ({result.duration_s:.0f}s) and was ended"]
            self._roll_back(wt, root, session, task, checkpoint, record)
            return
        checked = verify.verify(wt, list(task.files), checkpoint, self._gate_events(task))
        record.commits, record.leftovers, record.checks = checked.commits, checked.leftovers, checked.checks
        record.coverage, record.coverage_base = checked.coverage, checked.coverage_base
        if not checked.passed:
            record.reasons = checked.reasons
            self._roll_back(wt, root, session, task, checkpoint, record)
            return
        try:
            queue.complete_task(wt, task.id, session, commit=worktree.head(root), clock=self.clock)
            task_files.commit_plan_update(wt, task.id)
        except OvernightError as e:
            record.reasons = [f"the task passed verification but could not be marked done: {e}"]
            self._roll_back(wt, root, session, task, checkpoint, record)
            return
        record.outcome = "passed"
        self.kept = worktree.head(root)
        update_lock(self.ws, kept=self.kept)  # what a crash from here on keeps (scheduler.postmortem)
        text = (f"Task {task.id} ({task.title}) passed verification and was kept: commits "
                f"{', '.join(c[:12] for c in record.commits)}; coverage {record.coverage}; agent {result.agent}.")
        memory.log_event(wt, "gate", text, task_id=task.id, files=task_files.changed(wt, checkpoint),
                         source="scheduler", clock=self.clock)  # fmt: skip

    def _roll_back(self, wt: Workspace, root: Path, session: str, task: TaskDetail, checkpoint: str,
                   record: report.TaskRecord, *, settle: bool = True) -> None:  # fmt: skip
        touched = task_files.changed(wt, checkpoint)
        worktree.rollback(root, checkpoint)
        reason = report.one_line(record.reasons)
        now = self.clock()
        with wt.db() as conn:
            taskstore.retract(conn, task.id, session, now, "the work was rolled back")
            if settle:
                taskstore.settle(conn, task.id, session, now, "failed", reason)
            else:
                taskstore.settle(conn, task.id, session, now, "released", reason)
        if not settle:
            return
        memory.log_event(wt, "failure", f"Task {task.id} ({task.title}) was rolled back: {reason}",
                         task_id=task.id, files=touched, source="scheduler", clock=self.clock)  # fmt: skip
        memory.log_event(wt, "lesson", session_memory.lesson(task, record), task_id=task.id, files=touched,
                         source="scheduler", clock=self.clock)  # fmt: skip

    def _finish(self, record: report.SessionRecord, outcome: str, why: str, problems: list[str] | None = None
                ) -> report.SessionRecord:  # fmt: skip
        record.outcome, record.stop_reason, record.ended = outcome, why, report.now_iso()
        if problems:
            record.problems = problems
        for moved in db.moved_aside(self.ws.db_path, self.began):  # by this process or any server meanwhile
            if report.lost_state(moved) not in record.warnings:
                record.warnings.append(report.lost_state(moved))
        if outcome in report.REFUSED:  # it never started: kept apart from the sessions (issue 11)
            record.branch = ""  # (named, never made)
            self._refused(record)
            return record
        path = report.save(self.ws.state_dir, record)
        if record.branch:
            with contextlib.suppress(OvernightError):
                memory.end_session(self.ws, session=record.id, outcome=session_memory.outcome(outcome),
                                   stop_reason=why, summary=session_memory.summary(record),
                                   record=session_memory.run_record(record, path), source="scheduler",
                                   clock=self.clock)  # fmt: skip
        self._tell(RunEvent("end", f"overnight: session {record.id} {outcome}: {why}; report {path}", session=record.id,
                            outcome=outcome, reason=why, cost_usd=record.cost_usd,
                            security=tuple(record.security_events)))  # fmt: skip
        return record


def _security_events_in(record: report.SessionRecord) -> bool:
    return bool(record.security_events) or any(t.security_events for t in record.tasks)


