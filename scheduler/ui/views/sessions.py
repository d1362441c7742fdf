"""The Sessions page's data (issue 14): the list of session reports (newest first, paged, filtered) and one
session in detail: security events first, then per task its outcome, the gate's checks, coverage against the
base, the diff of each kept commit (from git), the actions that were denied or refused; the session branch's
state and what merging or discarding it would do (the checks `overnight merge` makes, run read-only: nothing
here changes a branch or a report).
"""

from __future__ import annotations

import datetime as dt
import re
import secrets
import threading
from typing import Literal

from pydantic import BaseModel, Field

from mcp_servers.core.errors import UsageError
from mcp_servers.core.models import CheckResult
from mcp_servers.core.secrets import redact
from mcp_servers.core.workspace import Workspace
from scheduler import merge, morning, report
from scheduler.agents.stops import InfraStop

from .index import ReportIndex, ReportSummary, shared

MAX_PAGE = 200
MAX_DIFF_CHARS = 100_000  # per commit: the rest is cut, and said
MAX_DIFFS_CHARS = 400_000  # per session
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,99}$")


class SessionPage(BaseModel):
    items: list[ReportSummary]
    total: int = Field(description="sessions matching the filters")
    offset: int
    limit: int
    next_offset: int | None = Field(default=None, description="more sessions: the next page's offset")
    outcomes: list[str] = Field(description="every outcome among the sessions (for the filter)")
    agents: list[str] = Field(description="every agent among the sessions (for the filter)")
    unreadable: list[str] = Field(default_factory=list, description="report files that could not be read")


def _date(value: str | None, what: str) -> str | None:
    if value is None or value == "":
        return None
    try:
        return dt.date.fromisoformat(value).isoformat()
    except ValueError:
        raise UsageError(f"{what} {value!r} is not a date: give it as YYYY-MM-DD.") from None


def list_sessions(
    ws: Workspace,
    index: ReportIndex | None = None,
    *,
    offset: int = 0,
    limit: int = 50,
    outcome: str | None = None,
    agent: str | None = None,
    since: str | None = None,
    until: str | None = None,
) -> SessionPage:
    """A page of the sessions, newest first: `outcome` exactly, `agent` among those that ran, started on or after
    `since` and on or before `until` (dates, YYYY-MM-DD, as the reports write them: UTC)."""
    if not 1 <= limit <= MAX_PAGE:
        raise UsageError(f"limit must be 1 to {MAX_PAGE}, not {limit}.")
    if offset < 0:
        raise UsageError(f"offset must be 0 or more, not {offset}: pass the previous page's next_offset.")
    start, end = _date(since, "since"), _date(until, "until")
    index = index or shared(ws.state_dir)
    found = index.refresh()
    outcomes = sorted({s.outcome for s in found})
    agents = sorted({a for s in found for a in s.agents if a})
    chosen = [
        s for s in found
        if (not outcome or s.outcome == outcome) and (not agent or agent in s.agents)
        and (not start or s.started[:10] >= start) and (not end or s.started[:10] <= end)
    ]  # fmt: skip
    page = chosen[offset : offset + limit]
    more = offset + limit if len(chosen) > offset + limit else None
    return SessionPage(items=page, total=len(chosen), offset=offset, limit=limit, next_offset=more, outcomes=outcomes,
                       agents=agents, unreadable=list(index.unreadable))  # fmt: skip


class KeptCommit(BaseModel):
    sha: str
    subject: str = ""
    diff: str = Field(default="", description="the commit's patch, secrets redacted")
    truncated: bool = False
    missing: bool = Field(default=False, description="git no longer has the commit (its branch was discarded)")


