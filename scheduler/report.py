"""The morning report: what each task did, what was refused and rolled back and why, kept under the state
directory as Markdown (for people) and JSON (for `overnight status` and tools)."""

from __future__ import annotations

import contextlib
import datetime as dt
import os
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field

from mcp_servers.core.db import LOST
from mcp_servers.core.errors import UsageError
from mcp_servers.core.models import CheckResult

from .activity import Activity
from .agents import AgentResult
from .agents.stops import InfraStop
from .postmortem import Crash, died_at, iso

Outcome = Literal["passed", "failed", "stopped", "timed-out", "interrupted"]  # interrupted: its session died
REFUSED = ("preflight-failed", "no-work")  # session outcomes of a run that never started: no report is kept


class AgentRun(BaseModel):
    """One run of a task by one agent of a fallback chain (issue 13): who, how it ended, at what cost."""

    agent: str
    outcome: str = Field(description="the task's outcome for the run that finished it; \"infra-stop\" for a run "
                         "the model's API stopped (the task then went on with the next agent)")  # fmt: skip
    infra: InfraStop | None = None
    cost_usd: float = 0.0
    turns: int = 0


class TaskRecord(BaseModel):
    task_id: str
    title: str
    outcome: Outcome
    attempt: int = 1
    reasons: list[str] = Field(default_factory=list, description="why it failed or was rolled back")
    commits: list[str] = Field(default_factory=list)
    checks: list[CheckResult] = Field(default_factory=list, description="the scheduler's own gate run")
    coverage: float | None = None
    coverage_base: float | None = None
    refused: list[str] = Field(default_factory=list, description="actions the agent tried that were refused")
    leftovers: list[str] = Field(default_factory=list)
    security_events: list[str] = Field(default_factory=list, description="what the person owns that changed while "
                                       "the task ran (its agent, its gate), and what was put back")  # fmt: skip
    held: list[str] = Field(default_factory=list, description="attempts to reach past the sandbox that it held "
                            "(writes outside the worktree, git writes, connections it may not make)")  # fmt: skip
    started: str
    duration_s: float = 0.0
    agent: AgentResult | None = None
    activity: Activity | None = Field(default=None, description="what the agent did before it was stopped (a "
                                      "timeout, the kill switch, its session dying), from its log and git")  # fmt: skip
    infra: InfraStop | None = Field(default=None, description="the model's API stopped the run: the task was "
                                    "released, not failed, and nothing of the run kept (issue 12)")
    runs: list[AgentRun] = Field(default_factory=list, description="when the API stopped earlier runs of the task "
                                 "in this session: each run, the last one this record's (issue 13)")  # fmt: skip


class InfraRecord(BaseModel):
    """A run the model's API stopped, kept apart from the tasks' outcomes: what stopped it, and what was done."""

    task_id: str
    title: str = ""
    at: str
    stop: InfraStop
    action: str = Field(description="what the scheduler did: waited until ..., retried after ..., ended the session, "
                        "handed the task to the next agent of the chain")  # fmt: skip
    cost_usd: float = 0.0
    turns: int = 0
    agent: str = Field(default="", description="the agent the API stopped")


WaitKind = Literal["usage-limit", "probe", "retry", "breaker"]


class WaitRecord(BaseModel):
    """A wait of the session: for a usage limit's reset, before a retry, or while a circuit breaker was open."""

    kind: WaitKind
    started: str
    until: str
    task_id: str | None = None
    reason: str = ""
    interrupted: bool = Field(default=False, description="the kill switch or a signal ended the wait")


def one_line(reasons: list[str], limit: int = 1900) -> str:
    """Reasons on one line for a task record: "; " between reasons, and between the lines of one reason (a gate
    run's failed checks), so two never run together (issue 11)."""
    parts = []
    for reason in reasons:
        text = ""
        for raw in reason.splitlines():
            line = " ".join(raw.split()).removeprefix("- ")
            if line:
                text += (" " if not text or text.endswith(":") else "; ") + line
        if text.strip():
            parts.append(text.strip())
    return "; ".join(parts)[:limit]


