"""Agents the scheduler can run: what every adapter shares (the `Agent` protocol, the job and result models, the
process runner, the agent's environment). Each adapter is a module beside this one (`claude`, `replay`, ...),
listed in `registry`, and owns what is its agent's own: its command line, its configuration and hooks, how its
stream becomes an `AgentResult` (Claude Code's: `claude_stream`), its tool names, its doctor check.

Every agent runs as a child process in a process group of its own, with a wall clock the scheduler enforces
itself (turn caps are soft) and a stop signal (`overnight stop`). Its stream says how the run ended; the
scheduler reads that, and then trusts none of it: it verifies the work itself.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

from pydantic import BaseModel, Field

from mcp_servers.core import sandbox
from mcp_servers.core.proc import kill_group

from ..confine import Confinement, die_with_parent
from .stops import InfraStop

log = logging.getLogger(__name__)
_GRACE_S = 5.0


@dataclass(frozen=True)
class AgentEvent:
    """What an agent did, told as it happens (each adapter reads its own stream into these): a tool call and its
    short argument (`tool`), a call that came back as an error (`refused`), a quality gate's verdict (`gate`),
    the turns, tokens and cost so far (`usage`), its last words (`said`). Shown to the person; nothing trusts it."""

    kind: Literal["tool", "refused", "gate", "usage", "said"]
    text: str = ""
    turns: int | None = None
    cost_usd: float | None = None
    passed: bool | None = None  # a gate's verdict
    tokens_in: int | None = None  # the run's tokens so far, as its stream told them (cached input included)
    tokens_out: int | None = None


OnEvent = Callable[[AgentEvent], None]


@dataclass
class AgentJob:
    """One task for an agent: what to do, where, with which identity, and how long it may take."""

    task_id: str
    prompt: str
    worktree: Path
    env: dict[str, str]  # OVERNIGHT_SESSION_ID, OVERNIGHT_TASK_ID, OVERNIGHT_CHECKPOINT, OVERNIGHT_BASE, ...
    run_dir: Path  # per-run files: the MCP config, the settings, the log
    timeout_s: float
    stop: threading.Event = field(default_factory=threading.Event)
    on_start: Callable[[int], None] | None = None  # told the agent's pid
    confinement: Confinement | None = None  # the sandbox and the servers outside it (scheduler.confine)
    on_event: OnEvent | None = None  # told what the agent does as it happens (the live view of `overnight run`)

    @property
    def confined(self) -> Confinement:
        if self.confinement is None:
            raise RuntimeError("an agent job runs inside a confinement: see scheduler.confine")
        return self.confinement


class AgentResult(BaseModel):
    agent: str
    exit_code: int | None = None
    is_error: bool = True
    terminal_reason: str | None = None
    timed_out: bool = False
    stopped: bool = False
    turns: int | None = None
    tokens_in: int | None = None
    tokens_out: int | None = None
    cost_usd: float | None = None
    cost_estimated: bool = Field(default=False, description="cost_usd is estimated from the tokens the CLI "
                                 "reported and the prices of [agents.<name>] (its CLI reports no cost)")
    permission_denials: list[str] = Field(default_factory=list, description="tool calls the permission rules refused")
    refused: list[str] = Field(
        default_factory=list, description="tool calls that came back as errors (hooks, servers, commands), and why"
    )
    failures: list[tuple[str, str]] = Field(default_factory=list, exclude=True, description="each failed call with "
                                            "its whole error text (not kept in the report: `refused` says it short)")
    duration_s: float = 0.0
    log: str = ""
    final: str = Field(default="", description="the agent's last words (cut to 2,000 characters)")
    servers: dict[str, str] = Field(default_factory=dict, description="MCP server name -> status at start")
    infra: InfraStop | None = Field(default=None, description="the model's API stopped the run (a usage limit, an "
                                    "overload, a server or network error): not a failure of the task (issue 12)")


class Agent(Protocol):
    name: str

    def problems(self, environ: Mapping[str, str]) -> list[str]:
        """What stops this agent from running at all (missing CLI, no credentials); empty when it can run."""

    def task_problems(self, task_ids: Sequence[str]) -> list[str]:
        """What stops this agent from working on these tasks, the ones a session would take in order (a replay
        script without their steps); empty when it can. Asked before a session starts."""

    def run(self, job: AgentJob) -> AgentResult:
        """Run the agent on one task and report how it ended."""

    def endpoints(self) -> list[str]:
        """The base URLs the agent must reach from its sandbox (its model's API)."""

    def reads(self) -> list[Path]:
        """What of the machine the agent must read in its sandbox besides the system (its CLI's install)."""


def mcp_config(job: AgentJob) -> dict[str, Any]:
    """The per-run MCP config: the three servers, outside the sandbox (or, unsandboxed, started by the agent)."""
    return {"mcpServers": job.confined.mcp_servers}


@dataclass
class Outcome:
    exit_code: int | None
    timed_out: bool
    stopped: bool
    duration_s: float
    lines: list[dict[str, Any]]


def run_process(
    argv: list[str], job: AgentJob, env: Mapping[str, str], log: Path, on_line: Callable[[dict[str, Any]], None],
    stdin: Path | None = None,
) -> Outcome:
    """Run an agent in its own process group; its stdout (JSON lines) goes to `log` and to `on_line`; its stdin is
    the file `stdin` (else nothing).

    The wall clock and the stop signal end the whole group (SIGTERM, then SIGKILL), whatever the agent is doing.
    """
    started = time.monotonic()
    log.parent.mkdir(parents=True, exist_ok=True)
    with (log.open("w") as out, (log.with_suffix(".stderr")).open("w") as err,
          stdin.open("rb") if stdin is not None else contextlib.nullcontext(subprocess.DEVNULL) as given):  # fmt: skip
        proc = subprocess.Popen(argv, cwd=job.worktree, env=dict(env), stdin=given,
                                stdout=subprocess.PIPE, stderr=err, start_new_session=True,
                                preexec_fn=die_with_parent)  # noqa: PLW1509 (one prctl call)  # fmt: skip
        if job.on_start is not None:
            job.on_start(proc.pid)
        lines: list[dict[str, Any]] = []
        reader = threading.Thread(target=_read, args=(proc, out, lines, on_line), daemon=True)
        reader.start()
        timed_out = stopped = False
        while proc.poll() is None:
            if time.monotonic() - started > job.timeout_s:
                timed_out = True
            elif job.stop.is_set():
                stopped = True
            else:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=0.25)
                continue
            _end(proc)
            break
        reader.join(timeout=10)
        if proc.stdout is not None:
            proc.stdout.close()
    return Outcome(proc.returncode, timed_out, stopped, time.monotonic() - started, list(lines))


