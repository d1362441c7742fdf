"""The replay agent: a scripted session, run as a child process that speaks MCP to the servers as an agent would.

It makes `overnight demo` possible with no API key, and lets a team drill its policy against known-bad sessions:
edit these files, call these tools, run this command. The script is TOML:

    [[task]]
    id = "task_1"                   # or "*" for any task
    [[task.step]]
    append = "src/app/calc.py"      # also `write` (replace the file)
    text = "def sub(a, b): ..."
    [[task.step]]
    call = "quality.run_quality_gate"
    [[task.step]]
    call = "quality.commit"
    args = { message = "Add sub()", task_id = "{task_id}" }
    [[task.step]]
    run = ["git", "commit", "-qam", "straight to git"]
    [[task.step]]
    sleep = 3600                    # a hanging agent
    [[task.step]]
    say = "Done."                   # the session's last words
    [[task.step]]
    spend = 0.75                    # report this much spent, in USD (drills the session budget),
    tokens_in = 12000               #   and (optional) these tokens, as a model's usage
    tokens_out = 800
    [[task.step]]
    fail = "usage-limit"            # the model's API stops the run here, as Claude Code writes it (issue 12):
    resets_in = 5                   #   usage-limit (with `resets_in` seconds: a subscription's rate_limit_event
    times = 2                       #   with resetsAt; without: an API key's bare 429), limit-disabled (it does
                                    #   not reset), overloaded (529), server-error (500), network (no answer);
                                    #   `times`: only the first N runs of the task stop here (default: every run)

Each step is reported as a JSON line (`at`: when it was done, Unix seconds); the last line is a `result`, as
Claude Code's stream-json ends (a `fail` step ends the run there: the lines Claude Code writes for that stop, a
`result` with `is_error`, exit code 1).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import subprocess
import sys
import time
import tomllib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pydantic import Field

from mcp_servers.core.config import Scheduler
from mcp_servers.core.errors import UsageError

from . import AgentEvent, AgentJob, AgentResult, agent_env, gate_verdict, mcp_config, run_process, short
from . import watching as watch
from .adapter import Adapter, AgentCheck, AgentSettings, Built, common_defaults
from .claude_stream import costs, result_from, steps

STEP_KINDS = ("write", "append", "call", "run", "sleep", "say", "spend", "fail")
FAILS = ("usage-limit", "limit-disabled", "overloaded", "server-error", "network")


def load_script(path: Path) -> dict[str, list[dict[str, Any]]]:
    """Task id -> steps, checked: a script that cannot run is refused before a session starts."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise UsageError(f"the replay script {path} cannot be read: {e}") from e
    tasks: dict[str, list[dict[str, Any]]] = {}
    for n, task in enumerate(data.get("task") or [], start=1):
        task_id = task.get("id") if isinstance(task, dict) else None
        steps = task.get("step") if isinstance(task, dict) else None
        if not isinstance(task_id, str) or not isinstance(steps, list):
            raise UsageError(f"{path}: [[task]] number {n} needs an `id` and [[task.step]] entries.")
        for m, step in enumerate(steps, start=1):
            kinds = [k for k in STEP_KINDS if isinstance(step, dict) and k in step]
            if len(kinds) != 1:
                raise UsageError(f"{path}: task {task_id} step {m} needs exactly one of {', '.join(STEP_KINDS)}.")
            if kinds == ["fail"]:
                _check_fail(path, task_id, m, step)
            for key in ("tokens_in", "tokens_out") if kinds == ["spend"] else ():
                told = step.get(key, 0)
                if not isinstance(told, int) or isinstance(told, bool) or told < 0:
                    raise UsageError(f"{path}: task {task_id} step {m}: `{key}` is a whole number of tokens, 0 or "
                                     f"more (got {told!r}).")  # fmt: skip
        tasks[task_id] = steps
    return tasks


def _check_fail(path: Path, task_id: str, m: int, step: dict[str, Any]) -> None:
    where = f"{path}: task {task_id} step {m}"
    if step["fail"] not in FAILS:
        raise UsageError(f"{where}: `fail` is one of {', '.join(FAILS)}, not {step['fail']!r}.")
    times, resets = step.get("times", 1), step.get("resets_in", 0)
    if not isinstance(times, int) or isinstance(times, bool) or times < 1:
        raise UsageError(f"{where}: `times` is a whole number of runs, at least 1 (got {times!r}).")
    if not isinstance(resets, int | float) or isinstance(resets, bool) or resets < 0:
        raise UsageError(f"{where}: `resets_in` is seconds from now, 0 or more (got {resets!r}).")
    if "resets_in" in step and step["fail"] != "usage-limit":
        raise UsageError(f"{where}: `resets_in` goes with `fail = \"usage-limit\"` only.")


