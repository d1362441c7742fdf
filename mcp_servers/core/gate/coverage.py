"""The `coverage` and `diff-coverage` checks, read from the data the `tests` check measured.

`coverage`: the total is at least `gate.coverage.min_total` and not lower than the base's (measured once per
base tree, in a temporary worktree, and remembered). `diff-coverage`: of the statements the change added,
at least `gate.coverage.min_changed_lines` percent ran under the tests, and none is hidden from coverage by an
exclusion (matched as coverage.py matches it, with the base tree's configuration: see `gate.exclusions`).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from ..models import Finding
from . import exclusions
from .base import Check, GateContext, line_ranges, relative, result

# Coverage percentages are rounded by coverage.py; a drop smaller than this is noise, not a regression.
TOLERANCE = 0.01


def per_file(root: Path, data: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """coverage.py's JSON report keyed by repository-relative path."""
    return {relative(root, name): info for name, info in data.get("files", {}).items()}


def percent(data: dict[str, Any]) -> float:
    return float(data.get("totals", {}).get("percent_covered", 0.0))


def _missing_data(ctx: GateContext, name: str, started: float) -> Any:
    why = ctx.artifacts.get("coverage_missing") or "the tests did not produce coverage data"
    return result(name, False, f"coverage could not be measured: {why}", started=started)


def _total(ctx: GateContext) -> Any:
    started = time.monotonic()
    data = ctx.artifacts.get("coverage")
    if data is None:
        return _missing_data(ctx, "coverage", started)
    cov = ctx.settings.gate.coverage
    total = percent(data)
    problems = []
    if total + TOLERANCE < cov.min_total:
        problems.append(f"total coverage is {total:.2f}%, below the minimum of {cov.min_total:.2f}%")
    base = None
    if cov.compare_base:
        base = ctx.base_coverage()
        if base is None:
            problems.append(
                "the base's coverage could not be measured, so a drop cannot be ruled out "
                "(set `gate.coverage.compare_base = false` if the suite cannot run from a clean "
                "checkout)"
            )
        elif total + TOLERANCE < base:
            problems.append(f"total coverage fell from {base:.2f}% (base) to {total:.2f}%")
    if problems:
        worst = sorted(per_file(ctx.root, data).items(), key=lambda kv: kv[1]["summary"]["percent_covered"])[:10]
        findings = [
            Finding(
                path=p,
                message=f"{i['summary']['percent_covered']:.1f}% covered; missing lines "
                f"{line_ranges(i['missing_lines'])}",
            )
            for p, i in worst
            if i["missing_lines"]
        ]
        return result(
            "coverage",
            False,
            "; ".join(problems) + ". Add tests for the code the change touches.",
            findings,
            started,
            percent=round(total, 2),
            base=base,
        )
    vs = f" (base {base:.2f}%)" if base is not None else ""
    return result(
        "coverage",
        True,
        f"total coverage {total:.2f}%{vs}",
        started=started,
        percent=round(total, 2),
        base=base,
    )


def _changed(ctx: GateContext) -> Any:
    started = time.monotonic()
    data = ctx.artifacts.get("coverage")
    if data is None:
        return _missing_data(ctx, "diff-coverage", started)
    files = per_file(ctx.root, data)
    covered = total = 0
    findings = []
    measured = measured_files(ctx, base_rules(ctx))
    for f in ctx.changes.files:
        if f.path not in measured:
            continue
        added = {n for n, _ in f.added_lines}
        info = files.get(f.path)
        if info is None:
            # never imported by the tests: every added line of code counts as missed
            missed = sorted(n for n, text in f.added_lines if text.strip() and not text.strip().startswith("#"))
            statements = set(missed)
        else:
            statements = added & (set(info["executed_lines"]) | set(info["missing_lines"]))
            missed = sorted(statements & set(info["missing_lines"]))
        total += len(statements)
        covered += len(statements) - len(missed)
        if missed:
            findings.append(
                Finding(
                    path=f.path,
                    line=missed[0],
                    message=f"changed lines not run by any test: {line_ranges(missed)}",
                )
            )
    early = ctx.artifacts.get(EXCLUSIONS)
    excluded = early.result() if early is not None else exclusions_added(ctx)
    if excluded:
        return result(
            "diff-coverage",
            False,
            f"the change adds {len(excluded)} coverage exclusion(s); write tests "
            "instead (only a person may exclude code from coverage)",
            excluded,
            started,
        )
    minimum = ctx.settings.gate.coverage.min_changed_lines
    if total == 0:
        return result("diff-coverage", True, "the change adds no statements under coverage", started=started)
    pct = 100.0 * covered / total
    if pct + TOLERANCE < minimum:
        return result(
            "diff-coverage",
            False,
            f"only {covered} of {total} changed statements ({pct:.1f}%) ran "
            f"under the tests; at least {minimum:.0f}% must. Add tests that exercise them.",
            findings,
            started,
            percent=round(pct, 2),
        )
    return result(
        "diff-coverage",
        True,
        f"{covered} of {total} changed statements covered ({pct:.1f}%)",
        findings,
        started,
        percent=round(pct, 2),
    )


def base_rules(ctx: GateContext) -> exclusions.Rules:
    """coverage.py's configuration in the base tree, remembered for the gate run (both coverage checks use it)."""
    rules = ctx.artifacts.get(RULES)
    if rules is None:
        rules = ctx.artifacts[RULES] = exclusions.read_rules(ctx.repo, ctx.changes.base)
    return rules


def measured_files(ctx: GateContext, rules: exclusions.Rules) -> set[str]:
    """The changed Python files coverage.py measures: under the source, and not left out by the base's `[run]
    omit`/`include` (a person's configuration: a project that omits its own test files never measured them, so
    their lines are never "not run"; an agent's edit of that configuration changes nothing here)."""
    return {p for p in ctx.python_files(ctx.settings.gate.coverage.source) if rules.measures(p)}


RULES = "coverage_rules"  # ctx.artifacts: `base_rules`
EXCLUSIONS = "coverage_exclusions"  # ctx.artifacts: a future of `exclusions_added`, started beside the tests


def exclusions_added(ctx: GateContext) -> list[Finding]:
    """Statements the change hides from coverage, judged with the base tree's coverage configuration. It reads
    only the change, so the gate works it out while the tests run (see `EXCLUSIONS`)."""
    rules = base_rules(ctx)
    measured = measured_files(ctx, rules)
    files = [f for f in ctx.changes.files if f.path in measured and f.added_lines]
    if not files:
        return []
    return [
        Finding(path=h.path, line=h.line, message=f"adds a coverage exclusion: `{h.text[:80]}` {h.why}")
        for h in exclusions.hidden(ctx.repo, files, rules)
    ]


def _enabled(settings: Any) -> bool:
    return bool(settings.gate.coverage.enabled)


TOTAL = Check(name="coverage", run=_total, enabled=_enabled, needs=("tests",))
CHANGED = Check(name="diff-coverage", run=_changed, enabled=_enabled, needs=("tests",))
