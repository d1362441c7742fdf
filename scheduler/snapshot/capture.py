"""Taking a snapshot: stat everything, read only what is cheap or changed, keep the bytes of small files.

Everything that can be read without git (git's own files, HEADs, the home) is read as files. git is asked only
for refs, each worktree's index and status, and the remotes' refs, always with the safe configuration
(`core.fsmonitor` off, no hooks), with the stat checks forced on, and with `--git-dir` given so that a planted
`.git` file cannot send it elsewhere.
"""

from __future__ import annotations

import hashlib
import os
import stat
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from mcp_servers.core.git import Repo
from mcp_servers.core.workspace import Workspace

from .model import Checkout, FileState, Snapshot

SAVE_CAP = 256 * 1024  # a file's bytes are kept up to this size (config, hooks, dotfiles, small untracked files)
SAVE_TOTAL = 64 * 1024 * 1024  # and up to this much in all, so that a snapshot stays cheap
CHEAP_HASH = 1024 * 1024  # a first snapshot reads files up to this size (never ignored ones: node_modules...)
HASH_CAP = 64 * 1024 * 1024  # a later one reads a file whose stat changed up to this size
INDEX_CAP = 64 * 1024 * 1024  # an index is kept to be put back up to this size
REMOTE_TIMEOUT_S = 20.0
MAX_HOME_FILES = 5000  # files per home pattern
STAT_ONLY = (".ssh/",)  # home files never read (keys): their stat alone is compared

# git's files that steer it or run code, under the common dir: bytes kept, so they can be put back.
# A half-done merge, rebase or cherry-pick planted for the person to `--continue` is there too (a rebase's todo
# list can `exec` anything).
GIT_FILES = ("config", "config.worktree", "shallow", "objects/info/alternates", "objects/info/http-alternates",
             "logs/refs/stash", "MERGE_HEAD", "CHERRY_PICK_HEAD", "REVERT_HEAD", "BISECT_LOG")  # fmt: skip
GIT_DIRS = ("hooks", "info", "remotes", "branches", "rebase-merge", "rebase-apply", "sequencer")
ADMIN_FILES = ("config.worktree", "commondir", "gitdir", "locked")  # of each linked worktree (.git/worktrees/ID)
_STATUS = ("-c", "core.checkStat=default", "-c", "core.trustctime=true", "-c", "core.ignoreStat=false",
           "-c", "core.untrackedCache=false", "-c", "core.fsmonitor=false")  # fmt: skip


def take(
    ws: Workspace,
    *,
    session_root: str | os.PathLike[str] = "",
    session_branch: str = "",
    home_files: Sequence[str] | None = None,
    remotes: bool = True,
    like: Snapshot | None = None,
) -> Snapshot:
    """What the person owns, now; the session's own worktree and branch left out.

    `like`: an earlier snapshot to compare with, whose exclusions, home files and remotes are used, and whose
    content ids are reused for files whose stat did not change (files whose stat changed are read)."""
    started = time.monotonic()
    if like is not None:
        session_root, session_branch = session_root or like.session_root, session_branch or like.session_branch
        home_files = like.home_files if home_files is None else home_files
    home_files = tuple(ws.settings.scheduler.watch_home if home_files is None else home_files)
    home = str(ws.environ.get("HOME", "")) if like is None else like.home
    reader = _Reader(later=like is not None)
    session = os.path.realpath(session_root) if str(session_root) else ""
    repo = ws.repo
    remote_names = list(like.remotes) if like is not None else _remote_names(repo) if remotes else []
    with ThreadPoolExecutor(max_workers=4) as pool:  # git and the remotes answer while the files are walked
        remote_refs = {name: pool.submit(_remote_refs, repo, name, session_branch) for name in remote_names}
        refs = pool.submit(_refs, repo, session_branch)
        worktrees = _worktrees(repo, session)
        earlier = like.checkouts if like is not None else {}
        checkouts = {str(root): _checkout(pool, repo, root, git_dir, earlier.get(str(root)), reader, session)
                     for root, git_dir in worktrees}  # fmt: skip
        linked = [root for root, git_dir in worktrees if git_dir != repo.common_dir]
        files = reader.states(_git_paths(repo.common_dir, session, linked), like)
        files.update(reader.states(_home_paths(home, home_files), like))
        return Snapshot(
            refs=refs.result(),
            checkouts=checkouts,
            files=files,
            remotes={name: found.result() for name, found in remote_refs.items()},
            common_dir=str(repo.common_dir),
            session_root=session,
            session_branch=session_branch,
            home=home,
            home_files=home_files,
            cost_s=round(time.monotonic() - started, 3),
        )


