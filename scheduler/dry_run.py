"""`overnight run --dry-run`: what a session would do, without doing any of it.

It reads the plan, the state database and memory as a session would and answers: what would stop it before it
starts, which tasks it would work on and in what order, which it would pass over and why, and the prompt of the
first. It starts no agent, takes no run lock, creates no worktree or branch and writes no session record. The
order assumes each task is tried once; a task whose dependency is on the list becomes ready only once that one
passes, so a real session may take more.
"""

from __future__ import annotations

import time

from pydantic import BaseModel, Field

from mcp_servers.core import memory, sandbox
from mcp_servers.core.paths import Globs
from mcp_servers.core.queue_models import SkippedTask, TaskDetail
from mcp_servers.core.workspace import Workspace

from . import chain, prompt, worktree
from .agents import Agent
from .chain import MemberCheck
from .control import stop_file
from .limits import blocked
from .offer import offer

SESSION = "dry-run"  # the name the queue judges claims against: no real session holds it
MAX_LISTED = 200


class PlannedTask(BaseModel):
    id: str
    title: str
    priority: str
    files: list[str]


class DryRun(BaseModel):
    base_branch: str
    base_commit: str
    branch: str = Field(description="the branch a session would make (its id is drawn when it starts)")
    max_tasks: int
    only: str | None = Field(description="`--task`: the one task asked for")
    problems: list[str] = Field(description="what would stop the session before it starts")
    agents: list[MemberCheck] = Field(default_factory=list, description="each agent of the chain, in order: "
                                      "whether it can run (issue 13)")  # fmt: skip
    warnings: list[str] = Field(default_factory=list, description="what would not stop it but is not as "
                                "configured: a fallback left out of the chain, a budget not enforced")  # fmt: skip
    tasks: list[PlannedTask] = Field(description="the tasks it would work on, in order")
    passed_over: list[SkippedTask]
    passed_over_total: int
    more: str | None = Field(default=None, description="the next ready task beyond the task limit, if any")
    summary: str
    prompt: str = Field(description="the prompt of the first task (empty: none would run)")
    held: str | None = Field(
        default=None,
        description="a rate limit or budget of `[limits]` that holds now: the session would pause until it frees "
        "up, or end if that is past its time limit",
    )


def dry_run(ws: Workspace, agent: Agent, *, only: str | None = None, max_tasks: int | None = None) -> DryRun:
    """What `overnight run` with these options would do now, without doing any of it."""
    settings = ws.settings.scheduler
    limit = max_tasks or settings.max_tasks
    base_name, base = worktree.base_commit(ws)
    problems = ["the kill switch is set (`overnight stop` set it): `overnight resume` clears it"] \
        if stop_file(ws).exists() else []  # fmt: skip
    if settings.sandbox != "off" and (why := sandbox.problem(ws.environ)):
        problems.append(f"no sandbox can be made, so no agent may run: {why}")
    wb = Workspace.open(ws.repo.root, environ={**ws.environ, "OVERNIGHT_BASE": base})
    ready: list[TaskDetail] = []  # every task it could take in turn; the limit cuts the list afterwards
    found = offer(wb, SESSION, only=only)
    while found.task is not None and len(ready) < MAX_LISTED:
        ready.append(found.task)
        found = offer(wb, SESSION, only=only, exclude=[t.id for t in ready])
    chosen = ready[:limit]
    # every agent of the chain, the tasks included (e.g. a replay script without steps for them, issue 11): the
    # first one's problems stop the session, a fallback's leave it out of the chain (issue 13)
    members = chain.check(ws, agent, [t.id for t in chosen])
    problems += members[0].problems + [m.line() for m in members[1:] if m.refuses]
    warnings = [m.line() for m in members[1:] if not m.can_run and not m.refuses]
    warnings += [w for m in members if m.can_run for w in m.warnings]
    skipped = [s for s in found.skipped if s.reason != "already tried in this session"]
    total = found.skipped_total - (len(ready) if only is None else 0)  # each taken one is "already tried"
    result = DryRun(base_branch=base_name, base_commit=base, branch=f"{settings.branch_prefix}<date>-<id>",
                    max_tasks=limit, only=only, problems=problems, agents=members, warnings=warnings,
                    passed_over=skipped,
                    passed_over_total=total, summary=found.summary if not chosen else
                    f"{len(chosen)} task(s) would run", prompt="",
                    tasks=[PlannedTask(id=t.id, title=t.title, priority=t.priority, files=t.files)
                           for t in chosen])  # fmt: skip
    if len(ready) > limit:
        later = ", ".join(f"`{t.id}`" for t in ready[limit:])
        result.more = f"{later} would be ready too, beyond the task limit ({limit})"
    if chosen:
        result.prompt = _prompt(wb, chosen[0], agent)
    if (holding := blocked(ws, time.time())) is not None:
        result.held = holding.reason()
    return result


def _prompt(wb: Workspace, task: TaskDetail, agent: Agent) -> str:
    """The first task's prompt as the session would build it (memory as it is now)."""
    files = []
    if task.files:
        scope = Globs(list(task.files))
        files = [p for p in wb.repo.out("ls-files").splitlines() if scope.match(p)][:50]
    lessons = memory.lessons_for(wb, files=files or None, task_id=task.id).entries
    from .agents import registry

    return prompt.build(task, wb.settings, lessons, memory.open_next_steps(wb).steps, registry.tool_names(agent))
