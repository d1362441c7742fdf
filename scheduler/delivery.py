"""Delivery: the session branch pushed and a draft pull request opened, by the scheduler, never the agent."""

from __future__ import annotations

import time
from collections.abc import Callable

from mcp_servers.core import limitstore, proc
from mcp_servers.core.errors import OvernightError
from mcp_servers.core.workspace import Workspace

from . import report


def deliver(ws: Workspace, record: report.SessionRecord, clock: Callable[[], float] = time.time) -> None:
    """Push the branch and open a draft pull request, when configured: the scheduler pushes, agents never do.

    Nothing here fails the session: what did not work is in the report, and the branch is there either way. A
    pull-request limit of `[limits]` reached: the branch is pushed, no pull request opened, and the report says why."""
    settings = ws.settings.scheduler
    if not settings.push_remote:
        return
    remote, branch = settings.push_remote, record.branch
    pushed = ws.repo.run("push", "--quiet", remote, f"refs/heads/{branch}:refs/heads/{branch}", check=False,
                         timeout=300)
    if not pushed.ok:
        record.delivery.append(f"`git push {remote} {branch}` failed: {pushed.describe(tail_lines=5)}")
        return
    record.pushed = f"{remote}/{branch}"
    if not settings.open_pr:
        return
    with ws.db() as conn:
        reserved = limitstore.admit_pr(conn, ws.settings.limits, session=record.id, now=clock())
    if isinstance(reserved, limitstore.Blocked):
        record.delivery.append(f"the pull request was not opened: {reserved.reason()}; open it by hand (`gh pr "
                               f"create --draft --head {branch}`) or wait")  # fmt: skip
        return
    if not _opened(ws, record, branch):
        with ws.db() as conn:
            limitstore.release(conn, reserved)


def _opened(ws: Workspace, record: report.SessionRecord, branch: str) -> bool:
    """`gh pr create --draft`, its body the report; whether the pull request was opened."""
    body = report.save(ws.state_dir, record)
    argv = ["gh", "pr", "create", "--draft", "--head", branch, "--base", record.base_branch,
            "--title", f"overnight {record.id}: {_done_titles(record)}", "--body-file", str(body)]
    try:
        made = proc.run(argv, cwd=ws.repo.root, timeout=300)
    except OvernightError as e:  # gh is not installed
        record.delivery.append(f"the pull request was not opened: {e}")
        return False
    if made.ok:
        record.pull_request = made.text().strip().splitlines()[-1] if made.text().strip() else "(opened)"
        return True
    record.delivery.append(f"`gh pr create` failed: {made.describe(tail_lines=5)}")
    return False


def _done_titles(record: report.SessionRecord) -> str:
    done = [t.task_id for t in record.tasks if t.outcome == "passed"]
    return ", ".join(done) or "no task done"
