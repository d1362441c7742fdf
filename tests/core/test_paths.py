"""Globs read like .gitignore, folding catches look-alikes, caller paths never leave the repository."""

from __future__ import annotations

from pathlib import Path

import pytest

from mcp_servers.core.errors import UsageError
from mcp_servers.core.paths import Globs, clean_glob, fold, glob_regex, inside, look_alike, odd_characters


@pytest.mark.parametrize(
    ("pattern", "path", "matches"),
    [
        ("*.py", "a.py", True),
        ("*.py", "src/deep/a.py", True),  # no slash: any depth
        ("src/*.py", "src/a.py", True),
        ("src/*.py", "src/deep/a.py", False),  # * stays in one directory
        ("src/**", "src/deep/a.py", True),
        ("src/**", "srcx/a.py", False),
        ("src/**/test_*.py", "src/test_a.py", True),
        ("src/**/test_*.py", "src/x/y/test_a.py", True),
        ("/README.md", "README.md", True),
        ("/README.md", "docs/README.md", False),
        ("docs/", "docs/a/b.md", True),
        ("file?.txt", "file1.txt", True),
        ("file?.txt", "file/.txt", False),
        ("[ab].py", "a.py", True),
        ("[!ab].py", "a.py", False),
        ("**/migrations/**", "app/migrations/0001.py", True),
        ("**/migrations/**", "migrations/0001.py", True),
    ],
)
def test_paths_glob_regex_reads_like_gitignore(pattern: str, path: str, matches: bool) -> None:
    assert bool(glob_regex(pattern).match(path)) is matches


def test_paths_folded_globs_catch_case_and_look_alikes() -> None:
    protected = Globs([".env*", ".github/workflows/**"], folded=True)
    for sneaky in (
        ".ENV",
        ".Env.local",
        "src/.env",
        ".\u0435nv",
        "\uff0eenv",
        ".e\u200bnv",
        ".GitHub/Workflows/ci.yml",
        ".e\u0301nv",
    ):
        assert protected.match(sneaky), sneaky
    assert protected.match("src/environment.py") is None


def test_paths_allowed_globs_are_exact() -> None:
    allowed = Globs(["src/**"])
    assert allowed.match("src/a.py") == "src/**"
    assert allowed.match("SRC/a.py") is None
    assert allowed.match("\uff53rc/a.py") is None


def test_paths_fold_normalises_width_case_and_marks() -> None:
    assert fold("ＳＲＣ/Ｆｉｌｅ") == "src/file"
    assert fold("caf\u00e9") == fold("cafe\u0301") == "cafe"


@pytest.mark.parametrize(
    ("path", "said"),
    [
        ("src/.\u0435nv", "reads as `.env`"),
        ("src/c\u0430lc.py", "U+0430 CYRILLIC SMALL LETTER A"),
        ("src/app/\u0430\u0440\u0440.py", "reads as `app.py`"),
        ("src/\uff0eenv", "looks like `.env`"),
        ("src/app/cafe\u0301.py", "not in its normal form"),
        ("src/app/ut\ufe0fils.py", "VARIATION SELECTOR-16"),
        ("\u13a2est/x.py", "reads as `Test`"),  # Cherokee
    ],
)
def test_paths_look_alike_says_what_it_looks_like(path: str, said: str) -> None:
    found = look_alike(path)
    assert found is not None and said in found, found


@pytest.mark.parametrize(
    "path",
    ["docs/caf\u00e9.md", "docs/\u65e5\u672c\u8a9e.md", "docs/\u043f\u0440\u0438\u0432\u0435\u0442.md",
     "docs/\u03bb\u03cc\u03b3\u03bf\u03c2.md", "src/na\u00efve.py", "src/\u03a9mega.py", "plain/ascii.py"],
)  # fmt: skip
def test_paths_look_alike_lets_ordinary_non_ascii_names_pass(path: str) -> None:
    assert look_alike(path) is None


def test_paths_odd_characters_names_what_it_found() -> None:
    assert odd_characters("a\u202eb") == ["U+202E RIGHT-TO-LEFT OVERRIDE"]
    assert odd_characters("tab\there") == ["U+0009 control character"]
    assert odd_characters("plain/name.py") == []


@pytest.mark.parametrize("bad", ["../x", "src/../../x", "/etc/passwd", "~/x", "C:x", "-rf", "", "a\0b"])
def test_paths_clean_glob_refuses_escapes(bad: str) -> None:
    with pytest.raises(UsageError):
        clean_glob(bad)


def test_paths_clean_glob_normalises_harmless_forms() -> None:
    assert clean_glob("./src//models/*.py") == "src/models/*.py"
    assert clean_glob("src\\a.py") == "src/a.py"


def test_paths_inside_resolves_symlinks_out_of_the_repo(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    (root / "src").mkdir(parents=True)
    (tmp_path / "outside").mkdir()
    (root / "src" / "escape").symlink_to(tmp_path / "outside")
    assert inside(root, "src") == "src"
    assert inside(root, str(root / "src")) == "src"
    with pytest.raises(UsageError, match="outside the repository"):
        inside(root, "src/escape")
    with pytest.raises(UsageError, match="outside the repository"):
        inside(root, "../outside")
