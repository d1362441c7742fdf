"""Detection of a repository's layout and of the project's own environment (issue 11, item 2)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from mcp_servers.core import layout, project_env
from mcp_servers.core.errors import ConfigError

from ..support.project_venv import make_venv


def test_layout_src() -> None:
    found = layout.detect(["src/pkg/__init__.py", "src/pkg/core.py", "tests/test_core.py", "docs/index.md",
                           "pyproject.toml"])  # fmt: skip
    assert found.style == "src" and found.packages == ["src/pkg"] and found.tests == ["tests"]
    assert found.allowed_paths == ["src/**", "tests/**", "docs/**"]
    assert found.coverage_source == ["src"]


def test_layout_src_namespace_package_without_init() -> None:
    found = layout.detect(["src/ns/part/mod.py", "tests/test_mod.py"])
    assert found.style == "src" and found.packages == ["src/ns"]


def test_layout_flat_with_test_and_doc_folders() -> None:
    found = layout.detect(["mypkg/__init__.py", "mypkg/a.py", "test/test_a.py", "doc/conf.py", "setup.py",
                           "conftest.py", "docs_build.txt"])  # fmt: skip
    assert found.style == "flat" and found.packages == ["mypkg"] and found.modules == []
    assert found.allowed_paths == ["mypkg/**", "test/**", "doc/**"]
    assert found.coverage_source == ["mypkg"]


def test_layout_flat_packages_and_a_single_module_at_the_root() -> None:
    found = layout.detect(["alpha/__init__.py", "beta/__init__.py", "gamma.py", "testing/test_x.py", "test_g.py",
                           "examples/__init__.py", ".github/x/__init__.py"])  # fmt: skip
    assert found.packages == ["alpha", "beta"] and found.modules == ["gamma.py"]
    assert found.allowed_paths == ["alpha/**", "beta/**", "gamma.py", "testing/**"]
    assert found.coverage_source == ["alpha", "beta", "gamma"]


def test_layout_tests_inside_the_package() -> None:
    found = layout.detect(["toolz/__init__.py", "toolz/tests/test_a.py", "toolz/sandbox/__init__.py",
                           "toolz/sandbox/tests/test_b.py", "toolz/tests/deep/tests/test_c.py"])  # fmt: skip
    assert found.tests == ["toolz/sandbox/tests", "toolz/tests"] and found.tests_inside
    assert found.allowed_paths == ["toolz/**"]
    assert "(inside the package)" in found.describe()


def test_layout_unknown_keeps_the_defaults() -> None:
    found = layout.detect(["README.md", "Makefile", "scripts/run.sh"])
    assert found.style == "unknown"
    assert found.allowed_paths == ["src/**", "tests/**", "docs/**"]


def test_project_env_finds_a_venv_in_the_repository(tmp_path: Path) -> None:
    make_venv(tmp_path / "venv", coverage=False)
    env = project_env.detect(tmp_path, {})
    assert env.kind == "venv" and env.python == "venv/bin/python" and "`venv`" in env.how


def test_project_env_prefers_uv_and_its_project_environment(tmp_path: Path) -> None:
    (tmp_path / "uv.lock").write_text("version = 1\n")
    make_venv(tmp_path / ".venv")
    make_venv(tmp_path / "envs" / "uv")
    assert project_env.detect(tmp_path, {}).kind == "uv"
    env = project_env.detect(tmp_path, {"UV_PROJECT_ENVIRONMENT": "envs/uv"})
    assert env.python == "envs/uv/bin/python" and "UV_PROJECT_ENVIRONMENT" in env.how


def test_project_env_finds_poetry_in_its_virtualenvs_folder_without_poetry(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    root.mkdir()
    (root / "pyproject.toml").write_text('[tool.poetry]\nname = "My_Lib"\n')
    home = tmp_path / "home"
    make_venv(home / ".cache/pypoetry/virtualenvs/my-lib-AbCd1234-py3.11")
    env = project_env.detect(root, {"HOME": str(home), "PATH": str(tmp_path / "nobin")})
    assert env.kind == "poetry" and env.python.startswith(str(home)) and os.path.isabs(env.python)


def test_project_env_finds_tox_newest_python_first(tmp_path: Path) -> None:
    (tmp_path / "tox.ini").write_text("[tox]\n")
    make_venv(tmp_path / ".tox" / "lint")
    make_venv(tmp_path / ".tox" / "py39")
    make_venv(tmp_path / ".tox" / "py312")
    env = project_env.detect(tmp_path, {})
    assert env.kind == "tox" and env.python == ".tox/py312/bin/python"


def test_project_env_active_virtualenv_unless_it_is_overnights_own(tmp_path: Path) -> None:
    make_venv(tmp_path / "elsewhere")
    root = tmp_path / "repo"
    root.mkdir()
    active = {"VIRTUAL_ENV": str(tmp_path / "elsewhere")}
    assert project_env.detect(root, active).kind == "virtualenv"
    assert project_env.detect(root, active, own_prefix=str(tmp_path / "elsewhere")).kind == "none"


def test_project_env_interpreter_path_is_relative_to_the_checkout_and_never_resolved(tmp_path: Path) -> None:
    python = make_venv(tmp_path / ".venv")
    assert project_env.interpreter_path(".venv/bin/python", tmp_path) == str(python)
    assert Path(project_env.interpreter_path(".venv/bin/python", tmp_path)).is_symlink()
    assert project_env.interpreter_path("", tmp_path) == ""


def test_project_env_probe_says_what_the_interpreter_has(tmp_path: Path) -> None:
    with_all = project_env.probe(str(make_venv(tmp_path / "a")))
    assert with_all.problem == "" and with_all.has_pytest and with_all.has_coverage
    assert with_all.version == ".".join(map(str, sys.version_info[:3]))
    bare = project_env.probe(str(make_venv(tmp_path / "b", coverage=False)))
    assert bare.has_pytest and not bare.has_coverage
    assert "does not exist" in project_env.probe(str(tmp_path / "nope/bin/python")).problem


def test_project_env_exposes_the_venv_and_its_base_interpreter(tmp_path: Path) -> None:
    python = make_venv(tmp_path / ".venv")
    shown = project_env.exposed(str(python), (tmp_path / "home",))
    assert tmp_path / ".venv" in shown
    assert Path(sys.base_prefix).resolve() in {p.resolve() for p in shown}


def test_project_env_refuses_to_show_a_folder_holding_the_home(tmp_path: Path) -> None:
    home = tmp_path / "home"
    python = make_venv(home / "env")
    (home / "env" / "pyvenv.cfg").write_text(f"home = {home}/bin\n")  # a base "prefix" that is the home itself
    (home / "bin").mkdir()
    with pytest.raises(ConfigError, match="holds"):
        project_env.exposed(str(python), (home,))


def _tool_on_path(folder: Path, name: str, prints: Path) -> str:
    """A fake `poetry`/`hatch` that answers where the environment is, as the real one does."""
    folder.mkdir(exist_ok=True)
    script = folder / name
    script.write_text(f"#!/bin/sh\necho '{prints}'\n")
    script.chmod(0o755)
    return f"{folder}{os.pathsep}{os.environ.get('PATH', '')}"


def test_project_env_asks_poetry_and_hatch_where_their_environment_is(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    root.mkdir()
    make_venv(tmp_path / "envs" / "poetry-env")
    make_venv(tmp_path / "envs" / "hatch-env")
    (root / "poetry.lock").write_text("")
    path = _tool_on_path(tmp_path / "bin", "poetry", tmp_path / "envs" / "poetry-env")
    env = project_env.detect(root, {"PATH": path})
    assert env.kind == "poetry" and env.python == str(tmp_path / "envs/poetry-env/bin/python")
    (root / "poetry.lock").unlink()
    (root / "hatch.toml").write_text("")
    path = _tool_on_path(tmp_path / "bin", "hatch", tmp_path / "envs" / "hatch-env")
    env = project_env.detect(root, {"PATH": path})
    assert env.kind == "hatch" and "`hatch env find`" in env.how
    # an answer that names no environment is not taken for one
    path = _tool_on_path(tmp_path / "bin", "hatch", tmp_path / "envs" / "nothing-there")
    assert project_env.detect(root, {"PATH": path}).kind == "none"
