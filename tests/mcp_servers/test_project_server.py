"""The `project` server through the real MCP SDK client: tools, resources, the prompt, over memory and stdio."""

from __future__ import annotations

import json
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from mcp import Client, StdioServerParameters
from mcp.types import TextContent

from mcp_servers.core import queue_models
from mcp_servers.project.server import build

from ..conftest import FAST_CONFIG, GitRepo, make_repo
from ..core.test_queue import GOOD, PLAN

pytestmark = pytest.mark.anyio

PROJECT_TOOLS = {
    "list_tasks", "get_task", "next_task", "claim_task", "release_task", "update_task", "complete_task",
    "propose_task", "plan_summary", "validate_plan",
}  # fmt: skip


@pytest.fixture
def planned(tmp_path: Path) -> GitRepo:
    return make_repo(tmp_path / "r", config=FAST_CONFIG, files={"PROJECT_PLAN.md": PLAN})


@pytest.fixture
async def client(planned: GitRepo, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Client]:
    monkeypatch.setenv("OVERNIGHT_SESSION_ID", "s-test")
    async with Client(build(str(planned.root)), raise_exceptions=True) as c:
        yield c


def _text(result: Any) -> str:
    return "\n".join(c.text for c in result.content if isinstance(c, TextContent))


async def test_project_server_lists_the_contract_tools(client: Client) -> None:
    tools = {t.name: t for t in (await client.list_tools()).tools}
    assert set(tools) == PROJECT_TOOLS
    for tool in tools.values():
        assert tool.output_schema and tool.annotations is not None and tool.description, tool.name
    assert tools["next_task"].annotations.read_only_hint is True
    assert tools["claim_task"].annotations.read_only_hint is False
    assert not any("approve" in name for name in tools)  # no tool approves anything


async def test_project_server_next_claim_update(client: Client) -> None:
    found = (await client.call_tool("next_task", {})).structured_content
    assert found["task"]["id"] == "sub" and found["task"]["claimed_until"] is None
    assert {line.split(": ")[0] for line in found["skipped"]} == {"after_sub", "drop", "idea"}
    assert "after_sub: blocked by sub" in found["skipped"] and found["skipped_total"] == 3
    claimed = (await client.call_tool("claim_task", {"task_id": "sub"})).structured_content
    assert claimed["session"] == "s-test" and claimed["attempt"] == 1
    again = (await client.call_tool("next_task", {})).structured_content  # a new answer once the claim is there
    assert again["task"]["id"] == "sub" and again["task"]["claimed_until"] == claimed["expires"]
    refused = await client.call_tool("update_task", {"task_id": "sub", "status": "done"})
    assert refused.is_error and "complete_task" in _text(refused)
    blocked = await client.call_tool("update_task", {"task_id": "sub", "status": "blocked", "note": "needs input"})
    assert blocked.structured_content["recorded"] is True
    detail = (await client.call_tool("get_task", {"task_id": "sub"})).structured_content
    assert detail["state"] == "blocked" and detail["why"] == "blocked by an agent: needs input"
    assert any("blocked: needs input" in h for h in detail["history"])


async def test_project_server_list_paging_and_filters(client: Client) -> None:
    page = (await client.call_tool("list_tasks", {"limit": 2})).structured_content
    assert [t["id"] for t in page["tasks"]] == ["low", "sub"] and page["next_cursor"] == "2" and page["total"] == 8
    done = (await client.call_tool("list_tasks", {"status": "done"})).structured_content
    assert [t["id"] for t in done["tasks"]] == ["done"]
    bad = await client.call_tool("list_tasks", {"status": "sleeping"})
    assert bad.is_error


