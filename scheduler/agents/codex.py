"""The Codex CLI adapter (issue 13): `codex exec --json` with a per-run CODEX_HOME, inside overnight's sandbox.

Per run, `$CODEX_HOME/config.toml` (a link to a file in the run's read-only config folder, written afresh for
each run and deleted with it, so nothing the agent does reaches a later run) sets: the model and, when
`base_url` is given, a custom provider entry (`wire_api = "responses"`); `approval_policy = "never"`; the three
MCP servers from `mcp_config(job)` (`default_tools_approval_mode = "approve"`: without it codex refuses every
MCP call under `never`); and a `PreToolUse` hook running `scheduler.guard`, which refuses the same commands as
for Claude Code (codex's hook input names a command `Bash` with `tool_input.command`, and a hook that exits 2
blocks the call with its stderr as the reason, as in Claude Code). Codex runs hooks it has not been told to
trust only with `--dangerously-bypass-hook-trust`: the hook is ours, written for this run.

The sandbox: overnight's bubblewrap sandbox is THE sandbox for codex (`--dangerously-bypass-approvals-and-sandbox`
inside it): see `SANDBOX_NOTE`. Codex's own sandbox cannot nest in ours (measured with 0.171.0, `-s
workspace-write` inside it: every command fails with "bwrap: setting up uid map: Operation not permitted", as
ours runs with no capabilities in its own user namespace). With `[scheduler] sandbox = "off"` codex's own
`workspace-write` sandbox is the only one, and every report already says the run was unsandboxed.

What codex does not have: a turn cap (the adapter counts the model's actions in the stream and ends the run
past `max_turns`; the wall clock, `timeout_min`, ends it anyway) and a cost report (its stream gives tokens
only: with the prices under [agents.codex] the run's cost is estimated from them, and `max_budget_usd` enforced
during the run from the `token_count` events of codex's session rollout, `scheduler.agents.budget`). An API it cannot
reach makes codex wait without end ("Reconnecting... waiting for network"): after `network_wait_s` of that the
run is ended and counted as a network stop.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Annotated, Any

from pydantic import ConfigDict, Field

from mcp_servers.core import proc

from . import AgentJob, AgentResult, agent_env, mcp_config, run_process, token_count, watching
from .adapter import Adapter, AgentCheck, executable, npm_reads
from .budget import Meter, Prices, Usage, budget, unenforced
from .codex_events import WAITING_FOR_NETWORK, CodexEvents, result_from, steps

log = logging.getLogger(__name__)
DEFAULT_API = "https://api.openai.com/v1"
CHATGPT_API = "https://chatgpt.com/backend-api/codex"  # a ChatGPT login (`codex login`) talks to this
AUTH_API = "https://auth.openai.com"  # ... and refreshes its tokens here
PROVIDER = "overnight"  # the custom provider entry's id
MIN_VERSION = (0, 124, 0)  # hooks on by default since 0.124; tested with 0.171.0
TESTED = "0.171.0"
# What codex needs of the person's environment inside the sandbox: its credentials.
CREDENTIALS = ("OPENAI_API_KEY", "CODEX_API_KEY", "OPENAI_BASE_URL", "OPENAI_ORGANIZATION", "OPENAI_PROJECT")
# codex's features that reach beyond the model's API at start (plugin and app catalogues, suggestions): off
QUIET = ("apps", "plugins", "remote_plugin", "plugin_sharing", "tool_suggest", "skill_mcp_dependency_install")
SANDBOX_NOTE = (
    "codex runs inside overnight's bubblewrap sandbox with its own sandbox bypassed "
    "(--dangerously-bypass-approvals-and-sandbox): overnight's sandbox already lets it write only the worktree "
    "and its home, and reach only the MCP servers and the model's API"
)


class CodexSettings(Prices):
    """How overnight runs Codex CLI (`[agents.codex]` or the scheduler's defaults)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    command: str = Field(default="codex", description="the Codex CLI (a name on PATH, or a path)")
    model: str = Field(default="", description="the model to ask for (empty: codex's default)")
    base_url: str = Field(
        default="",
        description="a custom provider's Responses API base URL, e.g. "
        "http://127.0.0.1:8080/v1 (empty: OpenAI's, with codex's own login or OPENAI_API_KEY)",
    )
    env_key: str = Field(default="", description="with base_url: the variable holding that provider's API key "
                         "(empty: no key is sent)")  # fmt: skip
    max_turns: Annotated[int, Field(ge=1)] | None = Field(
        default=None,
        description="the model's actions (tool calls and messages) per task: codex has no turn cap of "
        "its own, so overnight ends the run past it (empty: the scheduler's max_turns)",
    )
    timeout_min: Annotated[float, Field(gt=0)] | None = Field(
        default=None, description="minutes codex gets per task (empty: the scheduler's task_timeout_min)"
    )
    max_budget_usd: Annotated[float, Field(ge=0)] = Field(
        default=0.0,
        description="spend per task, USD, estimated from the tokens codex reports and the prices above (needs "
        "them); 0: no cap; left out: [scheduler] max_budget_usd",
    )
    request_max_retries: Annotated[int, Field(ge=0)] | None = Field(
        default=None, description="with base_url: times codex re-sends a request that got a 5xx (empty: its default)"
    )
    network_wait_s: Annotated[float, Field(gt=0)] = Field(
        default=60.0,
        description="seconds codex may wait for an API it cannot reach before the run is ended as a network stop",
    )

    @classmethod
    def of(cls, scheduler: Any) -> CodexSettings:
        """The settings for `scheduler`: its `codex` section when it has one (a registry's per-agent settings),
        else the defaults (the scheduler's `model` is Claude Code's, so it is not taken for codex)."""
        own = getattr(scheduler, "codex", None)
        if isinstance(own, CodexSettings):
            return own
        if isinstance(own, Mapping):
            return cls.model_validate(own)
        return cls()


class CodexAgent:
    name = "codex"

    def __init__(self, config: Any, settings: CodexSettings | None = None,
                 environ: Mapping[str, str] | None = None) -> None:  # fmt: skip
        self.config = config
        self.settings = settings or CodexSettings.of(config)
        self.environ = dict(os.environ if environ is None else environ)
        self.timeout_min = self.settings.timeout_min  # (the registry's `timeout_min`: None is the scheduler's)

    @staticmethod
    def tool(server: str, name: str) -> str:
        """How the model is told to call an MCP tool: codex offers each server as a namespace `mcp__<server>`
        holding its tools, so `mcp__quality__commit` reads as that namespace's `commit` (its hooks name it so)."""
        return f"mcp__{server}__{name}"

    # -- what doctor asks

    def executable(self) -> str | None:
        return executable(self.settings.command, self.environ)

    def version(self) -> tuple[int, ...] | None:
        exe = self.executable()
        if exe is None:
            return None
        found = proc.run([exe, "--version"], env=self.environ, timeout=60)
        match = re.search(r"(\d+)\.(\d+)\.(\d+)", found.text() if found.ok else "")
        return tuple(int(p) for p in match.groups()) if match else None

    def problems(self, environ: Mapping[str, str]) -> list[str]:
        environ = {**environ, **self.environ}
        exe = self.executable()
        if exe is None:
            return [f"the Codex CLI `{self.settings.command}` was not found: install it (`npm install -g "
                    f"@openai/codex@{TESTED}`) or set `command` under [agents.codex]"]  # fmt: skip
        found = proc.run([exe, "--version"], env=self.environ, timeout=60)
        if not found.ok:
            return [f"`{exe} --version` failed: {found.describe(tail_lines=5)}"]
        match = re.search(r"(\d+)\.(\d+)\.(\d+)", found.text())
        if match is None or tuple(int(p) for p in match.groups()) < MIN_VERSION:
            return [f"`{exe} --version` says {found.text().strip()!r}: overnight needs Codex CLI "
                    f"{'.'.join(map(str, MIN_VERSION))} or newer (tested with {TESTED}): "
                    f"`npm install -g @openai/codex@{TESTED}`"]  # fmt: skip
        unpriced, _ = unenforced(self.name, self.settings, self.config)
        return self._credential_problems(environ) + ([unpriced] if unpriced else [])

    def _credential_problems(self, environ: Mapping[str, str]) -> list[str]:
        s = self.settings
        if s.base_url:
            if s.env_key and not environ.get(s.env_key):
                return [f"the codex provider at {s.base_url} takes its key from ${s.env_key}, which is not set: put "
                        "it in the env file `overnight cron install` made"]  # fmt: skip
            return []
        if environ.get("OPENAI_API_KEY") or environ.get("CODEX_API_KEY") or _login(environ) is not None:
            return []
        return ["Codex CLI has no credentials: run `codex login` (a ChatGPT plan), or set OPENAI_API_KEY (or "
                "CODEX_API_KEY) in the env file `overnight cron install` made, or give `base_url` under "
                "[agents.codex] for your own provider"]  # fmt: skip

    def task_problems(self, task_ids: Sequence[str]) -> list[str]:
        return []  # a model can take on any task

    def endpoints(self) -> list[str]:
        if self.settings.base_url:
            return [self.settings.base_url]
        if _api_key(self.environ):
            return [self.environ.get("OPENAI_BASE_URL") or DEFAULT_API]
        return [CHATGPT_API, AUTH_API]

    def reads(self) -> list[Path]:
        """Codex's npm package (its native binary sits in a sibling package under the same node_modules)."""
        return npm_reads(self.executable(), self.environ)

    # -- one run

    def config_toml(self, job: AgentJob, python: str = sys.executable) -> str:
        """The per-run config.toml: model and provider, approvals off, the MCP servers, the guard as a hook."""
        s = self.settings
        # no login shell: /etc/profile would reset PATH, and `python` would no longer be the one overnight runs
        top: dict[str, Any] = {"approval_policy": "never", "allow_login_shell": False}
        if s.model:
            top["model"] = s.model
        if job.confined.box is None:
            top["sandbox_mode"] = "workspace-write"  # unsandboxed by the person's choice: codex's own is all there is
        if s.base_url:
            top["model_provider"] = PROVIDER
        out = [f"{k} = {_toml(v)}" for k, v in top.items()]
        out += ["check_for_update_on_startup = false", "", "[analytics]", "enabled = false", "", "[features]",
                *(f"{f} = false" for f in QUIET)]  # fmt: skip
        if s.base_url:
            provider: dict[str, Any] = {"name": PROVIDER, "base_url": s.base_url, "wire_api": "responses",
                                        "supports_websockets": False, "stream_max_retries": 2}  # fmt: skip
            if s.env_key:
                provider["env_key"] = s.env_key
            if s.request_max_retries is not None:
                provider["request_max_retries"] = s.request_max_retries
            out += ["", f"[model_providers.{PROVIDER}]", *(f"{k} = {_toml(v)}" for k, v in provider.items())]
        for name, server in mcp_config(job)["mcpServers"].items():
            out += ["", f"[mcp_servers.{name}]", *(f"{k} = {_toml(v)}" for k, v in _mcp_entry(server).items())]
        guard = f"'{python}' -I -m scheduler.guard"  # -I: the worktree's files are never imported in its place
        out += ["", "[[hooks.PreToolUse]]", 'matcher = ".*"', "[[hooks.PreToolUse.hooks]]", 'type = "command"',
                f"command = {_toml(guard)}"]  # fmt: skip
        return "\n".join(out) + "\n"

    def home(self, job: AgentJob) -> Path:
        """The run's CODEX_HOME: in the run's own home (outside the worktree and $TMPDIR), gone after the run.
        Its config.toml links to the run's read-only config folder, so the agent cannot rewrite it."""
        conf = job.confined
        home = conf.home / ".codex"
        home.mkdir(parents=True, exist_ok=True)
        config = conf.folder / "config" / "codex.toml"
        config.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(config, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # it holds the run's bearer token
        with os.fdopen(fd, "w") as handle:
            handle.write(self.config_toml(job))
        link = home / "config.toml"
        if link.exists() or link.is_symlink():
            link.unlink()
        link.symlink_to(config)
        _pass_login(self.environ, home, has_key=bool(self.settings.base_url or _api_key(self.environ)))
        return home

    def command(self, job: AgentJob) -> list[str]:
        exe = self.executable() or self.settings.command
        argv = [exe, "exec", "--json", "--skip-git-repo-check", "--dangerously-bypass-hook-trust"]
        if job.confined.box is not None:
            argv.append("--dangerously-bypass-approvals-and-sandbox")  # ours is the sandbox: SANDBOX_NOTE
        return job.confined.wrap([*argv, "--", job.prompt])  # (a prompt is never taken for a flag)

    def run(self, job: AgentJob) -> AgentResult:
        s = self.settings
        if s.timeout_min is not None:
            job = replace(job, timeout_s=min(job.timeout_s, s.timeout_min * 60))
        env = agent_env(job, self.environ, keep=(*CREDENTIALS, *([s.env_key] if s.env_key else [])))
        home = self.home(job)
        env["CODEX_HOME"] = str(home)
        scratch = job.confined.home / "tmp" if job.confined.box is not None else job.run_dir / "tmp"
        scratch.mkdir(parents=True, exist_ok=True)
        env["TMPDIR"] = str(scratch)  # not a parent of CODEX_HOME: codex refuses its helpers under $TMPDIR
        log_path = job.run_dir / "agent.jsonl"
        own = replace(job, stop=threading.Event())  # ended by the person's stop, a network stall, the turn cap
        stall = _Stall(s.network_wait_s)
        watch, counter, capped = watching(job, CodexEvents()), CodexEvents(), threading.Event()
        cap = s.max_turns or getattr(self.config, "max_turns", None)

        def on_line(line: dict[str, Any]) -> None:
            stall.see(line)
            watch(line)
            counter(line)
            if isinstance(cap, int) and counter.turns > cap and not capped.is_set():
                capped.set()
                own.stop.set()

        ender = threading.Thread(target=_mirror, args=(job.stop, own.stop, stall), daemon=True)
        ender.start()
        meter = Meter(budget(s, self.config)[0], s, lambda: sorted((home / "sessions").rglob("rollout-*.jsonl")),
                      RolloutTally, own.stop, marker=b"token_count").start()  # fmt: skip
        try:
            outcome = run_process(self.command(job), own, env, log_path, on_line)
        finally:
            stall.done.set()
            used = meter.finish()
        ours = (stall.stalled or capped.is_set() or meter.over) and not job.stop.is_set()
        if ours:
            outcome.stopped = False  # ended by the adapter, not by the person
        errors = log_path.with_suffix(".stderr")
        stderr = errors.read_text(errors="replace") if errors.exists() else ""
        result = result_from(self.name, outcome, log_path, stderr, stalled=stall.stalled and ours)
        if capped.is_set() and ours and not stall.stalled:
            result.terminal_reason, result.is_error = f"max turns ({cap})", True
        elif meter.over and ours and not stall.stalled:
            result.terminal_reason, result.is_error = meter.reason(), True
        if s.priced():  # codex reports no cost: estimated from its tokens (the highest of its two reports)
            used = used.highest(stream_usage(outcome.lines))
            result.cost_usd, result.cost_estimated = used.cost(s), True
            result.tokens_in, result.tokens_out = max(result.tokens_in or 0, used.input), max(result.tokens_out or 0,
                                                                                              used.output)  # fmt: skip
        return result


def stream_usage(lines: Sequence[Mapping[str, Any]]) -> Usage:
    """The tokens of `turn.completed` lines in codex's stdout (summed over the run's turns)."""
    total = Usage()
    for line in lines:
        usage = line.get("usage") if line.get("type") == "turn.completed" else None
        if isinstance(usage, Mapping):
            total = total + Usage(_count(usage, "input_tokens"), _count(usage, "cached_input_tokens"),
                                  _count(usage, "output_tokens"))  # fmt: skip
    return total


class RolloutTally:
    """Codex's session rollout (`$CODEX_HOME/sessions/.../rollout-*.jsonl`): after each model request a
    `token_count` event with the run's cumulative `total_token_usage`; the highest seen counts."""

    def __init__(self) -> None:
        self.seen = Usage()

    def add(self, line: dict[str, Any]) -> None:
        payload = line.get("payload")
        info = payload.get("info") if isinstance(payload, Mapping) and payload.get("type") == "token_count" else None
        total = info.get("total_token_usage") if isinstance(info, Mapping) else None
        if isinstance(total, Mapping):
            self.seen = self.seen.highest(Usage(_count(total, "input_tokens"), _count(total, "cached_input_tokens"),
                                                _count(total, "output_tokens")))  # fmt: skip

    def usage(self) -> Usage:
        return self.seen


def _count(data: Mapping[str, Any], key: str) -> int:
    return token_count(data.get(key)) or 0


class _Stall:
    """Tracks how long codex has been waiting for a network it cannot reach."""

    def __init__(self, limit_s: float) -> None:
        self.limit_s = limit_s
        self.since: float | None = None
        self.stalled = False
        self.done = threading.Event()
        self.running: set[str] = set()  # items started, not completed: codex waits on no model while they run

    def see(self, line: Mapping[str, Any]) -> None:
        item = line.get("item")
        ident = str(item.get("id")) if isinstance(item, Mapping) else ""
        if line.get("type") == "item.started":
            self.running.add(ident)
        elif line.get("type") == "item.completed":
            self.running.discard(ident)
        if line.get("type") == "error" and WAITING_FOR_NETWORK in str(line.get("message") or ""):
            # (a command of the agent's writing such lines to codex's stdout is a running item: not a stall)
            self.since = None if self.running else self.since or time.monotonic()
        elif line.get("type") != "error":
            self.since = None

    def overdue(self) -> bool:
        return self.since is not None and time.monotonic() - self.since > self.limit_s


def _mirror(person: threading.Event, own: threading.Event, stall: _Stall) -> None:
    """End the run when the person stops the session, or when codex has waited too long for the network."""
    while not stall.done.wait(0.25):
        if person.is_set():
            own.set()
            return
        if stall.overdue():
            stall.stalled = True
            own.set()
            return


def _mcp_entry(server: Mapping[str, Any]) -> dict[str, Any]:
    """One server of `mcp_config(job)` as codex's `[mcp_servers.X]` table."""
    entry: dict[str, Any] = {}
    if server.get("type") == "http":
        entry["url"] = server["url"]
        if server.get("headers"):
            entry["http_headers"] = dict(server["headers"])
    else:
        entry["command"] = server["command"]
        entry["args"] = list(server.get("args") or [])
        if server.get("env"):
            entry["env"] = dict(server["env"])
    # required: codex exec does not wait for a server that starts slower than about a second unless it is
    # required, and then fails the run when it cannot start (measured with 0.171.0); the gate runs the test
    # suite: tool calls get their time
    entry.update(required=True, startup_timeout_sec=60, tool_timeout_sec=900, default_tools_approval_mode="approve")
    return entry


def _toml(value: Any) -> str:
    """A TOML value: strings, booleans, numbers, lists and inline tables of them (JSON strings are TOML ones)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    if isinstance(value, Mapping):
        return "{ " + ", ".join(f"{json.dumps(str(k))} = {_toml(v)}" for k, v in value.items()) + " }"
    raise TypeError(f"no TOML for {value!r}")


def _api_key(environ: Mapping[str, str]) -> bool:
    return bool(environ.get("OPENAI_API_KEY") or environ.get("CODEX_API_KEY"))


def _login(environ: Mapping[str, str]) -> Path | None:
    """The person's `codex login` (auth.json in their CODEX_HOME), if any."""
    home = Path(environ.get("CODEX_HOME") or Path(environ.get("HOME", "~")).expanduser() / ".codex")
    found = home / "auth.json"
    return found if found.is_file() else None


def _pass_login(environ: Mapping[str, str], home: Path, has_key: bool) -> None:
    """A ChatGPT login (no API key): the run's CODEX_HOME gets a copy of auth.json, nothing else of theirs."""
    found = None if has_key else _login(environ)
    if found is not None:
        target = home / "auth.json"
        shutil.copyfile(found, target)
        target.chmod(0o600)


def _doctor(settings: CodexSettings, environ: Mapping[str, str]) -> AgentCheck:
    agent = CodexAgent(None, settings, environ=environ)
    unpriced, _ = unenforced(agent.name, settings, None)  # (doctor says it on a line of its own)
    problems = [p for p in agent.problems(environ) if p != unpriced]
    version = ".".join(map(str, agent.version() or ())) or None
    if problems:
        return AgentCheck(installed=version, authenticated=False if version else None,
                          detail=problems[0].split(": ", 1)[0], fix=problems[0].split(": ", 1)[-1])  # fmt: skip
    return AgentCheck(installed=f"Codex CLI {version} at {agent.executable()}", authenticated=True)


ADAPTER = Adapter(name="codex", title="Codex CLI", settings=CodexSettings,
                  build=lambda own, b: CodexAgent(b.scheduler, own, environ=b.environ), tool=CodexAgent.tool,
                  doctor=_doctor, defaults=lambda _scheduler: {}, install=f"npm install -g @openai/codex@{TESTED}",
                  default_command="codex", steps=steps)  # fmt: skip
