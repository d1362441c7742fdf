"""`health_report`: what a planning session needs to know about the code, in a bounded answer.

Coverage by module (from the newest gate run's measurement), complexity hotspots and maintainability (radon),
security findings (bandit). radon and bandit run in the gate's worker process, with a timeout.
"""

from __future__ import annotations

import os
import re
from collections import defaultdict
from pathlib import Path, PurePosixPath

from . import receipts
from .errors import OvernightError
from .gate.static import run_worker
from .models import HealthReport, Hotspot, Maintainability, ModuleCoverage, SecurityIssue
from .paths import Globs, inside
from .workspace import Workspace

MAX_FILES = 5000
MAX_FILE_BYTES = 1_000_000
LISTED = 15
_SKIP_DIRS = {
    ".git",
    "node_modules",
    ".venv",
    "venv",
    "__pycache__",
    ".tox",
    ".mypy_cache",
    ".ruff_cache",
    "build",
    "dist",
}


def _cc_rank(cc: int) -> str:
    """radon's rank: A 1-5, B 6-10, C 11-20, D 21-30, E 31-40, F 41 and up."""
    for limit, rank in ((5, "A"), (10, "B"), (20, "C"), (30, "D"), (40, "E")):
        if cc <= limit:
            return rank
    return "F"


def _mi_rank(mi: float) -> str:
    return "A" if mi >= 20 else "B" if mi >= 10 else "C"


def _python_files(ws: Workspace, paths: list[str], keep: Globs | None = None) -> tuple[dict[str, str], list[str]]:
    """The Python files under `paths` (those `keep` matches, when given), at most MAX_FILES."""
    root = ws.repo.root
    found: dict[str, str] = {}
    notes = []
    for rel in paths:
        start = root / rel
        walk = [(str(start.parent), [], [start.name])] if start.is_file() else os.walk(start)
        for dirpath, dirnames, filenames in walk:
            dirnames[:] = sorted(d for d in dirnames if d not in _SKIP_DIRS and not d.startswith("."))
            for name in sorted(filenames):
                disk = Path(dirpath) / name
                relative = disk.relative_to(root).as_posix()
                if keep is not None and not keep.match(relative):
                    continue
                if disk.is_symlink() and not disk.resolve().is_relative_to(root.resolve()):
                    continue  # never read past the repository (radon's parse errors quote the file's lines)
                if name.endswith(".py") and disk.stat().st_size <= MAX_FILE_BYTES:
                    found[relative] = str(disk)
                if len(found) >= MAX_FILES:
                    notes.append(f"only the first {MAX_FILES} Python files were analysed")
                    return found, notes
    return found, notes


def configured_paths(ws: Workspace) -> tuple[list[str], Globs, list[str]]:
    """Where the code is, by the config (issue 11: any layout, not an assumed `src`): the folders of the allowed
    paths and of the coverage source that exist, outermost only; the globs a file must match (an allowed path, or
    inside a coverage source); and a note for each coverage source that does not exist."""
    root = ws.repo.root
    allowed = list(ws.settings.policy.allowed_paths)
    sources = [s.strip("/") for s in ws.settings.gate.coverage.source if s.strip("/") not in {"", "."}]
    folders, notes = [], []
    configured = [*((g, "policy.allowed_paths") for g in allowed), *((s, "gate.coverage.source") for s in sources)]
    for pattern, where in configured:
        folder = _folder(pattern)
        if ".." in PurePosixPath(folder).parts:  # (never walked: the repository's own code only)
            continue
        if (root / folder).exists():
            folders.append(folder)
        elif where == "gate.coverage.source":  # (an allowed folder not made yet, like docs/, is no mistake)
            notes.append(f"`{pattern}` in {where} does not exist here, so coverage measures nothing of it: fix it "
                         "in overnight.toml (`overnight doctor` checks it)")
    outermost = sorted({f for f in folders if not any(_under(f, g) for g in folders if g != f)})
    return outermost, Globs([*allowed, *(f"{s}/**" for s in sources)]), notes


def _folder(pattern: str) -> str:
    """The folder a glob starts in: the path before its first wildcard, up to the last `/` ("." for the root)."""
    head = re.split(r"[*?\[]", pattern.lstrip("/"), maxsplit=1)[0]
    if head != pattern.lstrip("/"):  # a wildcard: keep the folders before it
        head = head.rsplit("/", 1)[0] if "/" in head else ""
    return str(PurePosixPath(head)) if head.strip("/") else "."


