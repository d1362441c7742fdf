"""Static analysis of a small change in a big repository: ours (changed files only) vs bandit on the whole package.

Measures: Django's sdist (5.2.x, downloaded from PyPI with pip at run time into bench/.cache, which git ignores;
nothing of Django is committed) is extracted into a temporary directory and made a git repository with one
commit. Five Python files of median size under django/ (not `__init__.py`, none the default policy protects)
each get a realistic small edit: a 3-line helper function appended (25 added lines in all, within the default
30-line limit). Then, timed as one unit, what the product does for that change:
  1. `policy.check_changes(repo, settings, base="HEAD")`, with `Settings(policy=Policy(allowed_paths=["django/**"]))`
     so every changed path is really matched and scanned (it takes the working tree's tree id, diffs it, and
     runs every policy rule);
  2. `changes = collect(repo, base, tree)` and a `GateContext` built as `gate._judge` builds it;
  3. `static.COMPLEXITY.run(ctx)` and `static.SECURITY.run(ctx)`, side by side in a thread pool of
     `gate.PARALLEL` workers as the gate runs independent checks (radon and bandit run in worker processes on
     the changed files, new and base version).
Reference: `python -m bandit -r django -q -f json -o /dev/null --exit-zero` in the extracted tree, i.e. bandit
over the whole Django package (885 files); `--reference-dir .` takes the whole sdist instead (tests and docs too,
about three times slower, so an easier target). Ours and the reference are interleaved (the order alternates
every round); medians are compared.
Target: ours takes under 1/20 of the reference's time.

Run: .venv/bin/python bench/django_static.py [--rounds 5] [--ours-per-round 3] [--reference-dir django]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from mcp_servers.core import gate
from mcp_servers.core.changes import collect
from mcp_servers.core.config import Policy, Settings
from mcp_servers.core.gate import static
from mcp_servers.core.gate.base import GateContext
from mcp_servers.core.git import Repo
from mcp_servers.core.paths import Globs
from mcp_servers.core.policy import check_changes

TARGET = 20  # ours must be at least this many times faster
REQUIREMENT = "django==5.2.*"
CACHE = Path(__file__).resolve().parent / ".cache"
N_FILES = 5

EDIT = '''

def _{name}_is_blank(value):
    """Whether `value` is None or holds only whitespace."""
    return value is None or not str(value).strip()
'''


def sdist() -> Path:
    """Django's sdist from bench/.cache, downloaded with pip the first time."""
    found = sorted(CACHE.glob("[Dd]jango-5.2.*.tar.gz"))
    if not found:
        CACHE.mkdir(parents=True, exist_ok=True)
        print(f"downloading {REQUIREMENT} (sdist) into {CACHE} ...", flush=True)
        subprocess.run([sys.executable, "-m", "pip", "download", REQUIREMENT, "--no-deps", "--no-binary", ":all:",
                        "-d", str(CACHE), "-q"], check=True)  # fmt: skip
        found = sorted(CACHE.glob("[Dd]jango-5.2.*.tar.gz"))
    if not found:
        raise SystemExit(f"no Django 5.2 sdist in {CACHE} after pip download")
    return found[-1]


def git(root: Path, *args: str) -> None:
    subprocess.run(["git", "-c", "user.name=bench", "-c", "user.email=bench@example.invalid",
                    "-c", "commit.gpgsign=false", *args], cwd=root, check=True, capture_output=True)  # fmt: skip


def prepare(tarball: Path, dest: Path) -> Path:
    """Extract the sdist (owned by us: filter='data' drops the archive's uids) and commit it."""
    with tarfile.open(tarball) as tar:
        tar.extractall(dest, filter="data")
    (root,) = [p for p in dest.iterdir() if p.is_dir()]
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "Django sdist")
    return root


