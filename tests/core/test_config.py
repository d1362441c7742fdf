"""overnight.toml: defaults from the product's constraints, the generated template, and errors that say where."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

from mcp_servers.core import config
from mcp_servers.core.errors import ConfigError


def _load(tmp_path: Path, text: str) -> config.Settings:
    (tmp_path / "overnight.toml").write_text(text)
    return config.load(tmp_path)


def test_config_defaults_follow_the_product_constraints(tmp_path: Path) -> None:
    settings = config.load(tmp_path)  # no file: the defaults
    policy = settings.policy
    assert policy.allowed_paths == ["src/**", "tests/**", "docs/**"]
    assert policy.max_changed_lines == 30
    assert policy.min_alignment_score == 80
    assert policy.require_tests and not policy.allow_delete
    from mcp_servers.core.paths import Globs

    protected = Globs(policy.protected_paths, folded=True)
    for path in (".env", ".env.production", "config/.env", "deploy/key.pem", ".github/workflows/ci.yml",
                 ".gitlab-ci.yml", ".circleci/config.yml", "Jenkinsfile", "docker-compose.yml",
                 "docker-compose.override.yaml", "Dockerfile", "Dockerfile.dev", "Dockerfile-prod",
                 "requirements.txt", "requirements-dev.txt", "setup.py", "setup.cfg", "Pipfile", "Pipfile.lock",
                 "poetry.lock", "uv.lock", "package.json", "Cargo.lock", ".gitignore", "overnight.toml",
                 ".githooks/pre-commit", "app/migrations/0002_auto.py", "alembic/versions/1_x.py",
                 # agent instructions and test infrastructure, at any depth
                 "src/CLAUDE.local.md", "docs/AGENTS.md", "src/.cursorrules", "src/.cursor/rules/x.mdc",
                 "src/.github/copilot-instructions.md", ".github/instructions/py.instructions.md",
                 "tests/.codex/config.toml", "docs/.gemini/settings.json", "tests/unit/conftest.py",
                 "tests/pytest.ini", ".pytest.ini", "pytest.toml", "docs/tox.ini", "tests/.coveragerc",
                 ".coveragerc.toml", "src/sitecustomize.py", "src/usercustomize.py", "src/app/x.pth"):  # fmt: skip
        assert protected.match(path), path
    for path in ("src/app/dockerfile_parser.py", "src/app/environment.py", "src/app/requirements.py",
                 "tests/test_conftest.py", "src/app/pytest_plugin.py", "docs/claude-code.md",
                 "src/app/coverage_report.py", "src/app/path.py"):  # fmt: skip
        assert protected.match(path) is None, path
    assert settings.gate.test_command == ["python", "-m", "pytest", "-q"]


def test_config_template_parses_to_the_defaults_and_names_every_key() -> None:
    text = config.template()
    assert config.Settings.model_validate(tomllib.loads(text)) == config.Settings()
    for section in (
        config.Policy,
        config.Gate,
        config.Coverage,
        config.Complexity,
        config.Security,
        config.Plan,
        config.Notify,
        config.Limits,
        config.Ui,
    ):
        for name in section.model_fields:
            shown = f"# {name} = " in text or f".{name}]]" in text or f".{name}]\n" in text
            assert shown, f"{section.__name__}.{name} missing from template"


def test_config_template_uncommented_keys_are_valid(tmp_path: Path) -> None:
    """Every `# key = default` line of the template, uncommented, still loads to the defaults."""
    lines, in_table = [], False
    for line in config.template().splitlines():
        in_table = line.startswith("# [[") or (in_table and line.startswith("# "))
        if re.match(r"^# [a-z_]+ = [^\[]", line) and not in_table:  # single-line assignments
            lines.append(line[2:])
        elif not line.startswith("#"):
            lines.append(line)
    assert "max_changed_lines = 30" in lines
    assert _load(tmp_path, "\n".join(lines)) == config.Settings()


def test_config_string_command_is_split_like_a_shell(tmp_path: Path) -> None:
    settings = _load(
        tmp_path,
        "[gate]\ntest_command = \"python -m pytest -x 'tests/a b'\"\n"
        '[[gate.commands]]\nname = "ruff"\nrun = "ruff check src"\n',
    )
    assert settings.gate.test_command == ["python", "-m", "pytest", "-x", "tests/a b"]
    assert settings.gate.commands[0].run == ["ruff", "check", "src"]


def test_config_wrong_type_names_file_key_line_and_expectation(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as e:
        _load(tmp_path, '[policy]\nallowed_paths = ["src/**"]\n\nmax_changed_lines = "many"\n')
    message = str(e.value)
    assert "overnight.toml:4" in message
    assert "policy.max_changed_lines" in message
    assert "integer" in message and "'many'" in message


def test_config_unknown_key_is_an_error_with_its_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as e:
        _load(tmp_path, "[gate]\ntest_timeout_s = 10\n\n[gate.coverage]\nminimum = 90\n")
    assert "overnight.toml:5" in str(e.value)
    assert "gate.coverage.minimum" in str(e.value) and "unknown key" in str(e.value)


def test_config_out_of_range_value_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"overnight.toml:2: key `policy.min_alignment_score`"):
        _load(tmp_path, "[policy]\nmin_alignment_score = 120\n")


def test_config_bad_regex_in_forbidden_operation_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not a valid regular expression") as e:
        _load(
            tmp_path,
            '[[policy.extend_forbidden_operations]]\nid = "x"\npattern = "(unclosed"\nmessage = "m"\n',
        )
    assert "policy.extend_forbidden_operations.0.pattern" in str(e.value)
    assert "overnight.toml:3" in str(e.value)


def test_config_builtin_check_name_cannot_be_reused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="built-in check"):
        _load(tmp_path, '[[gate.commands]]\nname = "tests"\nrun = "true"\n')


def test_config_syntax_error_reports_the_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"not valid TOML: .*line 2"):
        _load(tmp_path, "[policy]\nallow_delete = yes please\n")


def test_config_not_utf8_is_refused(tmp_path: Path) -> None:
    (tmp_path / "overnight.toml").write_bytes(b"[policy]\n# caf\xe9\n")
    with pytest.raises(ConfigError, match="not UTF-8"):
        config.load(tmp_path)


def test_config_policy_hash_changes_with_any_gate_or_policy_setting(tmp_path: Path) -> None:
    base = config.Settings().policy_hash()
    assert _load(tmp_path, "[policy]\nmax_changed_lines = 31\n").policy_hash() != base
    assert _load(tmp_path, "[gate.coverage]\nmin_total = 79\n").policy_hash() != base
    assert _load(tmp_path, "[plan]\npath = 'plan.md'\n").policy_hash() == base  # where the plan lives is not policy


def test_config_extend_lists_add_to_the_defaults(tmp_path: Path) -> None:
    settings = _load(tmp_path, '[policy]\nextend_protected_paths = ["src/vendor/**"]\n')
    assert "src/vendor/**" in settings.policy.all_protected
    assert ".env*" in settings.policy.all_protected


def test_config_resolve_python_uses_this_interpreter() -> None:
    import sys

    assert config.resolve_python(["python", "-m", "pytest"]) == [sys.executable, "-m", "pytest"]
    assert config.resolve_python(["make", "test"]) == ["make", "test"]


def _lines(n: int) -> str:
    return "".join(f"x{i} = {i}\n" for i in range(n))


def test_config_in_force_is_the_committed_one_not_the_working_trees(tmp_path: Path) -> None:
    from mcp_servers.core.policy import check_changes
    from mcp_servers.core.workspace import Workspace

    from ..conftest import make_repo

    repo = make_repo(tmp_path / "r")
    repo.write("src/app/big.py", _lines(50))
    repo.write("overnight.toml", "[policy]\nmax_changed_lines = 100\n")  # an agent (or a person) edits it
    ws = Workspace.open(repo.root)
    assert ws.settings.policy.max_changed_lines == 30
    assert "not committed yet" in ws.config_source
    rules = {v.rule for v in check_changes(ws.repo, ws.settings).violations}
    assert {"too-large", "protected-path"} <= rules
    repo.git("add", "overnight.toml")
    repo.git("commit", "-q", "-m", "a person raises the limit", "--", "overnight.toml")
    ws = Workspace.open(repo.root)
    assert ws.settings.policy.max_changed_lines == 100 and ws.config_source == "overnight.toml at HEAD"
    assert check_changes(ws.repo, ws.settings).safe


def test_config_at_the_checkpoint_governs_a_task(tmp_path: Path) -> None:
    from mcp_servers.core.workspace import Workspace

    from ..conftest import make_repo

    repo = make_repo(tmp_path / "r", config="[policy]\nmax_changed_lines = 40\n")
    checkpoint = repo.head()
    repo.write("overnight.toml", "[policy]\nmax_changed_lines = 999\n")
    repo.commit("later commit on the branch")
    ws = Workspace.open(repo.root, environ={"OVERNIGHT_CHECKPOINT": checkpoint, "PATH": "/usr/bin:/bin"})
    assert ws.settings.policy.max_changed_lines == 40
    assert ws.config_source.startswith("overnight.toml at " + checkpoint)


def test_config_cannot_unprotect_itself(tmp_path: Path) -> None:
    from mcp_servers.core.policy import check_changes
    from mcp_servers.core.workspace import Workspace

    from ..conftest import make_repo

    repo = make_repo(tmp_path / "r", config='[policy]\nprotected_paths = []\nallowed_paths = ["**"]\n')
    repo.write("overnight.toml", '[policy]\nprotected_paths = []\nallowed_paths = ["**"]\nallow_delete = true\n')
    ws = Workspace.open(repo.root)
    assert [v.rule for v in check_changes(ws.repo, ws.settings).violations] == ["protected-path"]