def _read(proc: subprocess.Popen[bytes], out: Any, lines: list[dict[str, Any]], on_line: Callable[..., None]) -> None:
    assert proc.stdout is not None  # noqa: S101 (stdout is a pipe)
    with contextlib.suppress(ValueError, OSError):  # a pipe still held open by a process the agent left behind:
        _read_lines(proc.stdout, out, lines, on_line)  # `run_process` stops waiting for it and closes both files


def _read_lines(stdout: Any, out: Any, lines: list[dict[str, Any]], on_line: Callable[..., None]) -> None:
    for raw in stdout:
        text = raw.decode("utf-8", "replace")
        out.write(text)
        out.flush()
        try:
            item = json.loads(text)
        except json.JSONDecodeError:
            continue
        if isinstance(item, dict):
            lines.append(item)
            try:  # a reader that stopped would leave the agent blocked on a full pipe
                on_line(item)
            except Exception:
                log.exception("reading an agent's line for the live view failed")


def watching(job: AgentJob, events: Callable[[dict[str, Any]], list[AgentEvent]]) -> Callable[[dict[str, Any]], None]:
    """The `on_line` of `run_process` that turns each line into events (by the adapter's `events`) for the job."""
    tell = job.on_event
    if tell is None:
        return lambda _line: None

    def on_line(line: dict[str, Any]) -> None:
        for event in events(line):
            tell(event)

    return on_line


def _end(proc: subprocess.Popen[bytes]) -> None:
    for sig in ("SIGTERM", "SIGKILL"):
        import signal

        kill_group(proc.pid, getattr(signal, sig))
        try:
            proc.wait(timeout=_GRACE_S)
            return
        except subprocess.TimeoutExpired:
            continue


