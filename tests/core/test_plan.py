"""PROJECT_PLAN.md: strict, loud reading with line numbers; writing that changes only the lines it means to."""

from __future__ import annotations

import time

import pytest

from mcp_servers.core import plan as P
from mcp_servers.core.errors import UsageError

PLAN = """\
# Project Plan
Prose before the queue 🎉, kept as it is.

## Task Queue

### Ready for Autonomous Execution ✅
→ **[task_3]** Add User model with email and password fields
  - Priority: P1
  - Depends on: task_1, task_2
  - Files: src/models/*.py, tests/unit/test_models.py
  - Alignment score: 95/100
  - Estimated lines: 10
  - Tests defined: ✅ Yes (tests/unit/test_models.py)
  - Safety check: ✅ Passed
  - Status: READY
  - Owner: Ada

- **[task_1]** Base settings
  - Status: DONE
- **[task_2]** Logging
  - Depends on: task_1
  Some prose under the task, part of its description.

### Pending Approval ⏳
- **[task_4]** Implement login endpoint

### Not Ready ❌
- **[task_6]** Design database schema
  - Reason: Requires user input and architectural decisions

## Notes
Not part of the queue. **[task_99]** is not a task here.
"""


def _parse(text: str) -> P.Plan:
    return P.parse(text.encode())


def test_plan_reads_sections_tasks_and_fields() -> None:
    plan = _parse(PLAN)
    assert plan.ok, plan.problems
    assert [(t.id, t.section) for t in plan.tasks] == [
        ("task_3", "ready"), ("task_1", "ready"), ("task_2", "ready"), ("task_4", "pending"), ("task_6", "not-ready"),
    ]  # fmt: skip
    task = plan.by_id["task_3"]
    assert (task.priority, task.depends_on, task.files) == (
        1,
        ("task_1", "task_2"),
        ("src/models/*.py", "tests/unit/test_models.py"),
    )
    assert (task.alignment_score, task.estimated_lines, task.tests_defined, task.status) == (95, 10, True, "ready")
    assert task.get("owner") == "Ada" and task.get("safety_check") == "✅ Passed"
    assert task.line == 7
    assert plan.by_id["task_4"].priority == 2  # the default
    assert plan.by_id["task_2"].body == ["Some prose under the task, part of its description."]
    assert "part of its description" in plan.by_id["task_2"].text


@pytest.mark.parametrize(
    ("heading", "section"),
    [
        ("### Ready for Autonomous Execution ✅", "ready"),
        ("### ready for autonomous execution", "ready"),
        ("#### Ready", "ready"),
        ("### ⏳ Pending Approval", "pending"),
        ("### Not Ready ❌", "not-ready"),
        ("##### NOT READY", "not-ready"),
    ],
)
def test_plan_sections_are_recognised_with_or_without_emoji_at_any_deeper_level(heading: str, section: str) -> None:
    plan = _parse(f"## Task Queue\n{heading}\n- **[t1]** A task\n")
    assert plan.ok and plan.by_id["t1"].section == section


def test_plan_queue_may_sit_at_any_level_and_ends_at_the_next_equal_heading() -> None:
    plan = _parse("# Task Queue\n## Ready\n- **[a]** A\n# Other\n- **[b]** B\n")
    assert list(plan.by_id) == ["a"]


def test_plan_comments_and_code_fences_hold_no_tasks() -> None:
    text = "## Task Queue\n### Ready\n<!-- example:\n- **[x]** Hidden\n-->\n```\n- **[y]** Code\n```\n- **[z]** Real\n"
    assert list(_parse(text).by_id) == ["z"]


def test_plan_sub_headings_inside_a_section_keep_it() -> None:
    plan = _parse("## Task Queue\n### Ready\n#### Epic: auth\n- **[a]** A\n### Not Ready\n- **[b]** B\n")
    assert plan.by_id["a"].section == "ready" and plan.by_id["b"].section == "not-ready"


