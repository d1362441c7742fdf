"""The quality gate on real repositories: real git, real pytest under coverage, real radon and bandit."""

from __future__ import annotations

from mcp_servers.core.gate import run_gate
from mcp_servers.core.workspace import Workspace

from ..conftest import GitRepo

ADD_SUB = "\n\ndef sub(a, b):\n    return a - b\n"
TEST_SUB = "\n\ndef test_sub():\n    from app.calc import sub\n\n    assert sub(3, 1) == 2\n"


def test_gate_passes_a_tested_change_and_signs_a_receipt(repo: GitRepo) -> None:
    repo.append("src/app/calc.py", ADD_SUB)
    repo.append("tests/test_calc.py", TEST_SUB)
    report = run_gate(Workspace.open(repo.root))
    assert report.passed, report.summary
    assert report.receipt is not None and report.receipt.tree == report.tree
    assert [c.name for c in report.checks] == ["safety", "tests", "coverage", "diff-coverage", "complexity", "security"]
    assert repo.index_tree() == report.tree  # the work was staged: the tree is what is in the index
