"""Cold start of the `quality` MCP server: spawn to answered `initialize` + `tools/list`, over stdio.

Measures: the wall time from spawning `python -m mcp_servers.quality` to reading its `tools/list` answer,
after the 2025-11-25 `initialize` handshake (initialize request, its answer, `notifications/initialized`,
`tools/list`), spoken as raw newline-delimited JSON-RPC over the child's pipes, so nothing of an MCP client
library is inside the measurement.
Reference: a minimal mcp 2.3.0 server (one `ping` tool, `MCPServer("minimal")`, `mcp.run()`) that this script
writes to a temporary directory and spawns and asks exactly the same way, with the same interpreter, working
directory and environment. The two are interleaved (the order alternates every round) and compared by median.
Target: median(quality) / median(minimal) <= 1.15.
Also checked: the quality server imports no `bandit`, `radon` or `coverage` module at start-up (read from a
separate, untimed run under `python -X importtime`); any such import is a FAIL.

Run: .venv/bin/python bench/cold_start.py [--rounds 40] [--warmup 3]
"""

from __future__ import annotations

import argparse
import json
import os
import selectors
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGET = 1.15
FORBIDDEN = ("bandit", "radon", "coverage")
PROTOCOL = "2025-11-25"
TIMEOUT_S = 60.0

MINIMAL_SERVER = """\
from __future__ import annotations

from mcp.server import MCPServer

mcp = MCPServer("minimal")


@mcp.tool()
def ping() -> str:
    return "pong"


mcp.run()
"""


class Child:
    """A spawned server with line-by-line JSON-RPC over its stdin and stdout."""

    def __init__(self, argv: list[str], cwd: Path, env: dict[str, str], stderr_path: Path) -> None:
        self.stderr_path = stderr_path
        self._stderr = open(stderr_path, "wb")  # noqa: SIM115 - closed in close()
        self.proc = subprocess.Popen(argv, cwd=cwd, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self._stderr)  # fmt: skip
        self._buf = b""
        self._sel = selectors.DefaultSelector()
        assert self.proc.stdout is not None
        self._sel.register(self.proc.stdout, selectors.EVENT_READ)

    def send(self, message: dict[str, object]) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(message).encode() + b"\n")
        self.proc.stdin.flush()

    def answer(self, request_id: int) -> dict[str, object]:
        """The response to `request_id`, skipping notifications and anything else the server sends first."""
        deadline = time.monotonic() + TIMEOUT_S
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        while True:
            while b"\n" in self._buf:
                line, self._buf = self._buf.split(b"\n", 1)
                if not line.strip():
                    continue
                message: dict[str, object] = json.loads(line)
                if message.get("id") == request_id:
                    return message
            left = deadline - time.monotonic()
            if left <= 0 or not self._sel.select(left):
                raise RuntimeError(f"no answer to request {request_id} within {TIMEOUT_S} s; {self.tail()}")
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                raise RuntimeError(f"the server closed stdout before answering {request_id}; {self.tail()}")
            self._buf += chunk

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._sel.close()
        assert self.proc.stdout is not None
        self.proc.stdout.close()
        self._stderr.close()

    def tail(self) -> str:
        self._stderr.flush()
        return "stderr: " + self.stderr_path.read_text(errors="replace")[-2000:]


def exchange(argv: list[str], cwd: Path, env: dict[str, str], stderr_path: Path) -> tuple[float, int]:
    """Spawn, handshake, list the tools; the seconds from spawn to the `tools/list` answer, and the tool count."""
    started = time.perf_counter()
    child = Child(argv, cwd, env, stderr_path)
    try:
        child.send({"jsonrpc": "2.0", "id": 1, "method": "initialize",
                    "params": {"protocolVersion": PROTOCOL, "capabilities": {},
                               "clientInfo": {"name": "bench-cold-start", "version": "0"}}})  # fmt: skip
        init = child.answer(1)
        if "result" not in init:
            raise RuntimeError(f"initialize failed: {init}")
        child.send({"jsonrpc": "2.0", "method": "notifications/initialized"})
        child.send({"jsonrpc": "2.0", "id": 2, "method": "tools/list"})
        listed = child.answer(2)
        elapsed = time.perf_counter() - started
    finally:
        child.close()
    result = listed.get("result")
    if not isinstance(result, dict) or not result.get("tools"):
        raise RuntimeError(f"tools/list gave no tools: {listed}")
    return elapsed, len(result["tools"])