def pick_files(root: Path, settings: Settings) -> list[Path]:
    """N_FILES modules of median size under django/ that the policy lets an agent change."""
    protected = Globs(settings.policy.all_protected, folded=True)
    allowed = Globs(settings.policy.allowed_paths)
    candidates = []
    for path in (root / "django").rglob("*.py"):
        rel = path.relative_to(root).as_posix()
        if path.name != "__init__.py" and allowed.match(rel) and not protected.match(rel):
            candidates.append((path.stat().st_size, rel, path))
    candidates.sort()
    middle = len(candidates) // 2
    return [p for _size, _rel, p in candidates[middle - N_FILES // 2 : middle - N_FILES // 2 + N_FILES]]


def edit(files: list[Path]) -> None:
    for path in files:
        text = path.read_text()
        name = path.stem.strip("_")
        path.write_text(text.rstrip("\n") + "\n" + EDIT.format(name=name))


def ours(repo: Repo, settings: Settings) -> dict[str, Any]:
    """The policy and the two static checks on the working tree's change; seconds per phase, and the results."""
    started = time.perf_counter()
    report = check_changes(repo, settings, base="HEAD")
    policy_s = time.perf_counter() - started
    changes = collect(repo, report.base, report.tree)
    with tempfile.TemporaryDirectory(prefix="gate-") as work:
        ctx = GateContext(repo=repo, settings=settings, changes=changes, work_dir=Path(work),
                          environ=dict(os.environ), base_coverage=lambda: None)  # fmt: skip
        with ThreadPoolExecutor(max_workers=gate.PARALLEL, thread_name_prefix="bench") as pool:
            futures = [pool.submit(check.run, ctx) for check in (static.COMPLEXITY, static.SECURITY)]
            results = [f.result() for f in futures]
    total = time.perf_counter() - started
    return {"total": total, "policy": policy_s, "report": report, "results": results}


def reference(root: Path, target: str) -> float:
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "bandit", "-r", target, "-q", "-f", "json", "-o", os.devnull,
                           "--exit-zero"], cwd=root, capture_output=True, check=False)  # fmt: skip
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"bandit failed ({done.returncode}): {done.stderr.decode(errors='replace')[-2000:]}")
    return elapsed


def validate(run: dict[str, Any]) -> None:
    report = run["report"]
    if not report.safe or report.files_total != N_FILES:
        raise SystemExit(f"the edit is not a clean {N_FILES}-file change within the policy: "
                         f"{report.files_total} files, violations {report.violations}")  # fmt: skip
    for r in run["results"]:
        if r.status != "passed":
            raise SystemExit(f"the {r.name} check did not pass on the edit: {r.summary} {r.findings}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="rounds; one reference run each (default 5)")
    parser.add_argument("--ours-per-round", type=int, default=3, help="runs of ours per round (default 3)")
    parser.add_argument(
        "--reference-dir",
        default="django",
        help="what bandit -r scans, relative to the sdist root (default: django, the package)",
    )
    args = parser.parse_args()

    tarball = sdist()
    settings = Settings(policy=Policy(allowed_paths=["django/**"]))
    with tempfile.TemporaryDirectory(prefix="bench-django-") as tmp:
        root = prepare(tarball, Path(tmp))
        files = pick_files(root, settings)
        sizes = {f: f.stat().st_size for f in files}
        edit(files)
        repo = Repo.discover(root)
        n_py = sum(1 for _ in (root / args.reference_dir).rglob("*.py"))
        print(f"django static: {tarball.name}, {N_FILES} edited files of median size (+5 lines each):")
        for f in files:
            print(f"    {f.relative_to(root).as_posix()} ({sizes[f]} bytes before the edit)")
        validate(ours(repo, settings))  # warm-up, and proof that the change and the checks are what we say

        runs: list[dict[str, Any]] = []
        refs: list[float] = []
        for i in range(args.rounds):
            steps = ["ours", "ref"] if i % 2 == 0 else ["ref", "ours"]
            for step in steps:
                if step == "ref":
                    refs.append(reference(root, args.reference_dir))
                else:
                    for _ in range(args.ours_per_round):
                        run = ours(repo, settings)
                        validate(run)
                        runs.append(run)
            latest = statistics.median(r["total"] for r in runs[-args.ours_per_round :])
            print(f"  round {i + 1}/{args.rounds}: bandit {refs[-1]:.2f} s, ours {latest:.3f} s", flush=True)

    ours_s = statistics.median(r["total"] for r in runs)
    ref_s = statistics.median(refs)

    def phase(getter: Any) -> float:
        return float(statistics.median(getter(r) for r in runs))

    print(f"  ours (check_changes + complexity + security, side by side) x{len(runs)}: median {ours_s:.3f} s "
          f"(min {min(r['total'] for r in runs):.3f} s)")  # fmt: skip
    print(f"    of which check_changes {phase(lambda r: r['policy']):.3f} s; complexity check "
          f"{phase(lambda r: r['results'][0].duration_s):.3f} s, security check "
          f"{phase(lambda r: r['results'][1].duration_s):.3f} s (run side by side)")  # fmt: skip
    print(f"  reference `bandit -r {args.reference_dir}` ({n_py} .py files) x{len(refs)}: median {ref_s:.2f} s "
          f"(min {min(refs):.2f} s)")  # fmt: skip
    ratio = ours_s / ref_s
    ok = ratio < 1 / TARGET
    print(f"  ratio ours/bandit: {ratio:.4f} (1/{1 / ratio:.1f})")
    print(f"  target under 1/{TARGET} ({1 / TARGET:.3f}): {'PASS' if ok else 'FAIL'}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
