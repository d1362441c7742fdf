"""What the gate costs over the project's own test run: `overnight check --gate` against `python -m pytest -q`.

Measures, in one run, on more-itertools (its sdist, pinned, fetched once with `pip download` into the cache folder,
as bench/sandbox.py does), for each Python given (by default pyenv's 3.12 and 3.11):

- a virtual environment of that Python with overnight installed from this checkout (`pip install -e`, or from
  `--overnight PATH`, another checkout, for figures before a change) and pytest and coverage, so that `python` in
  the test command is that interpreter;
- the sdist made a git repository with an `overnight.toml` that fits its flat layout (allowed paths
  `more_itertools/**` and `tests/**`, coverage of `more_itertools`, the base's coverage compared, the sandbox on:
  `sandbox = "bwrap"`, as in real use), its 2 slowest tests left out of every command unless `--whole-suite`;
- side by side, in interleaved rounds (the order alternates), compared by median:
  (a) the project's own `python -m pytest -q` in the repository;
  (b) a first gate: the state cleared (no receipt, the base's coverage not remembered), then
      `overnight check --gate` of a one-file change (a line of `take()` in `more_itertools/recipes.py` changed,
      which the existing tests run);
  (c) a gate whose base is measured: right after (b), the same line changed again (a new tree, so no receipt
      answers), `overnight check --gate` again;
  (d) for the record, no target: a change of code and its test (a function appended to `recipes.py`, its test to
      `tests/test_recipes.py`), the base measured. A change that touches a test file costs one more run of the
      suite: the checkpoint's tests, in a process that never imports the agent's test files (issue 10).
  Every gate must pass, else the figures mean nothing.

Reference: (a). Target, on Python 3.12 and newer: (c)/(a) <= 1.3x and (b)/(a) <= 2.3x; other versions' figures are
printed without a target. The machine's other load is not controlled: compare figures of one run.

Run: .venv/bin/python bench/gate_vs_pytest.py [--rounds 3] [--python /path/to/python3.12 ...] [--whole-suite]
     [--overnight /path/to/checkout] [--cache ~/.cache/overnight-bench]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

from sandbox import PIN, ROOT, SLOWEST, fetch_sdist  # bench/sandbox.py: the same sdist, cache and left-out tests

PYTHONS = ["/root/.pyenv/versions/3.12.1/bin/python3.12", "/root/.pyenv/versions/3.11.7/bin/python3.11"]
MEASURED_TARGET = 1.3
FIRST_TARGET = 2.3
TARGET_SINCE = (3, 12)
CONFIG = """[policy]
allowed_paths = ["more_itertools/**", "tests/**"]

[gate]
test_command = {command}

[gate.coverage]
source = ["more_itertools"]
min_total = 50
compare_base = true

