"""The pydantic models the core returns: MCP tools return them as structured output, the CLI prints them."""

from __future__ import annotations

from typing import Literal, TypeVar

from pydantic import BaseModel, Field

# Outputs stay well under Claude Code's 25k-token cap on a tool result: long lists are cut and counted.
MAX_LISTED = 100
T = TypeVar("T")


class Violation(BaseModel):
    """One way a task or a change breaks the safety policy."""

    rule: str = Field(description="stable rule id, e.g. protected-path, outside-allowed, secret")
    path: str | None = Field(default=None, description="the file it concerns, repository-relative")
    message: str = Field(description="what is wrong")
    fix: str = Field(default="", description="what would make it pass")


class FileSummary(BaseModel):
    path: str
    status: Literal["added", "modified", "deleted", "renamed", "copied", "type-changed", "unknown"]
    old_path: str | None = None
    added: int = 0
    removed: int = 0
    binary: bool = False
    mode: str = ""


class ChangeReport(BaseModel):
    """The working tree against a base, judged by the safety policy."""

    safe: bool
    base: str = Field(description="commit the work is compared with")
    tree: str = Field(description="git tree id of the work that was judged")
    violations: list[Violation]
    files: list[FileSummary]
    files_total: int = Field(description="number of changed files (the list may be cut)")
    violations_total: int
    lines_added: int
    lines_removed: int
    policy_hash: str


class TaskCheck(BaseModel):
    """A task judged against the policy before any work starts."""

    ok: bool
    task_id: str | None = None
    violations: list[Violation]


class Finding(BaseModel):
    path: str | None = None
    line: int | None = None
    message: str


class CheckResult(BaseModel):
    """One gate check. A check that could not run has failed, and says why."""

    name: str
    status: Literal["passed", "failed", "skipped"]
    summary: str
    findings: list[Finding] = Field(default_factory=list)
    findings_total: int = 0
    duration_s: float = 0.0
    data: dict[str, float | int | str | None] = Field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return self.status != "failed"


class Receipt(BaseModel):
    """Proof that a tree passed the policy and every check, signed with the repository's key."""

    id: str
    tree: str
    base: str
    policy_hash: str
    scope: list[str] = Field(default_factory=list, description="the task's Files: patterns it was checked against")
    checks: dict[str, str] = Field(description="check name -> status")
    session: str | None = None
    task_id: str | None = None
    created: str
    kind: str = Field(description="who asked for the run: agent-gate (an agent's session) or person-check")
    mac: str


class GateReport(BaseModel):
    """What `run_quality_gate` found. `passed` is true only with a receipt for `tree` (except the scheduler's own
    verification run, whose verdict is never a receipt)."""

    passed: bool
    cached: bool = Field(default=False, description="answered from the receipt of an earlier identical run")
    tree: str
    base: str
    summary: str
    checks: list[CheckResult]
    violations: list[Violation] = Field(default_factory=list)
    receipt: Receipt | None = None


class CommitResult(BaseModel):
    commit: str
    branch: str
    tree: str
    receipt_id: str
    task_id: str | None = None
    message: str


def cut(items: list[T], limit: int = MAX_LISTED) -> list[T]:
    """The first `limit` items: tool answers stay bounded, and a `*_total` field says how many there were."""
    return items[:limit]


class RunSummary(BaseModel):
    id: str
    tree: str
    passed: bool
    created: str
    summary: str
    failed: list[str] = Field(default_factory=list, description="names of the checks that failed")


class GateStatus(BaseModel):
    """Where the working tree stands with the gate, without staging or running anything."""

    tree: str = Field(description="tree id of the working tree as it is now")
    head: str
    branch: str | None
    clean: bool = Field(description="true when the working tree matches HEAD")
    receipt: Receipt | None = Field(description="the passing receipt for this tree under the current policy")
    last_run: RunSummary | None
    policy_hash: str
    advice: str


# -- health_report -----------------------------------------------------------------------------------------


class ModuleCoverage(BaseModel):
    module: str
    percent: float
    statements: int


class Hotspot(BaseModel):
    path: str
    function: str
    line: int
    complexity: int
    rank: str


class Maintainability(BaseModel):
    path: str
    index: float
    rank: str


class SecurityIssue(BaseModel):
    path: str
    line: int
    test_id: str
    severity: str
    confidence: str
    text: str


class HealthReport(BaseModel):
    paths: list[str]
    python_files: int
    coverage_total: float | None = Field(description="lines run of statements in the measured files under these "
                                        "paths, one measurement with coverage_by_module (see coverage_of)")
    coverage_tree: str | None = None
    coverage_of: str | None = Field(default=None, description="which tree the coverage figures are of (HEAD's, "
                                    "else the newest measured), when measured, and over what")
    coverage_by_module: list[ModuleCoverage] = Field(description="least covered first")
    complexity_hotspots: list[Hotspot] = Field(description="most complex functions first")
    average_complexity: float | None = None
    maintainability: list[Maintainability] = Field(description="least maintainable files first")
    security: list[SecurityIssue]
    security_total: int
    notes: list[str] = Field(default_factory=list)
