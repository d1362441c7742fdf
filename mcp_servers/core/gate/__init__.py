"""The quality gate: stage the work, take its tree id, judge that exact tree, and sign a receipt on a pass.

1. `git add -A`, `git write-tree`: the tree id names exactly what is judged.
2. The safety policy on the diff from the base (the task's checkpoint, or HEAD). If it fails, nothing runs.
3. The checks, each a plugin with its own timeout: tests under coverage, the checkpoint's tests in their
   checkpoint version (when the change touches tests), total and changed-line coverage, complexity, security,
   and any configured commands. Independent ones run side by side.
4. The tree is taken again: if the checks changed it, the run fails (a receipt must name what was checked).
5. Every run is recorded; a passing one is a receipt. The same tree, base, policy and scope answer from it.
"""

from __future__ import annotations

import logging
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from .. import db, queue, receipts
from ..changes import collect, default_base
from ..errors import OvernightError
from ..git import printable
from ..models import ChangeReport, CheckResult, Finding, GateReport, GateStatus, RunSummary
from ..paths import clean_glob
from ..policy import check_changes, evaluate
from ..workspace import Workspace
from . import commands, coverage, expectations, static, tests
from .base import Check, GateContext, result, skipped
from .progress import GateEvent, Progress

log = logging.getLogger(__name__)

# the two test runs first, so that they start side by side
BUILTIN: list[Check] = [
    tests.CHECK,
    expectations.CHECK,
    coverage.TOTAL,
    coverage.CHANGED,
    static.COMPLEXITY,
    static.SECURITY,
]
PARALLEL = 3


def all_checks(ws: Workspace) -> list[Check]:
    return [*BUILTIN, *commands.checks(ws.settings)]


def run_gate(
    ws: Workspace,
    *,
    task_files: list[str] | None = None,
    base: str | None = None,
    fresh: bool = False,
    kind: receipts.Kind | None = None,
    progress: Progress | None = None,
) -> GateReport:
    """Run the gate on the working tree (staging it) and return the report, with a receipt when it passed.

    With `fresh`, every check runs even when a receipt exists: the scheduler's own verification trusts no
    receipt an agent could have had a hand in. `kind` says who asks (see `receipts`); by default a fresh run is
    a `verification` (a verdict, never a receipt), else an `agent-gate` in a session and a `person-check` without.
    `progress` is told each check's start and end and the tests' count as they happen (see `gate.progress`).
    """
    with ws.lock("gate"):
        return gate_locked(ws, task_files=task_files, base=base, fresh=fresh, kind=kind, progress=progress)


def gate_locked(
    ws: Workspace,
    *,
    task_files: list[str] | None = None,
    base: str | None = None,
    fresh: bool = False,
    kind: receipts.Kind | None = None,
    progress: Progress | None = None,
) -> GateReport:
    """`run_gate` for a caller that already holds the workspace's gate lock (`commit` does)."""
    repo = ws.repo
    repo.require_clean_state()
    base_commit = repo.resolve(base or default_base(ws.environ))
    scope = sorted({clean_glob(p) for p in task_files or queue.task_scope(ws) or []})
    tree = repo.stage_all_and_write_tree()
    policy_hash = ws.settings.policy_hash()
    key = ws.key()
    if not fresh:
        with ws.db() as conn:
            hit = receipts.find(conn, key, tree=tree, policy_hash=policy_hash, base=base_commit, scope=scope)
        if hit:
            return hit[1].model_copy(update={"cached": True, "receipt": hit[0]})
    report = _judge(ws, tree, base_commit, scope, progress)
    with ws.db() as conn:
        signed = receipts.record(conn, key, report, policy_hash=policy_hash, scope=scope, session=ws.session_id,
                                 task_id=ws.task_id, kind=kind or _kind(ws, fresh))  # fmt: skip
    return report.model_copy(update={"receipt": signed})


def _kind(ws: Workspace, fresh: bool) -> receipts.Kind:
    if fresh:
        return "verification"
    return "agent-gate" if ws.session_id else "person-check"


def check_workspace(ws: Workspace, *, base: str | None = None, task_files: list[str] | None = None) -> ChangeReport:
    """The working tree judged by the policy, with the session task's scope and the project tools' plan edits."""
    return check_changes(
        ws.repo,
        ws.settings,
        base=base or default_base(ws.environ),
        task_files=task_files or queue.task_scope(ws),
        plan=queue.plan_guard(ws),
    )


