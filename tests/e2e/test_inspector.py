"""The MCP Inspector's CLI, a client nobody on the project wrote, drives the quality server over stdio.

`mcp-inspector --cli <python> -m mcp_servers.quality -- <inspector options>`: under `--cli`, everything before
`--` is the server command and everything after it is the Inspector's. Exit codes (v2): 0 ok, 1 usage or
protocol error, 4 unreachable, 5 the tool returned `isError: true` (or does not exist).
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from ..conftest import QUALITY_TOOLS, make_repo
from .conftest import CLIENT_TIMEOUT

pytestmark = pytest.mark.e2e

# Passed to the server explicitly: the Inspector's stdio client hands a server only a few of its variables.
_FORWARDED = ("OVERNIGHT_HOME", "GIT_CONFIG_GLOBAL", "GIT_CONFIG_NOSYSTEM")


@dataclass(frozen=True)
class InspectorRun:
    returncode: int
    stdout: str
    stderr: str

    @property
    def result(self) -> dict[str, Any]:
        """The `result` of the one JSON object `--format json` prints on stdout."""
        try:
            parsed: dict[str, Any] = json.loads(self.stdout)
        except json.JSONDecodeError as e:
            raise AssertionError(f"the Inspector printed no JSON ({e}):\n{self.stdout}\n{self.stderr}") from e
        return parsed["result"]  # type: ignore[no-any-return]


def inspect(inspector: Path, repo: Path, env: dict[str, str], *args: str) -> InspectorRun:
    server = [sys.executable, "-m", "mcp_servers.quality"]
    forwarded = [arg for k in _FORWARDED if k in env for arg in ("-e", f"{k}={env[k]}")]
    argv = [str(inspector), "--cli", *server, "--", "--cwd", str(repo), *forwarded, *args, "--format", "json"]
    # Started from outside the repository: only `--cwd` can point the server at it.
    result = subprocess.run(
        argv, check=False, cwd=env["HOME"], env=env, capture_output=True, text=True, timeout=CLIENT_TIMEOUT
    )
    return InspectorRun(result.returncode, result.stdout, result.stderr)


def test_validate_changes_reports_the_protected_path_and_the_changed_files(
    tmp_path: Path,
    inspector_bin: Path,
    client_env: dict[str, str],
) -> None:
    repo = make_repo(tmp_path / "repo")
    repo.write("src/app/x.py", "def x():\n    return 1\n")
    repo.append(".env", "SECRET_KEY=changed-by-an-agent\n")

    call = ("--method", "tools/call", "--tool-name", "validate_changes")
    run = inspect(inspector_bin, repo.root, client_env, *call)

    assert run.returncode == 0, f"exit {run.returncode}\n{run.stdout}\n{run.stderr}"
    assert run.result.get("isError") is False, run.stdout
    report = run.result["structuredContent"]
    assert report["safe"] is False, report
    assert any(v["rule"] == "protected-path" and v["path"] == ".env" for v in report["violations"]), report
    files = {f["path"]: f["status"] for f in report["files"]}
    assert files == {".env": "modified", "src/app/x.py": "added"}, report
    assert report["base"] == repo.head()


def test_tools_list_has_all_seven_tools_with_output_schemas(
    tmp_path: Path,
    inspector_bin: Path,
    client_env: dict[str, str],
) -> None:
    repo = make_repo(tmp_path / "repo")

    run = inspect(inspector_bin, repo.root, client_env, "--method", "tools/list")

    assert run.returncode == 0, f"exit {run.returncode}\n{run.stdout}\n{run.stderr}"
    tools = {tool["name"]: tool for tool in run.result["tools"]}
    assert tools.keys() >= QUALITY_TOOLS, f"missing: {sorted(QUALITY_TOOLS - tools.keys())}"
    for name in QUALITY_TOOLS:
        schema = tools[name].get("outputSchema")
        assert isinstance(schema, dict) and schema.get("type") == "object", f"{name}: outputSchema {schema!r}"


def test_a_tool_error_exits_5_with_our_actionable_message(
    tmp_path: Path,
    inspector_bin: Path,
    client_env: dict[str, str],
) -> None:
    repo = make_repo(tmp_path / "repo")

    call = ("--method", "tools/call", "--tool-name", "validate_changes", "--tool-arg", "base=no-such-ref")
    run = inspect(inspector_bin, repo.root, client_env, *call)

    assert run.returncode == 5, f"exit {run.returncode}\n{run.stdout}\n{run.stderr}"
    error = json.loads(run.stderr.strip().splitlines()[-1])["error"]
    assert error["code"] == "tool_is_error", error
    assert run.result["isError"] is True
    text = " ".join(part.get("text", "") for part in run.result["content"])
    assert "'no-such-ref' does not name a commit" in text, text
    assert "git log --oneline" in text, text  # says how to find a ref that does
