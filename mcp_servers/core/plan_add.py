"""A person's new task (`overnight plan add`): written into PROJECT_PLAN.md in the plan's format, in the section
its approval puts it in, and committed alone.

The commit is made through a temporary index (`GIT_INDEX_FILE`) holding HEAD's tree plus the new plan, so
whatever the person has staged or changed elsewhere stays out of it and stays as it was; only the plan's own
entry in their index moves to the committed content (it had no staged change: a plan file with edits that are
not ours is refused before anything is written).
"""

from __future__ import annotations

import os
import tempfile
import time
import unicodedata
from collections.abc import Callable, Sequence

from pydantic import BaseModel, Field

from . import plan as P
from .errors import OvernightError, UsageError
from .git import git_env
from .paths import clean_glob
from .plan_store import PlanError, edit, load
from .policy import check_task
from .queue import TITLE_MAX, _find, _inert, _new_id
from .workspace import Workspace

Clock = Callable[[], float]
# Rules that make a task unsafe whatever its size or score: `--approve` refuses them (nothing is written).
_REFUSED_WHEN_APPROVED = ("forbidden:", "protected-path", "outside-allowed")


class AddedTask(BaseModel):
    """The task `overnight plan add` wrote, where, and the commit that holds it."""

    id: str
    title: str
    section: str = Field(description="ready (approved with --approve) or pending")
    line: int = Field(description="the task's line in the plan file")
    block: list[str] = Field(description="the lines written into the plan")
    commit: str | None = Field(description="the commit holding the plan alone, or None with --no-commit")
    notes: list[str] = Field(default_factory=list, description="what will hold the task back once approved")


def add_task(
    ws: Workspace,
    title: str,
    *,
    files: Sequence[str] = (),
    priority: str = "P2",
    depends_on: Sequence[str] = (),
    tests: str | None = None,
    estimate: int | None = None,
    alignment: int | None = None,
    description: str | None = None,
    task_id: str | None = None,
    approve: bool = False,
    commit: bool = True,
    clock: Clock = time.time,
) -> AddedTask:
    """Write a new task (Ready when `approve`, else Pending Approval) and commit the plan alone.

    Refuses, writing nothing: an empty title, an unknown dependency, a taken or malformed id, a file pattern
    that leaves the repository, uncommitted edits in the plan file (when committing), and, with `approve`, a
    task the policy refuses (a forbidden operation, a protected or disallowed scope). Without `approve` such a
    task is written under Pending Approval, and `notes` says what will hold it back.
    """
    text = _inert(title)
    if not text:
        raise UsageError("the task needs a title: `overnight plan add 'Add a slugify helper'`.")
    if len(text) > TITLE_MAX:
        raise UsageError(f"keep the title under {TITLE_MAX} characters; put the rest in `--description`.")
    level = priority.strip().upper()
    if level not in {"P0", "P1", "P2", "P3"}:
        raise UsageError(f"priority {priority!r} is not P0, P1, P2 or P3.")
    globs = [_glob(g) for g in _split(files)]
    test_path = _glob(tests) if tests else None
    plans = load(ws)
    deps = list(dict.fromkeys(_split(depends_on)))
    missing = [d for d in deps if not P.ID_PATTERN.match(d) or _find(plans, d) is None]
    if missing:
        raise UsageError(f"no task {', '.join(f'`{d}`' for d in missing)} in the plan: `overnight plan list` shows "
                         "the ids.")  # fmt: skip
    if task_id is not None and (not P.ID_PATTERN.match(task_id) or _find(plans, task_id) is not None):
        raise UsageError(f"`{task_id}` cannot be the new task's id: it is taken or not an id (letters, digits, `_`, "
                         "`-`, `.`, `:`; at most 64).")  # fmt: skip
    new_id = task_id or _new_id(plans)
    about = _inert(description or "")
    notes = _check(ws, new_id, " ".join(p for p in (text, about) if p), globs, estimate, alignment, test_path, approve)
    block = _block(new_id, text, level, deps, globs, alignment, estimate, test_path, about, approve)
    path = ws.settings.plan.path
    if commit:
        _refuse_foreign_edits(ws, path)
    section = "ready" if approve else "pending"

    def placed(_before: P.Plan, after: P.Plan) -> str | None:
        found = after.by_id.get(new_id)
        if found is None:
            return f"the new task `{new_id}` would not be read as a task (is a comment or a code block left open?)"
        return None if found.section == section else f"the new task `{new_id}` would not be under {section}"

    _, new = edit(ws, lambda p: None if new_id in p.by_id else P.append_task(p, section, block), check=placed)
    if new is None:
        raise PlanError(f"a task `{new_id}` appeared in {path} meanwhile; add it again.")
    summary = f"plan: add {new_id} ({'approved' if approve else 'pending approval'})"
    made = _commit_plan(ws, path, new, summary) if commit else None
    line = P.parse(new).by_id[new_id].line
    return AddedTask(id=new_id, title=text, section=section, line=line, block=block,
                     commit=made, notes=notes)  # fmt: skip


