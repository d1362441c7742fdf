"""The task queue at scale: parsing a 10,000-task plan, `next_task` over stdio, and the server's memory.

Measures, in one run, on plans this script generates (task `task_<i>`, every field of the DESIGN.md format):
(a) `mcp_servers.core.plan.parse` (reading, indexing and the dependency-graph check: missing dependencies and
    cycles, Tarjan's algorithm) of a 10,000-task plan with dense dependencies. The tasks are laid out as a
    realistic queue (60% DONE, 10% pending approval, 10% blocked by dependencies, 20% ready); the DONE part
    comes in blocks of 100 whose first 48 tasks form a 24-layer "diamond ladder" (each layer's 2 tasks depend
    on both tasks of the layer below, the first layer on the previous block's last two tasks: the 48-task
    shape that took Task Master's cycle check 5.9 s) and whose other 52 each depend on 8-10 earlier tasks (the
    previous one and a random draw); every other task depends on 8-10 earlier ones. ~70,000 edges in all.
    The same plan with one back edge (`task_0` depending on the last DONE task, which closes the 6,000 DONE
    tasks into one strongly connected component) is parsed interleaved with it: the cycle must be reported
    as a real path of the graph, and its time shows the check stays linear (also printed: the cyclic plan at
    2,500 and 5,000 tasks, per 1,000 tasks).
    Reference: Appendix A of /work/shared/notes/task-anchors.md (Task Master's `isCircularDependency`, a
    DFS without a visited set: 5,903 ms for a 48-task diamond ladder under node 20, x4 per added layer);
    our parse of that 48-task ladder is timed too.
    Target: median parse of the acyclic 10,000-task plan under 200 ms, 10,000 tasks found, no problems.
(b) `next_task` round trip through the MCP SDK's stdio `Client` on a 1,000-task plan of the same layout
    (committed in a temporary git repository, since approval is read at HEAD), against a trivial `ping` tool
    registered on the same server object: a launcher written to a temp dir calls
    `mcp_servers.project.server.build(repo)`, adds `ping() -> str`, and runs it over stdio. The repository
    is left quiet for git.RACY_S seconds first (as between an agent's commits: ref-store files changed more
    recently are never trusted, so names are read through `git cat-file` on every call until then). After
    warm-up, N calls of each, interleaved (order alternating). Printed for attribution, not judged: the same call made
    in-process (`queue.next_task(Workspace.open(repo), session)`), i.e. the server-side share.
    The same again through the MCP TypeScript SDK's client (bench/ts_client.mjs under node), which validates
    answers with a compiled schema where the Python client walks each answer with jsonschema.
    Target: median(next_task) / median(ping) <= 1.5 through each client, and every answer is the expected task.
(c) The resident memory (VmRSS from /proc/<pid>/status) of that server with a 10,000-task plan after it
    answered `next_task`, `list_tasks` and `plan_summary`. Reference: the same server, same calls, empty plan;
    also printed, as the floor: a minimal mcp server (one `ping` tool, nothing of overnight imported).
    Target: under 100 MB.

Run: .venv/bin/python bench/plan_queue.py [--rounds 15] [--calls 100] [--warmup 5]
"""

from __future__ import annotations

import argparse
import itertools
import os
import random
import re
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
from mcp import Client, StdioServerParameters
from measure import pct, rss_mb
from ts_rounds import ts_round_trips

from mcp_servers.core import plan as P
from mcp_servers.core import queue
from mcp_servers.core.git import RACY_S
from mcp_servers.core.workspace import Workspace

PARSE_TARGET_MS = 200.0
RATIO_TARGET = 1.5
RSS_TARGET_MB = 100.0
BIG = 10_000
SMALL = 1_000
# Appendix A of /work/shared/notes/task-anchors.md: Task Master's isCircularDependency, node v20.20.2
TASK_MASTER_MS = {20: 8, 28: 31, 36: 91, 40: 333, 44: 1588, 48: 5903}

