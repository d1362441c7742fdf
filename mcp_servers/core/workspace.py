"""A repository under automation: its worktree, its settings and its state directory.

State lives under `<git common dir>/overnight/`, so every worktree shares it, nothing there is ever
committed, and `git clean` never touches it.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import secrets
import sqlite3
import stat
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from . import config, db
from .errors import StateError
from .git import Repo

KEY_BYTES = 32
LOCKS = "locks"  # under the state directory: the per-worktree lock files of `Workspace.lock`


def lock_digest(root: Path) -> str:
    """What names a worktree in its lock files (`locks/<name>-<digest>.lock`)."""
    return hashlib.sha256(str(root).encode()).hexdigest()[:16]


def worktree_locks(state_dir: Path, root: Path) -> list[Path]:
    """The lock files `Workspace.lock` made for the worktree at `root` (as named, and resolved)."""
    folder = state_dir / LOCKS
    digests = {lock_digest(root), lock_digest(root.resolve())}
    return sorted(p for d in digests for p in folder.glob(f"*-{d}.lock") if p.is_file() and not p.is_symlink())


def user_state_dir(environ: Mapping[str, str] | None = None) -> Path:
    """The user's own overnight folder (crash logs, session worktrees): $OVERNIGHT_HOME, else
    ~/.local/state/overnight. Outside every repository: agents refuse to write under a `.git` directory."""
    environ = os.environ if environ is None else environ
    home = environ.get("OVERNIGHT_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state", "overnight")
    return Path(home)


@dataclass
class Workspace:
    repo: Repo
    settings: config.Settings
    environ: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))
    config_source: str = "defaults"

    @classmethod
    def open(cls, path: str | os.PathLike[str] | None = None, environ: Mapping[str, str] | None = None) -> Workspace:
        """The repository containing `path` (default: $OVERNIGHT_REPO, else the working directory), with its config.

        `environ` defaults to the process's own environment, read as it is (not copied: servers open a
        workspace on every call)."""
        environ = os.environ if environ is None else dict(environ)
        repo = Repo.discover(path or environ.get("OVERNIGHT_REPO") or None)
        settings, source = trusted_settings(repo, environ)
        return cls(repo=repo, settings=settings, environ=environ, config_source=source)

    @property
    def state_dir(self) -> Path:
        return db.ensure_dir(self.repo.common_dir / "overnight")

    @property
    def db_path(self) -> Path:
        return self.state_dir / "state.db"

    @contextlib.contextmanager
    def db(self) -> Iterator[sqlite3.Connection]:
        with db.opened(self.db_path) as conn:
            yield conn

    def key(self) -> bytes:
        """The repository's HMAC key, created on first use with mode 0600."""
        return read_or_create_key(self.state_dir / "key")

    @contextlib.contextmanager
    def lock(self, name: str) -> Iterator[None]:
        """A cross-process lock, per worktree, held while `name` runs (e.g. the gate, which stages files)."""
        path = db.ensure_dir(self.state_dir / LOCKS) / f"{name}-{lock_digest(self.repo.root)}.lock"
        with open(path, "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    @property
    def session_id(self) -> str | None:
        return self.environ.get("OVERNIGHT_SESSION_ID") or self.environ.get("CLAUDE_CODE_SESSION_ID") or None

    @property
    def task_id(self) -> str | None:
        return self.environ.get("OVERNIGHT_TASK_ID") or None


def trusted_settings(repo: Repo, environ: Mapping[str, str]) -> tuple[config.Settings, str]:
    """The settings in force, and where they came from.

    They come from `overnight.toml` as committed at the task's checkpoint (or HEAD), never from the working
    tree: an agent can write the working tree, but not a commit without passing the gate, and the gate
    protects overnight.toml. The working tree's file is still validated, so a person editing it hears about a
    mistake at once, and an agent's broken file stops everything (failing closed).
    """
    worktree_file = repo.root / config.CONFIG_NAME
    try:
        working_raw: bytes | None = worktree_file.read_bytes()
    except FileNotFoundError:
        working_raw = None
    working = config.parse(working_raw, worktree_file) if working_raw is not None else None
    head = repo.head()
    if head is None:  # nothing is committed yet, so nothing can be protected: the file is all there is
        return (working, str(worktree_file)) if working else (config.DEFAULTS, "defaults")
    ref = environ.get("OVERNIGHT_CHECKPOINT") or "HEAD"
    commit = head if ref == "HEAD" else repo.resolve(ref)
    found = repo.read_object(f"{commit}:{config.CONFIG_NAME}")
    if found is None or found[1] != "blob":
        source = "defaults" + (f" ({config.CONFIG_NAME} is not committed yet)" if working else "")
        return config.DEFAULTS, source
    committed = config.parse(found[2], Path(f"{ref}:{config.CONFIG_NAME}"))
    source = f"{config.CONFIG_NAME} at {ref}"
    if working is not None and working_raw != found[2] and working != committed:
        source += " (the working tree's changes to it are not in force until a person commits them)"
    return committed, source


def read_or_create_key(path: Path) -> bytes:
    """Read the key file, creating it when absent. Refuse one that others can read."""
    data = _private_file(path, lambda: secrets.token_bytes(KEY_BYTES), "key")
    if len(data) != KEY_BYTES:
        raise StateError(
            f"the key file {path} is damaged ({len(data)} bytes, expected {KEY_BYTES}): delete it and run "
            "`overnight doctor`; receipts signed with the old key will no longer verify.",
        )
    return data


def read_or_create_token(path: Path) -> str:
    """A bearer token kept in `path` (mode 0600), made on first use the way the key is."""
    token = _private_file(path, lambda: secrets.token_urlsafe(32).encode(), "token").decode().strip()
    if len(token) < 32:
        raise StateError(f"the token file {path} is damaged: delete it and start the server again.")
    return token


def _private_file(path: Path, make: Callable[[], bytes], what: str) -> bytes:
    """The bytes of a secret file, made by `make` when absent; refused when others can read it.

    It is written whole to a private temporary file and then hard-linked into place, so a reader never sees it
    half-written and two processes creating it at once end up with the same one.
    """
    if not path.exists():
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(make())
                handle.flush()
                os.fsync(handle.fileno())
            with contextlib.suppress(FileExistsError):
                os.link(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise StateError(f"the {what} file {path} can be read by others (mode {mode:o}): run `chmod 600 {path}`.")
    return path.read_bytes()
