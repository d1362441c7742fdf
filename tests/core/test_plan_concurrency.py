"""Two processes, one plan: a person's editor writes PROJECT_PLAN.md while the server updates a Status line, and
two sessions race for one task. Nothing is lost, exactly one session wins, and a dead session's claim expires."""

from __future__ import annotations

import json
import random
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from mcp_servers.core import plan as P
from mcp_servers.core import queue
from mcp_servers.core.errors import UsageError
from mcp_servers.core.workspace import Workspace

from ..conftest import GitRepo, make_repo

PROJECT = Path(__file__).resolve().parents[2]
PLAN = "PROJECT_PLAN.md"
T0 = 1_700_000_000.0
EXPIRED = "the claim expired: the session holding it stopped renewing it"


def _task(task_id: str, title: str, priority: str = "P2", extra: str = "") -> str:
    return (
        f"- **[{task_id}]** {title}\n  - Priority: {priority}\n  - Alignment score: 95/100\n"
        f"  - Estimated lines: 10\n  - Tests defined: ✅ Yes (tests/test_calc.py)\n{extra}  - Status: READY\n\n"
    )


PLAN_TEXT = (
    "# Project plan 📋\n\nPeople write here.\n\n## Task Queue\n\n### Ready for Autonomous Execution ✅\n\n"
    + _task("t1", "Alpha: tidy the parser", "P1")
    + _task("t2", "Beta: format the output")
    + "".join(_task(f"r{n}", f"Race target {n}") for n in range(5))
    + "### Pending Approval ⏳\n\n### Not Ready ❌\n\n## Notes\n\nThe end.\n"
)


def _repo(tmp_path: Path, config: str | None = None) -> tuple[GitRepo, Workspace]:
    repo = make_repo(tmp_path / "repo", config=config)
    repo.write(PLAN, PLAN_TEXT)
    repo.commit("plan")
    return repo, Workspace.open(repo.root)