class SessionRecord(BaseModel):
    id: str
    repo: str
    branch: str = ""
    base_branch: str = ""
    base_commit: str = ""
    final_commit: str = ""
    started: str
    ended: str | None = None
    outcome: str = "running"
    stop_reason: str = ""
    agent: str = ""
    agents: list[str] = Field(default_factory=list, description="the fallback chain the session could use, in "
                              "order (issue 13); empty: `agent` alone")  # fmt: skip
    sandbox: str = Field(default="bwrap", description="the sandbox the night ran in; \"off\": none (said first)")
    problems: list[str] = Field(default_factory=list, description="preflight problems that stopped the session")
    warnings: list[str] = Field(default_factory=list, description="what went wrong around the session and what was "
                                "lost, e.g. a damaged state database moved aside")  # fmt: skip
    pushed: str = Field(default="", description="remote/branch the branch was pushed to")
    pull_request: str = Field(default="", description="the pull request's URL")
    delivery: list[str] = Field(default_factory=list, description="what went wrong pushing or opening the PR")
    security_events: list[str] = Field(default_factory=list, description="what the person owns that changed "
                                       "outside any task's checks (at the end of the session)")  # fmt: skip
    tasks: list[TaskRecord] = Field(default_factory=list)
    infra: list[InfraRecord] = Field(default_factory=list, description="runs the model's API stopped (not task "
                                     "failures: each task was released, not counted)")  # fmt: skip
    waits: list[WaitRecord] = Field(default_factory=list, description="what the session waited for, and how long")
    limits: list[str] = Field(default_factory=list, description="when a rate limit or budget of `[limits]` paused or "
                              "ended the session, and why (issue 12)")  # fmt: skip
    reviewed: str = Field(default="", description="what a person did with the branch afterwards (`overnight merge` "
                          "or `overnight discard`), and when")  # fmt: skip
    crash: Crash | None = Field(default=None, description="the session died: what the next run found")

    def all_security_events(self) -> list[str]:
        """Every security event of the session, each task's named by the task."""
        return [*self.security_events, *(f"task {t.task_id}: {e}" for t in self.tasks for e in t.security_events)]

    @property
    def cost_usd(self) -> float:
        return round(sum((t.agent.cost_usd or 0.0) for t in self.tasks if t.agent) + sum(i.cost_usd for i in
                                                                                        self.infra), 4)  # fmt: skip

    def cost_by_agent(self) -> dict[str, float]:
        """What each agent cost in this session: its tasks' runs and the runs the API stopped (issue 13)."""
        spent: dict[str, float] = {}
        for task in self.tasks:
            if task.agent is not None:
                spent[task.agent.agent] = spent.get(task.agent.agent, 0.0) + (task.agent.cost_usd or 0.0)
        for item in self.infra:
            name = item.agent or self.agent
            spent[name] = spent.get(name, 0.0) + item.cost_usd
        order = [*self.agents, *sorted(set(spent) - set(self.agents))]  # the chain's order
        return {name: round(spent[name], 4) for name in order if name in spent}

    @property
    def turns(self) -> int:
        return sum((t.agent.turns or 0) for t in self.tasks if t.agent)


def close_dead(state_dir: Path, live: str) -> list[str]:
    """Close as crashed every report still "running" but `live`'s: the caller holds the run lock, so their
    sessions are dead (killed before they could finish, or stopped by an error they did not survive)."""
    done = []
    for path in sorted(reports_dir(state_dir).glob("*.json")):
        try:
            record = SessionRecord.model_validate_json(path.read_text())
        except (OSError, ValueError):
            continue
        if record.outcome != "running" or record.id == live:
            continue
        when, evidence = died_at(state_dir, record.id)
        record.outcome, record.ended = "crashed", iso(when) if when else now_iso()
        record.crash = record.crash or Crash(lock_found=False, final_commit=record.final_commit, died_at=iso(when),
                                             evidence=evidence)  # fmt: skip
        record.stop_reason = record.stop_reason or record.crash.text()
        save(state_dir, record)
        done.append(f"closed the report of session {record.id} as crashed (it was left running)")
    return done


def lost_state(moved: Path) -> str:
    """What a damaged state database that was moved aside takes with it, and where it is."""
    return (f"the state database was damaged and moved to {moved}; a new one was started. Not carried over: "
            f"{LOST}. Recover what you need from the moved file (`sqlite3 {moved}`).")  # fmt: skip


def now_iso() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def reports_dir(state_dir: Path) -> Path:
    path = state_dir / "reports"
    path.mkdir(parents=True, exist_ok=True)
    return path


def save(state_dir: Path, record: SessionRecord) -> Path:
    """Write the session's JSON and Markdown (atomically); the Markdown's path."""
    return write_pair(reports_dir(state_dir), record.id, record.model_dump_json(indent=2), render(record))


def write_pair(folder: Path, name: str, json_text: str, markdown: str) -> Path:
    """`<name>.json` and `<name>.md` in `folder`, each written atomically (a temporary file, then renamed);
    the Markdown's path."""
    for suffix, text in ((".json", json_text), (".md", markdown)):
        tmp = folder / f".{name}{suffix}.tmp"
        tmp.write_text(text)
        tmp.replace(folder / f"{name}{suffix}")
    return folder / f"{name}.md"