LAUNCHER = """\
from __future__ import annotations

import os
import sys
from pathlib import Path

from mcp_servers.project.server import build

Path(sys.argv[2]).write_text(str(os.getpid()))
server = build(sys.argv[1])


@server.tool()
def ping() -> str:
    return "pong"


server.run()
"""

MINIMAL = """\
from __future__ import annotations

import os
import sys
from pathlib import Path

from mcp.server import MCPServer

Path(sys.argv[1]).write_text(str(os.getpid()))
mcp = MCPServer("minimal")


@mcp.tool()
def ping() -> str:
    return "pong"


mcp.run()
"""

HEADER = "# Plan\n\nA generated plan for bench/plan_queue.py.\n\n## Task Queue\n\n"


@dataclass
class Generated:
    text: str
    expected: str | None  # the task next_task must answer
    edges: dict[str, list[str]]


def _field_block(i: int, title: str, priority: int, deps: list[int], status: str) -> list[str]:
    return [
        f"→ **[task_{i}]** {title}",
        f"  - Priority: P{priority}",
        f"  - Depends on: {', '.join(f'task_{d}' for d in deps) if deps else 'none'}",
        f"  - Files: src/mod{i}/*.py, tests/unit/test_mod{i}.py",
        "  - Alignment score: 95/100",
        f"  - Estimated lines: {10 + i % 15}",
        f"  - Tests defined: ✅ Yes (tests/unit/test_mod{i}.py)",
        f"  - Status: {status}",
        "",
    ]


def make_plan(n: int, *, cycle: bool = False, seed: int = 7) -> Generated:
    """A plan of `n` tasks (a multiple of 10): 60% DONE, 10% pending approval, 10% blocked by a dependency on a
    pending task, 20% ready (P1/P2/P3 in turn); dense dependencies as the module docstring says."""
    rng = random.Random(seed)  # noqa: S311 (a reproducible plan, not a secret)
    done, pending, blocked = n * 6 // 10, n * 7 // 10, n * 8 // 10
    deps: dict[int, list[int]] = {}

    def draw(i: int, low: int, high: int, first: list[int]) -> list[int]:
        k = min(rng.randint(8, 10), high - low + len(first))
        pool = [d for d in rng.sample(range(low, high), min(high - low, k)) if d not in first]
        return (first + pool)[:k]

    for i in range(done):
        at = i % 100
        if at < 48:  # the diamond ladder: layer at // 2, both tasks on both tasks of the layer below
            below = i - at % 2 - 2
            deps[i] = [below, below + 1] if below >= 0 else []
        else:
            deps[i] = draw(i, 0, i - 1, [i - 1])
    for i in range(done, pending):
        deps[i] = draw(i, 0, done, [])
    for i in range(pending, blocked):
        deps[i] = draw(i, 0, done, [rng.randrange(done, pending)])
    for i in range(blocked, n):
        deps[i] = draw(i, 0, done, [])
    if cycle:
        deps[0] = [done - 1]

    priority = {i: rng.randrange(4) for i in range(pending)}
    priority.update({i: i % 2 for i in range(pending, blocked)})  # blocked: P0/P1, ranked before the ready ones
    priority.update({i: 1 + (i - blocked) % 3 for i in range(blocked, n)})
    ready_lines: list[str] = []
    pending_lines: list[str] = []
    for i in range(n):
        status = "DONE" if i < done else "READY"
        lines = _field_block(i, f"Implement formatting helper {i} for the report module", priority[i], deps[i], status)
        (pending_lines if done <= i < pending else ready_lines).extend(lines)
    text = (
        HEADER
        + "### Ready for Autonomous Execution ✅\n\n"
        + "\n".join(ready_lines)
        + "\n### Pending Approval ⏳\n\n"
        + "\n".join(pending_lines)
        + "\n### Not Ready ❌\n"
    )
    runnable = range(blocked, n)  # file order is id order within the Ready section
    expected = f"task_{min(runnable, key=lambda i: (priority[i], i))}" if runnable else None
    return Generated(text, expected, {f"task_{i}": [f"task_{d}" for d in ds] for i, ds in deps.items()})