def _under(path: str, folder: str) -> bool:
    return folder == "." or path.startswith(folder.rstrip("/") + "/")


def health_report(ws: Workspace, paths: list[str] | None = None) -> HealthReport:
    """Coverage, complexity, maintainability and security of the code under `paths` (default: where the config
    says the code is: the allowed paths and the coverage source)."""
    root = ws.repo.root
    keep: Globs | None = None
    config_notes: list[str] = []
    if paths:
        chosen = [inside(root, p) for p in paths]
    else:
        chosen, keep, config_notes = configured_paths(ws)
    files, notes = _python_files(ws, chosen, keep)
    notes = config_notes + notes
    report = HealthReport(
        paths=chosen,
        python_files=len(files),
        coverage_total=None,
        coverage_by_module=[],
        complexity_hotspots=[],
        maintainability=[],
        security=[],
        security_total=0,
        notes=notes,
    )
    _add_coverage(ws, report, set(files))
    if not files:
        report.notes.append("no Python files under these paths")
        return report
    timeout = max(300.0, ws.settings.gate.complexity.timeout_s)
    try:
        radon = run_worker({"task": "radon", "files": files}, timeout, root)
    except OvernightError as e:
        report.notes.append(f"radon could not run: {e}")
    else:
        _add_radon(report, radon)
    sec = ws.settings.gate.security
    try:
        issues = run_worker(
            {
                "task": "bandit",
                "files": files,
                "config": None,
                "severity": sec.severity,
                "confidence": sec.confidence,
            },
            max(300.0, sec.timeout_s),
            root,
        )
    except OvernightError as e:
        report.notes.append(f"bandit could not run: {e}")
    else:
        issues = issues["files"]
        report.security_total = len(issues)
        report.security = [SecurityIssue(**{k: i[k] for k in SecurityIssue.model_fields}) for i in issues[:30]]
    return report


def _add_radon(report: HealthReport, radon: dict[str, dict[str, object]]) -> None:
    functions = []
    for path, info in radon.items():
        for fn in info.get("functions") or []:  # type: ignore[attr-defined]
            functions.append(
                Hotspot(
                    path=path,
                    function=fn["name"],
                    line=fn["line"],
                    complexity=fn["cc"],
                    rank=_cc_rank(fn["cc"]),
                )
            )
        if info.get("error"):
            report.notes.append(f"{path}: {info['error']}")
    functions.sort(key=lambda h: -h.complexity)
    report.complexity_hotspots = functions[:LISTED]
    if functions:
        report.average_complexity = round(sum(h.complexity for h in functions) / len(functions), 2)
    mis = [
        Maintainability(path=p, index=float(i["mi"]), rank=_mi_rank(float(i["mi"])))  # type: ignore[arg-type]
        for p, i in radon.items()
        if i.get("mi") is not None
    ]
    report.maintainability = sorted(mis, key=lambda m: m.index)[:LISTED]


def _add_coverage(ws: Workspace, report: HealthReport, wanted: set[str]) -> None:
    """The total and the per-module figures of one measurement (lines run of statements, both), over the files
    analysed here; of HEAD's tree when it was measured, else the newest measured tree, and said which."""
    head = ws.repo.head()
    head_tree = ws.repo.tree_of(head) if head else None
    with ws.db() as conn:
        found = receipts.measured_coverage(conn, head_tree)
    if found is None:
        report.notes.append("no coverage measured yet: run the quality gate (`run_quality_gate`) once")
        return
    tree, created, files = found
    which = "HEAD's tree" if tree == head_tree else "the newest measured tree (not HEAD's)"
    modules: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for path, info in files.items():
        if wanted and path not in wanted:
            continue
        module = str(PurePosixPath(path).parent)
        modules[module][0] += int(info["covered"])
        modules[module][1] += int(info["statements"])
    covered, statements = sum(c for c, _ in modules.values()), sum(n for _, n in modules.values())
    report.coverage_tree = tree
    report.coverage_total = round(100.0 * covered / statements, 2) if statements else None
    report.coverage_of = (f"{which} {tree[:12]}, measured {created}: lines run of {statements} statements in "
                          f"{sum(1 for p in files if not wanted or p in wanted)} measured file(s) under these paths")
    report.coverage_by_module = sorted(
        (
            ModuleCoverage(module=m, percent=round(100.0 * c / n, 2) if n else 100.0, statements=n)
            for m, (c, n) in modules.items()
        ),
        key=lambda m: m.percent,
    )[:30]
    if not statements:
        report.notes.append(f"the coverage of {which} {tree[:12]} measured no file under these paths")