def receipt_or_gate(ws: Workspace, *, task_files: list[str] | None = None, base: str | None = None) -> GateReport:
    """A passing receipt for the working tree under the current policy and base, whatever scope it was made
    with (a scoped run is the stricter one), else a fresh gate run. The caller holds the gate lock."""
    repo = ws.repo
    repo.require_clean_state()
    base_commit = repo.resolve(base or default_base(ws.environ))
    tree = repo.stage_all_and_write_tree()
    with ws.db() as conn:
        hit = receipts.find(conn, ws.key(), tree=tree, policy_hash=ws.settings.policy_hash(), base=base_commit)
    if hit:
        receipt, report = hit
        return report.model_copy(update={"cached": True, "receipt": receipt})
    return gate_locked(ws, task_files=task_files, base=base)


def describe_failures(report: GateReport, per_check: int = 8) -> str:
    """The failed checks and their first findings, as lines an agent can act on."""
    lines = []
    for check in report.checks:
        if check.status != "failed":
            continue
        lines.append(f"- {check.name}: {check.summary}")
        for f in check.findings[:per_check]:
            where = f"{f.path}:{f.line}" if f.path and f.line else f.path or ""
            text = f.message if len(f.message) < 2000 else f.message[-2000:]
            lines.append(f"    {where} {text}".rstrip())
        if check.findings_total > per_check:
            lines.append(f"    ... and {check.findings_total - per_check} more")
    return "\n".join(lines)


def _judge(ws: Workspace, tree: str, base: str, scope: list[str], progress: Progress | None = None) -> GateReport:
    repo = ws.repo
    progress = _safe(progress) if progress is not None else None
    tell = progress or (lambda _event: None)
    tell(GateEvent("start", "safety"))
    began = time.monotonic()
    changes = collect(repo, base, tree)
    violations = evaluate(repo, ws.settings.policy, changes, scope, queue.plan_guard(ws))
    safety = result(
        "safety",
        not violations,
        f"{len(violations)} safety violation(s): undo them before anything else runs"
        if violations
        else f"{len(changes.files)} changed file(s), {changes.lines_added + changes.lines_removed} "
        "changed line(s), within the policy",
        [Finding(path=v.path, message=f"[{v.rule}] {v.message}. Fix: {v.fix}") for v in violations],
        began,
    )
    _ended(tell, safety)
    checks = all_checks(ws)
    tmp = db.ensure_dir(ws.state_dir / "tmp")
    with tempfile.TemporaryDirectory(prefix="gate-", dir=tmp) as work:
        ctx = GateContext(
            repo=repo,
            settings=ws.settings,
            changes=changes,
            work_dir=Path(work),
            environ=ws.environ,
            base_coverage=lambda: None,
            approved_scope=_approved_scope(ws, scope),
            progress=progress,
        )
        ctx.base_coverage = lambda: _base_coverage(ws, ctx)
        if violations:
            results = [skipped(c.name, "not run: the safety policy failed") for c in checks]
            for skip in results:
                _ended(tell, skip)
        else:
            ctx.tree_dir = repo.export(tree, Path(work) / "tree")
            results = _run_checks(ctx, checks)
        _remember_coverage(ws, tree, ctx)
    after = repo.worktree_tree()
    if after != tree:
        moved = collect(repo, base, after).files
        touched = sorted({f.path for f in moved} - {f.path for f in changes.files})[:10]
        results.append(
            result(
                "unchanged",
                False,
                "the working tree changed while the gate ran (a check wrote "
                "files, or someone edited them); ignore generated files in .gitignore or wait "
                "for the gate before editing",
                [Finding(path=printable(p), message="changed during the gate") for p in touched],
            )
        )
        _ended(tell, results[-1])
    everything = [safety, *results]
    failed = [c for c in everything if not c.passed]
    summary = (
        f"gate failed: {'; '.join(f'{c.name}: {c.summary}' for c in failed)}"
        if failed
        else f"gate passed: {', '.join(c.name for c in everything if c.status == 'passed')}; the tree "
        f"{tree[:12]} has a receipt, so `commit` will accept it"
    )
    return GateReport(
        passed=not failed,
        tree=tree,
        base=base,
        summary=summary,
        checks=everything,
        violations=violations[:100],
    )


def _safe(progress: Progress) -> Progress:
    """The observer, never able to fail the gate: what it raises is logged and forgotten."""

    def tell(event: GateEvent) -> None:
        try:
            progress(event)
        except Exception:
            log.exception("the gate's progress observer failed")

    return tell


def _ended(tell: Progress, check: CheckResult) -> None:
    tell(GateEvent("end", check.name, status=check.status, seconds=check.duration_s, summary=check.summary))


def _approved_scope(ws: Workspace, scope: list[str]) -> list[str]:
    """The globs that may approve changed expectations: in a session on a task, that task's `Files:` as the base
    plan has them, whatever `task_files` the agent passed; else the scope the caller gave (a person, the scheduler)."""
    if not ws.task_id:
        return scope
    try:
        return sorted({clean_glob(p) for p in queue.task_scope(ws) or []})
    except OvernightError:
        return []  # a plan that cannot be read approves nothing