def ladder(tasks: int) -> str:
    """Only the diamond ladder of the note: `tasks` / 2 layers of 2 tasks, each on both tasks of the layer below."""
    lines = []
    for i in range(tasks):
        below = i - i % 2 - 2
        lines.extend(_field_block(i, f"Ladder step {i}", 2, [below, below + 1] if below >= 0 else [], "READY"))
    return HEADER + "### Ready for Autonomous Execution ✅\n\n" + "\n".join(lines)


def timed_parse(raw: bytes) -> tuple[float, P.Plan]:
    started = time.perf_counter()
    parsed = P.parse(raw)
    return (time.perf_counter() - started) * 1000, parsed


# -- (a) parse + validate ------------------------------------------------------------------------------------


def bench_parse(rounds: int) -> bool:
    acyclic = make_plan(BIG)
    cyclic = make_plan(BIG, cycle=True)
    variants = {
        "acyclic 10,000": acyclic.text.encode(),
        "cycle 10,000": cyclic.text.encode(),
        "cycle 5,000": make_plan(5_000, cycle=True).text.encode(),
        "cycle 2,500": make_plan(2_500, cycle=True).text.encode(),
    }
    times: dict[str, list[float]] = {name: [] for name in variants}
    parsed: dict[str, P.Plan] = {}
    for name, raw in variants.items():  # warm-up: regular expressions compiled, caches filled
        parsed[name] = P.parse(raw)
    for r in range(rounds):
        names = list(variants) if r % 2 == 0 else list(reversed(variants))
        for name in names:
            elapsed, parsed[name] = timed_parse(variants[name])
            times[name].append(elapsed)
    ladder_ms = statistics.median(timed_parse(ladder(48).encode())[0] for _ in range(max(rounds, 15)))

    good = parsed["acyclic 10,000"]
    edges = sum(len(t.depends_on) for t in good.tasks)
    ok_good = len(good.tasks) == BIG and not good.problems
    bad = parsed["cycle 10,000"]
    cycles = [p for p in bad.problems if p.code == "cycle"]
    others = [p for p in bad.problems if p.code != "cycle"]
    path: list[str] = []
    stated = -1
    # "dependency cycle of N tasks: a → b → … → a; remove one of these dependencies" (a path of more than 12 tasks
    # is shown shortened, with "… k more …": that cannot be checked here, so it does not count as a real path)
    found = re.match(r"dependency cycle of (\d+) tasks: (.*?); ", cycles[0].message) if len(cycles) == 1 else None
    if found:
        stated, path = int(found.group(1)), found.group(2).split(" → ")
    real = (
        len(path) > 2
        and stated == len(path) - 1
        and path[0] == path[-1]
        and all(b in cyclic.edges.get(a, ()) for a, b in itertools.pairwise(path))
    )
    ok_cycle = real and not others and len(bad.tasks) == BIG

    med = {name: statistics.median(v) for name, v in times.items()}
    print(f"(a) plan.parse (read + index + dependency-graph check), {rounds} interleaved rounds after warm-up")
    print(f"  plan: {BIG:,} tasks, {edges:,} dependency edges, {len(variants['acyclic 10,000']) / 1e6:.1f} MB; "
          f"found {len(good.tasks):,} tasks, {len(good.problems)} problems")  # fmt: skip
    for name, v in times.items():
        size = int(name.split()[-1].replace(",", ""))
        print(f"  {name:15s}: median {med[name]:6.1f} ms   p25 {pct(v, 0.25):6.1f}   p75 {pct(v, 0.75):6.1f}   "
              f"min {min(v):6.1f} ms   ({med[name] / size * 1000:5.2f} ms per 1,000 tasks)")  # fmt: skip
    print(f"  cycle plan / acyclic plan (10,000): {med['cycle 10,000'] / med['acyclic 10,000']:.2f}x; "
          f"cycle 10,000 / cycle 2,500: {med['cycle 10,000'] / med['cycle 2,500']:.2f}x (4.00x is linear)")  # fmt: skip
    shown = " → ".join([*path[:4], "…", *path[-3:]]) if len(path) > 8 else " → ".join(path)
    print(f"  cycle reported: {len(cycles)} problem(s) at line {cycles[0].line if cycles else '-'}, "
          f"a {len(path) - 1}-task path ({shown}), {'a real cycle of the graph' if real else 'NOT A CYCLE'}; "
          f"other problems: {len(others)}")  # fmt: skip
    tm = ", ".join(f"{k} tasks {v:,} ms" for k, v in TASK_MASTER_MS.items() if k >= 40)
    print(f"  reference (task-anchors.md Appendix A): Task Master's DFS on a diamond ladder: {tm}; "
          f"our parse of the 48-task ladder: {ladder_ms:.2f} ms")  # fmt: skip
    ok = med["acyclic 10,000"] < PARSE_TARGET_MS and ok_good
    print(f"  target median < {PARSE_TARGET_MS:.0f} ms with {BIG:,} tasks and no problems: {'PASS' if ok else 'FAIL'}")
    print(f"  cycle found and reported as a real path: {'PASS' if ok_cycle else 'FAIL'}")
    return ok and ok_cycle