class ReplaySettings(AgentSettings):
    """`[agents.replay]`: the script to play (unset: `replay_script` under [scheduler]); it has no model."""

    script: str = Field(default="", description="the scripted session file, relative to the repository root")


def _defaults(scheduler: Scheduler) -> dict[str, Any]:
    return {**common_defaults(scheduler), "script": scheduler.replay_script}


def _build(settings: ReplaySettings, built: Built) -> ReplayAgent:
    script = built.script
    if script is None:
        if not settings.script:
            raise UsageError("the replay agent needs a script: `--script FILE`, or `script` under [agents.replay] "
                             "(or `replay_script` under [scheduler]) in overnight.toml")  # fmt: skip
        script = built.root / settings.script
    agent = ReplayAgent(script.resolve())
    agent.timeout_min = settings.timeout_min
    return agent


def _doctor(settings: ReplaySettings, environ: Mapping[str, str]) -> AgentCheck:
    """Built in (no CLI, no login); its script, when one is set, must load."""
    if not settings.script:
        return AgentCheck(installed="built in", authenticated=True, detail="no model; `--script FILE` names the "
                          "session to play", fix="")  # fmt: skip
    return AgentCheck(installed="built in", authenticated=True, detail=f"plays {settings.script}")


class ReplayAgent:
    name = "replay"
    timeout_min: float | None = None  # the scheduler's own task timeout unless its settings say otherwise

    def __init__(self, script: Path) -> None:
        self.script = script
        self.runs: dict[str, int] = {}  # runs of each task so far (a `fail` step's `times`)

    def problems(self, environ: Mapping[str, str]) -> list[str]:
        try:
            load_script(self.script)
        except UsageError as e:
            return [str(e)]
        return []

    def task_problems(self, task_ids: Sequence[str]) -> list[str]:
        """The tasks the script has no steps for: each would run, do nothing, fail and use an attempt (issue 11)."""
        try:
            tasks = load_script(self.script)
        except UsageError as e:
            return [str(e)]
        if "*" in tasks:
            return []
        missing = [t for t in task_ids if t not in tasks]
        if not missing:
            return []
        names = ", ".join(f"`{t}`" for t in missing)
        return [f"the replay script {self.script} has no steps for {names}, which this session would take (in "
                f"order: {', '.join(task_ids)}): add a [[task]] with `id = \"{missing[0]}\"` and its [[task.step]] "
                "entries for each (or `id = \"*\"` for any task), or lower `max_tasks` under [scheduler]"]  # fmt: skip

    def endpoints(self) -> list[str]:
        return []  # no model: the script is the agent

    def reads(self) -> list[Path]:
        return []

    def run(self, job: AgentJob) -> AgentResult:
        conf = job.confined
        mcp = conf.write_config("mcp.json", mcp_config(job))
        script = conf.folder / "config" / "replay.toml"  # where the sandbox can read it
        shutil.copyfile(self.script, script)
        run = self.runs[job.task_id] = self.runs.get(job.task_id, 0) + 1
        argv = conf.wrap([sys.executable, "-I", "-m", "scheduler.agents.replay", "--script", str(script),
                          "--task", job.task_id, "--mcp-config", str(mcp), "--run", str(run)])  # fmt: skip
        log = job.run_dir / "agent.jsonl"
        outcome = run_process(argv, job, agent_env(job), log, watch(job, ReplayEvents()))
        return result_from(self.name, outcome, log)


class ReplayEvents:
    """The replay agent's lines (one per step, then a `result`) as events: each step is a turn."""

    def __init__(self) -> None:
        self.cost = 0.0

    def __call__(self, line: dict[str, Any]) -> list[AgentEvent]:
        if line.get("type") == "result":
            cost = line.get("total_cost_usd")
            usage: dict[str, Any] = line["usage"] if isinstance(line.get("usage"), dict) else {}
            return [AgentEvent("usage", turns=_int(line.get("num_turns")),
                               cost_usd=float(cost) if isinstance(cost, int | float) else None,
                               tokens_in=_int(usage.get("input_tokens")),
                               tokens_out=_int(usage.get("output_tokens")))]  # fmt: skip
        if line.get("type") != "step":
            return []
        turns = _int(line.get("n"))
        if line.get("ok") is False:
            argv = " ".join(map(str, line.get("argv") or []))
            what = line.get("tool") or argv or line.get("path") or line.get("action")
            why = str(line.get("error") or line.get("result") or line.get("output") or "")
            return [AgentEvent("refused", short(f"{what}: {why}"), turns=turns)]
        step = {"write": self._write, "run": self._run, "call": self._call, "spend": self._spend, "say": self._say}
        found = step.get(str(line.get("action")))
        return found(line, turns) if found else []

    def _write(self, line: dict[str, Any], turns: int | None) -> list[AgentEvent]:
        return [AgentEvent("tool", f"write {short(str(line.get('path')))}", turns=turns)]

    def _run(self, line: dict[str, Any], turns: int | None) -> list[AgentEvent]:
        return [AgentEvent("tool", f"run `{short(' '.join(map(str, line.get('argv') or [])))}`", turns=turns)]

    def _call(self, line: dict[str, Any], turns: int | None) -> list[AgentEvent]:
        tool = str(line.get("tool"))
        found = [AgentEvent("tool", f"call {tool}", turns=turns)]
        verdict = gate_verdict(str(line.get("result") or "")) if tool.endswith("run_quality_gate") else None
        if verdict is not None:
            found.append(AgentEvent("gate", "gate passed" if verdict else "gate failed", passed=verdict))
        return found

    def _spend(self, line: dict[str, Any], turns: int | None) -> list[AgentEvent]:
        spent = line.get("spent")
        self.cost += float(spent) if isinstance(spent, int | float) else 0.0
        return [AgentEvent("usage", turns=turns, cost_usd=round(self.cost, 4), tokens_in=_int(line.get("tokens_in")),
                           tokens_out=_int(line.get("tokens_out")))]  # fmt: skip

    def _say(self, line: dict[str, Any], turns: int | None) -> list[AgentEvent]:
        return [AgentEvent("said", short(str(line.get("text") or "")), turns=turns)]


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) else None


