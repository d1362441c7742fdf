"""The plan file as the queue reads and writes it: the committed plan on the base ref (approval and scope)
and the working tree's file, parsed once per content; written under a lock, compare-and-swap, never with errors."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from . import plan as P
from .errors import OvernightError, UsageError
from .git import check_ref
from .workspace import Workspace

Clock = Callable[[], float]


class PlanError(OvernightError):
    """The plan file cannot be read or written safely."""


# -- loading -------------------------------------------------------------------------------------------------


@dataclass
class Plans:
    path: str
    base_ref: str
    base: P.Plan | None  # the plan committed at the base ref: approval and scope
    working: P.Plan | None  # the working tree's file: what tools write and people edit
    key: tuple[object, ...] = ()  # what these plans were read from: the base blob id and the file's stat

    def base_task(self, task_id: str) -> P.Task | None:
        return self.base.by_id.get(task_id) if self.base else None

    def any_task(self, task_id: str) -> P.Task:
        for plan in (self.base, self.working):
            if plan is not None and task_id in plan.by_id:
                return plan.by_id[task_id]
        raise UsageError(f"there is no task `{task_id}` in the plan: `list_tasks` shows the ids.")


# Parsed plans, by what they were read from: a committed blob's id, or a file's path and stat. A server answers
# many calls on the same plan; a 10,000-task plan takes a noticeable fraction of a second to parse.
_BY_BLOB: dict[str, P.Plan] = {}
_BY_FILE: dict[Path, tuple[tuple[int, int, int], P.Plan]] = {}


def _remember_blob(oid: str, plan: P.Plan) -> P.Plan:
    if len(_BY_BLOB) >= 4:
        _BY_BLOB.pop(next(iter(_BY_BLOB)))
    _BY_BLOB[oid] = plan
    return plan


def base_ref(ws: Workspace) -> str:
    return ws.environ.get("OVERNIGHT_BASE") or ws.settings.plan.base_branch or "HEAD"


def load(ws: Workspace) -> Plans:
    path = ws.settings.plan.path
    ref = base_ref(ws)
    base, base_oid = None, None
    found = ws.repo.object_id(f"{check_ref(ref)}:{path}")
    if found is None:
        if ws.repo.head() is not None:
            ws.repo.resolve(ref)  # a ref that names nothing is an error; a missing plan is not
    elif found[1] == "blob":
        base_oid = found[0]
        base = _BY_BLOB.get(base_oid)
        if base is None:
            raw = ws.repo.show_file(ref, path) or b""
            base = _remember_blob(base_oid, P.parse(raw))
    working, stat = _working(ws.repo.root / path, base)
    return Plans(path=path, base_ref=ref, base=base, working=working, key=(base_oid, stat))


def _working(disk: Path, base: P.Plan | None) -> tuple[P.Plan | None, tuple[int, int, int] | None]:
    try:
        st = disk.stat()
    except FileNotFoundError:
        return None, None
    stat = (st.st_mtime_ns, st.st_size, st.st_ino)
    cached = _BY_FILE.get(disk)
    if cached is not None and cached[0] == stat:
        return cached[1], stat
    raw = disk.read_bytes()
    plan = base if base is not None and base.raw == raw else P.parse(raw)
    if len(_BY_FILE) >= 4:
        _BY_FILE.pop(next(iter(_BY_FILE)))
    _BY_FILE[disk] = (stat, plan)
    return plan, stat


# -- the plan file: locked, compare-and-swap writes ------------------------------------------------------------


def edit(
    ws: Workspace,
    mutate: Callable[[P.Plan], bytes | None],
    attempts: int = 5,
    *,
    check: Callable[[P.Plan, P.Plan], str | None] | None = None,
) -> tuple[P.Plan, bytes | None]:
    """Apply `mutate` to the working tree's plan and write the result, only if the file still holds what was read.

    A person's edit that lands in between is never lost: the file is read again and the change applied again.
    A plan with errors is never written, before or after the change; nor one that lost a task, or that `check`
    (given the plans before and after) says what is wrong with. Returns the plan that was edited and the new
    bytes (None: no change).
    """
    path = ws.repo.root / ws.settings.plan.path
    with ws.lock("plan"):
        for _ in range(attempts):
            try:
                raw = path.read_bytes()
            except FileNotFoundError as e:
                raise PlanError(f"there is no {ws.settings.plan.path}: `overnight init` writes one.") from e
            plan = P.parse(raw)
            if not plan.ok:
                raise PlanError(f"{ws.settings.plan.path} has errors, so it is not written: {_problems(plan)}")
            new = mutate(plan)
            if new is None or new == raw:
                return plan, None
            _check_result(ws, plan, P.parse(new), check)
            tmp = path.with_name(f".{path.name}.overnight-{os.getpid()}")
            tmp.write_bytes(new)
            os.chmod(tmp, path.stat().st_mode & 0o7777)
            if path.read_bytes() != raw:  # someone wrote it meanwhile: read again, apply again
                tmp.unlink()
                continue
            os.replace(tmp, path)
            return plan, new
    raise PlanError(f"{ws.settings.plan.path} kept changing while it was being updated; try again.")


def _check_result(
    ws: Workspace, before: P.Plan, after: P.Plan, check: Callable[[P.Plan, P.Plan], str | None] | None
) -> None:
    """Read the edited plan back before it is written: no errors, no task lost, and what the caller asks for."""
    name = ws.settings.plan.path
    if not after.ok:
        raise PlanError(f"the change would leave {name} with errors, so it is not written: {_problems(after)}")
    lost = [task_id for task_id in before.by_id if task_id not in after.by_id]
    if lost:
        raise PlanError(f"the change would hide {', '.join(lost[:5])} in {name}, so it is not written.")
    wrong = check(before, after) if check is not None else None
    if wrong:
        raise PlanError(f"{wrong}, so {name} is not written.")


def _problems(plan: P.Plan, limit: int = 5) -> str:
    shown = [f"line {p.line}: {p.message}" if p.line else p.message for p in plan.errors[:limit]]
    more = f" (and {len(plan.errors) - limit} more)" if len(plan.errors) > limit else ""
    return "; ".join(shown) + more + ". `overnight plan validate` lists them."
