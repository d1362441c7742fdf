"""Coverage exclusions matched as coverage.py matches them, with the base tree's configuration.

The cases marked "got through" passed the earlier check (`pragma:\\s*no\\s*(cover|branch)` on added lines).
"""

from __future__ import annotations

import pytest
from coverage.config import DEFAULT_EXCLUDE

from mcp_servers.core import changes as ch
from mcp_servers.core.gate import exclusions, run_gate
from mcp_servers.core.workspace import Workspace

from ..conftest import GitRepo

HELPER = "def debug():  # pragma: no cover\n    print('debug')\n\n\ndef other():\n    return 1\n"


@pytest.mark.parametrize(
    ("source", "hidden"),
    [
        pytest.param("def f(a):  # pragma: no cover\n    return a\n", ["return a"], id="pragma"),
        pytest.param("def f(a):  # pragma no cover\n    return a\n", ["return a"], id="no-colon-got-through"),
        pytest.param("x = 1\nif x:  # pragma nocover\n    y = 2\n", ["y = 2"], id="nocover-got-through"),
        pytest.param("def f(a):  # PRAGMA NO COVER\n    return a\n", ["return a"], id="upper-case-got-through"),
        pytest.param(
            "TYPE_CHECKING = True\nif TYPE_CHECKING:\n    launch()\n", ["launch()"], id="type-checking-true-got-through"
        ),
        pytest.param("s = '# pragma: no cover'; run()\n", ["s = '# pragma: no cover'; run()"], id="inside-a-string"),
        pytest.param("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import os\n", [], id="type-checking"),
        pytest.param("class P:\n    def f(self) -> int: ...\n", [], id="protocol-stub"),
        pytest.param("import os  # pragma: no cover\n", [], id="import-hides-nothing"),
        pytest.param("def f():\n    raise NotImplementedError  # pragma: no cover\n", [], id="raise"),
        pytest.param("def f(a):\n    return a  # pragma: cover me\n", [], id="not-an-exclusion"),
    ],
)
def test_exclusions_new_file(source: str, hidden: list[str]) -> None:
    assert [h.text for h in exclusions.hidden_statements("", source, list(DEFAULT_EXCLUDE))] == hidden


def test_exclusions_base_pragma_with_an_edit_elsewhere_hides_nothing_new() -> None:
    new = HELPER + "\n\ndef twice(x):\n    return 2 * x\n"
    assert exclusions.hidden_statements(HELPER, new, list(DEFAULT_EXCLUDE)) == []


def test_exclusions_code_added_into_an_excluded_block_got_through() -> None:
    new = HELPER.replace("print('debug')", "print('debug')\n    launch()")
    assert [(h.line, h.text) for h in exclusions.hidden_statements(HELPER, new, list(DEFAULT_EXCLUDE))] == [
        (3, "launch()")
    ]


@pytest.mark.parametrize(
    ("name", "text"),
    [
        pytest.param(".coveragerc", "[report]\nexclude_also =\n    UNTESTED\n", id="coveragerc"),
        pytest.param("setup.cfg", "[coverage:report]\nexclude_also =\n    UNTESTED\n", id="setup-cfg"),
        pytest.param("tox.ini", "[coverage:report]\nexclude_also =\n    UNTESTED\n", id="tox-ini"),
    ],
)
def test_exclusions_project_patterns_come_from_the_base(repo: GitRepo, name: str, text: str) -> None:
    repo.write(name, text)
    repo.commit("a person configures coverage")
    repo.write(".coveragerc", "[report]\nexclude_also =\n    def \n")  # the agent's own edit: not read
    repo.write("src/app/tool.py", "def tool(a):  # UNTESTED\n    return a\n")
    ws = Workspace.open(repo.root)
    rules = exclusions.read_rules(ws.repo, "HEAD")
    assert "UNTESTED" in rules.exclude and "def " not in rules.exclude
    assert rules.exclude[: len(DEFAULT_EXCLUDE)] == list(DEFAULT_EXCLUDE)
    changes = ch.collect(ws.repo, "HEAD", ws.repo.worktree_tree())
    tool = [f for f in changes.files if f.path == "src/app/tool.py"]
    found = list(exclusions.hidden(ws.repo, tool, rules))
    assert [(h.path, h.line, h.text) for h in found] == [("src/app/tool.py", 2, "return a")]


