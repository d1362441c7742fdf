"""`overnight commit -m MSG`: a person's gated commit, for a checkout whose receipt hook is installed.

The gate runs on the working tree (or its receipt is reused), then the exact tree it passed is committed with the
`Overnight-Receipt:` trailer, through the same core as the `commit` tool: authored and committed by the person
(their git identity), never by the agent identity agent commits carry. The index is then set to the new commit,
so `git status` shows what it showed before, less what was committed.
"""

from __future__ import annotations

from pydantic import BaseModel, Field

from mcp_servers.core import hooks
from mcp_servers.core.commit import commit
from mcp_servers.core.errors import UsageError
from mcp_servers.core.models import CommitResult
from mcp_servers.core.workspace import Workspace


class PersonCommit(BaseModel):
    commit: CommitResult
    hook_installed: bool = Field(description="the receipt hook is installed in this checkout")


def person_commit(ws: Workspace, message: str, task_files: list[str] | None = None) -> PersonCommit:
    """Gate the working tree and commit it as the person; GateError (with the failures) when the gate fails."""
    if ws.environ.get("OVERNIGHT_SESSION_ID"):  # never trust the agent: a session commits with the `commit` tool
        raise UsageError("`overnight commit` is a person's command and cannot run inside an overnight session: "
                         "agents commit with the `commit` tool.")  # fmt: skip
    made = commit(ws, message, task_files=task_files or None)
    ws.repo.run("reset", "--quiet")  # the index as the new commit has it (the gate may have staged elsewhere)
    return PersonCommit(commit=made, hook_installed=hooks.is_installed(ws))
