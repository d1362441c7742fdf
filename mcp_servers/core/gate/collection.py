"""Which files pytest collects as tests, read from the base tree's own pytest configuration.

pytest picks test files by name (`python_files`, by default `test_*.py` and `*_test.py`), under the paths given on
its command line or, without any, under `testpaths`, and does not descend into `norecursedirs`. The configuration is
read as pytest finds it at the repository root: the first of `pytest.toml`, `.pytest.toml`, `pytest.ini`,
`.pytest.ini`, `pyproject.toml` (`[tool.pytest]` or `[tool.pytest.ini_options]`), `tox.ini` (`[pytest]`) and
`setup.cfg` (`[tool:pytest]`) that configures pytest. A configuration in a subfolder, a `-c` file, and a
conftest's `collect_ignore` are not read: a file they would leave out is run anyway, which fails closed.
"""

from __future__ import annotations

import configparser
import posixpath
import re
import shlex
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass
from fnmatch import fnmatchcase

from ..git import Repo

_CONFIGS = ("pytest.toml", ".pytest.toml", "pytest.ini", ".pytest.ini", "pyproject.toml", "tox.ini", "setup.cfg")
_ALWAYS = {"pytest.toml", ".pytest.toml", "pytest.ini", ".pytest.ini"}  # these configure pytest even when empty
_NORECURSE = ("*.egg", ".*", "_darcs", "build", "CVS", "dist", "node_modules", "venv", "{arch}")
TEST_DIRS = frozenset({"tests", "test", "testing"})
_WILDCARD = re.compile(r"[*?\[]")
# pytest options (its own and common plugins') that take their value as the next argument
# fmt: off
_VALUED = frozenset({
    "-k", "-m", "-p", "-c", "-o", "-W", "-r", "-n", "--rootdir", "--ignore", "--ignore-glob", "--deselect",
    "--confcutdir", "--basetemp", "--junitxml", "--junit-xml", "--junit-prefix", "--tb", "--maxfail", "--durations",
    "--durations-min", "--import-mode", "--log-level", "--log-format", "--log-date-format", "--log-file",
    "--log-file-level", "--log-file-mode", "--log-file-format", "--log-file-date-format", "--log-cli-level",
    "--log-cli-format", "--log-cli-date-format", "--capture", "--color", "--code-highlight", "--override-ini",
    "--config-file", "--doctest-glob", "--doctest-report", "--show-capture", "--assert", "--pdbcls",
    "--pythonwarnings", "--verbosity", "--cov", "--cov-report", "--cov-config", "--cov-fail-under", "--numprocesses",
    "--maxprocesses", "--dist", "--tx", "--timeout", "--reruns", "--report-log", "--lfnf",
    "--last-failed-no-failures"
})
# fmt: on


@dataclass(frozen=True)
class Rules:
    """How pytest picks test files in one tree."""

    python_files: tuple[str, ...] = ("test_*.py", "*_test.py")
    testpaths: tuple[str, ...] = ()
    norecursedirs: tuple[str, ...] = _NORECURSE

    def is_test_file(self, path: str) -> bool:
        """A file pytest would collect by its name (`python_files`, matched as pytest's `fnmatch_ex` does)."""
        name = path.rsplit("/", 1)[-1]
        return any(fnmatchcase("/" + path, "*/" + p) if "/" in p else fnmatchcase(name, p) for p in self.python_files)

    def test_side(self, path: str) -> bool:
        """A test file, or any file in a test folder (helpers, `__init__.py`, data the tests read)."""
        return self.is_test_file(path) or not TEST_DIRS.isdisjoint(path.split("/")[:-1])

    def collected(self, files: Iterable[str], roots: list[str]) -> list[str]:
        """The test files among `files` that pytest collects from `roots` (none: `testpaths`, else everything)."""
        starts = roots or list(self.testpaths) or [""]
        found = []
        for path in sorted(files):
            if not path.endswith(".py") or not self.is_test_file(path):
                continue
            depth = next((d for d in (_depth(path, r) for r in starts) if d is not None), None)
            if depth is not None and not any(
                fnmatchcase(part, p) for part in path.split("/")[depth:-1] for p in self.norecursedirs
            ):
                found.append(path)
        return found


def _depth(path: str, root: str) -> int | None:
    """How many leading parts of `path` the collection root `root` (a glob in `testpaths`) covers, or None."""
    root = posixpath.normpath(root.removeprefix("./")).strip("/")
    if root in {"", "."}:
        return 0
    parts = path.split("/")
    if not _WILDCARD.search(root):
        return root.count("/") + 1 if path == root or path.startswith(root + "/") else None
    return next((n for n in range(1, len(parts) + 1) if fnmatchcase("/".join(parts[:n]), root)), None)


def read(repo: Repo, commit: str) -> Rules:
    """The collection rules the pytest configuration at the root of `commit` sets (pytest's defaults without)."""
    for name in _CONFIGS:
        data = repo.show_file(commit, name)
        section = _section(name, data) if data is not None else None
        if section is None:
            continue
        defaults = Rules()
        return Rules(
            python_files=_words(section.get("python_files")) or defaults.python_files,
            testpaths=_words(section.get("testpaths")),
            norecursedirs=_words(section.get("norecursedirs")) or defaults.norecursedirs,
        )
    return Rules()


def _section(name: str, data: bytes) -> dict[str, object] | None:
    """The pytest settings in one configuration file, or None when it does not configure pytest."""
    text = data.decode("utf-8", "replace")
    if name.endswith(".toml"):
        try:
            doc = tomllib.loads(text)
        except tomllib.TOMLDecodeError:
            return None
        if name != "pyproject.toml":
            table = doc.get("pytest", {})
        else:
            tool = doc.get("tool", {}).get("pytest")
            table = tool.get("ini_options", tool) if isinstance(tool, dict) else None
        return table if isinstance(table, dict) else None
    parser = configparser.ConfigParser(interpolation=None)
    try:
        parser.read_string(text)
    except configparser.Error:
        return None
    key = "tool:pytest" if name == "setup.cfg" else "pytest"
    if parser.has_section(key):
        return dict(parser[key])
    return {} if name in _ALWAYS else None


def _words(value: object) -> tuple[str, ...]:
    if isinstance(value, list):
        return tuple(str(v) for v in value)
    if not isinstance(value, str):
        return ()
    try:
        return tuple(shlex.split(value))
    except ValueError:
        return tuple(value.split())


def split_paths(args: list[str]) -> tuple[list[str], list[str]]:
    """pytest's arguments split into its options and the paths it was given (without `::` test names).

    Every argument that is neither an option nor an option's value counts as a path: it is left out, so that
    pytest collects no folder or file but those it is then given."""
    options: list[str] = []
    paths: list[str] = []
    takes_value = only_paths = False
    for arg in args:
        if arg == "--" and not takes_value and not only_paths:
            only_paths = True
        elif not only_paths and (takes_value or arg.startswith("-")):
            options.append(arg)
            takes_value = not takes_value and arg in _VALUED
        else:
            paths.append(arg.split("::")[0])
    return options, paths