@pytest.mark.parametrize(
    ("text", "line", "code"),
    [
        ("## Task Queue\n### Ready\n- **[a]** A\n- **[a]** Again\n", 4, "duplicate-id"),
        ("## Task Queue\n### Ready\n- **[a]** A\n  - Depends on: b\n", 4, "missing-dependency"),
        ("## Task Queue\n### Ready\n- **[bad id!]** A\n", 3, "bad-id"),
        ("## Task Queue\n### Someday\n- **[a]** A\n", 3, "no-section"),
        ("# Just notes\n- **[a]** A\n", None, "no-queue"),
        ("## Task Queue\n### Ready\n- **[a]** A\n<!-- never closed\n- **[b]** B\n", 4, "comment"),
        ("## Task Queue\n### Ready\n- **[a]** A <!-- x --> <!-- reopened\n", 3, "comment"),
        ("## Task Queue\n<!--\n-->  <!-- reopened on the closing line\n### Ready\n", 3, "comment"),
    ],
)
def test_plan_problems_are_reported_with_their_line(text: str, line: int | None, code: str) -> None:
    plan = _parse(text)
    assert not plan.ok
    assert (plan.errors[0].line, plan.errors[0].code) == (line, code)


@pytest.mark.parametrize(
    ("field", "code", "said", "held"),
    [
        ("Priority: urgentish", "bad-priority", "read as P2, the default", False),
        ("Alignment score: 120/100", "bad-alignment-score", "read as no score", False),
        ("Estimated lines: a few", "bad-estimated-lines", "read as no estimate", False),
        ("Tests defined: maybe", "bad-tests-defined", "read as no tests defined", False),
        ("Status: SOMETIME", "bad-status", "not offered until this is fixed", True),
        ("Files: ../outside/*", "bad-files", "not offered until this is fixed", True),
        ("Depends on: b; ???", "bad-depends-on", "not offered until this is fixed", True),
        ("Safety check: looked at it", "bad-safety-check", "not offered until this is fixed", True),
        ("Auto-approved: someday", "bad-auto-approved", "not offered until this is fixed", True),
    ],
)
def test_plan_unreadable_value_is_a_warning_that_says_how_it_was_read(
    field: str, code: str, said: str, held: bool
) -> None:
    """A value of a known field that cannot be read does not make the plan invalid (issue 11): a warning says what
    was understood, kept in the task's data; a field bearing on approval or safety holds the task back."""
    plan = _parse(f"## Task Queue\n### Ready\n- **[b]** B\n- **[a]** A\n  - {field}\n")
    assert plan.ok, plan.errors
    [warning] = [p for p in plan.problems if p.severity == "warning"]
    assert (warning.line, warning.code) == (5, code) and said in warning.message
    task = plan.by_id["a"]
    assert task.warnings and said in task.warnings[0]
    assert bool(task.held) is held


@pytest.mark.parametrize(
    ("field", "attribute", "value"),
    [
        ("Tests defined: ✅ Yes (tests/unit/test_models.py)", "tests_defined", True),
        ("Tests defined: ⏳ Needs definition", "tests_defined", False),
        ("Tests defined: TBD", "tests_defined", False),
        ("Safety check: ⚠️ Touches authentication (needs review)", "safety_check", "caution"),
        ("Safety check: ✅ Passed", "safety_check", "passed"),
        ("Safety check: ❌ Deletes user data", "safety_check", "failed"),
        ("Safety check: unsafe, touches billing", "safety_check", "failed"),
        ("Auto-approved: 2025-01-15", "auto_approved", True),
        ("Auto-approved: 2025-01-15T09:30Z by the planner", "auto_approved", True),
        ("Auto-approved: ✅ Yes", "auto_approved", True),
        ("Auto-approved: No (needs a person)", "auto_approved", False),
    ],
)
def test_plan_seed_values_parse(field: str, attribute: str, value: object) -> None:
    """The values the seed's plan uses are understood, without a problem."""
    plan = _parse(f"## Task Queue\n### Ready\n- **[a]** A\n  - {field}\n  - Use: bcrypt (not md5)\n")
    assert plan.problems == []
    task = plan.by_id["a"]
    assert getattr(task, attribute) == value
    assert task.other_fields() == {"Use": "bcrypt (not md5)"}


def test_plan_cycle_is_reported_as_its_path() -> None:
    text = (
        "## Task Queue\n### Ready\n- **[a]** A\n  - Depends on: c\n- **[b]** B\n  - Depends on: a\n"
        "- **[c]** C\n  - Depends on: b\n- **[d]** D\n  - Depends on: d\n"
    )
    cycles = [p for p in _parse(text).errors if p.code == "cycle"]
    assert len(cycles) == 2
    messages = {p.message.split(" tasks: ")[0]: p.message for p in cycles}
    assert "dependency cycle of 1 tasks: d → d;" in messages["dependency cycle of 1"]
    path = messages["dependency cycle of 3"].split(": ")[1].split(";")[0].split(" → ")
    assert sorted(path[:-1]) == ["a", "b", "c"] and path[0] == path[-1]