async def test_project_server_errors_are_actionable(client: Client) -> None:
    missing = await client.call_tool("get_task", {"task_id": "nope"})
    assert missing.is_error and "no task `nope`" in _text(missing) and "list_tasks" in _text(missing)
    unapproved = await client.call_tool("claim_task", {"task_id": "idea"})
    assert unapproved.is_error and "cannot be claimed: pending approval" in _text(unapproved)
    no_evidence = await client.call_tool("complete_task", {"task_id": "sub"})
    assert no_evidence.is_error and "no passing gate receipt" in _text(no_evidence)


async def test_project_server_propose_summary_validate(client: Client, planned: GitRepo) -> None:
    proposed = (
        await client.call_tool("propose_task", {"title": "Add mul()", "description": "with tests"})
    ).structured_content
    assert proposed["section"] == "pending"
    assert f"**[{proposed['task_id']}]** Add mul()" in (planned.root / "PROJECT_PLAN.md").read_text()
    summary = (await client.call_tool("plan_summary", {})).structured_content
    assert summary["tasks"] == 9 and summary["next"]["id"] == "sub"
    valid = (await client.call_tool("validate_plan", {})).structured_content
    assert valid["ok"] is True and valid["tasks"] == 9


async def test_project_server_resources_and_prompt(client: Client) -> None:
    tasks = json.loads((await client.read_resource("plan://tasks")).contents[0].text)  # type: ignore[union-attr]
    assert tasks["total"] == 8
    templates = (await client.list_resource_templates()).resource_templates
    assert [t.uri_template for t in templates] == ["plan://tasks/{task_id}"]
    one = json.loads((await client.read_resource("plan://tasks/sub")).contents[0].text)  # type: ignore[union-attr]
    assert one["id"] == "sub" and one["files"] == ["src/app/*.py", "tests/*.py"]
    prompts = (await client.list_prompts()).prompts
    assert [p.name for p in prompts] == ["start_next_task"]
    prompt = await client.get_prompt("start_next_task", {})
    text = prompt.messages[0].content.text  # type: ignore[union-attr]
    assert "Work on task `sub`" in text and "run_quality_gate" in text and "complete_task" in text


async def test_project_server_over_stdio(planned: GitRepo) -> None:
    params = StdioServerParameters(command=sys.executable, args=["-m", "mcp_servers.project"], cwd=str(planned.root))
    async with Client(params) as c:
        assert {t.name for t in (await c.list_tools()).tools} == PROJECT_TOOLS
        assert (await c.call_tool("next_task", {})).structured_content["task"]["id"] == "sub"


async def test_next_task_gives_what_starting_needs_in_a_bounded_answer(tmp_path: Path) -> None:
    """The task to start (scope, description, fields, the last failure) in compact JSON text, and at most
    SKIPPED_SHOWN passed-over tasks as `id: why` lines, with the count of all of them."""
    blocked = "".join(f"- **[b{i}]** Blocked {i}\n  - Priority: P0\n  - Depends on: later\n" for i in range(15))
    plan = (
        "# Plan\n\n## Task Queue\n\n### Ready for Autonomous Execution\n" + blocked
        + "- **[later]** The one to start\n  - Priority: P1\n  - Files: src/app/*.py\n"
        "  - Description: make it so\n  - Ticket: OPS-7\n" + GOOD
    )  # fmt: skip
    repo = make_repo(tmp_path / "r", config=FAST_CONFIG, files={"PROJECT_PLAN.md": plan})
    async with Client(build(str(repo.root)), raise_exceptions=True) as c:
        result = await c.call_tool("next_task", {})
    found = result.structured_content
    task = found["task"]
    assert task is not None, found["summary"]
    assert (task["id"], task["files"], task["description"], task["fields"]) == (
        "later", ["src/app/*.py"], "make it so", {"Ticket": "OPS-7"}
    )  # fmt: skip
    assert found["skipped"] == [f"b{i}: blocked by later" for i in range(queue_models.SKIPPED_SHOWN)]
    assert found["skipped_total"] == 15
    text = _text(result)
    assert json.loads(text) == found and "\n" not in text  # the text the model reads: the same, compact