class TaskView(BaseModel):
    security_events: list[str] = Field(default_factory=list)
    held: list[str] = Field(default_factory=list, description="attempts to reach past the sandbox that it held")
    task_id: str
    title: str
    outcome: str
    attempt: int
    agent: str = ""
    reasons: list[str] = Field(default_factory=list, description="why it failed or was rolled back")
    checks: list[CheckResult] = Field(default_factory=list)
    coverage: float | None = None
    coverage_base: float | None = None
    coverage_delta: float | None = None
    denied: list[str] = Field(default_factory=list, description="tool calls the agent's permission rules refused")
    refused: list[str] = Field(default_factory=list, description="actions that were refused (hooks, servers, gate)")
    infra: InfraStop | None = None
    cost_usd: float = 0.0
    turns: int = 0
    tokens_in: int = 0
    tokens_out: int = 0
    duration_s: float = 0.0
    commits: list[KeptCommit] = Field(default_factory=list, description="kept tasks' commits with their diffs")


class Action(BaseModel):
    name: Literal["merge", "discard"]
    possible: bool
    would: str = Field(description="what it would do, or why it cannot")
    problems: list[str] = Field(default_factory=list, description="why `overnight merge` would refuse")


class BranchState(BaseModel):
    branch: str
    state: Literal["exists", "merged", "discarded", "running", "gone"]
    tip: str = ""
    commits: int = 0
    files_changed: int = 0
    insertions: int = 0
    deletions: int = 0
    note: str = ""
    actions: list[Action] = Field(default_factory=list)


class SessionView(BaseModel):
    security_events: list[str] = Field(description="everything the person owns that changed: first, always")
    held: list[str] = Field(description="attempts to reach past the sandbox, by task")
    unsandboxed: bool
    summary: ReportSummary
    base_commit: str
    final_commit: str
    warnings: list[str]
    limits: list[str]
    delivery: list[str]
    crash: str = ""
    infra: list[report.InfraRecord]
    waits: list[report.WaitRecord]
    tasks: list[TaskView]
    branch: BranchState
    report_md: str = Field(description="the Markdown report's path")
    diffs_truncated: bool = False


def session_detail(ws: Workspace, session: str) -> SessionView:
    """One session: its report, its branch now, and the diffs of what it kept."""
    if not _ID.match(session) or ".." in session:
        raise UsageError(f"{session!r} is not a session id: the Sessions page lists them.")
    from .index import summarize

    record = _scrubbed(ws, session)
    kept_shas = [c for t in record.tasks if t.outcome == "passed" for c in t.commits]
    diffs, cut = _diffs(ws, kept_shas)
    tasks = []
    for t in record.tasks:
        result = t.agent
        delta = None
        if t.coverage is not None and t.coverage_base is not None:
            delta = round(t.coverage - t.coverage_base, 2)
        refused = list(dict.fromkeys([*t.refused, *(result.refused if result else [])]))
        tasks.append(TaskView(
            security_events=t.security_events, held=t.held, task_id=t.task_id, title=t.title, outcome=t.outcome,
            attempt=t.attempt, agent=result.agent if result else record.agent, reasons=t.reasons, checks=t.checks,
            coverage=t.coverage, coverage_base=t.coverage_base, coverage_delta=delta,
            denied=result.permission_denials if result else [], refused=refused, infra=t.infra,
            cost_usd=(result.cost_usd or 0.0) if result else 0.0, turns=(result.turns or 0) if result else 0,
            tokens_in=(result.tokens_in or 0) if result else 0, tokens_out=(result.tokens_out or 0) if result else 0,
            duration_s=t.duration_s,
            commits=[diffs[c] for c in t.commits if c in diffs] if t.outcome == "passed" else [],
        ))  # fmt: skip
    return SessionView(
        security_events=record.all_security_events(), held=[f"task {t.task_id}: {h}" for t in record.tasks for h in
                                                                t.held],
        unsandboxed=record.sandbox == "off", summary=summarize(record), base_commit=record.base_commit,
        final_commit=record.final_commit, warnings=record.warnings, limits=record.limits, delivery=record.delivery,
        crash=record.crash.text() if record.crash else "", infra=record.infra, waits=record.waits, tasks=tasks,
        branch=branch_state(ws, record), report_md=str(report.reports_dir(ws.state_dir) / f"{record.id}.md"),
        diffs_truncated=cut,
    )  # fmt: skip


