"""The Gemini CLI adapter: `gemini -p … --output-format stream-json` with per-run settings, a `BeforeTool` guard,
yolo approvals, in the same sandbox as Claude Code (measured with Gemini CLI 0.61.0, `@google/gemini-cli`).

Where its settings live. The CLI merges schema defaults < system defaults < user (`$GEMINI_CLI_HOME/.gemini/
settings.json`, else `~/.gemini/`) < workspace (`<cwd>/.gemini/settings.json`, trusted folders only) < system
(`GEMINI_CLI_SYSTEM_SETTINGS_PATH`). The workspace is the agent's worktree, so its file is never trusted: the CLI
runs with `--skip-trust`, under which a workspace's settings (and their hooks) are not applied at all. The system
file is refused unless it and every folder above it are owned by root and writable by nobody else, which a run's
folder under /tmp never is. So the settings are the user's, in a home made for this run (`GEMINI_CLI_HOME`, the
sandbox's home), written afresh before each run and gone after it: nothing the agent writes there reaches a later
run, and the CLI reads them once, at its start.

What they hold: the three MCP servers of `mcp_config(job)` (Gemini names their tools `mcp_<server>_<tool>`),
`hooks.BeforeTool` running `scheduler.agents.gemini_hook` (the guard Claude Code has, on the tools that run or
write), API-key auth (so a base URL is honoured), the turn limit (`model.maxSessionTurns`, exit 53), the API
retries (`general.maxAttempts`), no web tools or subagents, no usage statistics. `--approval-mode yolo` lets it work
unattended (without it, headless mode offers no shell or write tools at all). Its own sandbox (`-s`) needs a
container image and stays off: ours is the one that holds. The CLI reports tokens, never cost: with the prices
under [agents.gemini] the run's cost is estimated from them, and `max_budget_usd` enforced during the run from
the `tokens` of each model message in its chat recording (`scheduler.agents.budget`; its stream-json gives them
only on its last line).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import sys
import threading
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from mcp_servers.core import proc
from mcp_servers.core.config import Scheduler

from . import AgentJob, AgentResult, agent_env, mcp_config, run_process, token_count
from . import watching as watch
from .adapter import Adapter, AgentCheck, executable, npm_reads
from .budget import Meter, Prices, Usage, budget, unenforced
from .gemini_stream import GeminiEvents, read_result, steps

DEFAULT_API = "https://generativelanguage.googleapis.com"
VERSION = "0.61.0"  # the version this adapter was measured with (tests/e2e/node/package.json pins it)
CREDENTIALS = ("GEMINI_API_KEY", "GOOGLE_API_KEY", "GOOGLE_GEMINI_BASE_URL", "GOOGLE_GENAI_API_VERSION",
               "GOOGLE_GENAI_USE_VERTEXAI", "GOOGLE_CLOUD_PROJECT", "GOOGLE_CLOUD_LOCATION")  # fmt: skip
GUARDED = ("run_shell_command", "write_file", "replace")  # the tools that run or write
EXCLUDED = ("web_fetch", "google_web_search", "invoke_agent")


class GeminiSettings(Prices):
    """`[agents.gemini]`: how overnight runs the Gemini CLI."""

    model_config = ConfigDict(extra="forbid")

    command: str = Field(default="gemini", description="the Gemini CLI (a name on PATH, or a path)")
    model: str = Field(default="", description="the model (`-m`; empty: the CLI's `auto`, which routes each "
                       "request through an extra call)")  # fmt: skip
    base_url: str = Field(default="", description="the API's base URL (GOOGLE_GEMINI_BASE_URL; empty: the "
                          "variable if set, else Google's)")  # fmt: skip
    max_turns: Annotated[int, Field(ge=0)] = Field(
        default=0, description="model turns per task (`model.maxSessionTurns`; 0: the scheduler's max_turns)"
    )
    timeout_min: Annotated[float, Field(ge=0)] = Field(default=0.0, description="minutes per task (0: the "
                                                       "scheduler's task_timeout_min)")  # fmt: skip
    max_attempts: Annotated[int, Field(ge=1, le=10)] = Field(
        default=3, description="tries per API request before the run ends on the error (`general.maxAttempts`)"
    )
    max_budget_usd: Annotated[float, Field(ge=0)] = Field(default=0.0, description="spend per task, USD, "
                                                          "estimated from the tokens the CLI reports and the prices "
                                                          "above (needs them); 0: no cap; left out: [scheduler] "
                                                          "max_budget_usd")  # fmt: skip

    @classmethod
    def of(cls, scheduler: Any) -> GeminiSettings:
        """The settings under `[agents.gemini]`, when the configuration has them; else the defaults."""
        found = getattr(scheduler, "gemini", None)
        if isinstance(found, GeminiSettings):
            return found
        if isinstance(found, Mapping):
            return cls.model_validate(dict(found))
        if isinstance(found, BaseModel):
            return cls.model_validate(found.model_dump())
        return cls()


def tool(server: str, name: str) -> str:
    """How the model sees an MCP tool (its functionDeclarations): `mcp_quality_commit`."""
    return f"mcp_{server}_{name}"


def settings(job: AgentJob, config: GeminiSettings, max_turns: int, python: str = sys.executable,
             vertex: bool = False) -> dict[str, Any]:  # fmt: skip
    """The run's settings (written to the run's home as the user's settings; see the module's docstring). The
    login is an API key: Gemini's, or Vertex AI's with GOOGLE_GENAI_USE_VERTEXAI (`vertex`)."""
    hook_env = {k: v for k, v in {**job.env, "OVERNIGHT_REPO": str(job.worktree)}.items()
                if k.startswith("OVERNIGHT_")}  # fmt: skip
    servers = {}
    for name, entry in mcp_config(job)["mcpServers"].items():
        if entry.get("type") == "http":
            servers[name] = {"httpUrl": entry["url"], "headers": dict(entry.get("headers") or {}), "trust": True,
                             "timeout": 900_000}  # fmt: skip
        else:
            servers[name] = {"command": entry["command"], "args": list(entry.get("args") or []),
                             "env": dict(entry.get("env") or {}), "trust": True, "timeout": 900_000}  # fmt: skip
    return {
        "security": {"auth": {"selectedType": "vertex-ai" if vertex else "gemini-api-key"}},
        "general": {"maxAttempts": config.max_attempts},
        "model": {"maxSessionTurns": max_turns},
        "privacy": {"usageStatisticsEnabled": False},
        "tools": {"exclude": list(EXCLUDED)},
        "mcpServers": servers,
        "hooksConfig": {"enabled": True},
        "hooks": {"BeforeTool": [{"matcher": "|".join(GUARDED), "hooks": [{
            "type": "command", "name": "overnight-guard", "timeout": 60_000, "env": hook_env,
            # -I: the worktree's own files are never imported in place of the guard
            "command": f"{shlex.quote(python)} -I -m scheduler.agents.gemini_hook"}]}]},
    }  # fmt: skip


class GeminiAgent:
    name = "gemini"

    def __init__(self, config: Scheduler, gemini: GeminiSettings | None = None,
                 environ: Mapping[str, str] | None = None) -> None:  # fmt: skip
        self.config = config
        self.settings = gemini if gemini is not None else GeminiSettings.of(config)
        self.environ = dict(os.environ if environ is None else environ)
        self.timeout_min = self.settings.timeout_min  # (the registry's `timeout_min`: 0 is the scheduler's)

    @staticmethod
    def tool(server: str, name: str) -> str:
        return tool(server, name)

    def executable(self) -> str | None:
        return executable(self.settings.command, self.environ)

    def base_url(self) -> str:
        return self.settings.base_url or self.environ.get("GOOGLE_GEMINI_BASE_URL") or DEFAULT_API

    def problems(self, environ: Mapping[str, str]) -> list[str]:
        environ = {**environ, **self.environ}
        found = []
        exe = self.executable()
        if exe is None:
            return [f"the Gemini CLI `{self.settings.command}` was not found: install it (`npm install -g "
                    f"@google/gemini-cli@{VERSION}`) or set `command` under [agents.gemini]"]  # fmt: skip
        version = proc.run([exe, "--version"], env=self.environ, timeout=60)
        if not version.ok:
            return [f"`{exe} --version` failed: {version.describe(tail_lines=5)}"]
        seen = re.search(r"\d+\.\d+\.\d+", version.text())
        if seen is None or not _compatible(seen.group(0)):
            found.append(f"the Gemini CLI is version {seen.group(0) if seen else '?'}; overnight was checked with "
                         f"{VERSION}: install `@google/gemini-cli@{VERSION}`")  # fmt: skip
        key = environ.get("GEMINI_API_KEY") or environ.get("GOOGLE_API_KEY")
        if not key:
            found.append("no GEMINI_API_KEY (or GOOGLE_API_KEY) is set, and a key is the only login the Gemini CLI "
                         "has unattended: make one in Google AI Studio and put it in the env file `overnight cron "
                         "install` made")  # fmt: skip
        elif not key.startswith("AIza"):
            found.append("the Gemini API key set does not look like one, and the CLI refuses it: use a key from "
                         "Google AI Studio (they start with `AIza`)")  # fmt: skip
        unpriced, _ = unenforced(self.name, self.settings, self.config)
        return found + ([unpriced] if unpriced else [])

    def task_problems(self, task_ids: Sequence[str]) -> list[str]:
        return []  # a model can take on any task

    def endpoints(self) -> list[str]:
        return [self.base_url()]

    def reads(self) -> list[Path]:
        """The CLI's package (an npm install, wherever it is) and the node that runs it."""
        return npm_reads(self.executable(), self.environ)

    def command(self, job: AgentJob) -> list[str]:
        exe = self.executable() or self.settings.command
        argv = [exe, "-p", job.prompt, "--output-format", "stream-json", "--approval-mode", "yolo", "--skip-trust"]
        if self.settings.model:
            argv += ["-m", self.settings.model]
        return job.confined.wrap(argv)

    def write_settings(self, job: AgentJob, python: str = sys.executable) -> Path:
        """The run's settings, written afresh into the run's home (whatever an earlier run left there)."""
        folder = job.confined.home / ".gemini"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / "settings.json"
        path.unlink(missing_ok=True)
        vertex = self.environ.get("GOOGLE_GENAI_USE_VERTEXAI", "").lower() in {"1", "true"}
        data = settings(job, self.settings, self.settings.max_turns or self.config.max_turns, python, vertex)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)  # it holds the run's bearer token
        with os.fdopen(fd, "w") as handle:
            handle.write(json.dumps(data, indent=2))
        return path

    def run(self, job: AgentJob) -> AgentResult:
        if self.settings.timeout_min > 0:
            job.timeout_s = min(job.timeout_s, self.settings.timeout_min * 60)
        self.write_settings(job)
        argv = self.command(job)
        env = agent_env(job, self.environ, keep=CREDENTIALS)
        for name in ("GEMINI_CLI_SYSTEM_SETTINGS_PATH", "GEMINI_CLI_TRUST_WORKSPACE", "GEMINI_SANDBOX"):
            env.pop(name, None)  # (unsandboxed, the person's environment is passed whole)
        env["GEMINI_CLI_HOME"] = str(job.confined.home)
        env["GOOGLE_GEMINI_BASE_URL"] = self.base_url()
        env.setdefault("NO_COLOR", "1")
        # one node process, not a second one relaunched with a bigger heap: 2-4 s less per run (measured), and
        # node's default heap is plenty for one task
        env.setdefault("GEMINI_CLI_NO_RELAUNCH", "true")
        if job.confined.box is not None:
            env["TMPDIR"] = "/tmp"  # the sandbox's own  # noqa: S108
        else:
            scratch = job.run_dir / "tmp"  # error reports land in $TMPDIR/gemini-client-error-*.json
            scratch.mkdir(parents=True, exist_ok=True)
            env["TMPDIR"] = str(scratch)
        log = job.run_dir / "agent.jsonl"
        own = replace(job, stop=threading.Event())  # ended by the person's stop or the budget
        chats = job.confined.home / ".gemini" / "tmp"
        meter = Meter(budget(self.settings, self.config)[0], self.settings,
                      lambda: sorted(chats.glob("*/chats/session-*.json*")), ChatTally, own.stop,
                      marker=b'"tokens"').start()  # fmt: skip
        ender = threading.Thread(target=_mirror, args=(job.stop, own.stop, meter.done), daemon=True)
        ender.start()
        try:
            outcome = run_process(argv, own, env, log, watch(job, GeminiEvents()))
        finally:
            used = meter.finish()
        over = meter.over and not job.stop.is_set()
        if over:
            outcome.stopped = False  # ended by the budget, not by the person
        result = read_result(self.name, outcome, log)
        if over:
            result.terminal_reason, result.is_error = meter.reason(), True
        if self.settings.priced():  # the CLI reports no cost: estimated from its tokens (the highest report)
            used = used.highest(stream_usage(outcome.lines))
            result.cost_usd, result.cost_estimated = used.cost(self.settings), True
            result.tokens_in, result.tokens_out = max(result.tokens_in or 0, used.input), max(result.tokens_out or 0,
                                                                                              used.output)  # fmt: skip
        return result