ADAPTER = Adapter(name="replay", title="replay (a scripted session)", settings=ReplaySettings, build=_build,
                  doctor=_doctor, defaults=_defaults, steps=steps, costs=costs)  # fmt: skip


# -- the child process ----------------------------------------------------------------------------------------


def _emit(item: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(item) + "\n")
    sys.stdout.flush()


def _fill(value: Any, task_id: str) -> Any:
    if isinstance(value, str):
        return value.replace("{task_id}", task_id)
    if isinstance(value, list):
        return [_fill(v, task_id) for v in value]
    if isinstance(value, dict):
        return {k: _fill(v, task_id) for k, v in value.items()}
    return value


def _inside(root: Path, rel: str) -> Path:
    path = (root / rel).resolve()
    path.relative_to(root.resolve())  # ValueError: the script may not write outside the worktree
    return path


def _client(spec: Mapping[str, Any]) -> Any:
    """An MCP client for one entry of the run's config: a server over HTTP (outside the sandbox, behind its
    token), or one started over stdio (unsandboxed)."""
    from mcp import Client, StdioServerParameters

    if spec.get("type") == "http":
        from mcp.client.streamable_http import streamable_http_client
        from mcp.shared._httpx_utils import create_mcp_http_client

        http = create_mcp_http_client(headers=dict(spec.get("headers") or {}))
        stack = contextlib.AsyncExitStack()

        @contextlib.asynccontextmanager
        async def connected() -> Any:
            async with stack:
                await stack.enter_async_context(http)
                yield await stack.enter_async_context(Client(streamable_http_client(spec["url"], http_client=http)))

        return connected()
    env = {**os.environ, **spec.get("env", {})}
    return Client(StdioServerParameters(command=spec["command"], args=spec["args"], env=env))


async def _replay(steps: Sequence[dict[str, Any]], task_id: str, servers: Mapping[str, Any], run: int = 1
                  ) -> dict[str, Any]:  # fmt: skip
    root = Path.cwd()
    clients: dict[str, Any] = {}
    errors, final, cost = 0, "", 0.0
    tokens = {"input_tokens": 0, "output_tokens": 0}
    async with contextlib.AsyncExitStack() as stack:  # servers are left in the reverse order they were reached
        for n, raw in enumerate(steps, start=1):
            step = _fill(raw, task_id)
            if "fail" in step:
                if run <= int(step.get("times", run)):
                    return _api_stop(step, n - 1, cost)
                continue
            event: dict[str, Any] = {"type": "step", "n": n}
            try:
                if "write" in step or "append" in step:
                    rel = step.get("write") or step["append"]
                    path = _inside(root, rel)
                    path.parent.mkdir(parents=True, exist_ok=True)
                    before = path.read_text() if "append" in step and path.exists() else ""
                    path.write_text(before + str(step.get("text", "")))
                    event.update(action="write", path=rel, ok=True)
                elif "call" in step:
                    server, _, tool = str(step["call"]).partition(".")
                    if server not in clients:
                        clients[server] = await stack.enter_async_context(_client(servers[server]))
                    result = await clients[server].call_tool(tool, step.get("args") or {})
                    text = "\n".join(getattr(c, "text", "") for c in result.content)
                    event.update(action="call", tool=step["call"], ok=not result.is_error, result=text[:4000])
                elif "run" in step:
                    done = subprocess.run([str(a) for a in step["run"]], capture_output=True, text=True, check=False)
                    event.update(action="run", argv=step["run"], ok=done.returncode == 0, exit=done.returncode,
                                 output=(done.stdout + done.stderr)[-2000:])  # fmt: skip
                elif "sleep" in step:
                    time.sleep(float(step["sleep"]))
                    event.update(action="sleep", ok=True)
                elif "spend" in step:
                    cost += float(step["spend"])
                    tokens["input_tokens"] += int(step.get("tokens_in", 0))
                    tokens["output_tokens"] += int(step.get("tokens_out", 0))
                    event.update(action="spend", ok=True, spent=float(step["spend"]), tokens_in=tokens["input_tokens"],
                                 tokens_out=tokens["output_tokens"])  # fmt: skip
                else:
                    final = str(step["say"])
                    event.update(action="say", ok=True, text=final[:2000])
            except Exception as e:  # a step that fails is reported; the session goes on, as an agent's would
                event.update(ok=False, error=f"{type(e).__name__}: {e}")
            errors += 0 if event.get("ok") else 1
            event["at"] = round(time.time(), 3)  # when the step was done (what the live view's delay counts from)
            _emit(event)
    return {"type": "result", "subtype": "success", "is_error": False, "terminal_reason": "completed",
            "num_turns": len(steps), "total_cost_usd": cost, "usage": tokens,
            "result": final or f"replayed {len(steps)} step(s), {errors} failed", "permission_denials": []}  # fmt: skip


