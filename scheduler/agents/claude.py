"""The Claude Code adapter: `claude -p` with a per-run MCP config, per-run hooks, locked-down permissions.

Flags as DESIGN.md gives them, never `--bare` (it turns hooks off). The `PreToolUse` hook (`scheduler.guard.claude`)
refuses `git commit`, `git push`, `--no-verify`, `core.hooksPath` and writes outside the allowed paths by
exiting 2; the permission rules deny the same again; the scheduler verifies everything afterwards anyway.
"""

from __future__ import annotations

import os
import shutil
import sys
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pydantic import Field

from mcp_servers.core import proc
from mcp_servers.core.config import Scheduler

from . import (
    AgentEvent,
    AgentJob,
    AgentResult,
    agent_env,
    call_text,
    gate_verdict,
    mcp_config,
    run_process,
    token_count,
)
from . import short as one_line
from . import watching as watch
from .adapter import Adapter, AgentCheck, AgentSettings, Built, cli_version, common_defaults, mcp_tool
from .claude_stream import _text, _tokens, costs, result_from, steps

DEFAULT_API = "https://api.anthropic.com"
GUARD = "scheduler.guard.claude"  # Claude Code's hook: the shared guard, read and answered as Claude Code does
# What Claude Code needs of the person's environment inside its sandbox: its credentials, where to send them, and
# how often it retries an overloaded API itself before the scheduler's own retries take over (`[infra]`).
CREDENTIALS = ("ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN", "CLAUDE_CODE_OAUTH_TOKEN", "ANTHROPIC_BASE_URL",
               "ANTHROPIC_MODEL", "ANTHROPIC_CUSTOM_HEADERS", "CLAUDE_CODE_MAX_RETRIES")

ALLOWED = [
    "Read", "Glob", "Grep", "LS", "Edit", "MultiEdit", "Write", "NotebookEdit", "TodoWrite",
    "Bash(python -m pytest:*)", "Bash(pytest:*)", "Bash(git status:*)", "Bash(git diff:*)", "Bash(git log:*)",
    "Bash(git show:*)", "Bash(ls:*)", "ToolSearch",
    "mcp__quality", "mcp__project", "mcp__memory",
]  # fmt: skip
DENIED = [
    "Bash(git commit:*)", "Bash(git push:*)", "Bash(git reset:*)", "Bash(git rebase:*)", "Bash(git config:*)",
    "Bash(git update-ref:*)", "Bash(git checkout -b:*)", "Bash(git switch:*)", "Bash(overnight:*)",
    "WebFetch", "WebSearch",
]  # fmt: skip


def settings(python: str = sys.executable) -> dict[str, Any]:
    """Per-run Claude Code settings: the guard as a PreToolUse hook on every tool that runs or writes."""
    return {
        "hooks": {
            "PreToolUse": [
                {
                    "matcher": "Bash|Write|Edit|MultiEdit|NotebookEdit",
                    # -I: the worktree's own files are never imported in place of the guard
                    "hooks": [{"type": "command", "command": f"'{python}' -I -m {GUARD}", "timeout": 60}],
                }
            ]
        },
        "permissions": {"allow": ALLOWED, "deny": DENIED},
    }


INSTALL = "`npm install -g @anthropic-ai/claude-code`, or set `command` under [agents.claude] in overnight.toml"
LOGIN = ("run `claude setup-token` and put the token in the env file `overnight cron install` made "
         "(CLAUDE_CODE_OAUTH_TOKEN), or set ANTHROPIC_API_KEY there")  # fmt: skip


class ClaudeSettings(AgentSettings):
    """`[agents.claude]`: unset keys come from `[scheduler]` (claude_command, model, fallback_model, max_turns,
    max_budget_usd, task_timeout_min), as before there were per-agent settings."""

    command: str = Field(default="claude", description="the Claude Code CLI (a name on PATH, or a path)")
    fallback_model: str = Field(default="", description="the model Claude Code switches to when the main one is "
                                "overloaded (`--fallback-model`; empty: none)")  # fmt: skip

    @classmethod
    def of(cls, scheduler: Scheduler) -> ClaudeSettings:
        """The settings `[scheduler]` alone gives (no `[agents.claude]` table)."""
        return cls.model_validate(_defaults(scheduler))


def _defaults(scheduler: Scheduler) -> dict[str, Any]:
    return {**common_defaults(scheduler), "command": scheduler.claude_command, "model": scheduler.model,
            "fallback_model": scheduler.fallback_model}  # fmt: skip


