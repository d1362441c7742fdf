"""Code a change hides from coverage, found the way coverage.py itself finds it.

coverage.py leaves out every line matching one of its `exclude_lines` regexes, with the whole block when the
line opens one: its defaults (`# pragma: no cover` in all its spellings, `...` bodies, `if TYPE_CHECKING:`)
and a project's own `exclude_lines`/`exclude_also`. It also stops reporting missed branches of lines matching
`partial_branches`. Both lists are read from the configuration in the BASE tree of the change, with coverage.py's
own reader and search order, so an agent's edit of `.coveragerc` or `[tool.coverage]` changes nothing here.

A statement the change hides is one coverage.py would not measure in the new version of a file and that the base
did not already hide (compared by text, so moved code is not new). Imports, `pass`, docstrings, `...`, `raise`
and the header lines of blocks hide no logic, so `if TYPE_CHECKING:` imports and protocol stubs pass, while code
added under a pragma, into an already excluded block, or under `TYPE_CHECKING = True` does not.
"""

from __future__ import annotations

import ast
import re
import tempfile
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from coverage.config import CoverageConfig, config_files_to_try
from coverage.exceptions import CoverageException
from coverage.files import GlobMatcher
from coverage.misc import join_regex
from coverage.parser import PythonParser

from ..changes import FileChange
from ..git import Repo

_ROOT = "overnight-root"  # a folder name no pattern names: where the relative path is put to match `*/x/*`
_LINES = re.compile(r"\r\n|\r|\n")  # where Python's tokenizer ends lines (not str.splitlines)
# Statements that hide no logic when coverage leaves them out.
_INERT = (ast.Import, ast.ImportFrom, ast.Pass, ast.Global, ast.Nonlocal, ast.Raise)
_BLOCKS = (
    ast.FunctionDef,
    ast.AsyncFunctionDef,
    ast.ClassDef,
    ast.If,
    ast.For,
    ast.AsyncFor,
    ast.While,
    ast.With,
    ast.AsyncWith,
    ast.Try,
    ast.Match,
)


@dataclass(frozen=True)
class Rules:
    """The regexes coverage.py would use on the base tree: lines it excludes, lines whose branches it excuses."""

    exclude: list[str]
    partial: list[str]
    omit: list[str] = field(default_factory=list)  # files coverage.py does not measure at all ([run] omit)
    include: list[str] = field(default_factory=list)  # when set, the only files it measures ([run] include)

    def measures(self, path: str) -> bool:
        """Whether coverage.py measures the file at `path` (relative to the root) under this configuration.

        coverage.py matches these patterns against absolute paths, a relative pattern being made absolute at the
        root: both are tried here, the relative path for the one and a path under a root for the other."""
        for patterns, wanted in ((self.omit, False), (self.include, True)):
            if patterns:
                matcher = GlobMatcher(patterns, "omit" if not wanted else "include")
                if matcher.match(path) or matcher.match(f"/{_ROOT}/{path}"):
                    return wanted
                if wanted:
                    return False
        return True


@dataclass(frozen=True)
class Hidden:
    line: int
    text: str
    why: str
    path: str = ""


def read_rules(repo: Repo, base: str) -> Rules:
    """coverage.py's exclusion settings as the base tree configures them (its defaults when nothing does)."""
    config = CoverageConfig()
    with tempfile.TemporaryDirectory(prefix="overnight-coverage-") as tmp:
        for name, ours, _specified in config_files_to_try(True):
            data = repo.show_file(base, name) if not Path(name).is_absolute() else None
            if data is None:
                continue
            copy = Path(tmp) / Path(name).name  # the name decides the format (.toml or ini)
            copy.write_bytes(data)
            try:
                if config.from_file(str(copy), warn=lambda _msg: None, our_file=ours):
                    break
            except CoverageException:
                continue  # the test run reports a broken configuration; judge with what could be read
    config.post_process()
    return Rules(exclude=list(config.exclude_list), partial=list(config.partial_list),
                 omit=list(config.run_omit or []), include=list(config.run_include or []))  # fmt: skip


def hidden(repo: Repo, files: Sequence[FileChange], rules: Rules) -> Iterator[Hidden]:
    """Statements each changed Python file hides from coverage that its base version did not, and added lines
    that excuse branches (`# pragma: no branch`)."""
    if not files:
        return
    blobs = repo.read_blobs([oid for f in files for oid in (f.old_oid, f.new_oid)])
    partial = re.compile(join_regex(rules.partial)) if rules.partial else None
    for f in files:
        new = blobs.get(f.new_oid, b"").decode("utf-8", "replace")
        old = blobs.get(f.old_oid, b"").decode("utf-8", "replace")
        for h in hidden_statements(old, new, rules.exclude):
            yield Hidden(h.line, h.text, h.why, f.path)
        if partial:
            for number, text in f.added_lines:
                if partial.search(text):
                    yield Hidden(number, text.strip(), "excuses its missed branches from coverage", f.path)


def hidden_statements(old: str, new: str, exclude: list[str]) -> list[Hidden]:
    """Statements of `new` that coverage.py leaves out under `exclude` and `old` did not already leave out."""
    before = Counter(text for _, text in _left_out(old, exclude))
    found = []
    for number, text in _left_out(new, exclude):
        if before[text]:
            before[text] -= 1
        else:
            found.append(Hidden(number, text, "is left out of coverage by an exclusion"))
    return found


def _left_out(source: str, exclude: list[str]) -> list[tuple[int, str]]:
    """(line, text) of the statements coverage.py would not measure because of `exclude`, logic only."""
    if not source.strip() or not exclude:
        return []
    try:
        plain = PythonParser(text=source)
        plain.parse_source()
        judged = PythonParser(text=source, exclude=join_regex(exclude))
        judged.parse_source()
    except (CoverageException, SyntaxError, ValueError, RecursionError):
        return []  # code that does not parse fails the tests; nothing is measured either way
    lines = _LINES.split(source)
    logic = _logic_lines(source)
    return [
        (n, lines[n - 1].strip())
        for n in sorted(plain.statements - judged.statements)
        if n in logic and n <= len(lines)
    ]


def _logic_lines(source: str) -> set[int]:
    """Lines where a statement that does something starts (not an import, docstring, `...` or block header)."""
    found = set()
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.stmt) or isinstance(node, _INERT + _BLOCKS):
            continue
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):
            continue
        if isinstance(node, ast.AnnAssign) and node.value is None:
            continue
        found.add(node.lineno)
    return found