def test_exclusions_pyproject_patterns_and_partial_branches(repo: GitRepo) -> None:
    repo.append("pyproject.toml", '\n[tool.coverage.report]\npartial_also = ["# one-way"]\n')
    repo.commit("a person configures coverage")
    repo.write("src/app/flag.py", "def f(a):\n    if a:  # pragma no branch\n        a += 1\n    while a:  # one-way\n"
               "        a -= 1\n    while True:\n        return a\n")  # fmt: skip
    ws = Workspace.open(repo.root)
    rules = exclusions.read_rules(ws.repo, "HEAD")
    changes = ch.collect(ws.repo, "HEAD", ws.repo.worktree_tree())
    found = list(exclusions.hidden(ws.repo, changes.files, rules))
    assert [h.line for h in found] == [2, 4]  # `while True:` is one of coverage.py's ordinary always-partial lines
    assert all("branches" in h.why for h in found)


def test_exclusions_broken_base_configuration_falls_back_to_the_defaults(repo: GitRepo) -> None:
    repo.write(".coveragerc", "[report\nexclude_also = x\n")
    repo.commit("a broken configuration")
    ws = Workspace.open(repo.root)
    assert exclusions.read_rules(ws.repo, "HEAD").exclude == list(DEFAULT_EXCLUDE)


def test_gate_coverage_exclusion_without_a_colon_fails(repo: GitRepo) -> None:
    repo.append("src/app/calc.py", "\n\ndef hidden(a):  # pragma no cover\n    return a\n")
    report = run_gate(Workspace.open(repo.root))
    check = next(c for c in report.checks if c.name == "diff-coverage")
    assert check.status == "failed" and "1 coverage exclusion" in check.summary
    assert [(f.path, f.line) for f in check.findings] == [("src/app/calc.py", 6)]
    assert "`return a` is left out of coverage" in check.findings[0].message


@pytest.mark.parametrize(
    ("omit", "path", "measured"),
    [
        pytest.param(["tests/*"], "tests/test_calc.py", False, id="relative"),
        pytest.param(["*/tests/*"], "tests/test_calc.py", False, id="wildcard-at-the-root"),
        pytest.param(["*/tests/*"], "pkg/tests/test_x.py", False, id="wildcard-nested"),
        pytest.param(["pkg/tests/test*"], "pkg/tests/test_x.py", False, id="tests-in-package"),
        pytest.param(["pkg/tests/test*"], "pkg/core.py", True, id="code-is-measured"),
        pytest.param([], "tests/test_calc.py", True, id="nothing-omitted"),
    ],
)
def test_exclusions_omitted_files_are_not_measured(omit: list[str], path: str, measured: bool) -> None:
    rules = exclusions.Rules(exclude=[], partial=[], omit=omit)
    assert rules.measures(path) is measured
    assert exclusions.Rules(exclude=[], partial=[], include=["src/*"]).measures(path) is path.startswith("src/")


def test_gate_changed_lines_of_a_file_the_project_omits_from_coverage_are_not_counted_as_not_run(repo: GitRepo) -> None:
    # tests inside the measured source, omitted by the project's own coverage configuration (as toolz does): their
    # lines are never measured, so they are never "not run"; the code's lines still count
    repo.write("overnight.toml", '[gate.coverage]\ncompare_base = false\nsource = ["src"]\n')
    repo.write("src/app/test_inside.py", "from app.calc import add\n\n\ndef test_inside():\n"
               "    assert add(1, 2) == 3\n")  # fmt: skip
    repo.append("pyproject.toml", '\n[tool.coverage.run]\nomit = ["src/app/test_*"]\n')
    repo.commit("tests inside the package, omitted from coverage by the project")
    repo.append("src/app/calc.py", "\n\ndef twice(a):\n    return 2 * a\n")
    repo.append("src/app/test_inside.py", "\n\ndef test_twice():\n    from app.calc import twice\n\n"
                "    assert twice(2) == 4\n")  # fmt: skip
    report = run_gate(Workspace.open(repo.root))
    check = next(c for c in report.checks if c.name == "diff-coverage")
    assert check.passed, check
    assert "2 of 2 changed statements covered" in check.summary, check.summary
    # the code's lines still count: an untested function fails
    repo.append("src/app/calc.py", "\n\ndef untested(a):\n    return a - 1\n")
    report = run_gate(Workspace.open(repo.root))
    check = next(c for c in report.checks if c.name == "diff-coverage")
    assert not check.passed and "src/app/calc.py" in {f.path for f in check.findings}, check
