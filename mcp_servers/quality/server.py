"""The `quality` MCP server: the safety policy, the quality gate, its receipts and the gated commit.

Each tool makes one call into the core and returns the core's pydantic model as structured output; the
logic lives in `mcp_servers.core`. Heavy analysis libraries load only in the gate's worker processes.
"""

from __future__ import annotations

from typing import Annotated

from mcp.server import MCPServer
from mcp.types import ToolAnnotations
from pydantic import BaseModel, Field

from ..core import __version__, config
from ..core.errors import UsageError
from ..core.models import ChangeReport, CommitResult, GateReport, GateStatus, HealthReport, TaskCheck
from ..core.workspace import Workspace
from ..serving import light_output_schemas, log_level, tool_errors

# The core's machinery (policy, gate, commit, health) is imported inside the tools that use it: start-up
# imports only what the tool schemas need (a benchmarked target, bench/cold_start.py).

INSTRUCTIONS = """\
The quality gate of this repository. Nothing reaches a branch unless it passes the safety policy and the gate.
Before work: `validate_task` (is the task allowed?), `get_policy` (what may be changed).
While working: `validate_changes` (is the working tree within the policy?).
When done: `run_quality_gate`, fix everything it reports, run it again; then `commit` (the only way to commit:
it needs a passing receipt for the exact tree). `gate_status` tells where the working tree stands."""

TaskFiles = Annotated[
    list[str] | None,
    Field(
        description="the task's Files: scope as globs relative to the repository root, e.g. ['src/models/*.py']; "
        "every changed path must match one"
    ),
]


class PolicyView(BaseModel):
    config_path: str
    config_exists: bool
    config_source: str = Field(description="where the settings in force come from (the committed overnight.toml)")
    policy_hash: str = Field(description="receipts are valid only under this hash")
    policy: config.Policy
    gate: config.Gate