def test_plan_long_cycle_is_shown_shortened() -> None:
    tasks = "".join(f"- **[t{i}]** T\n  - Depends on: t{(i + 1) % 200}\n" for i in range(200))
    cycle = next(p for p in _parse("## Task Queue\n### Ready\n" + tasks).errors if p.code == "cycle")
    assert "dependency cycle of 200 tasks" in cycle.message and "… 190 more …" in cycle.message
    assert len(cycle.message) < 300


def test_plan_not_utf8_is_an_error_on_its_line() -> None:
    plan = P.parse(b"## Task Queue\n### Ready\n- **[a]** caf\xe9\n")
    assert plan.errors[0].code == "encoding" and plan.errors[0].line == 3


def test_plan_not_utf8_still_has_lines_that_give_its_bytes_back() -> None:
    raw = b"## Task Queue\n### Ready\n- **[a]** caf\xe9\n"
    plan = P.parse(raw)
    assert not plan.ok and len(plan.lines) == 3
    assert b"".join(line.encode("utf-8", "surrogateescape") for line in plan.lines) == raw


@pytest.mark.parametrize(
    ("value", "ids"),
    [("a b", ("a", "b")), ("a, b", ("a", "b")), ("a,b", ("a", "b")), ("a ,b", ("a", "b")), ("a  b", ("a", "b")),
     ("[a] [b]", ("a", "b")), ("a; b", ("a", "b"))],
)  # fmt: skip
def test_plan_dependencies_are_split_on_commas_semicolons_and_spaces(value: str, ids: tuple[str, ...]) -> None:
    text = f"## Task Queue\n### Ready\n- **[a]** A\n- **[b]** B\n- **[ab]** AB\n- **[c]** C\n  - Depends on: {value}\n"
    plan = _parse(text)
    assert plan.ok and plan.by_id["c"].depends_on == ids


def test_plan_cycle_detection_is_linear_and_never_recursive() -> None:
    chain = {f"t{i}": [f"t{i + 1}"] for i in range(20_000)}
    chain["t20000"] = ["t0"]  # one cycle through 20,001 nodes: recursion would overflow
    started = time.monotonic()
    cycles = P.find_cycles(chain)
    assert time.monotonic() - started < 5
    assert len(cycles) == 1 and len(cycles[0]) == 20_001
    ladder = {f"n{i}": [f"n{i - 1}", f"n{i - 2}"] if i >= 2 else [] for i in range(20_000)}
    assert P.find_cycles(ladder) == []  # dense and acyclic: no path is walked twice


def test_plan_round_trip_is_byte_identical_with_crlf_and_bom() -> None:
    raw = b"\xef\xbb\xbf" + PLAN.replace("\n", "\r\n").encode()
    plan = P.parse(raw)
    assert plan.ok and plan.bom and plan.newline == "\r\n"
    assert P.render(plan, plan.lines) == raw
    assert P.set_field(plan, "task_3", "Status", "READY") == raw  # setting the value it has changes nothing


def test_plan_set_field_changes_only_that_line() -> None:
    plan = _parse(PLAN)
    after = P.set_field(plan, "task_3", "Status", "DONE").decode()
    before_lines, after_lines = PLAN.splitlines(), after.splitlines()
    changed = [i for i, (a, b) in enumerate(zip(before_lines, after_lines, strict=True)) if a != b]
    assert changed == [14] and after_lines[14] == "  - Status: DONE"


def test_plan_set_field_adds_a_missing_field_after_the_last_one() -> None:
    plan = _parse(PLAN)
    after = P.parse(P.set_field(plan, "task_1", "Reason", "kept for history"))
    assert after.by_id["task_1"].get("reason") == "kept for history"
    assert after.lines[18] == "  - Status: DONE\n" and after.lines[19] == "  - Reason: kept for history\n"
    restored = P.set_field(P.parse(P.set_field(plan, "task_3", "Status", "DONE")), "task_3", "Status", "READY")
    assert restored == plan.raw


