"""The command agent: any other CLI (aider, opencode, a team's own script) under one contract (issue 13).

`[agents.command] argv` is the command line (a list, no shell). Each run it gets, as docs/command-agent.md says:

- the prompt on stdin, and in a file (`OVERNIGHT_PROMPT_FILE`, `{prompt_file}` in argv);
- the MCP configuration as a JSON file, `{"mcpServers": {...}}` as Claude Code reads it (`OVERNIGHT_MCP_CONFIG`,
  `{mcp_config}`): the three servers, outside the sandbox, behind this run's token;
- the OVERNIGHT_* variables of the run, the variables named in `[agents.command] env`, nothing else of yours;
- its worktree as the current directory, in the same sandbox as every agent;
- a path where it may write a small JSON result (`OVERNIGHT_RESULT_FILE`, `{result_file}`): turns, tokens, cost,
  its last words, and an infrastructure stop.

Its exit code says done (0) or failed (anything else); either way the scheduler verifies the work itself. The
result file is the command's word only: it can add cost (never take any off), and it can say the model's API
stopped the run (honoured only with a non-zero exit code), which releases the task instead of failing it, and
then the waits, the retries, the circuit breakers and the session's limits apply as to any agent. A file that is
not valid is ignored, and the report says so.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from mcp_servers.core.config import Scheduler

from . import AgentJob, AgentResult, Outcome, agent_env, mcp_config, run_process
from .adapter import Adapter, AgentCheck, AgentSettings, Built, common_defaults
from .stops import InfraStop, Kind

RESULT_LIMIT = 64 * 1024  # bytes of a result file read at most
PLACEHOLDERS = ("prompt_file", "mcp_config", "result_file", "worktree", "task_id")


class ReportedStop(BaseModel):
    """An infrastructure stop as the command reports it."""

    model_config = ConfigDict(extra="ignore")

    kind: Kind
    resets_at: Annotated[float, Field(gt=0)] | None = None
    detail: Annotated[str, Field(max_length=500)] = ""


class CommandReport(BaseModel):
    """The result file a command may write (every key optional; unknown keys ignored)."""

    model_config = ConfigDict(extra="ignore")

    turns: Annotated[int, Field(ge=0)] | None = None
    tokens_in: Annotated[int, Field(ge=0)] | None = None
    tokens_out: Annotated[int, Field(ge=0)] | None = None
    cost_usd: Annotated[float, Field(ge=0, allow_inf_nan=False)] | None = None
    summary: str = ""
    infra: ReportedStop | None = None


class CommandSettings(AgentSettings):
    """`[agents.command]`: any other CLI (aider, opencode, a team's own script) under the contract of
    docs/command-agent.md (issue 13)."""

    argv: list[str] = Field(default_factory=list, description="the command line, no shell: {prompt_file}, "
                            "{mcp_config}, {result_file}, {worktree} and {task_id} in it are filled in")  # fmt: skip
    env: list[str] = Field(default_factory=list, description="variables of your environment it gets in its sandbox "
                           "(its credentials, e.g. OPENAI_API_KEY); nothing else of yours")  # fmt: skip
    endpoints: list[str] = Field(default_factory=list, description="base URLs it must reach from its sandbox (its "
                                 "model's API)")  # fmt: skip
    reads: list[str] = Field(default_factory=list, description="folders of the machine it must read in its sandbox "
                             "(its install), besides the system")  # fmt: skip

    @field_validator("env")
    @classmethod
    def _names(cls, value: list[str]) -> list[str]:
        for name in value:
            if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name) or name.startswith("OVERNIGHT_"):
                raise ValueError(f"{name!r} is not the name of an environment variable it may be given")
        return value


class CommandAgent:
    name = "command"

    def __init__(self, config: Scheduler, settings: CommandSettings | None = None,
                 environ: Mapping[str, str] | None = None, root: Path | None = None) -> None:  # fmt: skip
        self.config = config
        self.settings = settings or CommandSettings()
        self.timeout_min = self.settings.timeout_min
        self.environ = dict(os.environ if environ is None else environ)
        self.root = root  # where a relative command path (`scripts/agent.py`) is found before a run

    def executable(self) -> str | None:
        """The command's program, found as a run would find it: a path, else a name on PATH."""
        if not self.settings.argv:
            return None
        program = self.settings.argv[0]
        if "/" in program:
            path = Path(program) if os.path.isabs(program) else (self.root or Path.cwd()) / program
            return str(path) if os.access(path, os.X_OK) and path.is_file() else None
        return shutil.which(program, path=self.environ.get("PATH"))

    def problems(self, environ: Mapping[str, str]) -> list[str]:
        if not self.settings.argv:
            return ["the command agent has no command: set `argv` under [agents.command] in overnight.toml, e.g. "
                    "argv = [\"aider\", \"--yes-always\", \"--message-file\", \"{prompt_file}\"] "
                    "(docs/command-agent.md)"]  # fmt: skip
        bad = sorted({p for arg in self.settings.argv for p in _named(arg)} - set(PLACEHOLDERS))
        if bad:
            return [f"[agents.command] argv names {', '.join('{' + b + '}' for b in bad)}, which is not filled in: "
                    f"use {', '.join('{' + p + '}' for p in PLACEHOLDERS)} (write {{{{ for a brace)"]  # fmt: skip
        if self.executable() is None:
            return [f"the command agent's program `{self.settings.argv[0]}` was not found or is not executable: "
                    "install it, or give its path in `argv` under [agents.command]"]  # fmt: skip
        return []

    def task_problems(self, task_ids: Sequence[str]) -> list[str]:
        return []

    def endpoints(self) -> list[str]:
        return list(self.settings.endpoints)

    def _installed(self) -> str | None:
        """The program's absolute path when it is installed (a path, or a name on PATH); None for one in the
        repository (`scripts/agent.py`), which runs from the worktree, never from your checkout."""
        program = self.settings.argv[0] if self.settings.argv else ""
        if "/" in program and not os.path.isabs(program):
            return None
        return self.executable()

    def reads(self) -> list[Path]:
        found = [Path(p).expanduser() for p in self.settings.reads]
        exe = self._installed()
        if exe:
            found.append(Path(exe).resolve().parent)
        return found

    def command(self, job: AgentJob, files: Mapping[str, Path]) -> list[str]:
        values = {**{k: str(v) for k, v in files.items()}, "worktree": str(job.worktree), "task_id": job.task_id}
        argv = [_fill(arg, values) for arg in self.settings.argv]
        exe = self._installed()
        if exe:  # (the sandbox's PATH may not have it)
            argv[0] = exe
        return job.confined.wrap(argv)

    def run(self, job: AgentJob) -> AgentResult:
        conf = job.confined
        prompt = conf.folder / "config" / "prompt.md"  # read-only in the sandbox, like the MCP config
        prompt.parent.mkdir(parents=True, exist_ok=True)
        prompt.write_text(job.prompt, encoding="utf-8")
        out = conf.home / ".overnight"  # the run's own home: writable, outside the worktree, gone after the run
        out.mkdir(parents=True, exist_ok=True)
        files = {"prompt_file": prompt, "mcp_config": conf.write_config("mcp.json", mcp_config(job)),
                 "result_file": out / "result.json"}  # fmt: skip
        env = agent_env(job, self.environ, keep=self.settings.env)
        env.update({"OVERNIGHT_PROMPT_FILE": str(prompt), "OVERNIGHT_MCP_CONFIG": str(files["mcp_config"]),
                    "OVERNIGHT_RESULT_FILE": str(files["result_file"]),
                    "OVERNIGHT_TIMEOUT_S": str(int(job.timeout_s))})  # fmt: skip
        log = job.run_dir / "agent.log"
        outcome = run_process(self.command(job, files), job, env, log, lambda _line: None, stdin=prompt)
        return result_of(self.name, outcome, log, files["result_file"])


def result_of(agent: str, outcome: Outcome, log: Path, result_file: Path) -> AgentResult:
    """How the run ended: the exit code and the wall clock the scheduler saw, and what the result file adds."""
    ended = outcome.timed_out or outcome.stopped
    result = AgentResult(agent=agent, exit_code=outcome.exit_code, timed_out=outcome.timed_out,
                         stopped=outcome.stopped, duration_s=round(outcome.duration_s, 2), log=str(log),
                         is_error=outcome.exit_code != 0 or ended)  # fmt: skip
    code = outcome.exit_code
    result.terminal_reason = ("timed out" if outcome.timed_out else "stopped" if outcome.stopped
                              else "completed" if code == 0 else f"exit code {code}")  # fmt: skip
    told, problem = read_report(result_file)
    if problem:
        result.terminal_reason += f" (its result file was ignored: {problem})"
    if told is None:
        return result
    result.turns, result.tokens_in, result.tokens_out = told.turns, told.tokens_in, told.tokens_out
    result.cost_usd = told.cost_usd
    result.final = told.summary[:2000]
    if told.infra is not None and result.is_error and not ended:  # a run that succeeded was not stopped
        stop = told.infra
        said = f"the command said: {stop.detail}" if stop.detail else "the command said so"
        result.infra = InfraStop(kind=stop.kind, resets_at=stop.resets_at, detail=said)
    return result


def read_report(path: Path) -> tuple[CommandReport | None, str]:
    """The command's result file, checked: (it, or None; why it was ignored, or "")."""
    try:
        if path.is_symlink() or not path.is_file():  # (the run's home is the command's: no link out of it)
            return None, "not a regular file" if path.exists() or path.is_symlink() else ""
        with path.open("rb") as handle:
            data = handle.read(RESULT_LIMIT + 1)
    except OSError as e:
        return None, f"it cannot be read ({e.strerror})"
    if len(data) > RESULT_LIMIT:
        return None, f"it is larger than {RESULT_LIMIT // 1024} KB"
    try:
        return CommandReport.model_validate_json(data), ""
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ())) or "the file"
        return None, f"{where}: {first.get('msg')}"


def _named(arg: str) -> list[str]:
    import string

    try:
        return [name for _, name, _, _ in string.Formatter().parse(arg) if name is not None]
    except ValueError:
        return ["?"]


def _fill(arg: str, values: Mapping[str, str]) -> str:
    return arg.format_map(values) if "{" in arg or "}" in arg else arg


def _build(settings: CommandSettings, built: Built) -> CommandAgent:
    return CommandAgent(built.scheduler, settings, environ=built.environ, root=built.root)


def _doctor(settings: CommandSettings, environ: Mapping[str, str]) -> AgentCheck:
    agent = CommandAgent(Scheduler(), settings, environ=environ)
    problems = agent.problems(environ)
    if problems:
        return AgentCheck(installed=None, detail=problems[0].split(": ", 1)[0], fix=problems[0].split(": ", 1)[-1])
    return AgentCheck(installed=agent.executable() or settings.argv[0], detail="its credentials are its own "
                      "(`env` passes them): they cannot be checked offline")  # fmt: skip


ADAPTER = Adapter(name="command", title="a command (docs/command-agent.md)", settings=CommandSettings, build=_build,
                  doctor=_doctor, defaults=common_defaults)  # fmt: skip