def _api_stop(step: Mapping[str, Any], turns: int, cost: float) -> dict[str, Any]:
    """Write the lines Claude Code writes when the model's API stops a run (as measured with 2.1.332, see
    scheduler.agents.claude_stops), and return its `result` line."""
    kind = str(step["fail"])
    status, error_type, text = {
        "usage-limit": (429, "rate_limit_error", "API Error: Request rejected (429) · Rate limited"),
        "limit-disabled": (429, "rate_limit_error", "Your usage allocation has been disabled by your admin"),
        "overloaded": (529, "overloaded_error", "API Error: 529 Overloaded"),
        "server-error": (500, "api_error", "API Error: 500 Internal server error"),
        "network": (None, None, "API Error: Connection error."),
    }[kind]
    if kind == "usage-limit" and "resets_in" in step:
        resets = int(time.time() + float(step["resets_in"]))
        _emit({"type": "rate_limit_event", "rate_limit_info": {"status": "rejected", "resetsAt": resets,
               "rateLimitType": "five_hour", "overageStatus": "rejected",
               "overageDisabledReason": "org_level_disabled", "isUsingOverage": False}})  # fmt: skip
        text = "You've hit your 5-hour limit"
    elif kind == "limit-disabled":
        _emit({"type": "rate_limit_event", "rate_limit_info": {"status": "rejected", "rateLimitType": "overage",
               "overageStatus": "rejected", "overageDisabledReason": "member_level_disabled"}})  # fmt: skip
    else:
        for attempt in (1, 2):  # Claude Code retried by itself before giving up
            _emit({"type": "system", "subtype": "api_retry", "attempt": attempt, "max_retries": 2,
                   "retry_delay_ms": 500, "error_status": status, "error": kind})  # fmt: skip
    error = {"api_error_status": status, "api_error_type": error_type} if status else {}
    _emit({"type": "assistant", "message": {"model": "<synthetic>", "role": "assistant", "content": [
        {"type": "text", "text": text}]}, "error": "rate_limit" if status == 429 else "unknown",
        "is_api_error_message": True, **error})  # fmt: skip
    return {"type": "result", "subtype": "success", "is_error": True, "terminal_reason": "api_error",
            "num_turns": turns, "total_cost_usd": cost, "usage": {"input_tokens": 0, "output_tokens": 0},
            "result": text, "permission_denials": [], **error}  # fmt: skip


def main(argv: Sequence[str] | None = None) -> int:
    import anyio

    parser = argparse.ArgumentParser(prog="python -m scheduler.agents.replay")
    parser.add_argument("--script", required=True, type=Path)
    parser.add_argument("--task", required=True)
    parser.add_argument("--mcp-config", required=True, type=Path)
    parser.add_argument("--run", type=int, default=1, help="which run of the task this is (a `fail` step's times)")
    args = parser.parse_args(argv)
    tasks = load_script(args.script)
    steps = tasks.get(args.task, tasks.get("*", []))
    servers = json.loads(args.mcp_config.read_text())["mcpServers"]
    _emit({"type": "system", "subtype": "init", "mcp_servers": [{"name": n, "status": "configured"} for n in servers]})
    result = anyio.run(_replay, steps, args.task, servers, args.run)
    _emit(result)
    return 1 if result.get("is_error") else 0


if __name__ == "__main__":
    raise SystemExit(main())