# What an error says when the sandbox, not a rule, stopped the call.
_HELD = ("read-only file system", "erofs", "permission denied", "operation not permitted", "network: the sandbox",
         "git push", "git update-ref", "git config", "git remote", "connection refused", "connectionrefusederror",
         "network is unreachable", "name or service not known", "temporary failure in name resolution")  # fmt: skip


def held_attempts(failed: list[tuple[str, str]], hidden: Sequence[str] = (), limit: int = 50) -> list[str]:
    """The failed calls the sandbox held (a write outside the worktree, a git write, a connection it may not make,
    a path of the person's it hides), each as the call and the line of its output that shows it."""
    found = []
    for call, text in failed:
        marks = [m for m in _HELD if m in call.lower()] + [h for h in hidden if h and h in call]
        lines = text.splitlines()  # the error itself first, else where the output names a hidden path
        shown = next((ln.strip() for ln in lines if any(m in ln.lower() for m in _HELD)), "") or next(
            (ln.strip() for ln in lines if any(h and h in ln for h in hidden)), "")
        if shown or marks:
            found.append(f"{call}: {shown[:240] or _first(text)}")
    return list(dict.fromkeys(found))[:limit]


_VERDICT = re.compile(r'"passed"\s*:\s*(true|false)')


def token_count(value: object) -> int | None:
    """A token count as an agent's CLI told it: a whole number, 0 or more; anything else (missing, forged) is none."""
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def gate_verdict(text: str) -> bool | None:
    """Whether a quality gate's answer (its JSON report) says it passed; None when it cannot be told."""
    found = _VERDICT.search(text[:20000])
    return None if found is None else found.group(1) == "true"


def short(text: str, limit: int = 160) -> str:
    """`text` on one line, cut to `limit` characters."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def call_text(name: str, data: Any) -> str:
    """A tool call as one short line: its name and the file or command it names."""
    return _call(name, data)


def _call(name: str, data: Any) -> str:
    if not isinstance(data, dict):
        return name
    shown = data.get("command") or data.get("file_path") or data.get("notebook_path")
    if not shown:
        return name
    shown = " ".join(str(shown).split())
    return f"{name} `{shown if len(shown) <= 120 else shown[:119] + '…'}`"


def _first(content: Any) -> str:
    """A tool result's text on one line, cut to 300 characters (a string, or a list of text blocks)."""
    if isinstance(content, list):
        content = " ".join(str(c.get("text", "")) for c in content if isinstance(c, dict))
    text = " ".join(ln.strip() for ln in str(content or "").splitlines() if ln.strip().strip("{}[]"))
    text = text.removeprefix("Error executing tool ") or "(no reason given)"
    return text if len(text) <= 300 else text[:299] + "…"


def agent_env(job: AgentJob, environ: Mapping[str, str] | None = None, keep: Sequence[str] = ()) -> dict[str, str]:
    """The agent's environment. Sandboxed: locale, paths and Python's settings, the variables named in `keep` (its
    CLI's credentials), the job's OVERNIGHT_* variables and the sandbox's own (home, proxy); nothing else of the
    person's (cloud keys, tokens). Unsandboxed: everything, as before the sandbox."""
    environ = os.environ if environ is None else environ
    conf = job.confined
    if conf.box is None:
        env = dict(environ)
    else:
        env = sandbox.clean_env(environ)
        env.update({k: environ[k] for k in keep if k in environ})
        env.update(conf.env)
        # `python` is the interpreter overnight runs under, as in the gate's test command (a PATH entry under the
        # person's home, a pyenv shim say, is hidden in the sandbox)
        env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env.update(job.env)
    env["OVERNIGHT_REPO"] = str(job.worktree)
    return env


def make(name: str, scheduler: Any, root: Path, script: Path | None = None,
         tables: Mapping[str, Mapping[str, Any]] | None = None) -> Agent:  # fmt: skip
    """The agent `overnight run` uses: `name` (else `scheduler.agent`), built by its adapter in the registry
    (`scheduler.agents.registry`) from its `[agents.<name>]` table (`tables`) over `[scheduler]`; the replay
    one with its script."""
    from . import registry

    return registry.make(name or scheduler.agent, scheduler, root, script, tables)
