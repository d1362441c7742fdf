"""Change size in bytes and Python statements: packed code counts in full, ordinary edits do not overcount."""

from __future__ import annotations

import pytest

from mcp_servers.core import changes as ch
from mcp_servers.core import size
from mcp_servers.core.config import Policy
from mcp_servers.core.policy import check_changes
from mcp_servers.core.workspace import Workspace

from ..conftest import GitRepo


def _numbered(text: str, numbers: list[int]) -> list[tuple[int, str]]:
    lines = text.split("\n")
    return [(n, lines[n - 1]) for n in numbers]


@pytest.mark.parametrize(
    ("source", "added", "expected"),
    [
        pytest.param("a = 1\nb = 2\n", [1, 2], 2, id="one-per-line"),
        pytest.param("a=1;b=2;c=3\n", [1], 3, id="semicolons"),
        pytest.param("if a: b = 1\n", [1], 2, id="one-liner-compound"),
        pytest.param("x = f(\n    1,\n    2,\n)\n", [3], 0, id="edit-inside-a-multi-line-statement"),
        pytest.param("def f():\n    return 1\n", [2], 1, id="body-line-only"),
        pytest.param("a = 1\rb = 2\rc = 3\n", [1], 3, id="lone-cr-is-a-python-line-break"),
        pytest.param("a = 1\r\nb = 2\r\n", [2], 1, id="crlf-is-one-break"),
        pytest.param("def (:\nx=1;y=2;;z=3\n", [2], 3, id="does-not-parse"),
    ],
)
def test_size_statements_on_added_lines(source: str, added: list[int], expected: int) -> None:
    assert size.statements_on(source.encode(), _numbered(source, added)) == expected


def test_size_limits_follow_the_line_limit_unless_set() -> None:
    assert (Policy().byte_limit, Policy().statement_limit) == (3840, 30)
    assert (Policy(max_changed_lines=100).byte_limit, Policy(max_changed_lines=100).statement_limit) == (12800, 100)
    explicit = Policy(max_changed_bytes=1000, max_changed_statements=5)
    assert (explicit.byte_limit, explicit.statement_limit) == (1000, 5)


def test_size_counts_bytes_and_statements_of_a_real_change(repo: GitRepo) -> None:
    repo.append("src/app/calc.py", "\n\ndef sub(a, b):\n    return a - b\n")
    repo.write("docs/notes.md", "é\n")
    ws = Workspace.open(repo.root)
    changes = ch.collect(ws.repo, "HEAD", ws.repo.worktree_tree())
    assert size.added_statements(ws.repo, changes) == 2
    assert size.added_bytes(changes) == len(b"\n\ndef sub(a, b):\n    return a - b\n") + len("é\n".encode())


def test_size_statement_limit_names_the_setting(repo: GitRepo) -> None:
    repo.write("src/app/packed.py", "x=1;" * 31 + "\n")
    ws = Workspace.open(repo.root)
    report = check_changes(ws.repo, ws.settings)
    assert [v.rule for v in report.violations] == ["too-large-statements"]
    assert "adds 31 Python statements in 1 lines" in report.violations[0].message
    assert "policy.max_changed_statements" in report.violations[0].message