[scheduler]
sandbox = "bwrap"
"""
FUNCTION = '\n\ndef clamp(value, low, high):\n    """{doc}"""\n    return max(low, min(value, high))\n'
TEST = "\n\nclass ClampTests(TestCase):\n    def test_clamp(self):\n" \
    "        self.assertEqual([mi.recipes.clamp(v, 0, 3) for v in (-1, 2, 5)], [0, 2, 3])\n"  # fmt: skip


def git(root: Path, *args: str) -> str:
    return subprocess.run(["git", "-c", "user.name=bench", "-c", "user.email=bench@example.invalid",
                           "-c", "commit.gpgsign=false", *args], cwd=root, check=True, capture_output=True,
                          text=True).stdout.strip()  # fmt: skip


def make_venv(python: str, where: Path, overnight: Path) -> Path:
    """A virtual environment of `python` with overnight (editable), pytest and coverage; its interpreter."""
    subprocess.run([python, "-m", "venv", str(where)], check=True)
    exe = where / "bin" / "python"
    subprocess.run([str(exe), "-m", "pip", "install", "-q", "-e", str(overnight), "pytest", "coverage"],
                   check=True)  # fmt: skip
    return exe


def version(exe: Path) -> tuple[int, int]:
    out = subprocess.run([str(exe), "-c", "import sys; print(*sys.version_info[:2])"], capture_output=True,
                         text=True, check=True).stdout.split()  # fmt: skip
    return int(out[0]), int(out[1])


def make_repo(source: Path, dest: Path, command: list[str]) -> Path:
    shutil.copytree(source, dest)
    (dest / "overnight.toml").write_text(CONFIG.format(command=json.dumps(command)))
    git(dest, "init", "-q", "-b", "main")
    git(dest, "add", "-A")
    git(dest, "commit", "-q", "-m", f"more-itertools {PIN}")
    return dest


LINE = "    return list(islice(iterable, n))\n"  # take()'s body, run by the project's tests


def one_file(repo: Path, count: int) -> None:
    """The one-file change: a line of code the tests run, changed (replacing the previous change)."""
    git(repo, "checkout", "-q", "HEAD", "--", ".")
    recipes = repo / "more_itertools" / "recipes.py"
    text = recipes.read_text()
    assert LINE in text, "take()'s line moved: update LINE"
    recipes.write_text(text.replace(LINE, f"    return list(islice(iterable, n))  # edit {count}\n", 1))


def change(repo: Path, doc: str) -> None:
    """The change of code and its test, in the working tree (replacing the previous one)."""
    git(repo, "checkout", "-q", "HEAD", "--", ".")
    with (repo / "more_itertools" / "recipes.py").open("a") as f:
        f.write(FUNCTION.format(doc=doc))
    with (repo / "tests" / "test_recipes.py").open("a") as f:
        f.write(TEST)


def timed(argv: list[str], cwd: Path, env: dict[str, str]) -> float:
    started = time.perf_counter()
    done = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, check=False)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        out, err = done.stdout.decode(errors="replace")[-4000:], done.stderr.decode(errors="replace")[-2000:]
        sys.exit(f"`{' '.join(argv)}` failed (exit {done.returncode}) in {cwd}:\n{out}\n{err}")
    return elapsed


def bench_python(python: str, base: Path, source: Path, rounds: int, whole: bool, overnight: Path) -> dict[str, float]:
    name = Path(python).name
    exe = make_venv(python, base / f"venv-{name}", overnight)
    ver = version(exe)
    pytest_argv = ["python", "-m", "pytest", "-q", *([] if whole else SLOWEST)]
    repo = make_repo(source, base / f"repo-{name}", pytest_argv)
    env = {**os.environ, "PATH": f"{exe.parent}{os.pathsep}{os.environ['PATH']}", "VIRTUAL_ENV": str(exe.parent.parent),
           "OVERNIGHT_HOME": str(base / f"home-{name}"), "PYTHONDONTWRITEBYTECODE": "1"}  # fmt: skip
    env.pop("PYTHONPATH", None)
    gate_argv = [str(exe.parent / "overnight"), "-C", str(repo), "check", "--gate"]
    times: dict[str, list[float]] = {"pytest": [], "first": [], "measured": [], "with-test": []}
    state = repo / ".git" / "overnight"
    count = 0

    def pytest_run() -> None:
        git(repo, "checkout", "-q", "HEAD", "--", ".")  # the project's own suite, on the committed tree
        times["pytest"].append(timed([str(exe), *pytest_argv[1:], "-p", "no:cacheprovider"], repo, env))

    def gates() -> None:
        nonlocal count
        shutil.rmtree(state, ignore_errors=True)
        count += 1
        one_file(repo, count)
        times["first"].append(timed(gate_argv, repo, env))
        count += 1
        one_file(repo, count)
        times["measured"].append(timed(gate_argv, repo, env))
        count += 1
        change(repo, f"Return *value* limited to [*low*, *high*] (edit {count}).")
        times["with-test"].append(timed(gate_argv, repo, env))

    print(f"\nPython {ver[0]}.{ver[1]} ({python}), test command: {' '.join(pytest_argv)}", flush=True)
    for n in range(rounds):
        for step in (pytest_run, gates) if n % 2 == 0 else (gates, pytest_run):
            step()
        print(f"  round {n + 1}: pytest {times['pytest'][-1]:.1f} s, first gate {times['first'][-1]:.1f} s, gate "
              f"with the base measured {times['measured'][-1]:.1f} s, code and its test "
              f"{times['with-test'][-1]:.1f} s", flush=True)  # fmt: skip
    med = {k: statistics.median(v) for k, v in times.items()}
    first, measured = med["first"] / med["pytest"], med["measured"] / med["pytest"]
    print(f"Python {ver[0]}.{ver[1]}, median of {rounds}: pytest {med['pytest']:.1f} s; first gate "
          f"{med['first']:.1f} s -> {first:.2f}x; gate with the base measured {med['measured']:.1f} s -> "
          f"{measured:.2f}x; code and its test, base measured, {med['with-test']:.1f} s -> "
          f"{med['with-test'] / med['pytest']:.2f}x (no target)", flush=True)  # fmt: skip
    if ver >= TARGET_SINCE:
        print(f"  target, base measured <= {MEASURED_TARGET}x: {'PASS' if measured <= MEASURED_TARGET else 'FAIL'}; "
              f"first gate <= {FIRST_TARGET}x: {'PASS' if first <= FIRST_TARGET else 'FAIL'}")  # fmt: skip
    else:
        print("  (no target before Python 3.12: coverage.py measures with its C tracer there)")
    return {"version": ver[0] + ver[1] / 100, "first": first, "measured": measured, **med}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--python", action="append", help="an interpreter to measure (repeatable)")
    parser.add_argument("--whole-suite", action="store_true", help="keep the 2 slowest tests")
    parser.add_argument("--overnight", type=Path, default=ROOT, help="the overnight checkout to install")
    parser.add_argument("--cache", type=Path, default=Path.home() / ".cache" / "overnight-bench")
    args = parser.parse_args()
    pythons = args.python or [p for p in PYTHONS if Path(p).exists()]
    with tempfile.TemporaryDirectory(prefix="overnight-gate-bench-") as tmp:
        base = Path(tmp)
        with tarfile.open(fetch_sdist(args.cache)) as tar:
            tar.extractall(base / "sdist", filter="data")
        source = base / "sdist" / f"more_itertools-{PIN}"
        print(f"overnight from {args.overnight}; more-itertools {PIN}; {os.cpu_count()} cores; sandbox bwrap")
        results = [bench_python(p, base, source, args.rounds, args.whole_suite, args.overnight) for p in pythons]
    failed = [r for r in results if r["version"] >= 3.12 and
              (r["measured"] > MEASURED_TARGET or r["first"] > FIRST_TARGET)]  # fmt: skip
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