# -- (b) and (c): the server over stdio ----------------------------------------------------------------------


def git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-c", "user.name=bench", "-c", "user.email=bench@example.invalid",
                    "-c", "commit.gpgsign=false", *args], cwd=repo, check=True, capture_output=True)  # fmt: skip


def make_repo(where: Path, plan_text: str) -> Path:
    where.mkdir()
    (where / "PROJECT_PLAN.md").write_text(plan_text)
    (where / "README.md").write_text("A repository for bench/plan_queue.py.\n")
    git(where, "init", "-q", "-b", "main")
    git(where, "add", "-A")
    git(where, "commit", "-q", "-m", "Plan")
    return where


def server_params(tmp: Path, repo: Path) -> tuple[StdioServerParameters, Path]:
    launcher = tmp / "launch_project.py"
    launcher.write_text(LAUNCHER)
    pid_file = repo.parent / f"{repo.name}.pid"
    return StdioServerParameters(command=sys.executable, args=[str(launcher), str(repo), str(pid_file)],
                                 cwd=str(repo)), pid_file  # fmt: skip


def answer_of(result: Any, name: str) -> dict[str, Any]:
    if result.is_error:
        text = " ".join(getattr(c, "text", "") for c in result.content)
        raise SystemExit(f"FAIL: {name} failed: {text}")
    content: dict[str, Any] = result.structured_content or {}
    return content


async def round_trips(tmp: Path, repo: Path, calls: int, warmup: int, expected: str | None) -> dict[str, Any]:
    params, _pid = server_params(tmp, repo)
    async with Client(params) as client:
        tools = {t.name for t in (await client.list_tools()).tools}
        if not {"next_task", "ping"} <= tools:
            raise SystemExit(f"FAIL: the server lacks next_task or ping: {sorted(tools)}")
        first = answer_of(await client.call_tool("next_task", {}), "next_task")
        for _ in range(warmup):
            await client.call_tool("next_task", {})
            await client.call_tool("ping", {})
        times: dict[str, list[float]] = {"next_task": [], "ping": []}
        wrong = 0
        for i in range(calls):
            for name in ("next_task", "ping") if i % 2 == 0 else ("ping", "next_task"):
                started = time.perf_counter()
                result = await client.call_tool(name, {})
                times[name].append((time.perf_counter() - started) * 1000)
                content = answer_of(result, name)
                if name == "next_task" and (content.get("task") or {}).get("id") != expected:
                    wrong += 1
    return {"times": times, "wrong": wrong, "first": first}