def load(state_dir: Path, session: str | None = None) -> SessionRecord:
    """A session's record; the newest one without an id."""
    folder = reports_dir(state_dir)
    if session is None:
        found = _newest_first(folder)
        if not found:
            raise UsageError("there is no session report yet: `overnight run` (or `overnight demo`) makes one.")
        path = found[0]
    else:
        path = folder / f"{session}.json"
        if not path.exists():
            raise UsageError(f"there is no report for session {session!r}: `overnight status` lists sessions.")
    return SessionRecord.model_validate_json(path.read_text())


def recent(state_dir: Path, limit: int = 10) -> list[SessionRecord]:
    """The newest sessions that started (the reports of refused runs that older versions kept are left out)."""
    records: list[SessionRecord] = []
    for path in _newest_first(reports_dir(state_dir)):
        if len(records) >= limit:
            break
        record = SessionRecord.model_validate_json(path.read_text())
        if record.outcome not in REFUSED:
            records.append(record)
    return records


def _newest_first(folder: Path) -> list[Path]:
    """The session reports (`*.json`) in `folder`, the last written first (one `scandir`: `overnight status` and
    the command center's Now page ask on every look, with a thousand reports there)."""
    found: list[tuple[float, str]] = []
    with os.scandir(folder) as entries:
        for entry in entries:
            if entry.name.endswith(".json") and not entry.name.startswith("."):
                with contextlib.suppress(OSError):  # removed meanwhile (gc)
                    found.append((entry.stat().st_mtime, entry.name))
    return [folder / name for _, name in sorted(found, reverse=True)]


UNSANDBOXED = ("**This night ran unsandboxed** (`sandbox = \"off\"` in overnight.toml): the agent and the tests it "
               "wrote ran as you, with your files, keys and network. The scheduler still verified every change.")


def render_refusal(record: SessionRecord) -> str:
    """What `overnight run` prints for a run refused at preflight (no session, so no report)."""
    what = "nothing to do" if record.outcome == "no-work" else "refused at preflight"
    lines = [f"overnight: {what}, so no session started: {record.stop_reason}"]
    lines += [f"- {p}" for p in record.problems] + [f"- warning: {w}" for w in record.warnings]
    lines.append("(logged apart from the sessions: `overnight status` shows the last refusal)")
    return "\n".join(lines) + "\n"


def render(record: SessionRecord) -> str:
    done = [t for t in record.tasks if t.outcome == "passed"]
    lines = [UNSANDBOXED, ""] if record.sandbox == "off" else []
    lines += [f"# overnight session {record.id}", ""]
    events = record.all_security_events()
    if events:  # first: something running as you changed what you own
        lines += ["## ⚠️ Security events", "", "Something the session ran changed what you own; the scheduler put back "
                  "what it could and failed the task. Read each line:", ""]  # fmt: skip
        lines += [f"- {event}" for event in events] + [""]
    held = [f"task {t.task_id}: {h}" for t in record.tasks for h in t.held]
    if held:
        lines += ["## ⚠️ Attempts the sandbox held" if not events else "### Attempts the sandbox held", "",
                  "The agent tried to reach past its sandbox; nothing of yours changed:", ""]  # fmt: skip
        lines += [f"- {h}" for h in held] + [""]
    lines += [
        f"- Outcome: **{record.outcome}**" + (f" ({record.stop_reason})" if record.stop_reason else ""),
        f"- Branch: `{record.branch}` from `{record.base_branch}` at {record.base_commit[:12]}"
        + (f", now at {record.final_commit[:12]}" if record.final_commit else ""),
        f"- Started {record.started}" + (f", ended {record.ended}" if record.ended else ""),
        f"- Tasks: {len(done)} done, {len(record.tasks) - len(done)} rolled back"
        + (f", {len(record.infra)} run(s) stopped by the API (not counted)" if record.infra else "")
        + f"; {_agents(record)}, "
        f"{record.turns} turns, ${record.cost_usd:.2f}",
    ]
    if len(record.agents) > 1:
        guessed = {t.agent.agent for t in record.tasks if t.agent is not None and t.agent.cost_estimated}
        lines.append("- Cost by agent: " + (", ".join(f"`{name}` ${cost:.2f}" + (" (estimated)" if name in guessed
                                                      else "") for name, cost in record.cost_by_agent().items())
                                            or "nothing spent"))  # fmt: skip
    if record.pushed:
        lines.append(f"- Pushed to `{record.pushed}`" + (f"; pull request: {record.pull_request}"
                                                         if record.pull_request else ""))
    lines += [f"- Not delivered: {problem}" for problem in record.delivery]
    lines += [f"- Limits: {what}" for what in record.limits]
    if record.reviewed:
        lines.append(f"- Afterwards: {record.reviewed}")
    if record.crash is not None:
        crash = record.crash
        lines += ["", "## The session died", "", f"- Task in hand: {crash.task or 'none (between tasks)'}",
                  f"- Last sign of life: {crash.died_at} ({crash.evidence})",
                  f"- The branch kept: {crash.final_commit[:12]}" + (" (the base: nothing was kept)"
                                                                   if crash.final_commit == record.base_commit else "")]
        if crash.dropped:
            lines.append(f"- Unverified commits taken off the branch: {', '.join(c[:12] for c in crash.dropped)}")
    if record.warnings:
        lines += ["", "## Warnings", ""] + [f"- {w}" for w in record.warnings]
    if record.problems:
        lines += ["", "## Preflight stopped the session", ""] + [f"- {p}" for p in record.problems]
    lines += _infra(record)
    for task in record.tasks:
        lines += ["", *_task(task)]
    if not record.tasks and not record.problems and not record.infra:
        lines += ["", "No task was worked on."]
    return "\n".join(lines) + "\n"


