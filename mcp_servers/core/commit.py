"""The gated commit: only a tree with a passing receipt becomes a commit, with trailers that name it.

The commit is made with `git commit-tree` from the receipt's own tree id, so nothing staged after the gate
can slip in, and the branch moves with `git update-ref NEW OLD`, which fails if someone else moved it first.
Each commit made here is recorded, signed, before the branch moves (`receipts.record_commit`): the scheduler
keeps only commits this tool recorded for its session, whatever receipts exist for their trees (issue 10).
"""

from __future__ import annotations

import re

from . import receipts
from .errors import GateError, UsageError
from .gate import describe_failures, receipt_or_gate
from .git import git_env
from .models import CommitResult
from .workspace import Workspace

MAX_MESSAGE = 20_000
_TASK_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")
_OUR_TRAILER = re.compile(r"(?im)^\s*overnight-[\w-]+\s*:.*$\n?")


def clean_message(message: str) -> str:
    """The message without any `Overnight-*:` trailer a caller tried to write itself."""
    text = _OUR_TRAILER.sub("", message.replace("\r\n", "\n")).strip()
    if not text:
        raise UsageError("the commit message is empty: say what the change does in its first line.")
    if len(text) > MAX_MESSAGE:
        raise UsageError(f"the commit message is {len(text)} characters long; keep it under {MAX_MESSAGE}.")
    if "\0" in text:
        raise UsageError("the commit message contains a NUL byte.")
    return text


def check_task_id(task_id: str) -> str:
    if not _TASK_ID.match(task_id):
        raise UsageError(f"{task_id!r} is not a task id: use the id from the plan, e.g. `task_3`.")
    return task_id


def commit(
    ws: Workspace,
    message: str,
    *,
    task_id: str | None = None,
    task_files: list[str] | None = None,
    base: str | None = None,
    author: tuple[str, str] | None = None,
) -> CommitResult:
    """Gate the working tree (or reuse its receipt) and commit exactly the tree the receipt names.

    `author`: (name, email) the commit is authored as, whatever the environment says (the quality server passes
    the agent's identity from the trusted settings); the committer stays whoever runs git (issue 11)."""
    text = clean_message(message)
    task_id = check_task_id(task_id) if task_id else ws.task_id
    repo = ws.repo
    with ws.lock("gate"):
        head = repo.require_clean_state()
        branch = repo.branch() or ""
        report = receipt_or_gate(ws, task_files=task_files, base=base)
        if not report.passed or report.receipt is None:
            raise GateError(
                f"nothing was committed because the gate failed:\n{describe_failures(report)}\n"
                "Fix these, run `run_quality_gate` again, then `commit`."
            )
        receipt = report.receipt
        if receipt.tree == repo.tree_of(head):
            raise GateError("nothing to commit: the working tree matches HEAD.")
        trailers = ["--trailer", f"Overnight-Receipt: {receipt.id}"]
        if task_id:
            trailers += ["--trailer", f"Overnight-Task: {task_id}"]
        full = repo.run("interpret-trailers", *trailers, input=(text + "\n").encode()).text()
        env = None
        if author is not None:
            env = {**git_env(), "GIT_AUTHOR_NAME": author[0], "GIT_AUTHOR_EMAIL": author[1]}
        made = repo.run("commit-tree", receipt.tree, "-p", head, "-F", "-", input=full.encode(), env=env,
                        check=False)  # fmt: skip
        if not made.ok:
            raise GateError(
                f"git could not make the commit: {made.stderr.decode(errors='replace').strip()}. If it asks who "
                "you are, set `git config user.name` and `git config user.email`.",
            )
        new = made.text().strip()
        with ws.db() as conn:
            receipts.record_commit(conn, ws.key(), commit=new, tree=receipt.tree, receipt_id=receipt.id,
                                   session=ws.session_id, task_id=task_id)  # fmt: skip
        subject = text.splitlines()[0][:200]
        repo.run("update-ref", "-m", f"overnight commit: {subject}", "HEAD", new, head)
    return CommitResult(
        commit=new,
        branch=branch,
        tree=receipt.tree,
        receipt_id=receipt.id,
        task_id=task_id,
        message=full.strip(),
    )