def in_process(repo: Path, calls: int, warmup: int) -> list[float]:
    """The server's work for one next_task call, without the protocol: milliseconds per call."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("OVERNIGHT_", "CLAUDE"))}
    times = []
    for i in range(warmup + calls):
        started = time.perf_counter()
        queue.next_task(Workspace.open(repo, environ), "bench-in-process")
        if i >= warmup:
            times.append((time.perf_counter() - started) * 1000)
    return times


def bench_next_task(tmp: Path, calls: int, warmup: int) -> bool:
    generated = make_plan(SMALL)
    repo = make_repo(tmp / "small", generated.text)
    time.sleep(RACY_S)  # a quiet repository, as between an agent's commits (see mcp_servers.core.git.RACY_S)
    r = anyio.run(round_trips, tmp, repo, calls, warmup, generated.expected)
    inproc = in_process(repo, calls, warmup)
    first = r["first"]
    got = (first.get("task") or {}).get("id")
    nt, ping = r["times"]["next_task"], r["times"]["ping"]
    ratio = statistics.median(nt) / statistics.median(ping)
    print(f"(b) next_task vs ping round trips, project server over stdio (mcp SDK Client), {SMALL:,}-task plan "
          f"(600 DONE, 100 pending approval, 100 blocked by dependencies, 200 ready); "
          f"{calls} interleaved calls each after {warmup} warm-up")  # fmt: skip
    print(f"  next_task answers {got} (expected {generated.expected}); passed over {first.get('skipped_total')}; "
          f"wrong answers in the measured calls: {r['wrong']}")  # fmt: skip
    for name, v in r["times"].items():
        print(f"  {name:9s}: median {statistics.median(v):6.2f} ms   p95 {pct(v, 0.95):6.2f} ms   "
              f"min {min(v):6.2f} ms   max {max(v):6.2f} ms")  # fmt: skip
    print(f"  in-process queue.next_task(Workspace.open(repo), session) x{len(inproc)} (the server-side share): "
          f"median {statistics.median(inproc):6.2f} ms   p95 {pct(inproc, 0.95):6.2f} ms")  # fmt: skip
    print(f"  ratio next_task/ping (of medians): {ratio:.2f}x   "
          f"(p95 ratio {pct(nt, 0.95) / pct(ping, 0.95):.2f}x)")  # fmt: skip
    ok = ratio <= RATIO_TARGET and got == generated.expected and r["wrong"] == 0
    print(f"  target <= {RATIO_TARGET:.1f}x, every answer {generated.expected}: {'PASS' if ok else 'FAIL'}")
    params, _pid = server_params(tmp, repo)
    ts = ts_round_trips(params, [("next_task", "next_task", {}), ("ping", "ping", {})], calls, warmup)
    ts_got = ((ts["answers"].get("next_task") or {}).get("task") or {}).get("id")
    print(
        "  the same through the MCP TypeScript SDK's client (@modelcontextprotocol/client 2.3.1, node; the SDK "
        "family Claude Code's client comes from), interleaved the same way:"
    )
    for name, v in ts["times"].items():
        print(f"  {name:9s}: median {statistics.median(v):6.2f} ms   p95 {pct(v, 0.95):6.2f} ms   "
              f"min {min(v):6.2f} ms   max {max(v):6.2f} ms")  # fmt: skip
    ts_ratio = statistics.median(ts["times"]["next_task"]) / statistics.median(ts["times"]["ping"])
    ts_ok = ts_ratio <= RATIO_TARGET and ts_got == generated.expected and ts["errors"] == 0
    print(f"  ratio next_task/ping (of medians): {ts_ratio:.2f}x; target <= {RATIO_TARGET:.1f}x: "
          f"{'PASS' if ts_ok else 'FAIL'}")  # fmt: skip
    return ok and ts_ok


async def minimal_rss(tmp: Path) -> float:
    """VmRSS of a minimal mcp server after one answered `ping`."""
    script, pid_file = tmp / "minimal_server.py", tmp / "minimal.pid"
    script.write_text(MINIMAL)
    params = StdioServerParameters(command=sys.executable, args=[str(script), str(pid_file)], cwd=str(tmp))
    async with Client(params) as client:
        await client.call_tool("ping", {})
        return rss_mb(int(pid_file.read_text()))[0]


async def memory_after_calls(tmp: Path, repo: Path) -> dict[str, Any]:
    params, pid_file = server_params(tmp, repo)
    async with Client(params) as client:
        await client.call_tool("ping", {})
        pid = int(pid_file.read_text())
        idle = rss_mb(pid)[0]
        seconds: dict[str, float] = {}
        answers: dict[str, dict[str, Any]] = {}
        for name, args in (("next_task", {}), ("list_tasks", {"limit": 200}), ("plan_summary", {})):
            started = time.perf_counter()
            answers[name] = answer_of(await client.call_tool(name, args), name)
            seconds[name] = time.perf_counter() - started
        rss, peak = rss_mb(pid)
    return {"idle": idle, "rss": rss, "peak": peak, "seconds": seconds, "answers": answers}


def bench_memory(tmp: Path) -> bool:
    generated = make_plan(BIG)
    big = anyio.run(memory_after_calls, tmp, make_repo(tmp / "big", generated.text))
    empty_plan = HEADER + "### Ready for Autonomous Execution ✅\n\n### Pending Approval ⏳\n\n### Not Ready ❌\n"
    empty = anyio.run(memory_after_calls, tmp, make_repo(tmp / "empty", empty_plan))
    floor = anyio.run(minimal_rss, tmp)
    got = (big["answers"]["next_task"].get("task") or {}).get("id")
    listed = big["answers"]["list_tasks"]
    summary = big["answers"]["plan_summary"]
    print(f"(c) project server memory (VmRSS), {BIG:,}-task plan ({len(generated.text.encode()) / 1e6:.1f} MB), "
          f"after next_task, list_tasks, plan_summary")  # fmt: skip
    took = ", ".join(f"{k} {v * 1000:.0f} ms" for k, v in big["seconds"].items())
    print(f"  answers: next_task {got} (expected {generated.expected}); list_tasks total {listed.get('total')}; "
          f"plan_summary tasks {summary.get('tasks')}, by_state {summary.get('by_state')}")  # fmt: skip
    print(f"  first calls took: {took}")
    print(f"  {BIG:,}-task plan: VmRSS {big['rss']:6.1f} MB   (peak VmHWM {big['peak']:6.1f} MB, "
          f"{big['idle']:.1f} MB before the plan calls)")  # fmt: skip
    print(f"  empty plan (reference): VmRSS {empty['rss']:6.1f} MB   (peak VmHWM {empty['peak']:6.1f} MB)")
    print(f"  floor: a minimal mcp server (one ping tool): VmRSS {floor:6.1f} MB")
    print(f"  the plan's share: {big['rss'] - empty['rss']:.1f} MB; overnight's own with an empty plan: "
          f"{empty['rss'] - floor:.1f} MB")  # fmt: skip
    ok = big["rss"] < RSS_TARGET_MB and got == generated.expected and listed.get("total") == BIG
    print(f"  target VmRSS < {RSS_TARGET_MB:.0f} MB: {'PASS' if ok else 'FAIL'}")
    return ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15, help="parse rounds of each plan in (a) (default 15)")
    parser.add_argument("--calls", type=int, default=100, help="measured calls of each tool in (b) (default 100)")
    parser.add_argument("--warmup", type=int, default=5, help="unmeasured calls of each first in (b) (default 5)")
    args = parser.parse_args()
    ok_parse = bench_parse(args.rounds)
    with tempfile.TemporaryDirectory(prefix="bench-plan-") as tmp_name:
        tmp = Path(tmp_name)
        ok_next = bench_next_task(tmp, args.calls, args.warmup)
        ok_memory = bench_memory(tmp)
    print(f"overall: parse {'PASS' if ok_parse else 'FAIL'}, next_task {'PASS' if ok_next else 'FAIL'}, "
          f"memory {'PASS' if ok_memory else 'FAIL'}")  # fmt: skip
    return 0 if ok_parse and ok_next and ok_memory else 1


if __name__ == "__main__":
    raise SystemExit(main())