def _run_checks(ctx: GateContext, checks: list[Check]) -> list[CheckResult]:
    """Run the enabled checks, chains of dependent checks in order and independent chains side by side."""
    done: dict[str, CheckResult] = {}
    chains: list[list[Check]] = []
    for check in checks:
        if not check.enabled(ctx.settings):
            done[check.name] = skipped(check.name, "disabled in overnight.toml")
            if ctx.progress is not None:
                _ended(ctx.progress, done[check.name])
            continue
        chain = next((c for c in chains if any(x.name in check.needs for x in c)), None)
        if chain is None:
            chains.append([check])
        else:
            chain.append(check)

    def run_chain(chain: list[Check]) -> None:
        for check in chain:
            blocked = [n for n in check.needs if n in done and not done[n].passed]
            if blocked:
                done[check.name] = skipped(check.name, f"not run: `{blocked[0]}` failed")
            else:
                if ctx.progress is not None:
                    ctx.progress(GateEvent("start", check.name))
                done[check.name] = _run_one(ctx, check)
            if ctx.progress is not None:
                _ended(ctx.progress, done[check.name])

    with ThreadPoolExecutor(max_workers=PARALLEL, thread_name_prefix="gate") as pool:
        for future in [pool.submit(run_chain, chain) for chain in chains]:
            future.result()
    return [done[c.name] for c in checks]


def _run_one(ctx: GateContext, check: Check) -> CheckResult:
    """One check; a check that crashes has failed, with the reason (never a silent pass)."""
    try:
        return check.run(ctx)
    except OvernightError as e:
        return result(check.name, False, f"could not run: {e}")
    except Exception as e:
        log.exception("gate check %s crashed", check.name)
        return result(check.name, False, f"could not run: {type(e).__name__}: {e}")


def _base_coverage(ws: Workspace, ctx: GateContext) -> float | None:
    """The base's total coverage: remembered by tree, else measured once on a fresh export of the base."""
    base_tree = ctx.changes.base_tree
    if base_tree == ctx.changes.tree and ctx.artifacts.get("coverage") is not None:
        return coverage.percent(ctx.artifacts["coverage"])
    with ws.db() as conn:
        known = receipts.coverage_of(conn, base_tree)
    if known is not None:
        return known[0]
    where = ws.repo.export(base_tree, ctx.work_dir / "base-tree")
    _done, data, _missing = tests.measure(ctx.run_code, where, ws.settings, ctx.work_dir / "base-tests", ctx.env())
    if data is None:
        return None
    with ws.db() as conn:
        receipts.save_coverage(conn, base_tree, coverage.percent(data), _file_percents(ws, data))
    return coverage.percent(data)


def _remember_coverage(ws: Workspace, tree: str, ctx: GateContext) -> None:
    data = ctx.artifacts.get("coverage")
    if data is not None:
        with ws.db() as conn:
            receipts.save_coverage(conn, tree, coverage.percent(data), _file_percents(ws, data))


def _file_percents(ws: Workspace, data: dict[str, object]) -> dict[str, dict[str, float]]:
    """Per file: statements, covered lines and percent, as the health report groups them by module."""
    out = {}
    for path, info in coverage.per_file(ws.repo.root, data).items():  # names are relative already
        summary = info["summary"]
        out[path] = {
            "statements": summary["num_statements"],
            "covered": summary["covered_lines"],
            "percent": round(float(summary["percent_covered"]), 2),
        }
    return out


def gate_status(ws: Workspace) -> GateStatus:
    """Whether the working tree, as it is now, has a receipt; and how the last gate run ended. Stages nothing."""
    repo = ws.repo
    head = repo.require_commits()
    tree = repo.worktree_tree()
    policy_hash = ws.settings.policy_hash()
    with ws.db() as conn:
        hit = receipts.find(conn, ws.key(), tree=tree, policy_hash=policy_hash)
        last = receipts.last_runs(conn, 1)
    last_run = None
    if last:
        row = last[0]
        report = GateReport.model_validate_json(row["report"])
        last_run = RunSummary(
            id=row["id"],
            tree=row["tree"],
            passed=bool(row["passed"]),
            created=row["created"],
            summary=report.summary,
            failed=[c.name for c in report.checks if not c.passed],
        )
    clean = tree == repo.tree_of(head)
    if hit:
        advice = "the working tree has a passing receipt: `commit` will accept it"
    elif clean:
        advice = "nothing to gate: the working tree matches HEAD"
    else:
        advice = "the working tree has no receipt: run `run_quality_gate`"
    return GateStatus(
        tree=tree,
        head=head,
        branch=repo.branch(),
        clean=clean,
        receipt=hit[0] if hit else None,
        last_run=last_run,
        policy_hash=policy_hash,
        advice=advice,
    )