class ClaudeAgent:
    name = "claude"

    def __init__(self, config: Scheduler | ClaudeSettings, environ: Mapping[str, str] | None = None) -> None:
        self.config = config if isinstance(config, ClaudeSettings) else ClaudeSettings.of(config)
        self.environ = dict(os.environ if environ is None else environ)
        self.timeout_min = self.config.timeout_min

    def executable(self) -> str | None:
        command = self.config.command
        if os.path.isabs(command):
            return command if os.access(command, os.X_OK) else None
        return shutil.which(command, path=self.environ.get("PATH"))

    def problems(self, environ: Mapping[str, str]) -> list[str]:
        environ = {**environ, **self.environ}
        exe = self.executable()
        if exe is None:
            return [f"the Claude Code CLI `{self.config.command}` was not found: install it "
                    "(`npm install -g @anthropic-ai/claude-code`) or set `command` under [agents.claude] "
                    "(or `claude_command` under [scheduler])"]  # fmt: skip
        version = proc.run([exe, "--version"], env=self.environ, timeout=60)
        if not version.ok:
            return [f"`{exe} --version` failed: {version.describe(tail_lines=5)}"]
        if environ.get("ANTHROPIC_API_KEY") or environ.get("CLAUDE_CODE_OAUTH_TOKEN"):
            return []
        status = proc.run([exe, "auth", "status"], env=self.environ, timeout=60)
        if not status.ok:
            return ["Claude Code is not logged in and no ANTHROPIC_API_KEY or CLAUDE_CODE_OAUTH_TOKEN is set: run "
                    "`claude setup-token` and put the token in the env file `overnight cron install` made"]  # fmt: skip
        return []

    def task_problems(self, task_ids: Sequence[str]) -> list[str]:
        return []  # a model can take on any task

    def endpoints(self) -> list[str]:
        return [self.environ.get("ANTHROPIC_BASE_URL") or DEFAULT_API]

    def reads(self) -> list[Path]:
        """Claude Code's package (an npm install, wherever it is) and the node that runs it."""
        found = []
        exe = self.executable()
        if exe:
            real = Path(exe).resolve()
            package = next((p for p in real.parents if p.name == "node_modules"), real.parent)
            found.append(package)
        node = shutil.which("node", path=self.environ.get("PATH"))
        if node:
            found.append(Path(node).resolve().parent.parent)
        return found

    def command(self, job: AgentJob) -> list[str]:
        exe = self.executable() or self.config.command
        conf = job.confined
        mcp = conf.write_config("mcp.json", mcp_config(job))
        hooks = conf.write_config("settings.json", settings())
        argv = [exe, "-p", job.prompt, "--output-format", "stream-json", "--verbose",
                "--mcp-config", str(mcp), "--strict-mcp-config", "--settings", str(hooks),
                "--permission-mode", "dontAsk", "--allowedTools", *ALLOWED, "--disallowedTools", *DENIED,
                "--max-turns", str(self.config.max_turns), "--session-id", str(uuid.uuid4())]  # fmt: skip
        if self.config.model:
            argv += ["--model", self.config.model]
        if self.config.fallback_model:  # an overloaded main model: Claude Code switches instead of failing (issue 12)
            argv += ["--fallback-model", self.config.fallback_model]
        if self.config.max_budget_usd > 0:
            argv += ["--max-budget-usd", str(self.config.max_budget_usd)]
        return conf.wrap(argv)

    def run(self, job: AgentJob) -> AgentResult:
        argv = self.command(job)
        env = agent_env(job, self.environ, keep=CREDENTIALS)
        env.setdefault("DISABLE_AUTOUPDATER", "1")
        env.setdefault("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1")  # nothing but the model's API at night
        env.setdefault("MCP_TIMEOUT", "60000")
        if job.confined.box is not None:
            env["TMPDIR"] = "/tmp"  # the sandbox's own  # noqa: S108
            _pass_login(self.environ, job.confined.home)
        else:
            scratch = job.run_dir / "tmp"  # Claude Code writes task output and sockets under $TMPDIR: one per run
            scratch.mkdir(parents=True, exist_ok=True)
            env["TMPDIR"] = str(scratch)
        log = job.run_dir / "agent.jsonl"
        outcome = run_process(argv, job, env, log, watch(job, ClaudeEvents()))
        return result_from(self.name, outcome, log)