def steering_files(ws: Workspace, like: Snapshot) -> dict[str, FileState]:
    """Only the files that steer git and the shell (git's own and the home's), read without running git: what
    must be put back before git is asked anything."""
    reader = _Reader(later=True)
    linked = [Path(root) for root, c in like.checkouts.items() if Path(c.git_dir) != ws.repo.common_dir]
    files = reader.states(_git_paths(ws.repo.common_dir, like.session_root, linked), like)
    files.update(reader.states(_home_paths(like.home, like.home_files), like))
    return files


def blob_id(content: bytes) -> str:
    """git's id of a blob with this content (`git hash-object`)."""
    return hashlib.sha1(b"blob %d\0" % len(content) + content, usedforsecurity=False).hexdigest()


class _Reader:
    """Turns stats into FileStates: reads what is cheap (first snapshot) or changed (later), keeps small bytes."""

    def __init__(self, *, later: bool) -> None:
        self.later = later
        self.budget = 0 if later else SAVE_TOTAL  # a later snapshot keeps no bytes: restoring uses the first

    def state(self, path: str, st: os.stat_result, earlier: FileState | None, *, cheap: bool = True,
              read: bool = True, oid: str = "") -> FileState:  # fmt: skip
        keys = (st.st_mode, st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino)
        if earlier is not None and keys == (earlier.mode, earlier.size, earlier.mtime_ns, earlier.ctime_ns,
                                            earlier.inode):  # fmt: skip
            return earlier
        digest, data = oid, None
        if stat.S_ISLNK(st.st_mode):
            digest = "link:" + _readlink(path)
        elif stat.S_ISREG(st.st_mode) and not digest and read:
            cap = HASH_CAP if self.later else CHEAP_HASH if cheap else -1
            content = _read(path) if st.st_size <= cap else None
            if content is not None:
                digest = blob_id(content)
                if len(content) <= min(SAVE_CAP, self.budget):
                    data, self.budget = content, self.budget - len(content)
        return FileState(*keys, digest=digest, data=data)

    def states(self, paths: Mapping[Path, tuple[os.stat_result, bool]], like: Snapshot | None
               ) -> dict[str, FileState]:  # fmt: skip
        earlier = like.files if like is not None else {}
        return {str(p): self.state(str(p), st, earlier.get(str(p)), read=read) for p, (st, read) in paths.items()}


def _read(path: str) -> bytes | None:
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except OSError:
        return None


def _readlink(path: str) -> str:
    try:
        return os.readlink(path)
    except OSError:
        return "?"


def _lstat(path: Path) -> os.stat_result | None:
    try:
        return path.lstat()
    except OSError:
        return None


def walk(root: Path, skip: Callable[[str, str], bool] = lambda rel, full: False, limit: int = 0
         ) -> dict[str, os.stat_result]:  # fmt: skip
    """Every non-directory under `root` by relative path, with its lstat; `skip(rel, path)` prunes folders."""
    found: dict[str, os.stat_result] = {}
    stack = [""]
    while stack:
        rel = stack.pop()
        try:
            entries = os.scandir(os.path.join(root, rel) if rel else root)
        except OSError:
            continue
        with entries:
            for entry in entries:
                sub = f"{rel}/{entry.name}" if rel else entry.name
                try:
                    st = entry.stat(follow_symlinks=False)
                except OSError:
                    continue
                if stat.S_ISDIR(st.st_mode):
                    if not skip(sub, entry.path):
                        stack.append(sub)
                elif limit and len(found) >= limit:
                    return found
                else:
                    found[sub] = st
    return found


# -- git's files and the home -----------------------------------------------------------------------------------