def stream_usage(lines: Sequence[Mapping[str, Any]]) -> Usage:
    """The tokens of the CLI's last `result` line (`stats`: input_tokens, with `cached` of them; output_tokens)."""
    final = next((line for line in reversed(lines) if line.get("type") == "result"), None)
    stats = final.get("stats") if final is not None else None
    if not isinstance(stats, Mapping):
        return Usage()
    return Usage(_count(stats, "input_tokens"), _count(stats, "cached"), _count(stats, "output_tokens"))


class ChatTally:
    """The CLI's chat recording (`$GEMINI_CLI_HOME/.gemini/tmp/<project>/chats/session-*.jsonl`): a `gemini`
    record per model reply with its request's `tokens` (written again, same id, as its calls end); the highest
    count of each reply, summed."""

    def __init__(self) -> None:
        self.replies: dict[str, Usage] = {}

    def add(self, line: dict[str, Any]) -> None:
        tokens = line.get("tokens") if line.get("type") == "gemini" else None
        if isinstance(tokens, Mapping):
            seen = Usage(_count(tokens, "input"), _count(tokens, "cached"), _count(tokens, "output"))
            key = str(line.get("id"))
            self.replies[key] = self.replies.get(key, Usage()).highest(seen)

    def usage(self) -> Usage:
        total = Usage()
        for seen in self.replies.values():
            total = total + seen
        return total