class ClaudeEvents:
    """Claude Code's stream-json as events: each assistant message a turn, each `tool_use` a call, each error
    `tool_result` a refusal, the quality gate's answers its verdicts, the `result` line the turns and cost."""

    def __init__(self) -> None:
        self.turns = 0
        self.messages: set[str] = set()
        self.calls: dict[str, str] = {}  # tool_use id -> tool name
        self.tokens: dict[str, tuple[int, int]] = {}  # message id -> its usage (in, out), the latest told

    def __call__(self, line: dict[str, Any]) -> list[AgentEvent]:
        kind = line.get("type")
        if kind == "result":
            cost, turns = line.get("total_cost_usd"), line.get("num_turns")
            usage: dict[str, Any] = line["usage"] if isinstance(line.get("usage"), dict) else {}
            return [AgentEvent("usage", turns=turns if isinstance(turns, int) else self.turns,
                               cost_usd=float(cost) if isinstance(cost, int | float) else None,
                               tokens_in=_tokens(usage, "input"),
                               tokens_out=token_count(usage.get("output_tokens")))]  # fmt: skip
        message = line.get("message")
        content = message.get("content") if isinstance(message, dict) else None
        if kind not in {"assistant", "user"} or not isinstance(content, list):
            return []
        found: list[AgentEvent] = []
        if kind == "assistant":
            ident = str(message.get("id") or id(line)) if isinstance(message, dict) else str(id(line))
            fresh = ident not in self.messages
            if fresh:
                self.messages.add(ident)
                self.turns += 1
            if self._count(ident, message.get("usage") if isinstance(message, dict) else None) or fresh:
                in_, out = (sum(t[i] for t in self.tokens.values()) for i in (0, 1))
                found.append(AgentEvent("usage", turns=self.turns, tokens_in=in_ if self.tokens else None,
                                        tokens_out=out if self.tokens else None))  # fmt: skip
        for block in content:
            if isinstance(block, dict):
                found += self._block(block)
        return found

    def _count(self, ident: str, usage: object) -> bool:
        """Keep a message's usage (each line of a message repeats it, growing); whether it changed."""
        if not isinstance(usage, dict):
            return False
        told = (_tokens(usage, "input") or 0, token_count(usage.get("output_tokens")) or 0)
        changed = self.tokens.get(ident) != told
        self.tokens[ident] = told
        return changed

    def _block(self, block: dict[str, Any]) -> list[AgentEvent]:
        if block.get("type") == "tool_use":
            name = str(block.get("name"))
            self.calls[str(block.get("id"))] = name
            return [AgentEvent("tool", call_text(name, block.get("input")), turns=self.turns)]
        if block.get("type") != "tool_result":
            return []
        name = self.calls.get(str(block.get("tool_use_id")), "a tool")
        text = _text(block.get("content"))
        if name.endswith("run_quality_gate") and (verdict := gate_verdict(text)) is not None:
            return [AgentEvent("gate", "gate passed" if verdict else "gate failed", passed=verdict)]
        if block.get("is_error"):
            return [AgentEvent("refused", one_line(f"{name}: {text}"), turns=self.turns)]
        return []


def _pass_login(environ: Mapping[str, str], home: Path) -> None:
    """A subscription login (no API key): the run's home gets a copy of the credentials file, nothing else."""
    if any(environ.get(k) for k in ("ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN", "CLAUDE_CODE_OAUTH_TOKEN")):
        return
    config_dir = Path(environ.get("CLAUDE_CONFIG_DIR") or Path(environ.get("HOME", "~")).expanduser() / ".claude")
    found = config_dir / ".credentials.json"
    if found.is_file():
        target = home / ".claude" / ".credentials.json"
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(found, target)
        target.chmod(0o600)


def has_login(environ: Mapping[str, str]) -> bool:
    """Whether Claude Code has credentials, as far as can be told offline: a key or token in the environment, or
    a subscription login's credentials file."""
    if any(environ.get(k) for k in ("ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN", "CLAUDE_CODE_OAUTH_TOKEN")):
        return True
    config_dir = Path(environ.get("CLAUDE_CONFIG_DIR") or Path(environ.get("HOME", "~")).expanduser() / ".claude")
    return (config_dir / ".credentials.json").is_file()


def doctor(settings: ClaudeSettings, environ: Mapping[str, str]) -> AgentCheck:
    """Claude Code's CLI and its login, offline."""
    found = cli_version(settings.command, environ, INSTALL)
    if found.installed is None:
        return found
    if has_login(environ):
        return found.model_copy(update={"authenticated": True})
    return found.model_copy(update={"authenticated": False, "detail": "no ANTHROPIC_API_KEY, "
                                    "CLAUDE_CODE_OAUTH_TOKEN or login credentials found", "fix": LOGIN})  # fmt: skip


def _build(settings: ClaudeSettings, built: Built) -> ClaudeAgent:
    return ClaudeAgent(settings, environ=built.environ)


ADAPTER = Adapter(name="claude", title="Claude Code", settings=ClaudeSettings, build=_build, tool=mcp_tool,
                  doctor=doctor, defaults=_defaults, install=INSTALL, default_command="claude", steps=steps,
                  costs=costs)  # fmt: skip
