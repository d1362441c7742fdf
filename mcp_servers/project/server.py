"""The `project` MCP server: PROJECT_PLAN.md as a task queue that people edit and agents cannot self-approve.

No tool approves a task: the section a task stands in on the base branch is its approval, and only a person
changes it (by editing the file, or `overnight plan approve`). Each tool makes one call into core.queue.
"""

from __future__ import annotations

import json
from typing import Annotated, Literal

from mcp.server import MCPServer
from mcp.server.mcpserver.exceptions import ResourceError
from mcp.types import CallToolResult, ToolAnnotations
from pydantic import Field

from ..core import __version__, queue
from ..core.errors import OvernightError
from ..core.queue_models import (
    ClaimResult,
    CompletionResult,
    NextTask,
    NextTaskAnswer,
    PlanSummary,
    PlanValidation,
    ProposalResult,
    State,
    TaskDetail,
    TaskList,
    TaskUpdate,
)
from ..core.workspace import Workspace
from ..serving import Answers, light_output_schemas, log_level, tool_errors

INSTRUCTIONS = """\
The task queue of this repository, kept in PROJECT_PLAN.md. People approve tasks; agents never can.
Start with `next_task` (the best runnable task, and why others are not), then `claim_task`. Work only inside
the task's `files` scope. When the work is committed with the quality server's `commit` tool, call
`complete_task`: it needs that commit's passing gate receipt. Report trouble with `update_task` (blocked or
failed, with a note). Ideas for new work go to `propose_task`; a person decides."""

TaskId = Annotated[str, Field(description="the task's id from the plan, e.g. `task_3`", min_length=1, max_length=64)]
ReadOnly = ToolAnnotations(read_only_hint=True, idempotent_hint=True)
Writes = ToolAnnotations(read_only_hint=False, destructive_hint=False, idempotent_hint=False)


