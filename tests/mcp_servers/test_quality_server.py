"""The `quality` server through the real MCP SDK client: in memory, over stdio, and over streamable HTTP."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx2
import pytest
from mcp import Client, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client
from mcp.types import TextContent

from mcp_servers.core.workspace import Workspace
from mcp_servers.quality.server import build

from ..conftest import ADD_SUB, QUALITY_TOOLS, TEST_SUB, GitRepo

pytestmark = pytest.mark.anyio


@pytest.fixture
async def client(repo: GitRepo) -> AsyncIterator[Client]:
    async with Client(build(str(repo.root)), raise_exceptions=True) as c:
        yield c


def _text(result: Any) -> str:
    return "\n".join(c.text for c in result.content if isinstance(c, TextContent))


async def test_quality_server_lists_the_contract_tools_with_schemas(client: Client) -> None:
    tools = {t.name: t for t in (await client.list_tools()).tools}
    assert set(tools) == QUALITY_TOOLS
    for tool in tools.values():
        assert tool.output_schema and tool.output_schema["type"] == "object", tool.name
        assert tool.annotations is not None and tool.description, tool.name
    assert tools["validate_changes"].annotations.read_only_hint is True
    assert tools["commit"].annotations.read_only_hint is False
    assert {"description", "task_id", "files"} <= set(tools["validate_task"].input_schema["properties"])
    assert tools["validate_task"].output_schema["title"] == "TaskCheck"
    assert client.server_info.name == "quality"  # type: ignore[union-attr]


async def test_quality_server_validate_changes_returns_structured_violations(client: Client, repo: GitRepo) -> None:
    assert (await client.call_tool("validate_changes", {})).structured_content["safe"] is True
    repo.write(".env", "TOKEN=x\n")
    repo.write("src/app/new.py", "x = 1\n")
    result = await client.call_tool("validate_changes", {})
    assert result.is_error is False
    data = result.structured_content
    assert data["safe"] is False
    assert {(v["rule"], v["path"]) for v in data["violations"]} == {
        ("protected-path", ".env"),
        ("outside-allowed", ".env"),
    }
    assert {f["path"] for f in data["files"]} == {".env", "src/app/new.py"}


async def test_quality_server_validate_task_reports_forbidden_operations(client: Client) -> None:
    result = await client.call_tool(
        "validate_task",
        {
            "description": "Drop the users table and add a dependency",
            "estimated_lines": 10,
            "alignment_score": 90,
            "tests_defined": True,
        },
    )
    rules = {v["rule"] for v in result.structured_content["violations"]}
    assert rules == {"forbidden:drop-table", "forbidden:add-dependency"}
    ok = await client.call_tool(
        "validate_task",
        {
            "description": "Add a sub() function",
            "estimated_lines": 10,
            "alignment_score": 90,
            "tests_defined": True,
            "files": ["src/app/calc.py"],
        },
    )
    assert ok.structured_content == {"ok": True, "task_id": None, "violations": []}


async def test_quality_server_errors_reach_the_model_with_their_message(client: Client, repo: GitRepo) -> None:
    bad_ref = await client.call_tool("validate_changes", {"base": "no-such-ref"})
    assert bad_ref.is_error is True
    assert "'no-such-ref' does not name a commit" in _text(bad_ref) and "git log" in _text(bad_ref)
    repo.write("overnight.toml", "[policy]\nmax_changed_lines = 'lots'\n")
    bad_config = await client.call_tool("get_policy", {})
    assert bad_config.is_error is True
    assert "overnight.toml:2: key `policy.max_changed_lines`" in _text(bad_config)
    bad_args = await client.call_tool("validate_task", {"description": 5})
    assert bad_args.is_error is True


async def test_quality_server_gate_then_commit(client: Client, repo: GitRepo) -> None:
    repo.append("src/app/calc.py", ADD_SUB)
    repo.append("tests/test_calc.py", TEST_SUB)
    status = (await client.call_tool("gate_status", {})).structured_content
    assert status["receipt"] is None and status["clean"] is False
    gate = (
        await client.call_tool("run_quality_gate", {"task_files": ["src/app/*.py", "tests/*.py"]})
    ).structured_content
    assert gate["passed"] is True and gate["receipt"]["tree"] == gate["tree"]
    again = (
        await client.call_tool("run_quality_gate", {"task_files": ["src/app/*.py", "tests/*.py"]})
    ).structured_content
    assert again["cached"] is True and again["receipt"]["id"] == gate["receipt"]["id"]
    done = (await client.call_tool("commit", {"message": "Add sub()", "task_id": "task_1"})).structured_content
    assert done["receipt_id"] == gate["receipt"]["id"]
    assert repo.head() == done["commit"]
    assert "Overnight-Task: task_1" in repo.git("log", "-1", "--format=%B")
    # a tool's caller is an agent: the commit is authored by the agent identity, the person commits it (issue 11)
    who = repo.git("log", "-1", "--format=%an <%ae>|%cn <%ce>")
    assert who == "overnight agent <overnight-agent@localhost>|Overnight Tests <tests@overnight.invalid>"


async def test_quality_server_commit_refused_says_why(client: Client, repo: GitRepo) -> None:
    repo.write(".env", "TOKEN=x\n")
    result = await client.call_tool("commit", {"message": "sneak"})
    assert result.is_error is True
    assert "nothing was committed because the gate failed" in _text(result) and "protected-path" in _text(result)


async def test_quality_server_policy_and_health(client: Client, repo: GitRepo) -> None:
    policy = (await client.call_tool("get_policy", {})).structured_content
    assert policy["config_exists"] is True and policy["policy"]["max_changed_lines"] == 30
    health = (await client.call_tool("health_report", {})).structured_content
    assert health["python_files"] == 3 and health["paths"] == ["src", "tests"]
    assert health["complexity_hotspots"][0]["function"] in {"add", "test_add"}
    outside = await client.call_tool("health_report", {"paths": ["../"]})
    assert outside.is_error is True and "outside the repository" in _text(outside)


async def test_quality_server_over_stdio(repo: GitRepo) -> None:
    repo.write(".env", "TOKEN=x\n")
    params = StdioServerParameters(command=sys.executable, args=["-m", "mcp_servers.quality"], cwd=str(repo.root))
    async with Client(params) as c:
        assert {t.name for t in (await c.list_tools()).tools} == QUALITY_TOOLS
        result = await c.call_tool("validate_changes", {})
        assert result.structured_content["safe"] is False


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_quality_server_over_streamable_http_needs_its_bearer_token(repo: GitRepo) -> None:
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
    server = subprocess.Popen(
        [sys.executable, "-m", "mcp_servers.quality", "--transport", "http", "--port", str(port), "--repo",
         str(repo.root)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.1)
        token_file = Workspace.open(repo.root).state_dir / "http-token"
        assert token_file.stat().st_mode & 0o777 == 0o600
        token = token_file.read_text().strip()
        url = f"http://127.0.0.1:{port}/mcp"
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": token}):
            async with httpx2.AsyncClient() as http:
                answer = await http.post(url, headers=headers, json={"jsonrpc": "2.0", "id": 1, "method": "ping"})
            assert answer.status_code == 401, headers
        client = create_mcp_http_client(headers={"Authorization": f"Bearer {token}"})
        async with client, Client(streamable_http_client(url, http_client=client)) as c:
            result = await c.call_tool("get_policy", {})
            assert result.structured_content["config_exists"] is True
            assert Path(result.structured_content["config_path"]).parent == repo.root
    finally:
        server.terminate()
        out, _err = server.communicate(timeout=10)
    assert out == b""  # servers never print to stdout, not even uvicorn's access log


async def test_quality_server_via_overnight_serve(repo: GitRepo) -> None:
    params = StdioServerParameters(
        command=sys.executable, args=["-m", "scheduler", "serve", "quality"], cwd=str(repo.root)
    )
    async with Client(params) as c:
        result = await c.call_tool("gate_status", {})
        assert result.structured_content["clean"] is True


def test_quality_server_start_up_imports_no_analysis_library() -> None:
    """bandit, radon and coverage load only in the gate's worker processes: start-up stays fast."""
    code = (
        "import sys; from mcp_servers.quality.server import build; build(); "
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'bandit', 'radon', 'coverage', 'git'}))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