def _git_paths(common: Path, session: str, linked: Iterable[Path]) -> dict[Path, tuple[os.stat_result, bool]]:
    """git's files that steer it or run code, with their stats."""
    found: dict[Path, tuple[os.stat_result, bool]] = {}
    for rel in GIT_FILES:
        st = _lstat(common / rel)
        if st is not None:
            found[common / rel] = (st, True)
    for folder in GIT_DIRS:
        found.update({common / folder / rel: (st, True) for rel, st in walk(common / folder).items()})
    # submodules: each has its own config and hooks
    modules = walk(common / "modules", lambda rel, full: rel.rsplit("/", 1)[-1] in ("objects", "refs", "logs"))
    found.update({common / "modules" / rel: (st, True) for rel, st in modules.items()
                  if rel.endswith(("/config", "/config.worktree")) or "/hooks/" in rel})  # fmt: skip
    for admin, root in admin_dirs(common).items():
        if session and os.path.realpath(root) == session:
            continue
        for name in ADMIN_FILES:
            st = _lstat(admin / name)
            if st is not None:
                found[admin / name] = (st, True)
    for root in linked:  # a linked worktree's `.git` file says where its git dir is
        st = _lstat(root / ".git")
        if st is not None:
            found[root / ".git"] = (st, True)
    return found


def admin_dirs(common: Path) -> dict[Path, Path]:
    """Each linked worktree's admin folder (`.git/worktrees/ID`) and the worktree it names, if that still exists.

    One whose folder is gone is left out: any `git worktree prune` (the gate's, the scheduler's) removes it, and
    that is no one's doing. A worktree deleted during the session is still seen: it was there before."""
    found = {}
    try:
        admins = sorted(p for p in (common / "worktrees").iterdir() if p.is_dir())
    except OSError:
        return {}
    for admin in admins:
        gitdir = (_read(str(admin / "gitdir")) or b"").decode("utf-8", "surrogateescape").strip()
        root = Path(os.path.dirname(gitdir)) if gitdir else None
        if root is not None and root.is_dir():
            found[admin] = root
    return found


def _prune_none(rel: str, full: str) -> bool:
    return False


def _prune_all(rel: str, full: str) -> bool:
    return True


def _home_paths(home: str, patterns: Sequence[str]) -> dict[Path, tuple[os.stat_result, bool]]:
    """The home's files that match `patterns` (`DIR/**`: all under DIR, `DIR/*`: DIR's own files)."""
    if not home:
        return {}
    base = Path(home)
    found: dict[Path, tuple[os.stat_result, bool]] = {}
    for pattern in patterns:
        if pattern.endswith(("/**", "/*")):
            folder, _, depth = pattern.rpartition("/")
            listed = walk(base / folder, _prune_none if depth == "**" else _prune_all, limit=MAX_HOME_FILES)
            found.update({base / folder / rel: (st, True) for rel, st in listed.items()})
        else:
            st = _lstat(base / pattern)
            if st is not None:
                found[base / pattern] = (st, True)
    marked = {path: (st, not _stat_only(base, path)) for path, (st, _) in found.items()}
    for path, (st, read) in list(marked.items()):  # dotfiles kept in a repository of their own, linked from home
        if stat.S_ISLNK(st.st_mode):
            target = Path(os.path.realpath(path))
            st_target = _lstat(target)
            if st_target is not None and stat.S_ISREG(st_target.st_mode):
                marked.setdefault(target, (st_target, read))
    return marked


def _stat_only(home: Path, path: Path) -> bool:
    return any(str(path.relative_to(home)).startswith(p) for p in STAT_ONLY)


# -- what git knows: refs, worktrees, indexes, remotes -----------------------------------------------------------


def _refs(repo: Repo, session_branch: str) -> dict[str, str]:
    listed = repo.run("for-each-ref", "--format=%(refname)%00%(objectname)%00%(symref)").text()
    found = {}
    for line in listed.splitlines():
        name, oid, target = [*line.split("\0"), "", ""][:3]
        found[name] = f"ref: {target}" if target else oid
    found.pop(f"refs/heads/{session_branch}", None)
    return found


def _worktrees(repo: Repo, session: str) -> list[tuple[Path, Path]]:
    """(root, git dir) of each worktree but the session's: the main one first, unless the repository is bare."""
    listed = repo.run("worktree", "list", "--porcelain").text().split("\n\n")[0].splitlines()
    found = []
    if listed and listed[0].startswith("worktree ") and "bare" not in listed:
        found.append((Path(listed[0].removeprefix("worktree ")), repo.common_dir))
    for admin, root in admin_dirs(repo.common_dir).items():
        if not (session and os.path.realpath(root) == session):
            found.append((root, admin))
    return found