class _Kept:
    """What a detail page computed from values that do not change: a commit's diff (by its id), a branch's
    state and merge checks (by the branch's and its base's commits, the report's and the state database's
    identity). Bounded; one per process, shared by every workspace (the keys name the repository)."""

    def __init__(self, size: int = 512) -> None:
        self.size, self.items = size, dict[tuple[object, ...], object]()
        self.lock = threading.Lock()

    def get(self, key: tuple[object, ...]) -> object | None:
        with self.lock:
            return self.items.get(key)

    def put(self, key: tuple[object, ...], value: object) -> None:
        with self.lock:
            if len(self.items) >= self.size:
                self.items.pop(next(iter(self.items)))
            self.items[key] = value


_KEPT = _Kept()


def _branch_key(ws: Workspace, record: report.SessionRecord) -> tuple[object, ...]:
    """What the branch's state depends on, found with one git call: its tip, its base's, the report's fields
    merge reads, and which state database holds the receipts."""
    base = record.base_branch or ws.settings.scheduler.base_branch or ws.repo.branch() or "main"
    refs = ws.repo.out("for-each-ref", "--format=%(refname)%00%(objectname)", f"refs/heads/{record.branch}",
                       f"refs/heads/{base}") if record.branch else ""  # fmt: skip
    try:
        db = ws.db_path.stat().st_ino
    except OSError:
        db = 0
    kept = tuple(t.task_id for t in record.tasks if t.outcome == "passed")
    return ("branch", str(ws.repo.common_dir), record.id, record.branch, base, refs, record.base_commit,
            record.final_commit, record.reviewed, kept, db)  # fmt: skip


def _r(texts: list[str]) -> list[str]:
    return [redact(text)[0] for text in texts]


def _scrubbed(ws: Workspace, session: str) -> report.SessionRecord:
    """The session's report with secrets redacted from what agents and their tests wrote into it (titles,
    reasons, refused and denied actions, the gate's summaries and findings, security events), as memory redacts
    them; kept by the report file's size and time, so a page shown again does not redact again."""
    path = report.reports_dir(ws.state_dir) / f"{session}.json"
    try:
        stat = path.stat()
    except OSError:
        return report.load(ws.state_dir, session)  # says there is none
    key = ("report", str(path), stat.st_mtime_ns, stat.st_size)
    known = _KEPT.get(key)
    if isinstance(known, report.SessionRecord):
        return known.model_copy(deep=True)
    record = report.load(ws.state_dir, session)
    record.security_events, record.stop_reason = _r(record.security_events), redact(record.stop_reason)[0]
    for t in record.tasks:
        t.title, t.reasons, t.refused = redact(t.title)[0], _r(t.reasons), _r(t.refused)
        t.security_events, t.held = _r(t.security_events), _r(t.held)
        for check in t.checks:
            check.summary = redact(check.summary)[0]
            for finding in check.findings:
                finding.message = redact(finding.message)[0]
        if t.agent is not None:
            t.agent.refused, t.agent.permission_denials = _r(t.agent.refused), _r(t.agent.permission_denials)
            t.agent.final = redact(t.agent.final)[0]
    _KEPT.put(key, record.model_copy(deep=True))
    return record


def branch_state(ws: Workspace, record: report.SessionRecord) -> BranchState:
    """Whether the session's branch is still there, merged or discarded, and what `overnight merge` and
    `overnight discard` would do with it (the same checks, nothing changed; `overnight merge` makes them again
    before it moves anything)."""
    if record.branch and record.branch == morning.running_branch(ws):
        return BranchState(branch=record.branch, state="running", note="the session is running: its branch is "
                           "left alone until it ends")  # fmt: skip
    key = _branch_key(ws, record)
    known = _KEPT.get(key)
    if isinstance(known, BranchState):
        return known.model_copy(deep=True)
    state = _branch_state(ws, record)
    _KEPT.put(key, state.model_copy(deep=True))
    return state


