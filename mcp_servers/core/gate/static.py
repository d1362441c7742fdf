"""The `complexity` (radon) and `security` (bandit) checks on the changed Python files, new against base.

Both judge only what the change made worse: a function the change touches that is too complex and more
complex than before, a file whose maintainability fell below the minimum, a bandit finding the base did not
have. The contents come from git's blobs, so the analysis sees exactly the tree being gated.
"""

from __future__ import annotations

import json
import sys
import time
import tomllib
from collections import Counter
from pathlib import Path
from typing import Any

from .. import proc
from ..changes import FileChange
from ..models import CheckResult, Finding
from .base import Check, GateContext, result

WORKER = "mcp_servers.core.worker"


def run_worker(request: dict[str, Any], timeout: float, cwd: Path) -> Any:
    """Ask the worker process; raise proc.ProcessError (with its stderr) when it fails or times out."""
    completed = proc.run(
        [sys.executable, "-m", WORKER],
        input=json.dumps(request).encode(),
        timeout=timeout,
        cwd=cwd,
        check=True,
    )
    return json.loads(completed.stdout)


def _materialise(ctx: GateContext, files: list[FileChange]) -> tuple[dict[str, str], dict[str, str]]:
    """Write the new and the base version of each file under the run's work dir: {rel: disk path}."""
    blobs = ctx.repo.read_blobs([oid for f in files for oid in (f.new_oid, f.old_oid)])
    new: dict[str, str] = {}
    base: dict[str, str] = {}
    for side, attr, out in (("new", "new_oid", new), ("base", "old_oid", base)):
        for f in files:
            data = blobs.get(getattr(f, attr))
            if data is None:
                continue
            rel = f.path if side == "new" else (f.old_path or f.path)
            disk = ctx.work_dir / side / rel
            disk.parent.mkdir(parents=True, exist_ok=True)
            disk.write_bytes(data)
            out[f.path] = str(disk)
    return new, base


def _python_changes(ctx: GateContext) -> list[FileChange]:
    wanted = set(ctx.python_files())
    return [f for f in ctx.changes.files if f.path in wanted]


def _complexity(ctx: GateContext) -> CheckResult:
    started = time.monotonic()
    cfg = ctx.settings.gate.complexity
    files = _python_changes(ctx)
    if not files:
        return result("complexity", True, "no Python files changed", started=started)
    new, base = _materialise(ctx, files)
    answer = run_worker(
        {"task": "radon", "files": {**new, **{f"base:{k}": v for k, v in base.items()}}},
        cfg.timeout_s,
        ctx.root,
    )
    findings = []
    for f in files:
        report, before = answer.get(f.path, {}), answer.get(f"base:{f.path}")
        if report.get("error"):
            findings.append(Finding(path=f.path, message=f"radon could not analyse it: {report['error']}"))
            continue
        changed = {n for n, _ in f.added_lines}
        old_cc = {fn["name"]: fn["cc"] for fn in (before or {}).get("functions", [])}
        for fn in report.get("functions", []):
            touched = any(fn["line"] <= n <= fn["end"] for n in changed)
            worse = fn["cc"] > old_cc.get(fn["name"], 0)
            if touched and worse and fn["cc"] > cfg.max_cyclomatic:
                findings.append(
                    Finding(
                        path=f.path,
                        line=fn["line"],
                        message=f"`{fn['name']}` has cyclomatic complexity {fn['cc']} (max "
                        f"{cfg.max_cyclomatic}); split it into smaller functions",
                    )
                )
        mi, old_mi = report.get("mi"), (before or {}).get("mi")
        if mi is not None and mi < cfg.min_maintainability and (old_mi is None or mi < old_mi):
            findings.append(
                Finding(
                    path=f.path,
                    message=f"maintainability index {mi:.1f} is below {cfg.min_maintainability:.1f}"
                    + (f" (was {old_mi:.1f})" if old_mi is not None else ""),
                )
            )
    if findings:
        return result("complexity", False, f"{len(findings)} complexity problem(s) in changed code", findings, started)
    return result("complexity", True, f"{len(files)} changed Python file(s) within complexity limits", started=started)


def _bandit_config(root: Path) -> str | None:
    """The project's own bandit settings, when its pyproject.toml has a [tool.bandit] table."""
    pyproject = root / "pyproject.toml"
    try:
        if pyproject.exists() and "bandit" in tomllib.loads(pyproject.read_text()).get("tool", {}):
            return str(pyproject)
    except (tomllib.TOMLDecodeError, UnicodeDecodeError, OSError):
        return None
    return None


def _security(ctx: GateContext) -> CheckResult:
    started = time.monotonic()
    cfg = ctx.settings.gate.security
    files = _python_changes(ctx)
    if not files:
        return result("security", True, "no Python files changed", started=started)
    new, base = _materialise(ctx, files)
    request = {
        "task": "bandit",
        "config": _bandit_config(ctx.root),
        "severity": cfg.severity,
        "confidence": cfg.confidence,
    }
    answer = run_worker({**request, "files": new, "base": base}, cfg.timeout_s, ctx.root)
    now, before = answer["files"], answer.get("base", [])
    known = Counter(_key(i) for i in before)
    fresh = []
    for issue in now:
        if known[_key(issue)] > 0:
            known[_key(issue)] -= 1
        else:
            fresh.append(issue)
    if fresh:
        findings = [
            Finding(
                path=i["path"],
                line=i["line"],
                message=f"{i['test_id']} ({i['severity']} severity, {i['confidence']} confidence): {i['text']}",
            )
            for i in fresh
        ]
        return result(
            "security",
            False,
            f"bandit found {len(fresh)} new security issue(s) in changed code; fix "
            "them (`# nosec` does not hide a finding from the gate)",
            findings,
            started,
        )
    return result("security", True, f"no new bandit findings in {len(files)} changed Python file(s)", started=started)


def _key(issue: dict[str, Any]) -> tuple[str, str, str, str, str]:
    # bandit's own baseline matching ignores line numbers (bandit/core/issue.py: Issue.__eq__)
    return issue["path"], issue["test_id"], issue["severity"], issue["confidence"], issue["text"]


COMPLEXITY = Check(name="complexity", run=_complexity, enabled=lambda s: s.gate.complexity.enabled)
SECURITY = Check(name="security", run=_security, enabled=lambda s: s.gate.security.enabled)