def build(repo: str | None = None) -> MCPServer:
    """The server, for the repository at `repo` (default: $OVERNIGHT_REPO, else the working directory)."""
    mcp = MCPServer("project", version=__version__, instructions=INSTRUCTIONS, log_level=log_level())

    next_answers = Answers(NextTaskAnswer.of)

    def ws() -> tuple[Workspace, str]:
        w = Workspace.open(repo)
        return w, queue.server_session(w.environ)

    @mcp.tool(annotations=ReadOnly)
    def list_tasks(
        status: Annotated[State | None, Field(description="only tasks in this state")] = None,
        section: Annotated[
            Literal["ready", "pending", "not-ready"] | None,
            Field(description="only tasks in this section of the plan on the base branch"),
        ] = None,
        limit: Annotated[int, Field(description="tasks per page", ge=1, le=queue.MAX_LIST)] = 50,
        cursor: Annotated[str | None, Field(description="`next_cursor` of the previous page")] = None,
    ) -> TaskList:
        """A compact page of the plan's tasks (id, title, section, state, priority, dependencies), in plan order.
        `get_task` gives one task in full."""
        with tool_errors():
            w, session = ws()
            return queue.list_tasks(w, session, status=status, section=section, limit=limit, cursor=cursor)

    @mcp.tool(annotations=ReadOnly)
    def get_task(task_id: TaskId) -> TaskDetail:
        """One task in full: its fields and scope, whether it is runnable and why not, its claim, attempts,
        failures, completion and recent history."""
        with tool_errors():
            w, session = ws()
            return queue.get_task(w, task_id, session)

    @mcp.tool(annotations=ReadOnly)
    def next_task() -> Annotated[CallToolResult, NextTaskAnswer]:
        """The best runnable task: approved on the base branch, not done, every dependency done, not claimed by
        another live session, under the attempt limit and passing validate_task; by priority, then plan order.
        Gives what is needed to start it (scope, description, fields, earlier failure; `get_task` has the rest)
        and why each task ahead of it was passed over. Claim it with `claim_task` before working."""
        with tool_errors():
            w, session = ws()
            return next_answers.result(queue.next_task(w, session))

    @mcp.tool(annotations=Writes)
    def claim_task(
        task_id: TaskId,
        ttl_s: Annotated[
            float | None, Field(description="seconds the claim lasts (default from overnight.toml)")
        ] = None,
    ) -> ClaimResult:
        """Claim a runnable task for this session (or renew this session's claim). A claim expires unless renewed:
        the task then returns to the queue and the attempt counts as interrupted."""
        with tool_errors():
            w, session = ws()
            return queue.claim_task(w, task_id, session, ttl_s)

    @mcp.tool(annotations=Writes)
    def release_task(task_id: TaskId) -> TaskUpdate:
        """Give a claimed task back to the queue without counting a failure."""
        with tool_errors():
            w, session = ws()
            return queue.release_task(w, task_id, session)

    @mcp.tool(annotations=Writes)
    def update_task(
        task_id: TaskId,
        status: Annotated[str, Field(description="in-progress (renews the claim), blocked or failed")],
        note: Annotated[str | None, Field(description="what happened; required for blocked and failed")] = None,
    ) -> TaskUpdate:
        """Report progress on a task: in-progress, blocked or failed (with a note saying why). An agent cannot
        mark a task done: `complete_task` does that, with evidence."""
        with tool_errors():
            w, session = ws()
            return queue.update_task(w, task_id, status, session, note)

    @mcp.tool(annotations=Writes)
    def complete_task(
        task_id: TaskId,
        commit: Annotated[str | None, Field(description="the commit with the work (default: HEAD)")] = None,
    ) -> CompletionResult:
        """Complete a task, with evidence: a commit on the current branch whose tree has a passing gate receipt
        (commit with the quality server's `commit` tool) and whose changes stayed inside the task's scope. Sets the
        task's Status line to DONE in this worktree's plan; commit that too."""
        with tool_errors():
            w, session = ws()
            return queue.complete_task(w, task_id, session, commit)

    @mcp.tool(annotations=Writes)
    def propose_task(
        title: Annotated[str, Field(description="what should be done, in one line", max_length=queue.TITLE_MAX)],
        description: Annotated[str, Field(description="why, and how to tell it is done", max_length=4000)],
        priority: Annotated[str | None, Field(description="P0 (urgent) to P3; default P2")] = None,
        depends_on: Annotated[list[str] | None, Field(description="ids of tasks it needs first")] = None,
        files: Annotated[list[str] | None, Field(description="the files it would change, as globs")] = None,
    ) -> ProposalResult:
        """Propose new work: it is appended under Pending Approval, marked as proposed by this session, and waits
        for a person. Proposing never approves."""
        with tool_errors():
            w, session = ws()
            return queue.propose_task(w, session, title, description, priority=priority, depends_on=depends_on,
                                      files=files)  # fmt: skip

    @mcp.tool(annotations=ReadOnly)
    def plan_summary() -> PlanSummary:
        """Counts by section and state, the done ratio, what is blocked and why, and what is next."""
        with tool_errors():
            w, session = ws()
            return queue.summary(w, session)

    @mcp.tool(annotations=ReadOnly)
    def validate_plan() -> PlanValidation:
        """Check the plan file: parse errors, duplicate ids, missing dependencies and cycles, with line numbers."""
        with tool_errors():
            return queue.validate(ws()[0])

    @mcp.resource("plan://tasks", mime_type="application/json", description="the plan's tasks, compact")
    def tasks_resource() -> str:
        try:
            w, session = ws()
            return queue.list_tasks(w, session, limit=queue.MAX_LIST).model_dump_json()
        except OvernightError as e:
            raise ResourceError(str(e)) from e

    @mcp.resource("plan://tasks/{task_id}", mime_type="application/json", description="one task in full")
    def task_resource(task_id: str) -> str:
        try:
            w, session = ws()
            return queue.get_task(w, task_id, session).model_dump_json()
        except OvernightError as e:
            raise ResourceError(str(e)) from e

    @mcp.prompt(description="Pick the next approved task and work it through the gate")
    def start_next_task() -> str:
        try:
            w, session = ws()
            found = queue.next_task(w, session)
        except OvernightError as e:
            return f"The plan cannot be read: {e}"
        return work_prompt(found)

    return light_output_schemas(mcp)


def work_prompt(found: NextTask) -> str:
    """The steps for working one task through the gate, or why there is nothing to do."""
    if found.task is None:
        reasons = "\n".join(f"- {s.id}: {s.reason}" for s in found.skipped) or "- (no tasks)"
        return (
            f"No task in PROJECT_PLAN.md is runnable now ({found.summary}).\n{reasons}\n"
            "Tell the person what would unblock them."
        )
    task = found.task
    scope = ", ".join(task.files) or "(no Files: field: the allowed paths of overnight.toml)"
    details = json.dumps({k: v for k, v in task.model_dump().items() if k in {"description", "fields", "depends_on"}})
    return f"""Work on task `{task.id}`: {task.title} ({task.priority}).
Scope (change only these files): {scope}
Estimated lines: {task.estimated_lines}; details: {details}

1. `claim_task` with task_id `{task.id}`.
2. Read the code in scope, then make the change, with its tests. Stay inside the scope and the safety policy
   (`get_policy` on the quality server): no deletions, no protected files, no secrets.
3. Run the quality server's `run_quality_gate`; fix everything it reports and run it again until it passes.
4. Commit with the quality server's `commit` (task_id `{task.id}`); never `git commit`.
5. `complete_task` with task_id `{task.id}`; then commit the plan's Status line with `commit` as well.
If you cannot finish, `update_task` with status `blocked` or `failed` and a note saying why."""
