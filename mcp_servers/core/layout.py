"""The layout of a Python repository, read from its tracked files: where the code, the tests and the docs are.

`overnight init` writes `allowed_paths` and `gate.coverage.source` from it, so that a flat layout (`mypkg/`,
`tests/`) is not given the `src/` defaults (issue 11, item 2).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

from pydantic import BaseModel, Field

from .config import ALLOWED_PATHS

Style = Literal["src", "flat", "unknown"]
TEST_DIRS = ("tests", "test", "testing")
DOC_DIRS = ("docs", "doc")
# top-level modules that are tooling, not the project's code
_NOT_CODE = {"setup.py", "conftest.py", "noxfile.py", "fabfile.py", "tasks.py", "manage.py", "dodo.py"}
_NOT_PACKAGES = {*TEST_DIRS, *DOC_DIRS, "examples", "example", "scripts", "tools", "benchmarks", "bench", "build",
                 "dist", "site-packages"}  # fmt: skip


class Layout(BaseModel):
    """Where things are, relative to the repository root."""

    style: Style
    packages: list[str] = Field(default_factory=list, description="package folders (`src/pkg`, `pkg`)")
    modules: list[str] = Field(default_factory=list, description="single-file modules at the top (`pkg.py`)")
    tests: list[str] = Field(default_factory=list, description="test folders (`tests`, `pkg/tests`)")
    docs: list[str] = Field(default_factory=list, description="documentation folders")

    @property
    def allowed_paths(self) -> list[str]:
        """What agents may change: the code, the tests, the docs (the defaults when nothing was found)."""
        if self.style == "unknown":
            return list(ALLOWED_PATHS)
        code = ["src/**"] if self.style == "src" else [f"{p}/**" for p in self.packages]
        outside = [f"{t}/**" for t in self.tests if not any(t.startswith(p + "/") for p in self.packages)]
        modules = [] if self.style == "src" else self.modules
        return [*code, *modules, *outside, *(f"{d}/**" for d in self.docs)]

    @property
    def coverage_source(self) -> list[str]:
        """What coverage.py measures: `src` for a src layout, else the packages and modules by name."""
        if self.style == "src":
            return ["src"]
        if self.style == "flat":
            return [*self.packages, *(m.removesuffix(".py") for m in self.modules)]
        return ["src"]

    @property
    def tests_inside(self) -> bool:
        """The tests live inside the package (`pkg/tests`), not beside it."""
        return bool(self.tests) and all(any(t.startswith(p + "/") for p in self.packages) for t in self.tests)

    def describe(self) -> str:
        where = ", ".join([*self.packages, *self.modules]) or "no package found"
        tests = ", ".join(self.tests) + (" (inside the package)" if self.tests_inside else "") or "none found"
        docs = ", ".join(self.docs) or "none"
        return f"{self.style} layout: code {where}; tests {tests}; docs {docs}"


def detect(files: Iterable[str]) -> Layout:
    """The layout of a tree given its file paths (POSIX, relative to the root)."""
    paths = [f for f in files if not any(part.startswith(".") for part in f.split("/")[:-1])]
    # a folder of Python files under src/ is a package, with or without __init__.py (namespace packages)
    src_packages = sorted({"/".join(f.split("/")[:2]) for f in paths
                           if f.startswith("src/") and f.count("/") >= 2 and f.endswith(".py")
                           and not f.split("/")[1].endswith(".egg-info")})  # fmt: skip
    src_modules = sorted({f for f in paths if f.startswith("src/") and f.count("/") == 1 and f.endswith(".py")})
    top = {f.split("/")[0] for f in paths if "/" in f}
    tests = [t for t in TEST_DIRS if t in top]
    docs = [d for d in DOC_DIRS if d in top]
    if src_packages or src_modules:
        style: Style = "src"
        packages, modules = src_packages, src_modules
    else:
        packages = sorted({f.split("/")[0] for f in paths if f.count("/") == 1 and f.endswith("/__init__.py")}
                          - _NOT_PACKAGES)  # fmt: skip
        modules = sorted(f for f in paths if "/" not in f and f.endswith(".py") and f not in _NOT_CODE
                         and not f.startswith("test_") and not f.endswith("_test.py"))  # fmt: skip
        style = "flat" if packages or modules else "unknown"
    inside = sorted({f.rsplit("/", 1)[0] for f in paths for p in packages
                     if f.startswith(p + "/") and f.rsplit("/", 2)[-2] in TEST_DIRS})  # fmt: skip
    return Layout(style=style, packages=packages, modules=modules, tests=tests + _outermost(inside), docs=docs)


def _outermost(folders: list[str]) -> list[str]:
    kept: list[str] = []
    for folder in sorted(folders):
        if not any(folder.startswith(k + "/") for k in kept):
            kept.append(folder)
    return kept