def _split(values: Sequence[str]) -> list[str]:
    """Option values given repeated or comma-separated: `--files a --files b` or `--files a,b`."""
    return [part.strip() for value in values for part in value.split(",") if part.strip()]


def _glob(raw: str) -> str:
    """A file pattern for one line of the plan: inside the repository, no line break or control character."""
    if any(unicodedata.category(ch) in {"Cc", "Zl", "Zp"} for ch in raw):
        raise UsageError(f"{raw!r} is not a file pattern: it holds a line break, a tab or a control character.")
    return clean_glob(raw)


def _check(
    ws: Workspace,
    task_id: str,
    text: str,
    globs: list[str],
    estimate: int | None,
    alignment: int | None,
    tests: str | None,
    approve: bool,
) -> list[str]:
    """What the queue's check will say of the task: refused now under `approve` when it is unsafe in itself."""
    found = check_task(ws.settings, text, estimated_lines=estimate, alignment_score=alignment,
                       tests_defined=bool(tests), files=globs, task_id=task_id).violations  # fmt: skip
    unsafe = [v for v in found if v.rule.startswith(_REFUSED_WHEN_APPROVED)]
    if approve and unsafe:
        reasons = "; ".join(f"{v.rule}: {v.message}" for v in unsafe)
        raise UsageError(f"not added: {reasons}. Leave it to a person, or add it without `--approve` (it goes "
                         "under Pending Approval).")  # fmt: skip
    return [f"{v.rule}: {v.message} ({v.fix})" for v in found]


def _block(
    task_id: str,
    title: str,
    priority: str,
    deps: list[str],
    globs: list[str],
    alignment: int | None,
    estimate: int | None,
    tests: str | None,
    description: str,
    approve: bool,
) -> list[str]:
    """The task's lines, in the format of DESIGN.md's example."""
    block = [f"- **[{task_id}]** {title}", f"  - Priority: {priority}"]
    block += [f"  - Depends on: {', '.join(deps)}"] if deps else []
    block += [f"  - Files: {', '.join(globs)}"] if globs else []
    block += [f"  - Alignment score: {alignment}/100"] if alignment is not None else []
    block += [f"  - Estimated lines: {estimate}"] if estimate is not None else []
    block += [f"  - Tests defined: ✅ Yes ({tests})" if tests else "  - Tests defined: ⏳ Needs definition"]
    block += [f"  - Description: {description}"] if description else []
    block += ["  - Status: READY"] if approve else []
    return block


def _refuse_foreign_edits(ws: Workspace, path: str) -> None:
    """The commit holds the plan alone, so the plan file must hold nothing but what this command writes."""
    if ws.repo.head() is None:
        raise UsageError("the repository has no commits yet: commit PROJECT_PLAN.md first "
                         "(`git add -A && git commit -m 'Initial commit'`), or add with `--no-commit`.")  # fmt: skip
    busy = ws.repo.operation_in_progress()
    if busy:
        raise UsageError(f"{busy} is in progress: finish it first, or add with `--no-commit`.")
    status = ws.repo.out("status", "--porcelain", "--untracked-files=all", "--", path)
    if status:
        raise UsageError(f"{path} has uncommitted edits ({status.split()[0]}) that this command did not make, so it "
                         f"would not commit the plan alone: commit or stash them first (`git diff HEAD -- {path}` "
                         "shows them), or add with `--no-commit`.")  # fmt: skip


def _commit_plan(ws: Workspace, path: str, content: bytes, message: str) -> str:
    """Commit `content` as the plan on top of HEAD through a temporary index; returns the commit id.

    HEAD moves only if it is still the commit the new one is made on (`update-ref NEW OLD`).
    """
    repo = ws.repo
    head = repo.require_commits()
    mode = repo.ls_tree(head, [path]).get(path, ("100644", ""))[0]
    blob = repo.run("hash-object", "-w", "--stdin", f"--path={path}", input=content).text().strip()
    env = git_env()
    with tempfile.TemporaryDirectory(prefix=".overnight-plan-", dir=repo.git_dir) as folder:
        env["GIT_INDEX_FILE"] = os.path.join(folder, "index")
        repo.run("read-tree", head, env=env)
        repo.run("update-index", "--add", "--cacheinfo", f"{mode},{blob},{path}", env=env)
        tree = repo.run("write-tree", env=env).text().strip()
    commit = repo.run("commit-tree", tree, "-p", head, "-m", message).text().strip()
    moved = repo.run("update-ref", "-m", f"overnight {message}", "HEAD", commit, head, check=False)
    if not moved.ok:
        raise OvernightError(f"HEAD moved while the plan was being committed; {path} holds the new task, "
                             f"uncommitted: commit it yourself (`git commit -- {path}`).")  # fmt: skip
    # the person's index: only the plan's entry, which had no staged change, follows the commit
    repo.run("update-index", "--cacheinfo", f"{mode},{blob},{path}")
    return commit