def _task(t: TaskRecord) -> list[str]:
    mark = {"passed": "✅ kept", "failed": "❌ rolled back", "stopped": "⏹ stopped, rolled back",
            "timed-out": "⏱ timed out, rolled back",
            "interrupted": "💥 interrupted: the session died, rolled back"}[t.outcome]  # fmt: skip
    out = [f"## `{t.task_id}` {t.title}: {mark}", ""]
    agent = t.agent
    facts = [f"attempt {t.attempt}", f"{t.duration_s:.0f}s"]
    if agent is not None:
        facts += [f"agent `{agent.agent}`", f"{agent.turns or 0} turns", f"${agent.cost_usd or 0.0:.2f}"
                  + (" (estimated from its tokens and the prices in [agents])" if agent.cost_estimated else "")]
        if agent.tokens_in is not None:
            facts.append(f"{agent.tokens_in} tokens in, {agent.tokens_out or 0} out")
        if agent.terminal_reason:
            facts.append(f"agent ended: {agent.terminal_reason}" + (" (error)" if agent.is_error else ""))
    out.append("- " + "; ".join(facts))
    out += _runs(t)
    if t.commits:
        out.append(f"- Commits: {', '.join(c[:12] for c in t.commits)}")
    if t.coverage is not None:
        base = f" (base {t.coverage_base:.2f}%)" if t.coverage_base is not None else ""
        out.append(f"- Coverage: {t.coverage:.2f}%{base}")
    for reason in t.reasons:
        first, *rest = reason.splitlines()
        out.append(f"- Why: {first}")
        out += [f"  {line}" for line in rest[:20]]
    for refused in t.refused:
        out.append(f"- Refused: {refused}")
    if t.leftovers:
        out.append(f"- Uncommitted and dropped: {', '.join(t.leftovers[:20])}")
    if t.activity is not None:
        out += t.activity.lines()
    if t.checks:
        out += ["", "| check | result | detail |", "|---|---|---|"]
        for c in t.checks:
            summary = c.summary.replace("|", "\\|").replace("\n", " ")
            out.append(f"| {c.name} | {c.status} | {summary[:200]} |")
    return out


def _infra(record: SessionRecord) -> list[str]:
    """The runs the API stopped and the waits, apart from the tasks: none of them failed a task."""
    if not record.infra and not record.waits:
        return []
    out = ["", "## Infrastructure stops (not task failures)", "",
           "The model's API stopped these runs; nothing of them was kept, and each task was released, not counted "
           "as an attempt:", ""]  # fmt: skip
    out += [f"- {i.at}: task `{i.task_id}`" + (f" (agent `{i.agent}`)" if i.agent else "") + f": {i.stop.describe()}"
            + (f" (Claude Code retried {i.stop.retries} times itself)" if i.stop.retries else "") + f"; {i.action}"
            for i in record.infra]  # fmt: skip
    if record.waits:
        out += ["", "Waits:", ""]
        out += [f"- {w.kind}: from {w.started} until {w.until}" + (f" (task `{w.task_id}`)" if w.task_id else "")
                + (f": {w.reason}" if w.reason else "") + (" — interrupted" if w.interrupted else "")
                for w in record.waits]  # fmt: skip
    return out


def _runs(t: TaskRecord) -> list[str]:
    """The runs of a task a fallback chain moved between agents, in order (issue 13)."""
    if not t.runs:
        return []
    return ["- Runs: " + " → ".join(f"`{r.agent}` " + (f"stopped by the API ({r.infra.describe()})" if r.infra
                                    else r.outcome) + f", ${r.cost_usd:.2f}" for r in t.runs)]  # fmt: skip


def _agents(record: SessionRecord) -> str:
    """The agent of the session, or its fallback chain in order (issue 13)."""
    if len(record.agents) > 1:
        return "agents " + " → ".join(f"`{name}`" for name in record.agents)
    return f"agent `{record.agent}`"
