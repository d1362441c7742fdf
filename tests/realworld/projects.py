"""Real projects nobody here wrote, set up as a person would, for tests that run overnight on them (issue 11).

Each is fetched as a pinned sdist with `pip download --no-deps --no-binary :all:` (nothing of it is committed),
unpacked into a fresh folder, made a git repository with one commit, and given its own `.venv` with pytest,
coverage.py and the project installed editable (`pip install -e .`), while overnight stays in the environment
the tests run in.

The sdists and the environments are cached outside the repository (`$OVERNIGHT_TEST_CACHE`, else
`~/.cache/overnight-tests`), by the sdist's digest: the environment is built once, at the cache's path, and
each repository gets a copy whose paths (the editable install's `.pth`/finder, the scripts) are rewritten to
its own folder, as `virtualenv-clone` does. Use `prepare(PROJECT, folder)` to get a ready repository.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

CACHE = Path(os.environ.get("OVERNIGHT_TEST_CACHE") or os.path.expanduser("~/.cache/overnight-tests"))
_IDENTITY = ["-c", "user.name=A Person", "-c", "user.email=person@example.invalid", "-c", "init.defaultBranch=main"]


@dataclass(frozen=True)
class Project:
    """A pinned sdist and what overnight should find in it."""

    name: str
    version: str
    layout: str  # "flat", "src" or "tests-in-package", as a person would name it
    environment: str  # the kind `overnight init` should find
    allowed_paths: tuple[str, ...]
    coverage_source: tuple[str, ...]
    change: tuple[str, str] = ("", "")  # a module and a test file of the project, for a small change to land

    @property
    def id(self) -> str:
        return f"{self.name}-{self.version}"


PROJECTS = [
    Project("idna", "3.10", "flat", "venv", ("idna/**", "tests/**"), ("idna",), ("idna/core.py", "tests/test_idna.py")),
    Project("toolz", "1.2.0", "tests-in-package", "venv", ("tlz/**", "toolz/**"), ("tlz", "toolz"),
            ("toolz/recipes.py", "toolz/tests/test_recipes.py")),
    Project("iniconfig", "2.3.1", "src", "uv", ("src/**", "testing/**"), ("src",),  # uv.lock: uv's .venv
            ("src/iniconfig/exceptions.py", "testing/test_iniconfig.py")),
]


@dataclass(frozen=True)
class Prepared:
    """A project ready to use: its repository (one commit), its interpreter, the project it is."""

    root: Path
    python: Path
    project: Project

    @property
    def layout(self) -> str:
        return self.project.layout


def _clean_env() -> dict[str, str]:
    """The machine's environment without a test's HOME or git settings (this runs outside test fixtures too)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GIT_", "OVERNIGHT_", "VIRTUAL_ENV"))}
    env["GIT_CONFIG_NOSYSTEM"] = "1"
    env["GIT_CONFIG_GLOBAL"] = os.devnull
    return env


def _run(argv: list[str], cwd: Path | None = None) -> None:
    done = subprocess.run(argv, cwd=cwd, env=_clean_env(), capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({done.returncode}):\n{done.stdout[-3000:]}{done.stderr[-3000:]}")


@contextlib.contextmanager
def _locked(name: str) -> Iterator[None]:
    CACHE.mkdir(parents=True, exist_ok=True)
    with open(CACHE / f".{name}.lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def sdist(project: Project) -> Path:
    """The project's sdist, downloaded once into the cache."""
    folder = CACHE / "sdists"
    with _locked(f"sdist-{project.id}"):
        found = _find(folder, project)
        if found is None:
            folder.mkdir(parents=True, exist_ok=True)
            _run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--no-binary", ":all:",
                  f"{project.name}=={project.version}", "-d", str(folder)])  # fmt: skip
            found = _find(folder, project)
        if found is None:
            raise RuntimeError(f"pip downloaded no sdist of {project.id} into {folder}")
        return found


def _find(folder: Path, project: Project) -> Path | None:
    wanted = {f"{n}-{project.version}.tar.gz" for n in (project.name, project.name.replace("-", "_"))}
    return next((p for p in folder.glob("*.tar.gz") if p.name.lower() in wanted), None) if folder.is_dir() else None


def _unpack(archive: Path, dest: Path) -> None:
    """The sdist's files into `dest`, without its top folder."""
    dest.mkdir(parents=True)
    with tarfile.open(archive) as tar:
        for member in tar.getmembers():
            parts = member.name.split("/", 1)
            if len(parts) < 2 or not parts[1] or not (member.isfile() or member.isdir()):
                continue
            member.name = parts[1]
            tar.extract(member, dest, filter="data")


def _git_repo(root: Path) -> None:
    _run(["git", *_IDENTITY, "init", "-q", str(root)])
    (root / ".git" / "info").mkdir(exist_ok=True)
    with (root / ".git" / "info" / "exclude").open("a") as exclude:
        exclude.write(".venv/\n")  # the person's own ignore, not a change to their tracked files
    _run(["git", *_IDENTITY, "add", "-A"], cwd=root)
    _run(["git", *_IDENTITY, "commit", "-q", "--no-verify", "-m", "Initial commit"], cwd=root)


def _built(project: Project) -> Path:
    """The cached repository with its `.venv` (built once per sdist digest and Python version)."""
    archive = sdist(project)
    digest = hashlib.sha256(archive.read_bytes()).hexdigest()[:12]
    home = CACHE / "venvs" / f"{project.id}-{digest}-py{sys.version_info[0]}{sys.version_info[1]}"
    with _locked(f"venv-{project.id}"):
        if not (home / "ready").exists():
            shutil.rmtree(home, ignore_errors=True)
            root = home / "repo"
            _unpack(archive, root)
            _git_repo(root)  # some builds (setuptools-scm) want a repository or PKG-INFO
            _run([sys.executable, "-m", "venv", str(root / ".venv")])
            pip = [str(root / ".venv" / "bin" / "python"), "-m", "pip", "install", "-q"]
            _run([*pip, "pytest", "coverage", "-e", str(root)], cwd=root)
            (home / "ready").write_text("ok\n")
    return home / "repo"


def prepare(project: Project, dest: Path) -> Prepared:
    """A fresh repository of `project` at `dest` (which must not exist), with its own `.venv`."""
    cached = _built(project)
    _unpack(sdist(project), dest)
    _git_repo(dest)
    shutil.copytree(cached / ".venv", dest / ".venv", symlinks=True)
    _relocate(dest / ".venv", str(cached), str(dest))
    return Prepared(root=dest, python=dest / ".venv" / "bin" / "python", project=project)


def _relocate(venv: Path, old: str, new: str) -> None:
    """Point the copied environment at its new folder: scripts, `.pth` files, editable finders, metadata."""
    site = next((venv / "lib").glob("python3*/site-packages"))
    candidates = [*(venv / "bin").iterdir(), venv / "pyvenv.cfg", *site.glob("*.pth"), *site.glob("__editable__*"),
                  *site.glob("*.dist-info/direct_url.json"), *site.glob("*.dist-info/RECORD")]  # fmt: skip
    for path in candidates:
        if path.is_symlink() or not path.is_file():
            continue
        data = path.read_bytes()
        if old.encode() in data:
            path.write_bytes(data.replace(old.encode(), new.encode()))


def warm(projects: list[Project]) -> None:
    """Build what is not cached yet, side by side (a cold cache costs about a minute per project)."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=len(projects)) as pool:
        list(pool.map(_built, projects))