def build(repo: str | None = None) -> MCPServer:
    """The server, serving the repository at `repo` (default: $OVERNIGHT_REPO, else the working directory)."""
    mcp = MCPServer("quality", version=__version__, instructions=INSTRUCTIONS, log_level=log_level())

    def ws() -> Workspace:
        return Workspace.open(repo)

    @mcp.tool(annotations=ToolAnnotations(read_only_hint=True, idempotent_hint=True))
    def validate_task(
        description: Annotated[
            str, Field(description="what the task asks for, in words (not needed with task_id)", max_length=20_000)
        ] = "",
        estimated_lines: Annotated[int | None, Field(description="expected changed lines", ge=0)] = None,
        alignment_score: Annotated[
            int | None, Field(description="alignment with the project, 0-100", ge=0, le=100)
        ] = None,
        tests_defined: Annotated[bool | None, Field(description="whether the task names its tests")] = None,
        files: TaskFiles = None,
        task_id: Annotated[
            str | None, Field(description="check this task of PROJECT_PLAN.md instead (its text and fields)")
        ] = None,
    ) -> TaskCheck:
        """Check a task against the safety policy before any work starts: forbidden operations named in its text
        (deleting files, dropping tables, adding dependencies, payments, credentials...), its size, its alignment
        score, whether it defines tests, and whether its files are ones an agent may change. Returns ok and every
        violation with how to fix it. Do not start a task that is not ok."""
        from ..core import policy, queue

        with tool_errors():
            if task_id:
                return queue.check_plan_task(ws(), task_id)
            if not description.strip():
                raise UsageError("give the task's `description`, or the `task_id` of a task in the plan.")
            return policy.check_task(
                ws().settings,
                description,
                estimated_lines=estimated_lines,
                alignment_score=alignment_score,
                tests_defined=tests_defined,
                files=files,
            )

    @mcp.tool(annotations=ToolAnnotations(read_only_hint=True, idempotent_hint=True))
    def validate_changes(
        base: Annotated[
            str | None,
            Field(description="commit to compare with (default: the task's checkpoint, else HEAD)"),
        ] = None,
        task_files: TaskFiles = None,
    ) -> ChangeReport:
        """Judge the working tree (staged, unstaged and untracked files) against the safety policy, as git sees it:
        protected paths, paths outside the allowed ones or the task's scope, deletions, renames, mode changes,
        symlinks, submodules, binaries, secrets and destructive SQL in added lines, size. Returns every violation
        with its rule, path and fix, the changed files and the lines added and removed. Stages nothing."""
        from ..core.gate import check_workspace

        with tool_errors():
            return check_workspace(ws(), base=base, task_files=task_files)

    @mcp.tool(annotations=ToolAnnotations(read_only_hint=False, destructive_hint=False, idempotent_hint=True))
    def run_quality_gate(task_files: TaskFiles = None) -> GateReport:
        """Run the quality gate on the working tree: stage everything (`git add -A`), take the tree id, check the
        safety policy, then run the tests under coverage, total and changed-line coverage, complexity, security and
        any configured commands on that exact tree. When you change tests, the tests as they were at the task's
        checkpoint also run against your code: weakening one does not make a failing change pass. On a pass,
        records a receipt that `commit` needs. A second run on an unchanged tree answers from the receipt. Every
        failure says what failed where and how to fix it."""
        from ..core.gate import run_gate

        with tool_errors():
            return run_gate(ws(), task_files=task_files)

    @mcp.tool(annotations=ToolAnnotations(read_only_hint=False, destructive_hint=False, idempotent_hint=False))
    def commit(
        message: Annotated[str, Field(description="commit message; first line is the subject", max_length=20_000)],
        task_id: Annotated[str | None, Field(description="the plan's task id this work is for")] = None,
    ) -> CommitResult:
        """Commit the working tree, but only if it has a passing gate receipt (the gate runs first when it has
        none). The commit carries `Overnight-Receipt:` and `Overnight-Task:` trailers. This is the only way to
        commit: `git commit` is refused."""
        from ..core.commit import commit as gated_commit

        with tool_errors():
            w = ws()
            # the caller of a tool is a model: its commits are authored as the agent (the trusted settings'
            # identity, never the caller's input or environment); the person stays the committer (issue 11)
            agent = w.settings.scheduler
            author = (agent.agent_name, agent.agent_email) if agent.agent_name and agent.agent_email else None
            return gated_commit(w, message, task_id=task_id, author=author)

    @mcp.tool(annotations=ToolAnnotations(read_only_hint=True, idempotent_hint=True))
    def gate_status() -> GateStatus:
        """Where the working tree stands: does it, as it is now, have a passing receipt; how did the last gate run
        end; what to do next. Runs nothing and stages nothing."""
        from ..core.gate import gate_status as status

        with tool_errors():
            return status(ws())

    @mcp.tool(annotations=ToolAnnotations(read_only_hint=True, idempotent_hint=True))
    def get_policy() -> PolicyView:
        """The safety policy and gate settings in force (from overnight.toml, or the defaults): allowed and
        protected paths, limits, forbidden operations, coverage and complexity thresholds, and the policy hash
        receipts are bound to."""
        with tool_errors():
            w = ws()
            path = w.repo.root / config.CONFIG_NAME
            return PolicyView(
                config_path=str(path),
                config_exists=path.exists(),
                config_source=w.config_source,
                policy_hash=w.settings.policy_hash(),
                policy=w.settings.policy,
                gate=w.settings.gate,
            )

    @mcp.tool(annotations=ToolAnnotations(read_only_hint=True, idempotent_hint=True))
    def health_report(
        paths: Annotated[
            list[str] | None, Field(description="files or folders to report on (default: the allowed paths)")
        ] = None,
    ) -> HealthReport:
        """A picture of the code for planning: coverage by module (from the newest gate run), the most complex
        functions, the least maintainable files and bandit's security findings. Bounded in size."""
        from ..core.health import health_report as report

        with tool_errors():
            return report(ws(), paths)

    return light_output_schemas(mcp)