def _wait_for(path: Path, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {path.name}")
        time.sleep(0.001)


_STARTED: list[subprocess.Popen[str]] = []


def _spawn(script: str, *args: object) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", script, *map(str, args)],
        cwd=PROJECT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    _STARTED.append(proc)
    return proc


@pytest.fixture(autouse=True)
def _reap() -> Iterator[None]:
    """A test that fails half-way leaves no helper process behind (it is stopped by its own id, and waited for)."""
    yield
    while _STARTED:
        proc = _STARTED.pop()
        if proc.poll() is None:
            proc.kill()
        proc.communicate()


def _finish(proc: subprocess.Popen[str], timeout: float = 30.0) -> str:
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, err
    return out


# -- a person's editor ------------------------------------------------------------------------------------------

# Round r: wait for `go-r`, read the file, add a prose line and rename task t2, write it (atomically like most
# editors, or in place), keep a copy of what was written, signal `done-r`.
EDITOR = r"""
import os, sys, time
from pathlib import Path
path, ctl, rounds, mode = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
for r in range(rounds):
    go = ctl / f"go-{r}"
    deadline = time.monotonic() + 20
    while not go.exists():
        if time.monotonic() > deadline:
            sys.exit(f"no go-{r}")
        time.sleep(0.001)
    lines = path.read_bytes().decode("utf-8").split("\n")
    lines.insert(1, f"A line a person added in round {r} ✍️")
    lines = [f"- **[t2]** Beta, renamed by a person in round {r}" if l.startswith("- **[t2]**") else l for l in lines]
    data = "\n".join(lines).encode("utf-8")
    if mode == "replace":
        tmp = path.with_name(".editor-save")
        tmp.write_bytes(data)
        os.replace(tmp, path)
    else:
        with open(path, "r+b") as handle:
            handle.truncate(0)
            handle.write(data)
    (ctl / f"wrote-{r}").write_bytes(data)
    (ctl / f"done-{r}").touch()
"""


def _set_status(value: str) -> Callable[[P.Plan], bytes]:
    return lambda plan: P.set_field(plan, "t1", "Status", value)


def test_plan_edit_reapplies_a_status_on_top_of_an_editor_write_between_its_read_and_write(tmp_path: Path) -> None:
    repo, ws = _repo(tmp_path)
    path, ctl = repo.root / PLAN, tmp_path / "ctl"
    ctl.mkdir()
    original = path.read_bytes()
    editor = _spawn(EDITOR, path, ctl, 1, "replace")
    seen: list[bytes] = []

    def mutate(plan: P.Plan) -> bytes:
        seen.append(plan.raw)
        if len(seen) == 1:  # the server has read the file: now the person saves theirs
            (ctl / "go-0").touch()
            _wait_for(ctl / "done-0")
        return P.set_field(plan, "t1", "Status", "IN PROGRESS")

    edited, new = queue.edit(ws, mutate)
    _finish(editor)
    by_person = (ctl / "wrote-0").read_bytes()
    assert seen == [original, by_person]  # read, then (after the person's save) read again and re-applied
    assert edited.raw == by_person
    assert new is not None and path.read_bytes() == new
    # the result is the person's file with exactly one line changed: t1's Status
    before, after = P.parse(by_person).lines, P.parse(new).lines
    assert len(before) == len(after)
    changed = [i for i, (a, b) in enumerate(zip(before, after, strict=True)) if a != b]
    assert [after[i] for i in changed] == ["  - Status: IN PROGRESS\n"]
    final = P.parse(new)
    assert final.ok
    assert final.by_id["t1"].status == "in-progress"
    assert final.by_id["t2"].title == "Beta, renamed by a person in round 0"
    assert "A line a person added in round 0 ✍️\n" in final.lines


def _as_the_person_edits(raw: bytes, r: int) -> bytes:
    """What the EDITOR script does in round r, done here to know the expected file."""
    lines = raw.decode("utf-8").split("\n")
    lines.insert(1, f"A line a person added in round {r} ✍️")
    renamed = f"- **[t2]** Beta, renamed by a person in round {r}"
    return "\n".join(renamed if x.startswith("- **[t2]**") else x for x in lines).encode("utf-8")


@pytest.mark.parametrize("mode", ["replace", "in-place"])
def test_plan_edit_editor_at_random_moments_loses_nothing(tmp_path: Path, mode: str) -> None:
    """Eight rounds; in each the person saves before the server's edit, in the middle of it, or after it."""
    repo, ws = _repo(tmp_path)
    path, ctl = repo.root / PLAN, tmp_path / "ctl"
    ctl.mkdir()
    rounds = 8
    rng = random.Random(20260)  # noqa: S311 (a fixed, reproducible schedule)
    moments = [rng.choice(["before", "during", "after"]) for _ in range(rounds)]
    moments[:3] = ["before", "during", "after"]  # each kind at least once
    statuses = ["IN PROGRESS", "BLOCKED", "READY", "FAILED"]
    expected = path.read_bytes()
    editor = _spawn(EDITOR, path, ctl, rounds, mode)
    reads_per_round = []
    for r, moment in enumerate(moments):
        go, done = ctl / f"go-{r}", ctl / f"done-{r}"
        if moment == "before":
            go.touch()
            _wait_for(done)
        calls: list[bytes] = []

        def mutate(plan: P.Plan, r: int = r, moment: str = moment, calls: list[bytes] = calls) -> bytes:
            calls.append(plan.raw)
            if moment == "during" and len(calls) == 1:
                (ctl / f"go-{r}").touch()
                _wait_for(ctl / f"done-{r}")
            return P.set_field(plan, "t1", "Status", statuses[r % len(statuses)])

        _, new = queue.edit(ws, mutate)
        if moment == "after":
            go.touch()
            _wait_for(done)
        reads_per_round.append(len(calls))
        # after every round, both changes are in the file: exactly the person's edit and the status
        expected = P.set_field(P.parse(_as_the_person_edits(expected, r)), "t1", "Status", statuses[r % len(statuses)])
        assert path.read_bytes() == expected, (r, moment)
        if moment != "after":
            assert new == expected
        now = P.parse(expected)
        assert now.ok and now.by_id["t1"].get("status") == statuses[r % len(statuses)]
        assert now.by_id["t2"].title == f"Beta, renamed by a person in round {r}"
    _finish(editor)
    # the server read the file twice exactly when the person saved in the middle of its edit
    assert reads_per_round == [2 if m == "during" else 1 for m in moments]
    person_lines = [x for x in P.parse(path.read_bytes()).lines if x.startswith("A line a person added")]
    assert person_lines == [f"A line a person added in round {r} ✍️\n" for r in reversed(range(rounds))]


# The editor in a tight loop: a buffer that is saved again and again (atomically) without reloading, each save
# one prose line longer; then, once the server is idle, one last save.
BUSY_EDITOR = r"""
import os, random, sys, time
from pathlib import Path
path, ctl, count = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
base = path.read_bytes()
rng = random.Random(7)
def version(k):
    typed = b"".join(b"typed %d\n" % i for i in range(k))
    return base.replace(b"People write here.\n", b"People write here.\n" + typed)
def save(k):
    tmp = path.with_name(".editor-save")
    tmp.write_bytes(version(k))
    os.replace(tmp, path)
(ctl / "started").touch()
for k in range(count):
    save(k)
    time.sleep(rng.random() * 0.004)
(ctl / "loop-done").touch()
while not (ctl / "server-idle").exists():
    time.sleep(0.001)
save(count)
(ctl / "final-done").touch()
"""


def test_plan_edit_against_an_editor_saving_in_a_tight_loop(tmp_path: Path) -> None:
    repo, ws = _repo(tmp_path)
    path, ctl = repo.root / PLAN, tmp_path / "ctl"
    ctl.mkdir()
    base = path.read_bytes()
    count = 150

    def version(k: int) -> bytes:
        typed = b"".join(b"typed %d\n" % i for i in range(k))
        return base.replace(b"People write here.\n", b"People write here.\n" + typed)

    statuses = ["IN PROGRESS", "BLOCKED"]
    # what a server write may be: some save of the person's, with t1's Status set (set_field changes that line only)
    allowed = {s: {P.set_field(P.parse(version(k)), "t1", "Status", s) for k in range(count + 1)} for s in statuses}
    editor = _spawn(BUSY_EDITOR, path, ctl, count)
    _wait_for(ctl / "started")
    written = refused = 0
    n = 0
    while not (ctl / "loop-done").exists():
        status = statuses[n % 2]
        n += 1
        try:
            _, new = queue.edit(ws, _set_status(status))
        except queue.PlanError as e:
            assert "kept changing" in str(e)  # refusing with a clear error is allowed; nothing else is
            refused += 1
            continue
        if new is not None:
            assert new in allowed[status]  # never a torn read, never a mix of two saves
            written += 1
    (ctl / "server-idle").touch()
    _wait_for(ctl / "final-done")
    _finish(editor)
    _, new = queue.edit(ws, _set_status("IN PROGRESS"))
    assert new == P.set_field(P.parse(version(count)), "t1", "Status", "IN PROGRESS")
    assert path.read_bytes() == new
    assert written > 5, (written, refused)


# -- claims ---------------------------------------------------------------------------------------------------------

# Each round: say ready, spin until `go-r` appears (both processes are released by one file), claim task r<r>.
CLAIMER = r"""
import json, sys, time
from pathlib import Path
from mcp_servers.core import queue
from mcp_servers.core.workspace import Workspace
repo, session, ctl, rounds = sys.argv[1], sys.argv[2], Path(sys.argv[3]), int(sys.argv[4])
ws = Workspace.open(repo)
for r in range(rounds):
    (ctl / f"ready-{session}-{r}").touch()
    go = ctl / f"go-{r}"
    deadline = time.monotonic() + 20
    while not go.exists():
        if time.monotonic() > deadline:
            sys.exit("no go")
    try:
        got = queue.claim_task(ws, f"r{r}", session, ttl_s=600, clock=lambda: 1_700_000_000.0)
        print(json.dumps({"round": r, "won": True, "attempt": got.attempt}), flush=True)
    except Exception as e:
        print(json.dumps({"round": r, "won": False, "type": type(e).__name__, "error": str(e)}), flush=True)
"""


def test_claim_race_between_two_processes_has_exactly_one_winner(tmp_path: Path) -> None:
    repo, ws = _repo(tmp_path)
    ctl = tmp_path / "ctl"
    ctl.mkdir()
    rounds = 5
    # the state database does not exist yet: the first round also races to create it
    assert not ws.db_path.exists()
    procs = {s: _spawn(CLAIMER, repo.root, s, ctl, rounds) for s in ("alice", "bob")}
    for r in range(rounds):
        for s in procs:
            _wait_for(ctl / f"ready-{s}-{r}")
        (ctl / f"go-{r}").touch()
    results = {s: [json.loads(line) for line in _finish(p).splitlines()] for s, p in procs.items()}
    for r in range(rounds):
        alice, bob = results["alice"][r], results["bob"][r]
        assert alice["round"] == bob["round"] == r
        assert [alice["won"], bob["won"]].count(True) == 1, (alice, bob)
        winner, loser = ("alice", bob) if alice["won"] else ("bob", alice)
        assert (results[winner][r]["attempt"]) == 1
        assert loser["type"] == "UsageError"
        # refused either by the queue's check or, when both passed it at once, inside the claim's transaction
        assert re.search(
            rf"task `r{r}`.* claimed by (session )?{winner} until 2023-11-14T22:23:20\+00:00", loser["error"]
        )
        detail = queue.get_task(ws, f"r{r}", "observer", clock=lambda: T0)
        assert detail.claim is not None and detail.claim.session == winner
        assert (detail.attempts, detail.failures) == (1, 0)


# A session that claims a task and dies without releasing it (no renewal, no release: the process just ends).
HOLDER = r"""
import os, sys
from mcp_servers.core import queue
from mcp_servers.core.workspace import Workspace
ws = Workspace.open(sys.argv[1])
queue.claim_task(ws, sys.argv[2], "doomed", ttl_s=float(sys.argv[3]), clock=lambda: float(sys.argv[4]))
os._exit(0)
"""


def _at(t: float) -> Callable[[], float]:
    return lambda: t


def _outcomes(ws: Workspace, task_id: str) -> list[tuple[str, str | None]]:
    with ws.db() as conn:
        rows = conn.execute("SELECT outcome, reason FROM task_attempts WHERE task_id = ? ORDER BY id", (task_id,))
        return [(r["outcome"], r["reason"]) for r in rows]


def test_claim_of_a_dead_session_expires_and_the_task_is_offered_again(tmp_path: Path) -> None:
    repo, ws = _repo(tmp_path)
    _finish(_spawn(HOLDER, repo.root, "t1", 60, T0))

    # while the claim lasts, another session is offered the next task and told why t1 was passed over
    during = queue.next_task(ws, "s2", clock=_at(T0 + 59))
    assert during.task is not None and during.task.id == "t2"
    assert [(s.id, s.reason) for s in during.skipped] == [("t1", "claimed by doomed until 2023-11-14T22:14:20+00:00")]
    with pytest.raises(UsageError, match=r"claimed by doomed until"):
        queue.claim_task(ws, "t1", "s2", clock=_at(T0 + 59))
    assert queue.get_task(ws, "t1", "s2", clock=_at(T0 + 59)).failures == 0

    # at its expiry the claim ends: t1 (P1) is offered again, and the lost attempt is counted as interrupted
    after = queue.next_task(ws, "s2", clock=_at(T0 + 60))
    assert after.task is not None and after.task.id == "t1"
    assert after.skipped == []
    detail = queue.get_task(ws, "t1", "s2", clock=_at(T0 + 60))
    assert detail.claim is None
    assert (detail.attempts, detail.failures, detail.last_failure) == (1, 1, EXPIRED)
    assert detail.state == "ready"
    assert _outcomes(ws, "t1") == [("interrupted", EXPIRED)]

    claim = queue.claim_task(ws, "t1", "s2", ttl_s=60, clock=_at(T0 + 61))
    assert (claim.attempt, claim.renewed) == (2, False)
    # the dead session, were it to come back, no longer holds anything
    with pytest.raises(UsageError, match=r"claimed by session s2"):
        queue.release_task(ws, "t1", "doomed", clock=_at(T0 + 62))


def test_claim_renewed_before_expiry_is_not_interrupted(tmp_path: Path) -> None:
    _, ws = _repo(tmp_path)
    queue.claim_task(ws, "t1", "s1", ttl_s=60, clock=_at(T0))
    renewed = queue.claim_task(ws, "t1", "s1", ttl_s=60, clock=_at(T0 + 50))
    assert (renewed.renewed, renewed.attempt, renewed.expires) == (True, 1, "2023-11-14T22:15:10+00:00")
    with pytest.raises(UsageError, match=r"claimed by (session )?s1 until 2023-11-14T22:15:10"):
        queue.claim_task(ws, "t1", "s2", clock=_at(T0 + 100))
    assert queue.next_task(ws, "s1", clock=_at(T0 + 100)).task.id == "t1"  # type: ignore[union-attr]  # resumed
    offered = queue.next_task(ws, "s2", clock=_at(T0 + 110))
    assert offered.task is not None and offered.task.id == "t1"
    assert _outcomes(ws, "t1") == [("interrupted", EXPIRED)]
    assert queue.get_task(ws, "t1", "s2", clock=_at(T0 + 110)).attempts == 1


@pytest.mark.parametrize(("config", "limit"), [(None, 3), ("[plan]\nmax_attempts = 2\n", 2)])
def test_claim_interrupted_max_attempts_times_is_reported_failed(
    tmp_path: Path, config: str | None, limit: int
) -> None:
    repo, ws = _repo(tmp_path, config=config)
    now = T0
    for n in range(limit):
        assert queue.next_task(ws, f"s{n}", clock=_at(now)).task.id == "t1"  # type: ignore[union-attr]
        if n == 0:  # one of the holders is a real process that dies
            _finish(_spawn(HOLDER, repo.root, "t1", 10, now))
        else:
            queue.claim_task(ws, "t1", f"s{n}", ttl_s=10, clock=_at(now))
        now += 11  # nobody renews: the claim runs out
    answer = queue.next_task(ws, "later", clock=_at(now))
    assert answer.task is not None and answer.task.id == "t2"
    reason = f"failed {limit} times (last: {EXPIRED}); `overnight plan reset t1` retries it"
    assert [(s.id, s.reason) for s in answer.skipped] == [("t1", reason)]
    detail = queue.get_task(ws, "t1", "later", clock=_at(now))
    assert (detail.state, detail.attempts, detail.failures, detail.why) == ("failed", limit, limit, reason)
    assert _outcomes(ws, "t1") == [("interrupted", EXPIRED)] * limit
    listed = queue.list_tasks(ws, "later", status="failed", clock=_at(now))
    assert [t.id for t in listed.tasks] == ["t1"]
    with pytest.raises(UsageError, match=rf"cannot be claimed: failed {limit} times"):
        queue.claim_task(ws, "t1", "later", clock=_at(now))
    # a person resets it: offered again, with a clean count
    queue.reset_task(ws, "t1", clock=_at(now))
    again = queue.next_task(ws, "later", clock=_at(now))
    assert again.task is not None and again.task.id == "t1"
    assert (again.task.attempts, again.task.failures) == (0, 0)


def test_claim_expired_holder_reporting_failure_late_counts_one_failure(tmp_path: Path) -> None:
    """The holder was only slow: its claim expired (one interrupted attempt), then it reports the attempt failed.
    That is still one attempt, not two failures."""
    _, ws = _repo(tmp_path)
    queue.claim_task(ws, "t1", "slow", ttl_s=10, clock=_at(T0))
    queue.update_task(ws, "t1", "failed", "slow", note="tests kept failing", clock=_at(T0 + 30))
    detail = queue.get_task(ws, "t1", "other", clock=_at(T0 + 30))
    assert (detail.attempts, detail.failures) == (1, 1)
    assert _outcomes(ws, "t1") == [("failed", "tests kept failing")]
    assert detail.last_failure == "tests kept failing"


def test_claim_expired_holder_reporting_blocked_late_is_one_blocked_attempt(tmp_path: Path) -> None:
    """The same for a late `blocked`: the one attempt ends blocked (not a failure and a second attempt)."""
    _, ws = _repo(tmp_path)
    queue.claim_task(ws, "t1", "slow", ttl_s=10, clock=_at(T0))
    queue.update_task(ws, "t1", "blocked", "slow", note="needs a decision", clock=_at(T0 + 30))
    detail = queue.get_task(ws, "t1", "other", clock=_at(T0 + 30))
    assert (detail.state, detail.attempts, detail.failures) == ("blocked", 1, 0)
    # without an interrupted attempt of its own to end, a report without a claim is one more attempt
    queue.update_task(ws, "t1", "failed", "another", note="could not start", clock=_at(T0 + 40))
    assert queue.get_task(ws, "t1", "other", clock=_at(T0 + 40)).attempts == 2