def _count(data: Mapping[str, Any], key: str) -> int:
    return token_count(data.get(key)) or 0


def _mirror(person: threading.Event, own: threading.Event, done: threading.Event) -> None:
    """End the run when the person stops the session (until the run is over)."""
    while not done.wait(0.25):
        if person.is_set():
            own.set()
            return


def _compatible(version: str) -> bool:
    """The same major version as the one measured, and not older."""
    have, want = tuple(map(int, version.split("."))), tuple(map(int, VERSION.split(".")))
    return have[0] == want[0] and have >= want


def _doctor(settings: GeminiSettings, environ: Mapping[str, str]) -> AgentCheck:
    agent = GeminiAgent(Scheduler(), settings, environ=environ)
    unpriced, _ = unenforced(agent.name, settings, None)  # (doctor says it on a line of its own)
    problems = [p for p in agent.problems(environ) if p != unpriced]
    exe = agent.executable()
    if problems:
        return AgentCheck(installed=exe, authenticated=False if exe else None,
                          detail=problems[0].split(": ", 1)[0], fix=problems[0].split(": ", 1)[-1])  # fmt: skip
    return AgentCheck(installed=f"Gemini CLI at {exe}", authenticated=True, detail="an API key is set")


ADAPTER = Adapter(name="gemini", title="Gemini CLI", settings=GeminiSettings,
                  build=lambda own, b: GeminiAgent(b.scheduler, own, environ=b.environ), tool=tool,
                  doctor=_doctor, defaults=lambda _scheduler: {}, default_command="gemini",
                  install=f"npm install -g @google/gemini-cli@{VERSION}", steps=steps)  # fmt: skip