def importtime(argv: list[str], cwd: Path, env: dict[str, str], tmp: Path) -> dict[str, int]:
    """Run the server once (untimed) under `-X importtime`: {module: its own import time in microseconds}."""
    stderr_path = tmp / "importtime.err"
    exchange([argv[0], "-X", "importtime", *argv[1:]], cwd, env, stderr_path)
    modules: dict[str, int] = {}
    for line in stderr_path.read_text(errors="replace").splitlines():
        if line.startswith("import time:") and line.count("|") == 2:
            own, _cumulative, name = line[len("import time:") :].split("|")
            if own.strip().isdigit():
                modules[name.strip()] = int(own)
    return modules


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=40, help="measured spawns of each server (default 40)")
    parser.add_argument("--warmup", type=int, default=3, help="unmeasured spawns of each first (default 3)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-cold-") as tmp_name:
        tmp = Path(tmp_name)
        minimal = tmp / "minimal_server.py"
        minimal.write_text(MINIMAL_SERVER)
        repo = tmp / "repo"  # both servers start in the same small git repository
        repo.mkdir()
        subprocess.run(["git", "init", "-q", str(repo)], check=True)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("OVERNIGHT_", "PYTHONPROFILE"))}
        variants = {
            "quality": [sys.executable, "-m", "mcp_servers.quality"],
            "minimal": [sys.executable, str(minimal)],
        }
        tools = {}
        for _ in range(args.warmup):
            for name, argv in variants.items():
                _t, tools[name] = exchange(argv, repo, env, tmp / f"{name}.err")
        times: dict[str, list[float]] = {name: [] for name in variants}
        for i in range(args.rounds):
            order = list(variants) if i % 2 == 0 else list(reversed(variants))
            for name in order:
                elapsed, _n = exchange(variants[name], repo, env, tmp / f"{name}.err")
                times[name].append(elapsed)

        modules = importtime(variants["quality"], repo, env, tmp)
        baseline = importtime(variants["minimal"], repo, env, tmp)
    bad = sorted(m for m in modules if m.split(".")[0] in FORBIDDEN)
    # the check means something only if the output was really parsed: the server's module must be in it
    ok_imports = "mcp_servers.quality.server" in modules and not bad
    extra = {m: t for m, t in modules.items() if m not in baseline}
    heaviest = sorted(extra.items(), key=lambda kv: -kv[1])[:5]

    q, m = statistics.median(times["quality"]), statistics.median(times["minimal"])
    ratio = q / m
    paired = statistics.median(a / b for a, b in zip(times["quality"], times["minimal"], strict=True))
    print(f"cold start: spawn -> initialize ({PROTOCOL}) -> tools/list answered; raw JSON-RPC over pipes; "
          f"{args.rounds} interleaved rounds after {args.warmup} warm-up")  # fmt: skip
    for name in variants:
        v = times[name]
        print(f"  {name:8s} ({tools[name]} tools): median {statistics.median(v) * 1000:7.1f} ms   "
              f"p25 {pct(v, 0.25) * 1000:7.1f}   p75 {pct(v, 0.75) * 1000:7.1f}   "
              f"min {min(v) * 1000:7.1f} ms")  # fmt: skip
    print(f"  ratio quality/minimal (of medians): {ratio:.3f}x   (median of per-round ratios: {paired:.3f}x)")
    ratio_ok = ratio <= TARGET
    print(f"  target <= {TARGET:.2f}x: {'PASS' if ratio_ok else 'FAIL'}")
    print(f"  start-up imports (-X importtime, {len(modules)} modules): "
          f"{'none of ' + ', '.join(FORBIDDEN) if not bad else 'FORBIDDEN: ' + ', '.join(bad)}")  # fmt: skip
    print(f"  no bandit/radon/coverage at start-up: {'PASS' if ok_imports else 'FAIL'}")
    print(f"  (quality imports {len(extra)} modules the minimal server does not, {sum(extra.values()) / 1000:.1f} ms "
          f"own import time; heaviest: {', '.join(f'{m} {t / 1000:.1f} ms' for m, t in heaviest)})")  # fmt: skip
    return 0 if ratio_ok and ok_imports else 1


if __name__ == "__main__":
    raise SystemExit(main())
