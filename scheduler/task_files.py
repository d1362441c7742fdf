"""What a task works on, as the session sees it: the files in its scope, the files an attempt touched, the
claim kept alive while the agent works, the plan's Status line committed by the scheduler, and the person's folders
an agent has no business naming."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

from mcp_servers.core import queue
from mcp_servers.core.errors import OvernightError
from mcp_servers.core.paths import Globs
from mcp_servers.core.workspace import Workspace

from . import worktree

Clock = Callable[[], float]


def person_paths(ws: Workspace, session_root: Path) -> list[str]:
    """The person's folders an agent has no business naming: the checkout, git's folder, their home, overnight's
    own folder and every other worktree of the repository."""
    found = [str(ws.repo.root), str(ws.repo.common_dir), *(ws.environ.get(k, "") for k in ("HOME", "OVERNIGHT_HOME"))]
    listed = ws.repo.run("worktree", "list", "--porcelain", check=False).text().splitlines()
    found += [line[9:] for line in listed if line.startswith("worktree ") and line[9:] != str(session_root)]
    return [p for p in found if p and p != "/"]


def job_env(wt: Workspace) -> dict[str, str]:
    return {k: v for k, v in wt.environ.items() if k.startswith("OVERNIGHT_")}


@contextlib.contextmanager
def renewing(wt: Workspace, task_id: str, session: str, ttl: float, clock: Clock) -> Iterator[None]:
    """Keep the claim alive while the agent works (a dead scheduler's claim then expires on its own)."""
    done = threading.Event()

    def renew() -> None:
        while not done.wait(min(60.0, ttl / 3)):
            with contextlib.suppress(OvernightError):
                queue.claim_task(wt, task_id, session, ttl_s=ttl, clock=clock)

    thread = threading.Thread(target=renew, daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join(timeout=5)


def files_in_scope(wt: Workspace, globs: tuple[str, ...] | list[str]) -> list[str]:
    if not globs:
        return []
    scope = Globs(list(globs))
    return [p for p in wt.repo.out("ls-files").splitlines() if scope.match(p)][:50]


def changed(wt: Workspace, checkpoint: str) -> list[str]:
    """Files the attempt touched (committed or not), for memory's stale tracking."""
    committed = wt.repo.run("diff", "--name-only", "-z", checkpoint, "HEAD").text().split("\0")
    return [p for p in dict.fromkeys(committed + worktree.pending(wt.repo.root)) if p][:50]


def commit_plan_update(wt: Workspace, task_id: str) -> str | None:
    """Commit the plan's Status line that complete_task set, as the scheduler's own commit."""
    repo, path = wt.repo, wt.settings.plan.path
    if not repo.out("status", "--porcelain", "--", path):
        return None
    repo.run("add", "--", path)
    tree = repo.out("write-tree")
    head = repo.require_commits()
    message = (f"Mark {task_id} done\n\nOvernight-Task: {task_id}\n"
               "Overnight-Plan-Update: by the scheduler, after verifying the task's commits\n")  # fmt: skip
    new = repo.run("commit-tree", tree, "-p", head, "-F", "-", input=message.encode()).text().strip()
    repo.run("update-ref", "-m", f"overnight: {task_id} done", "HEAD", new, head)
    return new