def test_plan_set_field_keeps_crlf_and_bom() -> None:
    raw = b"\xef\xbb\xbf" + PLAN.replace("\n", "\r\n").encode()
    after = P.set_field(P.parse(raw), "task_4", "Status", "READY")
    assert after.startswith(b"\xef\xbb\xbf") and b"\n" not in after.replace(b"\r\n", b"")
    assert b"- **[task_4]** Implement login endpoint\r\n  - Status: READY\r\n" in after


def test_plan_set_field_replaces_only_the_value() -> None:
    raw = "## Task Queue\n### Ready\n- **[a]** A\n  - Status:  READY  <!-- was BLOCKED -->\n  - Owner:x\n"
    plan = _parse(raw)
    assert P.set_field(plan, "a", "Status", "DONE").decode() == raw.replace("READY", "DONE")
    assert P.set_field(plan, "a", "Owner", "Ada").decode() == raw.replace("Owner:x", "Owner:Ada")
    empty = _parse("## Task Queue\n### Ready\n- **[a]** A\n  - Reason:\n")
    assert P.set_field(empty, "a", "Reason", "later").decode().endswith("  - Reason: later\n")


def test_plan_set_field_keeps_a_comment_the_block_leaves_open_with_the_task() -> None:
    raw = "## Task Queue\n### Ready\n- **[a]** A\n  - Status: READY <!-- a note\n  on two lines -->\n- **[b]** B\n"
    after = P.parse(P.set_field(_parse(raw), "a", "Reason", "why"))
    assert after.ok and after.by_id["a"].get("reason") == "why" and after.by_id["a"].status == "ready"
    assert after.raw.decode().endswith("on two lines -->\n  - Reason: why\n- **[b]** B\n")
    moved = P.parse(P.move_task(_parse(raw + "### Not Ready\n- **[c]** C\n"), "a", "not-ready"))
    assert moved.ok and moved.by_id["a"].section == "not-ready" and [t.id for t in moved.tasks] == ["b", "c", "a"]
    assert moved.raw.decode().endswith("- **[a]** A\n  - Status: READY <!-- a note\n  on two lines -->\n")


def test_plan_set_field_rejects_a_key_that_cannot_be_one() -> None:
    with pytest.raises(UsageError, match="cannot be a field name"):
        P.set_field(_parse(PLAN), "task_3", "Status: DONE\n- Owner", "x")


def test_plan_values_cannot_break_out_of_their_line() -> None:
    after = P.parse(
        P.set_field(_parse(PLAN), "task_3", "Status", "DONE\n### Ready for Autonomous Execution\n- **[evil]** x")
    )
    assert "evil" not in after.by_id and after.by_id["task_3"].status is None  # one (invalid) line, not three


def test_plan_move_task_moves_its_whole_block() -> None:
    plan = _parse(PLAN)
    after = P.parse(P.move_task(plan, "task_6", "ready"))
    assert after.ok and after.by_id["task_6"].section == "ready"
    assert after.by_id["task_6"].get("reason") == "Requires user input and architectural decisions"
    assert "## Notes\nNot part of the queue." in after.raw.decode()
    back = P.parse(P.move_task(after, "task_6", "not-ready"))
    assert back.by_id["task_6"].section == "not-ready"
    content = [line for line in plan.lines if line.strip()]
    assert [line for line in back.lines if line.strip()] == content  # every line back in its place
    assert len(back.lines) - len(plan.lines) in {0, 1}  # at most a blank line between a heading and its task


def test_plan_move_creates_a_missing_section() -> None:
    plan = _parse("# Plan\n\n## Task Queue\n\n### Pending Approval\n- **[a]** A\n\n## After\ntext\n")
    after = P.parse(P.move_task(plan, "a", "ready"))
    assert after.ok and after.by_id["a"].section == "ready"
    assert after.raw.decode().endswith("## After\ntext\n")


def test_plan_append_task_goes_at_the_end_of_its_section() -> None:
    plan = _parse(PLAN)
    after = P.parse(P.append_task(plan, "pending", ["- **[task_7]** New", "  - Priority: P3"]))
    assert after.ok and after.by_id["task_7"].section == "pending" and after.by_id["task_7"].priority == 3
    assert after.by_id["task_7"].line == after.by_id["task_4"].line + 1


def test_plan_unknown_task_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="no task `nope`"):
        P.set_field(_parse(PLAN), "nope", "Status", "DONE")
