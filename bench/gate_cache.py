"""Cached gate answers: the round trip of `run_quality_gate` on a tree that already has a receipt.

Measures: in a temporary git repository holding a small Python project (src/app/calc.py, tests/test_calc.py,
pytest's pythonpath = ["src"]) whose working tree has a tested change, the `quality` server is started over
stdio with the MCP SDK's Client (`python -m mcp_servers.quality`), `run_quality_gate` is called once (the full
run, which must pass and so record a receipt), then N more times on the unchanged tree. Each of those N calls
must answer `cached: true` in its structured content; their client-side round-trip times are measured.
Reference: the target is absolute. For scale, `get_policy` (a tool that only opens the workspace and reads
the settings) is called interleaved with the cached gate calls, as the floor of a tool round trip through
the same client, transport and server.
Target: cached `run_quality_gate` round trip under 50 ms, both median and p95.

Run: .venv/bin/python bench/gate_cache.py [--calls 60]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

import anyio
from mcp import Client, StdioServerParameters
from measure import pct

TARGET_MS = 50.0

FILES = {
    "pyproject.toml": """
        [project]
        name = "app"
        version = "0.1.0"

        [tool.pytest.ini_options]
        pythonpath = ["src"]
        testpaths = ["tests"]
        """,
    ".gitignore": """
        __pycache__/
        *.pyc
        .coverage
        """,
    "src/app/__init__.py": '''
        """A small calculator."""
        ''',
    "src/app/calc.py": '''
        """Arithmetic helpers."""


        def add(a: int, b: int) -> int:
            return a + b
        ''',
    "tests/test_calc.py": """
        from app.calc import add


        def test_add() -> None:
            assert add(2, 3) == 5
        """,
}

# the tested change left in the working tree: a new function and its test
NEW_FUNCTION = '''

        def clamp(value: int, low: int, high: int) -> int:
            """`value` limited to [low, high]."""
            if value < low:
                return low
            if value > high:
                return high
            return value
        '''
NEW_TEST = """

        def test_clamp() -> None:
            assert clamp(5, 0, 3) == 3
            assert clamp(-1, 0, 3) == 0
            assert clamp(2, 0, 3) == 2
        """
CHANGE = {
    "src/app/calc.py": FILES["src/app/calc.py"] + NEW_FUNCTION,
    "tests/test_calc.py": FILES["tests/test_calc.py"].replace("import add", "import add, clamp") + NEW_TEST,
}


def git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-c", "user.name=bench", "-c", "user.email=bench@example.invalid",
                    "-c", "commit.gpgsign=false", *args], cwd=repo, check=True, capture_output=True)  # fmt: skip


def source(text: str) -> str:
    return textwrap.dedent(text).lstrip("\n")


def make_project(repo: Path) -> None:
    for rel, text in FILES.items():
        (repo / rel).parent.mkdir(parents=True, exist_ok=True)
        (repo / rel).write_text(source(text))
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "Initial commit")
    for rel, text in CHANGE.items():
        (repo / rel).write_text(source(text))


async def measure(repo: Path, calls: int) -> dict[str, Any]:
    params = StdioServerParameters(command=sys.executable, args=["-m", "mcp_servers.quality"], cwd=str(repo))
    async with Client(params) as client:
        await client.list_tools()
        started = time.perf_counter()
        first = await client.call_tool("run_quality_gate", {})
        full_s = time.perf_counter() - started
        report = first.structured_content or {}
        if first.is_error or not report.get("passed"):
            text = " ".join(getattr(c, "text", "") for c in first.content)
            raise SystemExit(f"FAIL: the first gate run did not pass, so nothing can be cached: "
                             f"{report.get('summary') or text}")  # fmt: skip
        cached_ms: list[float] = []
        floor_ms: list[float] = []
        not_cached = 0
        for i in range(calls):
            for name in ("run_quality_gate", "get_policy") if i % 2 == 0 else ("get_policy", "run_quality_gate"):
                t = time.perf_counter()
                answer = await client.call_tool(name, {})
                elapsed = (time.perf_counter() - t) * 1000
                if answer.is_error:
                    raise SystemExit(f"FAIL: {name} failed: {answer.content}")
                if name == "run_quality_gate":
                    cached_ms.append(elapsed)
                    content = answer.structured_content or {}
                    if content.get("cached") is not True or not content.get("passed"):
                        not_cached += 1
                else:
                    floor_ms.append(elapsed)
    return {"full_s": full_s, "first": report, "cached_ms": cached_ms, "floor_ms": floor_ms,
            "not_cached": not_cached}  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=60, help="cached calls to measure (default 60)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-gate-") as tmp:
        repo = Path(tmp) / "project"
        repo.mkdir()
        make_project(repo)
        os.environ.pop("OVERNIGHT_CHECKPOINT", None)
        r = anyio.run(measure, repo, args.calls)
    cached, floor = r["cached_ms"], r["floor_ms"]
    med, p95 = statistics.median(cached), pct(cached, 0.95)
    checks = ", ".join(f"{c['name']} {c['status']}" for c in r["first"]["checks"])
    print("gate cache: quality server over stdio (mcp SDK Client), temp project with a tested change")
    print(f"  full run (first call): {r['full_s']:.2f} s, passed; {checks}")
    print(f"  cached run_quality_gate x{len(cached)}: median {med:.1f} ms   p95 {p95:.1f} ms   "
          f"min {min(cached):.1f} ms   max {max(cached):.1f} ms   answers not cached: {r['not_cached']}")  # fmt: skip
    print(f"  get_policy (floor, interleaved) x{len(floor)}: median {statistics.median(floor):.1f} ms   "
          f"p95 {pct(floor, 0.95):.1f} ms")  # fmt: skip
    ok = med < TARGET_MS and p95 < TARGET_MS and r["not_cached"] == 0
    print(f"  target median and p95 < {TARGET_MS:.0f} ms, every answer cached: {'PASS' if ok else 'FAIL'}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