def _checkout(pool: ThreadPoolExecutor, repo: Repo, root: Path, git_dir: Path, earlier: Checkout | None,
              reader: _Reader, session: str) -> Checkout:  # fmt: skip
    head = (_read(str(git_dir / "HEAD")) or b"").decode("utf-8", "replace").strip()
    if not root.is_dir():
        return Checkout(root=str(root), git_dir=str(git_dir), head=head, index="")
    there = Repo(root=root, git_dir=git_dir, common_dir=repo.common_dir)
    where = ("--git-dir", str(git_dir), "--work-tree", str(root))
    listing = pool.submit(there.run, *where, "ls-files", "--stage", "-v", "-z", check=False)
    asked = pool.submit(there.run, *where, *_STATUS, "status", "--porcelain=v2", "-z", "--untracked-files=all",
                        "--no-renames", "--ignore-submodules=all", check=False)  # fmt: skip
    index = git_dir / "index"
    index_data = None
    if not reader.later and (_lstat(index) or os.stat_result((0,) * 10)).st_size <= INDEX_CAP:
        index_data = _read(str(index))
    session_name = os.path.basename(session)

    def skip(rel: str, full: str) -> bool:
        return rel == ".git" or (os.path.basename(rel) == session_name and os.path.realpath(full) == session)

    walked = walk(root, skip)
    walked.pop(".git", None)  # a linked worktree's `.git` file is one of git's files, watched with them
    listed, status = listing.result().stdout, asked.result().stdout
    tracked = _tracked(listed)
    changed, untracked = _status(status)
    earlier_files = earlier.files if earlier is not None else {}
    files = {}
    for rel, st in walked.items():
        entry = tracked.get(rel)
        clean = entry is not None and rel not in changed and entry[0] == "H" and entry[1] in ("100644", "100755")
        mine = entry is not None or rel in untracked  # not ignored
        files[rel] = reader.state(os.path.join(root, rel), st, earlier_files.get(rel), cheap=mine,
                                  oid=entry[2] if clean and entry and stat.S_ISREG(st.st_mode) else "")  # fmt: skip
    return Checkout(root=str(root), git_dir=str(git_dir), head=head, index=hashlib.sha256(listed).hexdigest(),
                    index_data=index_data, status=status, files=files)  # fmt: skip


def _tracked(listed: bytes) -> dict[str, tuple[str, str, str]]:
    """path -> (tag, mode, blob id) from `git ls-files --stage -v -z` ("H 100644 OID 0\\tPATH")."""
    found = {}
    for record in listed.split(b"\0"):
        info, _, path = record.partition(b"\t")
        fields = info.decode("ascii", "replace").split(" ")
        if path and len(fields) == 4:
            found[os.fsdecode(path)] = (fields[0], fields[1], fields[2])
    return found


def _status(status: bytes) -> tuple[set[str], set[str]]:
    """(changed tracked paths, untracked paths) from `git status --porcelain=v2 -z --no-renames`."""
    changed, untracked = set(), set()
    for record in status.split(b"\0"):
        if record.startswith(b"1 "):
            changed.add(os.fsdecode(record.split(b" ", 8)[-1]))
        elif record.startswith(b"u "):
            changed.add(os.fsdecode(record.split(b" ", 10)[-1]))
        elif record.startswith(b"? "):
            untracked.add(os.fsdecode(record[2:]))
    return changed, untracked


def _remote_names(repo: Repo) -> list[str]:
    return [name for name in repo.run("remote", check=False).text().split() if not name.startswith("-")]


def _remote_refs(repo: Repo, name: str, session_branch: str) -> dict[str, str] | None:
    """The remote's refs, or None when it cannot be reached (offline, no credentials): unknown, not an error."""
    found = repo.run("ls-remote", name, check=False, timeout=REMOTE_TIMEOUT_S)
    if not found.ok:
        return None
    refs = {}
    for line in found.text().splitlines():
        oid, _, ref = line.partition("\t")
        if ref.startswith("refs/") and not ref.endswith("^{}") and ref != f"refs/heads/{session_branch}":
            refs[ref] = oid
    return refs
