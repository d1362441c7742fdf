"""The task queue's answers: compact lists, details by id, and every refusal's reason in words."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

State = Literal[
    "ready", "claimed", "done", "review", "blocked", "failed", "unsafe", "pending-approval", "not-ready", "cancelled"
]  # fmt: skip


class TaskSummary(BaseModel):
    id: str
    title: str
    section: str | None = Field(description="the section on the base branch (ready, pending, not-ready): its approval")
    state: State = Field(
        description="ready: runnable now; claimed; done; review: done on a branch not merged yet; blocked; "
        "failed: too many failed attempts; unsafe: fails validate_task; pending-approval; not-ready; cancelled"
    )
    priority: str
    depends_on: list[str]
    line: int | None = Field(default=None, description="the task's line in the working tree's plan file")
    why: str | None = Field(default=None, description="why the task is not runnable now, when it is not")


class ClaimInfo(BaseModel):
    session: str
    expires: str
    mine: bool


class CompletionInfo(BaseModel):
    session: str
    branch: str
    commit: str
    receipt_id: str
    completed: str
    on_this_branch: bool = Field(description="the commit is in the history of the current HEAD")


class TaskDetail(TaskSummary):
    files: list[str] = Field(description="the task's scope: every changed path must match one of these globs")
    alignment_score: int | None = None
    estimated_lines: int | None = None
    tests_defined: bool | None = None
    status: str | None = Field(default=None, description="the plan's Status field")
    reason: str | None = None
    description: str | None = None
    safety_check: str | None = Field(default=None, description="the plan's Safety check field, as written")
    warnings: list[str] = Field(
        default_factory=list, description="field values of the task that could not be read, and how they were read"
    )
    fields: dict[str, str] = Field(default_factory=dict, description="the task's other fields, as written")
    working_section: str | None = Field(
        default=None, description="the section in the working tree's file when it differs from the base branch's"
    )
    claim: ClaimInfo | None = None
    attempts: int = 0
    failures: int = 0
    last_failure: str | None = None
    completion: CompletionInfo | None = None
    history: list[str] = Field(default_factory=list, description="the newest events, newest first")


class TaskList(BaseModel):
    tasks: list[TaskSummary]
    total: int = Field(description="tasks matching the filters, before paging")
    next_cursor: str | None = Field(default=None, description="pass as `cursor` for the next page")
    base_ref: str


class SkippedTask(BaseModel):
    id: str
    reason: str


class NextTask(BaseModel):
    task: TaskDetail | None
    skipped: list[SkippedTask] = Field(
        description="the tasks passed over before this one (or all, when none is runnable)"
    )
    skipped_total: int
    summary: str


class TaskToStart(BaseModel):
    """What an agent needs to start a runnable task (`get_task` has everything else: history, approval, ...)."""

    id: str
    title: str
    priority: str
    files: list[str] = Field(description="the task's scope: every changed path must match one of these globs")
    description: str | None = None
    safety_check: str | None = Field(default=None, description="the plan's Safety check field, as written")
    warnings: list[str] = Field(
        default_factory=list, description="field values of the task that could not be read, and how they were read"
    )
    fields: dict[str, str] = Field(default_factory=dict, description="the task's other fields, as written")
    estimated_lines: int | None = None
    tests_defined: bool | None = None
    attempts: int = Field(default=0, description="earlier attempts at this task")
    last_failure: str | None = Field(default=None, description="why the last attempt failed")
    claimed_until: str | None = Field(default=None, description="this session's claim on it, when it holds one")

    @classmethod
    def of(cls, task: TaskDetail) -> TaskToStart:
        return cls(
            id=task.id,
            title=task.title,
            priority=task.priority,
            files=task.files,
            description=task.description,
            fields=task.fields,
            estimated_lines=task.estimated_lines,
            tests_defined=task.tests_defined,
            attempts=task.attempts,
            last_failure=task.last_failure,
            claimed_until=task.claim.expires if task.claim and task.claim.mine else None,
        )


SKIPPED_SHOWN = 10  # passed-over tasks the tool lists (plan_summary and list_tasks have the rest)


class NextTaskAnswer(BaseModel):
    """The `next_task` tool's answer: the task to start, and each task passed over as one line."""

    task: TaskToStart | None
    skipped: list[str] = Field(
        description=f"`id: why` for the first {SKIPPED_SHOWN} tasks passed over (those ahead of this one, or all "
        "when none is runnable), in queue order"
    )
    skipped_total: int = Field(description="how many were passed over in all")
    summary: str

    @classmethod
    def of(cls, found: NextTask) -> NextTaskAnswer:
        return cls(
            task=TaskToStart.of(found.task) if found.task else None,
            skipped=[f"{s.id}: {s.reason}" for s in found.skipped[:SKIPPED_SHOWN]],
            skipped_total=found.skipped_total,
            summary=found.summary,
        )


class ClaimResult(BaseModel):
    task_id: str
    session: str
    expires: str
    attempt: int = Field(description="which attempt at this task this claim is")
    renewed: bool


class TaskUpdate(BaseModel):
    task_id: str
    status: str
    recorded: bool
    message: str


class CompletionResult(BaseModel):
    task_id: str
    commit: str
    branch: str
    receipt_id: str
    plan_updated: bool
    message: str


class ProposalResult(BaseModel):
    task_id: str
    section: str
    line: int
    redacted: int = Field(description="secrets removed from the proposed text")
    message: str


class PlanProblem(BaseModel):
    line: int | None
    code: str
    message: str
    where: Literal["working tree", "base"]


class PlanValidation(BaseModel):
    ok: bool
    path: str
    base_ref: str
    tasks: int
    errors: list[PlanProblem]
    warnings: list[PlanProblem]


class PlanSummary(BaseModel):
    path: str
    base_ref: str
    tasks: int
    by_section: dict[str, int]
    by_state: dict[str, int]
    done_ratio: float = Field(description="done tasks / tasks that are not cancelled")
    blocked: list[SkippedTask] = Field(description="what is blocked, failed or unsafe, and why")
    next: TaskSummary | None
    problems: int = Field(description="errors in the plan file (see validate_plan)")
