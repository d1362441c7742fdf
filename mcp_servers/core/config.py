"""`overnight.toml`: the policy, the gate and the limits, validated by pydantic.

Every key has a default taken from the constraints the product is built around, so a repository with no
`overnight.toml` gets the strict policy. A file that does not parse or validate is reported with the file,
the key, the line and what was expected, and nothing runs.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
import shlex
import sys
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .errors import ConfigError
from .notify_config import LITERAL_SECRET, Notify

CONFIG_NAME = "overnight.toml"

ALLOWED_PATHS = ["src/**", "tests/**", "docs/**"]

# The size limits follow the line limit unless set: a line of ordinary code fits in 128 bytes (120 columns and
# its newline) and holds one statement, so a change of N such lines always passes, while 500 statements joined
# by `;` or a 10 KB string on one line do not.
BYTES_PER_LINE = 128

SECRET_FILES = [
    ".env*", "*.env", "*.pem", "*.key", "*.p12", "*.pfx", "*.crt", "*.cer", "*.der", "*.jks", "*.keystore",
    "id_rsa", "id_rsa.*", "id_dsa", "id_dsa.*", "id_ecdsa", "id_ecdsa.*", "id_ed25519", "id_ed25519.*",
    "**/.ssh/**", "**/.aws/**", "**/.gnupg/**", ".netrc", ".npmrc", ".pypirc", "credentials*.json", "secrets.json",
    "secrets.y*ml", "secrets.toml", "*.secrets",
]  # fmt: skip

PROTECTED_PATHS = [
    # secrets, keys and certificates
    *SECRET_FILES,
    # CI configuration
    ".github/workflows/**", ".github/actions/**", ".gitlab-ci.yml", ".gitlab/**", ".circleci/**", "Jenkinsfile",
    ".travis.yml", "azure-pipelines.yml", ".buildkite/**", "bitbucket-pipelines.yml", ".ci/**",
    # containers and deployment
    "docker-compose*.y*ml", "compose.y*ml", "Dockerfile", "Dockerfile.*", "Dockerfile-*", "*.dockerfile",
    ".dockerignore",
    # dependency manifests and lock files
    "requirements*.txt", "requirements/**", "constraints*.txt", "setup.py", "setup.cfg", "Pipfile", "Pipfile.lock",
    "poetry.lock", "uv.lock", "pdm.lock", "package.json", "package-lock.json", "npm-shrinkwrap.json",
    "yarn.lock", "pnpm-lock.yaml", "*.lock", "Cargo.toml", "go.mod", "go.sum", "Gemfile", "environment.y*ml",
    # repository plumbing, git hooks and our own files
    ".gitignore", ".gitattributes", ".gitmodules", ".githooks/**", ".husky/**", ".pre-commit-config.yaml",
    "overnight.toml", ".mcp.json",
    # what agents are told and allowed, at any depth (a nested CLAUDE.md is read too): an agent may not rewrite it
    "CLAUDE.md", "CLAUDE.local.md", "AGENTS.md", "GEMINI.md", ".cursorrules", "**/.cursor/**",
    "**/.github/copilot-instructions.md", "**/.github/instructions/**", "**/.claude/**", "**/.codex/**",
    "**/.gemini/**",
    # test infrastructure, at any depth: code and settings that pytest, coverage.py or the interpreter load before
    # any test runs (setup.cfg is listed above; pyproject.toml's [tool.pytest*]/[tool.coverage*] tables are
    # checked by the policy)
    "conftest.py", "pytest.ini", ".pytest.ini", "pytest.toml", ".pytest.toml", "tox.ini", ".coveragerc*",
    "sitecustomize.py", "usercustomize.py", "*.pth",
    # database migrations
    "**/migrations/**", "**/alembic/**", "**/db/migrate/**",
]  # fmt: skip

# Files in the person's home that a process running as them could change to run code later (the shell's start-up
# files, git's and the tools' configuration, commands on PATH, user services): the scheduler snapshots them
# before a session and compares them after each task. `DIR/**`: everything under DIR; `DIR/*`: DIR's own files.
WATCHED_HOME = [
    ".bashrc", ".bash_profile", ".bash_login", ".bash_logout", ".profile", ".zshrc", ".zshenv", ".zprofile",
    ".zlogin", ".zlogout", ".config/fish/**", ".inputrc", ".gitconfig", ".config/git/**", ".ssh/**", ".netrc",
    ".npmrc", ".pypirc", ".config/pip/**", ".pip/**", ".local/bin/*", ".config/systemd/user/**",
    ".config/autostart/**", ".claude/settings.json", ".claude/settings.local.json", ".claude/CLAUDE.md",
    ".claude/commands/**", ".claude/agents/**", ".vimrc",
]  # fmt: skip

# Operations, in a task's text, that an unattended agent must not do: a verb and what it acts on, matched
# case-insensitively. Operations, not topics: a task about passwords, users, invoices or authentication is work
# like any other once a person approved it; deleting files, dropping tables, changing dependencies, installing
# packages, integrating payments, migrating a database or deploying is not (issue 11).
_DELETE = r"delet(?:e|es|ed|ing)|remov(?:e|es|ed|ing)|rm|unlink(?:s|ed|ing)?|eras(?:e|es|ed|ing)|wip(?:e|es|ed|ing)"
_DELETE += r"|purg(?:e|es|ed|ing)|shred(?:s|ded|ding)?|destroy(?:s|ed|ing)?|nuk(?:e|es|ed|ing)|get rid of"
_DELETE += r"|clean(?:s|ed|ing)? out|clear(?:s|ed|ing)? out|empty|empties|emptying"
_ADD = r"add|adds|added|adding|new|introduc(?:e|es|ed|ing)|upgrad(?:e|es|ed|ing)|bump(?:s|ed|ing)?|pin(?:s|ned|ning)?"
_ADD += r"|requir(?:e|es|ed|ing)|pull(?:s|ed|ing)? in|vendor(?:s|ed|ing)?"
_WIRE = r"integrat(?:e|es|ed|ing|ion)|add|adds|added|adding|implement(?:s|ed|ing)?|set(?:s|ting)? up"
_WIRE += r"|connect(?:s|ed|ing)?|wir(?:e|es|ed|ing)(?: up)?|hook(?:s|ed|ing)? up|enabl(?:e|es|ed|ing)"
_WIRE += r"|build(?:s|ing)?|switch(?:es|ed|ing)? to|mov(?:e|es|ed|ing) to|support(?:s|ed|ing)?|accept(?:s|ed|ing)?"
_WIRE += r"|process(?:es|ed|ing)?|tak(?:e|es|ing)"
_PAYMENT = r"payments?|stripe|paypal|braintree|adyen|square payments|credit[- ]?cards?|card payments?"
FORBIDDEN_OPERATIONS: list[dict[str, str]] = [
    {
        "id": "delete-file",
        "pattern": rf"\b(?:{_DELETE})\b.{{0,30}}\b(?:files?|director(?:y|ies)|dirs?|folders?|everything)\b"
        r"|\brm\s+-\w*[rf]|\brm\s+\S*[./*]|\brmtree\b|\bos\.(?:remove|unlink|rmdir|removedirs)\b|\bgit\s+rm\b"
        r"|\bunlink\(|\.unlink\b|\bgit\s+clean\b|\bfind\b.{0,60}\s-delete\b",
        "message": "deleting files",
    },
    {
        "id": "drop-table",
        "pattern": r"\b(?:drop|drops|dropped|dropping|truncat(?:e|es|ed|ing))\b.{0,30}"
        r"\b(?:tables?|databases?|schemas?|collections?)\b|\b(?:drop|truncate)\s+(?:table|database|schema)\b",
        "message": "dropping or truncating tables",
    },
    {
        "id": "remove-column",
        "pattern": r"\b(?:remov(?:e|es|ed|ing)|drop|drops|dropped|dropping|delet(?:e|es|ed|ing))\b.{0,20}"
        r"\bcolumns?\b|\balter\s+table\b.{0,60}\bdrop\b",
        "message": "removing database columns",
    },
    {
        "id": "add-dependency",
        "pattern": rf"\b(?:{_ADD})\b.{{0,40}}\b(?:dependency|dependencies|deps|requirements?)\b(?!-free)",
        "message": "changing dependencies",
    },
    {
        "id": "install-package",
        "pattern": r"\b(?:pip3?|pipx|npm|yarn|pnpm|uv|poetry|conda|mamba|apt(?:-get)?|brew|cargo|gem|bundle|composer)"
        r"\s+(?:install|add|i)\b|\bgo\s+(?:get|install)\s+\S*[./]\S*|\buv\s+pip\s+install\b|\beasy_install\b"
        r"|\binstall(?:s|ed|ing)?\b.{0,20}\b(?:packages?|librar(?:y|ies)|modules?|dependenc(?:y|ies)|deps)\b",
        "message": "installing packages",
    },
    {
        "id": "payment",
        "pattern": rf"\b(?:{_WIRE})\b.{{0,40}}\b(?:{_PAYMENT})\b"
        rf"|\b(?:{_PAYMENT}|card|billing)\s+(?:providers?|gateways?|process(?:ing|ors?)|integrations?|apis?|sdks?)\b"
        r"|\bcharg(?:e|es|ed|ing)\s+(?:the\s+)?(?:customers?|users?|cards?|accounts?)\b",
        "message": "integrating payments",
    },
    {
        "id": "migration",
        "pattern": r"\b(database|db|schema)\s+migrations?\b|\bmigrat(e|ion)\b.{0,20}\b(database|db|schema)\b",
        "message": "database migrations",
    },
    {
        "id": "deploy",
        "pattern": r"\b(deploy|release|publish)\b.{0,20}\b(production|prod|pypi|npm)\b",
        "message": "deploying or publishing",
    },
]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ForbiddenOperation(_Section):
    id: str = Field(pattern=r"^[a-z0-9][a-z0-9-]*$", description="rule id, lower-case with dashes")
    pattern: str = Field(description="regular expression, matched case-insensitively against the task text")
    message: str = Field(description="what the operation is, in a few words")

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, value: str) -> str:
        try:
            re.compile(value)
        except re.error as e:
            raise ValueError(f"not a valid regular expression: {e}") from e
        return value


class Policy(_Section):
    """What an unattended agent may change, and what a task must say before it starts."""

    allowed_paths: list[str] = Field(
        default_factory=lambda: list(ALLOWED_PATHS),
        description="the only paths agents may create or change (globs; a pattern with a `/` is anchored at the root)",
    )
    protected_paths: list[str] = Field(
        default_factory=lambda: list(PROTECTED_PATHS),
        description="paths no agent may touch, even inside allowed_paths; matched case-insensitively and against "
        "look-alike letters",
    )
    secret_files: list[str] = Field(
        default_factory=lambda: list(SECRET_FILES),
        description="protected files holding credentials: a change may not repeat any of their lines",
    )
    extend_protected_paths: list[str] = Field(
        default_factory=list,
        description="more protected paths, added to the defaults above instead of replacing them",
    )
    allow_delete: bool = Field(default=False, description="may agents delete (or rename away) files?")
    allow_binary: bool = Field(default=False, description="may agents add binary files (which cannot be scanned)?")
    allow_symlinks: bool = Field(
        default=False,
        description="may agents add symlinks (never out of the repository or to a protected path)?",
    )
    allow_mode_changes: bool = Field(default=False, description="may agents add executables or change file modes?")
    ascii_paths_only: bool = Field(
        default=True,
        description="refuse non-ASCII file names that are look-alikes: letters of another script that read as "
        "ASCII ones (`calc.py` with a Cyrillic `a`), names not in their normal form (full-width, ligatures, a "
        "decomposed accent) or with hidden variation characters, and names that fold to a protected one; other "
        "non-ASCII names (`docs/café.md`) pass. Invisible and control characters are refused whatever this says",
    )
    max_changed_lines: Annotated[int, Field(ge=1)] = Field(
        default=30, description="most lines a task may change (added + removed)"
    )
    max_changed_bytes: Annotated[int, Field(ge=0)] = Field(
        default=0,
        description=f"most bytes a task's added lines may hold (0: {BYTES_PER_LINE} per line of max_changed_lines)",
    )
    max_changed_statements: Annotated[int, Field(ge=0)] = Field(
        default=0, description="most Python statements a task may add (0: as many as max_changed_lines)"
    )
    min_alignment_score: Annotated[int, Field(ge=0, le=100)] = Field(
        default=80, description="least alignment score a task needs"
    )
    require_tests: bool = Field(default=True, description="a task must define its tests")
    require_estimate: bool = Field(default=True, description="a task must estimate its size in lines")
    scan_secrets: bool = Field(default=True, description="refuse added lines that look like credentials")
    scan_destructive_sql: bool = Field(default=True, description="refuse added DROP/TRUNCATE/unbounded DELETE")
    forbidden_operations: list[ForbiddenOperation] = Field(
        default_factory=lambda: [ForbiddenOperation(**op) for op in FORBIDDEN_OPERATIONS],
        description="work a task may not ask for: a regular expression matched against the task's text",
    )
    extend_forbidden_operations: list[ForbiddenOperation] = Field(
        default_factory=list, description="more forbidden operations, added to the defaults"
    )

    @property
    def byte_limit(self) -> int:
        return self.max_changed_bytes or BYTES_PER_LINE * self.max_changed_lines

    @property
    def statement_limit(self) -> int:
        return self.max_changed_statements or self.max_changed_lines

    @property
    def all_protected(self) -> list[str]:
        return [*self.protected_paths, *self.extend_protected_paths]

    @property
    def all_forbidden(self) -> list[ForbiddenOperation]:
        return [*self.forbidden_operations, *self.extend_forbidden_operations]


def _argv(value: Any) -> Any:
    """A command given as a string is split like a shell would; a list is taken as it is."""
    if isinstance(value, str):
        try:
            return shlex.split(value)
        except ValueError as e:
            raise ValueError(f"cannot split {value!r} into words: {e}") from e
    return value


class Coverage(_Section):
    """Coverage, measured by coverage.py around the test command."""

    enabled: bool = Field(default=True, description="measure coverage (the test command must be `python -m ...`)")
    source: list[str] = Field(default_factory=lambda: ["src"], description="the code whose coverage counts")
    min_total: Annotated[float, Field(ge=0, le=100)] = Field(default=80.0, description="least total coverage, in %")
    compare_base: bool = Field(default=True, description="refuse a change that lowers total coverage below the base's")
    min_changed_lines: Annotated[float, Field(ge=0, le=100)] = Field(
        default=80.0, description="least coverage of the statements a change adds, in %"
    )


class Complexity(_Section):
    """radon, on the changed Python files only, judging what the change made worse."""

    enabled: bool = Field(default=True, description="run the complexity check")
    max_cyclomatic: Annotated[int, Field(ge=1)] = Field(
        default=10, description="most cyclomatic complexity of a function the change touches"
    )
    min_maintainability: Annotated[float, Field(ge=0, le=100)] = Field(
        default=10.0, description="least maintainability index of a changed file"
    )
    timeout_s: Annotated[float, Field(gt=0)] = Field(default=120, description="seconds before the check is stopped")


class Security(_Section):
    """bandit, on the changed Python files only, reporting findings the base does not have."""

    enabled: bool = Field(default=True, description="run the security check")
    severity: Literal["low", "medium", "high"] = Field(default="medium", description="least severity reported")
    confidence: Literal["low", "medium", "high"] = Field(default="medium", description="least confidence reported")
    timeout_s: Annotated[float, Field(gt=0)] = Field(default=120, description="seconds before the check is stopped")


_RESERVED = {"safety", "tests", "checkpoint-tests", "coverage", "diff-coverage", "complexity", "security", "unchanged"}


class CommandCheck(_Section):
    """An extra check: a command that must exit 0 (ruff, mypy, a benchmark)."""

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]*$", description="the check's name in reports")
    run: list[str] = Field(min_length=1, description="the command, as a string or a list of words")
    timeout_s: Annotated[float, Field(gt=0)] = Field(default=300, description="seconds before it is stopped")

    _split = field_validator("run", mode="before")(_argv)

    @field_validator("name")
    @classmethod
    def _not_builtin(cls, value: str) -> str:
        if value in _RESERVED:
            raise ValueError(f"`{value}` is the name of a built-in check; choose another")
        return value


class Gate(_Section):
    """The quality gate every change must pass before `commit` accepts it."""

    test_command: list[str] = Field(
        default_factory=lambda: ["python", "-m", "pytest", "-q"],
        min_length=1,
        description="the test command; `python` at its start means `python` below",
    )
    python: str = Field(
        default="",
        description="the project's interpreter, which `python` at the start of test_command and of "
        "[[gate.commands]] means: a path relative to the repository root (\".venv/bin/python\") or absolute; "
        "empty: the interpreter overnight runs under",
    )
    test_timeout_s: Annotated[float, Field(gt=0)] = Field(
        default=900, description="seconds before the test command's process group is killed"
    )
    coverage: Coverage = Field(default_factory=Coverage)
    complexity: Complexity = Field(default_factory=Complexity)
    security: Security = Field(default_factory=Security)
    commands: list[CommandCheck] = Field(default_factory=list, description="extra commands that must pass")

    _split = field_validator("test_command", mode="before")(_argv)


class Plan(_Section):
    """The task queue people edit."""

    path: str = Field(default="PROJECT_PLAN.md", description="the plan file, relative to the repository root")
    base_branch: str = Field(
        default="",
        description="the branch whose plan approves tasks (empty: the current HEAD); the scheduler sets its own",
    )
    max_attempts: Annotated[int, Field(ge=1)] = Field(
        default=3, description="failed attempts before a task is set aside"
    )
    claim_ttl_s: Annotated[float, Field(gt=0)] = Field(default=1800, description="seconds a claim lasts unless renewed")

    @field_validator("path")
    @classmethod
    def _relative(cls, value: str) -> str:
        if not value or value.startswith(("/", "~")) or ".." in value.replace("\\", "/").split("/"):
            raise ValueError("the plan path is relative to the repository root, with no `..`")
        return value


# An agent's name (`[scheduler] agent`, `[agents.<name>]`). Which names exist is the scheduler's agent registry's
# business (scheduler.agents.registry): this package does not import the scheduler, so the registry checks them,
# and each `[agents.<name>]` table with its adapter's own model, when a session starts and in `overnight doctor`.
AGENT_NAME = r"^[a-z][a-z0-9_-]{0,39}$"


class Scheduler(_Section):
    """Unattended sessions: `overnight run` (and `overnight cron install` to start it at night)."""

    agent: str = Field(default="claude", pattern=AGENT_NAME, description="the agent that does the work (one of the "
                       "registered ones: `overnight doctor` lists them; [agents.<name>] holds its own settings)")
    agents: list[Annotated[str, Field(pattern=AGENT_NAME)]] = Field(
        default_factory=list, description="a fallback chain, e.g. [\"claude\", \"codex\"]: a task an "
        "infrastructure stop (a usage limit, an outage, an open circuit breaker) took from one agent goes to the next "
        "(empty: [agent])")
    sandbox: Literal["bwrap", "off"] = Field(
        default="bwrap",
        description="run the agent and every run of the tests in a bubblewrap sandbox; \"off\" runs them as you, "
        "unsandboxed, and every report then says so",
    )
    network_allow: list[str] = Field(
        default_factory=list,
        description="host:port the sandboxed agent may reach besides its model's API (a package registry, say)",
    )
    base_branch: str = Field(default="", description="the branch sessions start from (empty: the one checked out)")
    branch_prefix: str = Field(default="overnight/", description="session branches are <prefix><date>-<id>")
    max_tasks: Annotated[int, Field(ge=1)] = Field(default=5, description="tasks a session works on at most")
    max_hours: Annotated[float, Field(gt=0)] = Field(default=4.0, description="hours a session lasts at most")
    task_timeout_min: Annotated[float, Field(gt=0)] = Field(default=30.0, description="minutes an agent gets per task")
    max_consecutive_failures: Annotated[int, Field(ge=1)] = Field(default=2, description="failed tasks in a row "
                                                                  "that end the session")  # fmt: skip
    claude_command: str = Field(default="claude", description="the Claude Code CLI (a name on PATH, or a path)")
    model: str = Field(default="", description="the model to ask for (empty: Claude Code's default)")
    fallback_model: str = Field(default="", description="the model Claude Code switches to when the main one is "
                                "overloaded (`--fallback-model`; empty: none)")  # fmt: skip
    max_turns: Annotated[int, Field(ge=1)] = Field(default=80, description="turns the agent gets per task")
    max_budget_usd: Annotated[float, Field(ge=0)] = Field(default=0.0, description="spend per task, in USD (0: no cap)")
    replay_script: str = Field(default="", description="for the replay agent: the scripted session file")
    max_session_usd: Annotated[float, Field(ge=0)] = Field(
        default=0.0, description="spend per session, in USD, after which no new task starts (0: no cap)"
    )
    push_remote: str = Field(default="", description="push the session branch to this remote when work was kept")
    open_pr: bool = Field(default=False, description="then open a draft pull request with `gh` (needs push_remote)")
    worktree_dir: str = Field(
        default="", description="where session worktrees go (empty: ~/.local/state/overnight/worktrees/<repo>)"
    )
    agent_name: str = Field(
        default="overnight agent",
        max_length=100,
        description="the author of the commits an agent makes with the `commit` tool (you stay the committer); "
        "empty: you",
    )
    agent_email: str = Field(default="overnight-agent@localhost", max_length=200, description="that author's email")
    watch_home: list[str] = Field(
        default_factory=lambda: list(WATCHED_HOME),
        description="files in your home compared before and after each task (`DIR/**`: all under DIR; under "
        ".ssh only their stat)",
    )


    @field_validator("agent_name", "agent_email")
    @classmethod
    def _identity(cls, value: str) -> str:
        if any(c in value for c in "<>\n\r\0"):
            raise ValueError(f"{value!r} cannot be part of a git identity: no <, >, newline or NUL")
        return value.strip()

    @model_validator(mode="before")
    @classmethod
    def _head(cls, data: Any) -> Any:
        """A chain without `agent` starts at its head; an `agent` outside the chain is a mistake."""
        if isinstance(data, dict) and isinstance(data.get("agents"), list) and data["agents"]:
            if "agent" not in data:
                data = {**data, "agent": data["agents"][0]}
            elif data["agent"] not in data["agents"]:
                raise ValueError(f"agent {data['agent']!r} is not in agents {data['agents']!r}: a session starts "
                                 "with the first agent of the chain; leave `agent` out, or name one in `agents`")
        return data

    @field_validator("agents")
    @classmethod
    def _chain(cls, value: list[str]) -> list[str]:
        twice = sorted({name for name in value if value.count(name) > 1})
        if twice:
            raise ValueError(f"{', '.join(twice)} named more than once: each agent is in the chain once")
        return value

    @field_validator("network_allow")
    @classmethod
    def _endpoints(cls, value: list[str]) -> list[str]:
        for item in value:
            host, _, port = item.rpartition(":")
            if not host or not port.isdigit() or not 0 < int(port) < 65536 or any(c in host for c in "/@ "):
                raise ValueError(f"{item!r} is not host:port (e.g. \"registry.example.org:443\")")
        return value


class State(_Section):
    """The state directory (`.git/overnight/`) kept bounded: `overnight gc` (and the daemon, once a day)."""

    keep_days: Annotated[float, Field(gt=0, le=3650)] = Field(
        default=30.0,
        description="days agent-run logs (`runs/`) and session reports are kept; a report whose session branch "
        "still exists is kept until the branch is merged or discarded",
    )


class Infra(_Section):
    """When the model's API stops a run (a usage limit, an overload, a server or network error): the task is not
    failed; the session waits, retries, and stops starting runs while the API keeps failing (issue 12)."""

    tries: Annotated[int, Field(ge=1, le=20)] = Field(default=3, description="runs of a task an overloaded API, a "
                                                      "server or a network error may stop before the session ends")
    base_delay_s: Annotated[float, Field(ge=0)] = Field(default=30.0, description="seconds before the first retry; "
                                                        "each retry waits twice as long, plus up to half again")
    max_delay_s: Annotated[float, Field(ge=0)] = Field(default=600.0, description="the longest wait between retries")
    wait_min_s: Annotated[float, Field(ge=0)] = Field(default=60.0, description="the shortest wait for a usage "
                                                      "limit's reset (a reset sooner is waited this long)")
    wait_max_s: Annotated[float, Field(gt=0)] = Field(default=6 * 3600.0, description="the longest wait for a usage "
                                                      "limit's reset (never past the session's time limit)")
    probe_delays_s: list[Annotated[float, Field(gt=0)]] = Field(
        default_factory=lambda: [300.0, 900.0, 1800.0, 3600.0],
        description="waits before probing again when a usage limit says no reset time (an API key); the last "
        "repeats",
        min_length=1,
    )
    max_waits: Annotated[int, Field(ge=1)] = Field(default=12, description="usage-limit waits a session makes at "
                                                   "most before it ends")
    breaker_failures: Annotated[int, Field(ge=1)] = Field(default=3, description="infrastructure stops in a row "
                                                          "that open an agent's circuit breaker")
    breaker_cooldown_s: Annotated[float, Field(ge=0)] = Field(default=900.0, description="seconds an open breaker "
                                                              "starts no run; then one probe run decides")

    @model_validator(mode="after")
    def _ordered(self) -> Infra:
        if self.wait_min_s > self.wait_max_s:
            raise ValueError(f"wait_min_s ({self.wait_min_s:g}) is more than wait_max_s ({self.wait_max_s:g})")
        if self.base_delay_s > self.max_delay_s:
            raise ValueError(f"base_delay_s ({self.base_delay_s:g}) is more than max_delay_s ({self.max_delay_s:g})")
        return self


_CRITERION = re.compile(r"^(all-approved-done|tests-pass-on-base|no-open-p0|coverage>=(\d+(\.\d+)?))$")
_WINDOW = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)-([01]\d|2[0-3]):([0-5]\d)$")
COMPLETION_CRITERIA = ("all-approved-done", "coverage>=N", "tests-pass-on-base", "no-open-p0")


class Daemon(_Section):
    """`overnight daemon`: work cycles (each a session as `overnight run`) until the project is complete."""

    cycle_hours: Annotated[float, Field(gt=0, le=24)] = Field(
        default=4.0, description="hours a cycle's session lasts at most (its time limit, instead of max_hours)"
    )
    break_min: Annotated[float, Field(ge=0)] = Field(default=10.0, description="minutes between two cycles")
    max_cycles_per_hour: Annotated[int, Field(ge=1)] = Field(default=2, description="cycles started in any hour")
    max_cycles_per_day: Annotated[int, Field(ge=1)] = Field(default=12, description="cycles started in any 24 hours")
    active_window: str = Field(
        default="",
        description="when cycles may start, \"HH:MM-HH:MM\" in `timezone` (\"22:00-07:00\" runs across midnight); "
        "empty: at any time",
    )
    timezone: str = Field(default="UTC", description="the active window's time zone (an IANA name, e.g. "
                          "\"Europe/Berlin\")")  # fmt: skip
    pause_after_error_cycles: Annotated[int, Field(ge=1)] = Field(
        default=3, description="error cycles in a row after which the daemon pauses and alerts (`overnight resume`)"
    )
    report_every_hours: Annotated[float, Field(gt=0)] = Field(default=2.0, description="hours between progress "
                                                                "reports")  # fmt: skip
    status_every_hours: Annotated[float, Field(gt=0)] = Field(default=6.0, description="hours between status "
                                                                "reports")  # fmt: skip
    complete_when: list[str] = Field(
        default_factory=lambda: ["all-approved-done"],
        description="the daemon stops with a final report when all of these hold: \"all-approved-done\", "
        "\"coverage>=N\" (the tests' total coverage on the base branch, measured), \"tests-pass-on-base\", "
        "\"no-open-p0\"; empty: it never completes",
    )

    @field_validator("active_window")
    @classmethod
    def _window(cls, value: str) -> str:
        value = value.replace(" ", "")
        if value and (not _WINDOW.match(value) or value[:5] == value[6:]):
            raise ValueError(f"{value!r} is not a window: \"HH:MM-HH:MM\" (24-hour clock, start and end differ), "
                             "e.g. \"22:00-07:00\"; empty for any time")  # fmt: skip
        return value

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        import zoneinfo

        try:
            zoneinfo.ZoneInfo(value)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError) as e:
            raise ValueError(f"{value!r} is not a time zone this machine knows: an IANA name such as \"UTC\" or "
                             "\"Europe/Berlin\"") from e  # fmt: skip
        return value

    @field_validator("complete_when")
    @classmethod
    def _criteria(cls, value: list[str]) -> list[str]:
        cleaned = [v.replace(" ", "").lower() for v in value]
        for item in cleaned:
            found = _CRITERION.match(item)
            if not found:
                raise ValueError(f"{item!r} is not a completion criterion: one of {', '.join(COMPLETION_CRITERIA)}")
            if found.group(2) is not None and float(found.group(2)) > 100:
                raise ValueError(f"{item!r}: coverage is a percentage, at most 100")
        return list(dict.fromkeys(cleaned))


class Limits(_Section):
    """Rate limits and budgets shared by every session (run, daemon) over rolling windows; 0: no limit.

    Counted in the state database: an hour is the last 3600 s, a day the last 24 h, a week the last 7 days."""

    max_commits_per_day: Annotated[int, Field(ge=0)] = Field(
        default=0, description="commits the scheduler keeps on session branches in any 24 hours"
    )
    max_prs_per_hour: Annotated[int, Field(ge=0)] = Field(default=0, description="pull requests opened in any hour")
    max_prs_per_day: Annotated[int, Field(ge=0)] = Field(default=0, description="pull requests opened in any 24 hours")
    cooldown_between_tasks_s: Annotated[float, Field(ge=0, le=86_400)] = Field(
        default=0.0, description="seconds between the end of one agent run and the start of the next (any session)"
    )
    max_agent_runs_per_hour: Annotated[int, Field(ge=0)] = Field(
        default=0, description="agent runs started in any hour"
    )
    max_cost_usd_per_day: Annotated[float, Field(ge=0, allow_inf_nan=False)] = Field(
        default=0.0, description="USD the agent runs cost in any 24 hours (as the agent CLI reported it)"
    )
    max_cost_usd_per_week: Annotated[float, Field(ge=0, allow_inf_nan=False)] = Field(
        default=0.0, description="USD the agent runs cost in any 7 days"
    )

    @model_validator(mode="after")
    def _consistent(self) -> Limits:
        pairs = (("max_prs_per_hour", "max_prs_per_day"), ("max_cost_usd_per_day", "max_cost_usd_per_week"))
        for short, long in pairs:
            small, large = getattr(self, short), getattr(self, long)
            if small and large and small > large:
                raise ValueError(f"{short} ({small:g}) is more than {long} ({large:g}), which could never let it be "
                                 f"reached: lower {short} or raise {long}")  # fmt: skip
        return self


class Ui(_Section):
    """`overnight ui`, the command center: where it listens and which Host headers it answers (issue 14)."""

    host: str = Field(default="127.0.0.1", description="the address it listens on: loopback unless you set another "
                      "(then anyone who can reach it still needs the printed one-time login link)")  # fmt: skip
    port: Annotated[int, Field(ge=0, le=65535)] = Field(default=8765, description="the port (0: any free one)")
    allowed_hosts: list[str] = Field(
        default_factory=list,
        description="Host headers it answers besides 127.0.0.1:<port> and localhost:<port> (e.g. a name this "
        "machine has on your network, `box.lan:8765`); every other is refused, against DNS rebinding",
    )

    @field_validator("host")
    @classmethod
    def _address(cls, value: str) -> str:
        import ipaddress

        try:
            return str(ipaddress.ip_address(value))
        except ValueError:
            raise ValueError(f"{value!r} is not an IP address: give one, e.g. 127.0.0.1 (loopback only, the "
                             "default) or 0.0.0.0 (every interface)") from None  # fmt: skip

    @field_validator("allowed_hosts")
    @classmethod
    def _hosts(cls, values: list[str]) -> list[str]:
        for value in values:
            if not re.fullmatch(r"(?:[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*|\[[0-9A-Fa-f:.]+\])(?::\d{1,5})?", value):
                raise ValueError(f"{value!r} is not a host name with an optional port (like `box.lan:8765`): no "
                                 "scheme, path or wildcard")  # fmt: skip
        return [v.lower() for v in values]


class Settings(_Section):
    policy: Policy = Field(default_factory=Policy)
    gate: Gate = Field(default_factory=Gate)
    plan: Plan = Field(default_factory=Plan)
    scheduler: Scheduler = Field(default_factory=Scheduler)
    state: State = Field(default_factory=State)
    notify: Notify = Field(default_factory=Notify)
    infra: Infra = Field(default_factory=Infra)
    daemon: Daemon = Field(default_factory=Daemon)
    limits: Limits = Field(default_factory=Limits)
    ui: Ui = Field(default_factory=Ui)
    agents: dict[Annotated[str, Field(pattern=AGENT_NAME)], dict[str, Any]] = Field(
        default_factory=dict,
        description="each agent's own settings, `[agents.<name>]` (command, model, max_turns, max_budget_usd, "
        "timeout_min and what its adapter adds), checked by its adapter when a session starts",
    )

    def policy_hash(self) -> str:
        """A digest of everything that decides whether a tree passes; a receipt is valid only under it."""
        blob = json.dumps(
            {"policy": self.policy.model_dump(mode="json"), "gate": self.gate.model_dump(mode="json")},
            sort_keys=True,
            separators=(",", ":"),
        )
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


# The settings of a repository with no overnight.toml: one object (they are immutable), so caches can key on it.
DEFAULTS = Settings()


def resolve_python(argv: list[str], python: str = "") -> list[str]:
    """`python` at the start of a command means the project's interpreter (`python`, an absolute path, from
    `[gate] python`), else the interpreter overnight runs under (cron has no venv)."""
    if argv and argv[0] in {"python", "python3"}:
        return [python or sys.executable, *argv[1:]]
    return list(argv)


def load(root: Path) -> Settings:
    """The settings of the repository at `root`: `overnight.toml` when there is one, else the defaults."""
    path = root / CONFIG_NAME
    if not path.exists():
        return DEFAULTS
    return parse(path.read_bytes(), path)


def parse(data: bytes, path: Path) -> Settings:
    """Settings from the bytes of a config file; ConfigError with file, key, line and expectation otherwise."""
    return _parse(data, str(path))


@functools.lru_cache(maxsize=32)
def _parse(data: bytes, where: str) -> Settings:
    """parse(), remembered: a server reads the same file on every call, and Settings are immutable."""
    path = Path(where)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path}: is not UTF-8 text (byte {e.start}). Save it as UTF-8.") from e
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: is not valid TOML: {e}. Fix the syntax (see https://toml.io).") from e
    try:
        return Settings.model_validate(raw)
    except ValidationError as e:
        raise ConfigError(_describe(e, text, path)) from e


def _describe(error: ValidationError, text: str, path: Path) -> str:
    problems = []
    for item in error.errors():
        loc = [str(p) for p in item["loc"]]
        key = ".".join(loc) or "(top level)"
        line = _locate(text, item["loc"])
        where = f"{path}:{line}" if line else str(path)
        if item["type"] == "extra_forbidden":
            what = "unknown key; remove it or check its spelling against `overnight init`'s template"
        elif item["type"] == LITERAL_SECRET:  # the value holds a secret: never repeated back
            what = item["msg"]
        else:
            what = f"{item['msg']} (got {item.get('input')!r})"
        problems.append(f"{where}: key `{key}`: {what}")
    return "invalid configuration, nothing was run:\n  " + "\n  ".join(problems)


def _locate(text: str, loc: tuple[int | str, ...]) -> int | None:
    """The line of `loc` (a pydantic error location) in TOML text; the closest enclosing key when unsure."""
    keys = [str(p) for p in loc if not isinstance(p, int)]
    if not keys:
        return None
    best: int | None = None
    table: list[str] = []
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        header = re.match(r"^\[\[?\s*([^\]]+?)\s*\]\]?", stripped)
        if header:
            table = [k.strip().strip('"') for k in header.group(1).split(".")]
            if table == keys[: len(table)] and (best is None or len(table) == len(keys)):
                best = number
            continue
        assign = re.match(r"^([A-Za-z0-9_.\"-]+)\s*=", stripped)
        if assign:
            full = table + [k.strip().strip('"') for k in assign.group(1).split(".")]
            if full == keys[: len(full)]:
                best = number
                if len(full) >= len(keys):
                    return number
    return best


# -- the commented template `overnight init` writes -----------------------------------------------------

_HEADER = """\
# overnight.toml: the safety policy, the quality gate and the limits of unattended agent work.
# Only people edit this file; agents may not change it. Every key is shown with its default, commented out:
# uncomment a line to change it. `overnight doctor` checks the file; a mistake is reported with its line.
"""
_EXAMPLES = {
    "gate.commands": [
        "# [[gate.commands]]",
        '# name = "ruff"',
        '# run = "ruff check src tests"',
        "# timeout_s = 300",
    ],
    "policy.extend_forbidden_operations": [
        "# [[policy.extend_forbidden_operations]]",
        '# id = "email-customers"',
        "# pattern = '\\b(send|email)(s|ed|ing)?\\b.{0,30}\\b(customers|all users)\\b'  # (literal: \\b stays)",
        '# message = "emailing customers"',
    ],
    "notify.channels": [
        "# [[notify.channels]]",
        '# name = "mail"',
        '# url = "mailtos://{SMTP_USER}:{SMTP_PASSWORD}@smtp.example.org?to=me@example.org"',
        '# events = ["session-end", "security-event", "paused", "complete"]',
    ],
}


def template(values: dict[str, Any] | None = None) -> str:
    """A commented `overnight.toml` listing every key with its default, generated from the models.

    `values` ("gate.python" -> ".venv/bin/python") are written uncommented, in force: what `overnight init`
    found in the repository."""
    lines = [_HEADER]
    for name in Settings.model_fields:
        value = getattr(Settings(), name)
        if isinstance(value, BaseModel):
            _emit(lines, name, value, values or {})
    lines.extend(_AGENTS_EXAMPLE)
    return "\n".join(lines).rstrip() + "\n"


def _emit(lines: list[str], prefix: str, model: BaseModel, values: dict[str, Any]) -> None:
    doc = (type(model).__doc__ or "").strip().splitlines()
    lines.append(f"[{prefix}]")
    lines.extend(f"# {d.strip()}" for d in doc[:1])
    nested: list[tuple[str, BaseModel]] = []
    tables: list[tuple[str, list[BaseModel], str]] = []
    for name, field in type(model).model_fields.items():
        value = getattr(model, name)
        if isinstance(value, BaseModel):
            nested.append((name, value))
        elif isinstance(value, list) and (not value or isinstance(value[0], BaseModel)) and _is_table_list(field):
            tables.append((name, value, field.description or ""))
        else:
            if field.description:
                lines.append(f"# {field.description}")
            if f"{prefix}.{name}" in values:
                lines.append("# (found in this repository by `overnight init`)")
                lines.extend(_assignment(name, values[f"{prefix}.{name}"], commented=False))
            else:
                lines.extend(_assignment(name, value))
    lines.append("")
    for name, items, description in tables:
        lines.append(f"# {description}")
        if not items:
            lines.extend(_EXAMPLES.get(f"{prefix}.{name}", []))
        for item in items:
            lines.append(f"# [[{prefix}.{name}]]")
            for key in type(item).model_fields:
                lines.extend(_assignment(key, getattr(item, key)))
        lines.append("")
    for name, sub in nested:
        _emit(lines, f"{prefix}.{name}", sub, values)


_AGENTS_EXAMPLE = [
    "# [agents.<name>]: one agent's own settings (claude, replay, ...): command, model, max_turns, max_budget_usd,",
    "# timeout_min and its adapter's own keys. A key left out comes from [scheduler] (max_turns, max_budget_usd,",
    "# task_timeout_min; for claude also claude_command, model and fallback_model). For example:",
    "# [agents.claude]",
    "#   max_turns = 40",
    "# Codex and Gemini report tokens, not cost: their prices (USD per million tokens) give each run an estimated",
    "# cost and let max_budget_usd be enforced during the run:",
    "# [agents.codex]",
    "#   input_usd_per_mtok = 1.25",
    "#   cached_input_usd_per_mtok = 0.125",
    "#   output_usd_per_mtok = 10.0",
    "",
]


def _is_table_list(field: Any) -> bool:
    return any(name in str(field.annotation) for name in ("ForbiddenOperation", "CommandCheck", "Channel"))


def _assignment(name: str, value: Any, *, commented: bool = True) -> list[str]:
    mark = "# " if commented else ""
    if isinstance(value, list) and len(_toml(value)) > 90:
        out = [f"{mark}{name} = ["]
        row = f"{mark}   "
        for item in value:
            piece = f" {_toml(item)},"
            if len(row) + len(piece) > 110:
                out.append(row)
                row = f"{mark}   "
            row += piece
        out.extend([row, f"{mark}]"])
        return out
    return [f"{mark}{name} = {_toml(value)}"]


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # a JSON string is a valid TOML basic string
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    raise TypeError(f"cannot write {value!r} as TOML")