def _branch_state(ws: Workspace, record: report.SessionRecord) -> BranchState:
    found = morning.branch_of(ws, record)
    if found is None:
        done = record.reviewed
        state: Literal["merged", "discarded", "gone"] = (
            "discarded" if done.startswith("discarded") else "merged" if done.startswith("merged") else "gone"
        )
        note = done or "the branch is not there any more (deleted outside overnight, or never made)"
        return BranchState(branch=record.branch, state=state, note=note)
    item = BranchState(branch=found.branch, state="merged" if found.merged else "exists", tip=found.tip,
                       commits=found.commits, files_changed=found.files_changed, insertions=found.insertions,
                       deletions=found.deletions, note=found.note)  # fmt: skip
    lost = "" if found.merged else f"; git keeps its commits for a while (`git branch {found.branch} {found.tip}`)"
    discard = Action(name="discard", possible=True, would=f"delete {found.branch} (at {found.tip[:12]}){lost}")
    if found.merged:
        merge_action = Action(name="merge", possible=False, would=f"nothing: it is already in {found.base_branch}")
    elif not record.base_commit:
        merge_action = Action(name="merge", possible=False, would="it cannot be verified: its report has no base "
                              "commit")  # fmt: skip
    else:
        problems = merge.unverified(ws, record, found.tip)
        base = ws.repo.run("rev-parse", "--verify", "-q", f"refs/heads/{found.base_branch}^{{commit}}",
                           check=False).text().strip()  # fmt: skip
        how = "a fast-forward" if base and ws.repo.is_ancestor(base, found.tip) else "a merge commit (if it merges " \
            "without conflicts)"  # fmt: skip
        would = f"bring {found.commits} commit(s) into {found.base_branch} by {how}"
        merge_action = Action(name="merge", possible=not problems and bool(base),
                              would=would if base else f"nothing: the base branch {found.base_branch} is gone",
                              problems=problems)  # fmt: skip
    item.actions = [merge_action, discard]
    return item


def _diffs(ws: Workspace, shas: list[str]) -> tuple[dict[str, KeptCommit], bool]:
    """Each kept commit's patch (cut to size, secrets redacted); commits git no longer has are marked missing."""
    wanted = [s for s in dict.fromkeys(shas) if re.fullmatch(r"[0-9a-f]{7,64}", s)]
    key = ("diffs", str(ws.repo.common_dir), *wanted)
    known = _KEPT.get(key)
    if isinstance(known, tuple):
        diffs, cut = known
        return {sha: one.model_copy() for sha, one in diffs.items()}, cut
    found = _read_diffs(ws, wanted)
    if not any(one.missing for one in found[0].values()):  # a missing commit may come back (a fetch)
        _KEPT.put(key, ({sha: one.model_copy() for sha, one in found[0].items()}, found[1]))
    return found


def _read_diffs(ws: Workspace, wanted: list[str]) -> tuple[dict[str, KeptCommit], bool]:
    if not wanted:
        return {}, False
    checked = ws.repo.run("cat-file", "--batch-check=%(objectname) %(objecttype)", input="\n".join(wanted).encode() +
                          b"\n", check=False).text().splitlines()  # fmt: skip
    there = [w for w, line in zip(wanted, checked, strict=False) if line.endswith(" commit")]
    out = {s: KeptCommit(sha=s, missing=True) for s in wanted if s not in there}
    if not there:
        return out, False
    # each commit starts with a marker no one can know in advance: a diff (the agent's text) cannot fake one
    marker = "overnight-" + secrets.token_hex(16)
    shown = ws.repo.run("show", "--no-ext-diff", "--no-textconv", "--no-color", "--patch", "--stat",
                        f"--format={marker}%H%x00%s", *there, check=False).text()  # fmt: skip
    budget, cut = MAX_DIFFS_CHARS, False
    for chunk in shown.split(marker)[1:]:
        head, _, diff = chunk.partition("\n")
        sha, _, subject = head.partition("\0")
        short = next((w for w in there if sha.startswith(w)), None)
        if short is None or short in out:  # not asked for, or shown already
            continue
        limit = min(MAX_DIFF_CHARS, max(0, budget))
        truncated = len(diff) > limit
        diff = diff[:limit]
        budget -= len(diff)
        cut = cut or truncated
        out[short] = KeptCommit(sha=sha, subject=subject, diff=redact(diff)[0], truncated=truncated)
    return out, cut
