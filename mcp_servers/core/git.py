"""git, through the CLI and this one module.

Every call drops inherited `GIT_*` variables (a hook or another worktree must not redirect us; see
pre-commit's `no_git_env`) and switches off repository configuration that could run code or change the
output we parse: an agent can write `.git/config`, so fsmonitor, external diff drivers and textconv are
never honoured here.
"""

from __future__ import annotations

import atexit
import contextlib
import dataclasses
import functools
import os
import re
import shutil
import stat
import subprocess
import tempfile
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from . import proc
from .errors import GitError, UsageError

# Configuration that must hold whatever the repository's own config says.
_SAFE_CONFIG = (
    "-c",
    "core.fsmonitor=false",
    "-c",
    "core.quotePath=true",
    "-c",
    "color.ui=never",
    "-c",
    "diff.noprefix=false",
    "-c",
    "diff.mnemonicPrefix=false",
    "-c",
    "core.hooksPath=/dev/null",
    "-c",
    "commit.gpgSign=false",
    "-c",
    "log.showSignature=false",
)
_DIFF_OPTS = ("--no-ext-diff", "--no-textconv", "--no-color", "--src-prefix=a/", "--dst-prefix=b/")
EMPTY_TREE = "4b825dc642cb6eb9a060e54bf8d69288fbee4904"
_OID = re.compile(r"^[0-9a-f]{40}([0-9a-f]{24})?$")


# GIT_* variables that say who commits or how to reach a remote, not where the repository is.
_GIT_ENV_KEPT = re.compile(
    r"GIT_(AUTHOR|COMMITTER)_(NAME|EMAIL|DATE)|GIT_CONFIG_(GLOBAL|SYSTEM|NOSYSTEM)|GIT_EXEC_PATH"
    r"|GIT_SSH(_COMMAND|_VARIANT)?|GIT_ASKPASS|GIT_SSL_CAINFO|GIT_SSL_NO_VERIFY|GIT_ALLOW_PROTOCOL",
)


def git_env(environ: Mapping[str, str] | None = None, keep: Iterable[str] = ()) -> dict[str, str]:
    """`environ` without the `GIT_*` variables that point git elsewhere or inject configuration.

    Identity and transport variables stay; so do the names in `keep` (the pre-commit hook keeps
    GIT_INDEX_FILE, which names the index being committed). Replacement objects are always ignored: an
    agent could otherwise make `git replace` show us a different tree than the one a commit holds.
    """
    environ = os.environ if environ is None else environ
    keep = set(keep)
    env = {k: v for k, v in environ.items() if not k.startswith("GIT_") or k in keep or _GIT_ENV_KEPT.fullmatch(k)}
    env.setdefault("LC_ALL", "C")
    env["GIT_TERMINAL_PROMPT"] = "0"
    env["GIT_OPTIONAL_LOCKS"] = "0"
    env["GIT_NO_REPLACE_OBJECTS"] = "1"
    return env


def check_ref(ref: str) -> str:
    """Refuse a ref that git would read as an option, or that has characters no ref has."""
    if not ref or ref.startswith("-") or any(c in ref for c in "\0\n\r ") or len(ref) > 256:
        raise UsageError(f"{ref!r} is not a usable git ref: give a branch, tag or commit id such as `HEAD~1`.")
    return ref


class ObjectReader:
    """One long-running `git cat-file --batch` for a worktree: a ref, a commit or `REV:path` in a fraction of a
    millisecond instead of a process start. It resolves names afresh on every request (new commits, moved
    branches and packed refs are seen at once), and it is restarted if it dies."""

    def __init__(self, root: Path, *, check: bool = False) -> None:
        self.root = root
        self.check = check  # --batch-check: ids, types and sizes only
        self._proc: subprocess.Popen[bytes] | None = None
        self._lock = threading.Lock()

    def read(self, name: str) -> tuple[str, str, bytes] | None:
        """(object id, type, content) of what `name` names, or None when it names nothing."""
        if not name or any(c in name for c in "\n\r\0"):
            return None
        with self._lock:
            for _ in range(2):
                try:
                    return self._ask(name)
                except (OSError, ValueError):
                    self._stop()
            raise GitError(f"git cat-file stopped answering in {self.root}; is the repository still there?")

    def _ask(self, name: str) -> tuple[str, str, bytes] | None:
        proc = self._start()
        assert proc.stdin is not None and proc.stdout is not None  # noqa: S101 (pipes are always set by _start)
        proc.stdin.write(name.encode("utf-8", "surrogateescape") + b"\n")
        proc.stdin.flush()
        header = proc.stdout.readline()
        if not header:
            raise ValueError("cat-file closed its output")
        fields = header.split()
        if len(fields) != 3:
            return None  # "<name> missing" or "<name> ambiguous"
        content = b"" if self.check else proc.stdout.read(int(fields[2]) + 1)[:-1]
        return fields[0].decode(), fields[1].decode(), content

    def _start(self) -> subprocess.Popen[bytes]:
        if self._proc is None or self._proc.poll() is not None:
            self._proc = subprocess.Popen(
                ["git", *_SAFE_CONFIG, "cat-file", "--batch-check" if self.check else "--batch"],
                cwd=self.root,
                env=git_env(),
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
            )
        return self._proc

    def _stop(self) -> None:
        if self._proc is not None:
            with contextlib.suppress(OSError, subprocess.TimeoutExpired):
                self._proc.kill()
                self._proc.wait(timeout=5)
            for pipe in (self._proc.stdin, self._proc.stdout):
                with contextlib.suppress(OSError):
                    if pipe is not None:
                        pipe.close()
            self._proc = None


_READERS: OrderedDict[tuple[Path, bool], ObjectReader] = OrderedDict()
_READERS_LOCK = threading.Lock()
MAX_READERS = 8  # cat-file processes kept running (least recently used stopped first): a long-running process
# (the scheduler, a test run) meets many worktrees, and each reader holds a process and its pipes


def forget(root: Path) -> None:
    """Stop the readers of a worktree that is going away (the scheduler removes its worktrees)."""
    with _READERS_LOCK:
        gone = [key for key in _READERS if key[0] == root]
        readers = [_READERS.pop(key) for key in gone]
    for reader in readers:
        with reader._lock:
            reader._stop()
    for key, (_, repo) in list(_DISCOVERED.items()):
        if repo.root == root:
            _DISCOVERED.pop(key, None)
    with _NAMED_LOCK:
        for named in [k for k in _NAMED if k[0] == str(root)]:
            _NAMED.pop(named, None)


def _reader(root: Path, check: bool = False) -> ObjectReader:
    evicted: list[ObjectReader] = []
    with _READERS_LOCK:
        found = _READERS.get((root, check))
        if found is None:
            found = _READERS[(root, check)] = ObjectReader(root, check=check)
            while len(_READERS) > MAX_READERS:
                evicted.append(_READERS.popitem(last=False)[1])
        else:
            _READERS.move_to_end((root, check))
    for reader in evicted:  # (after a call in progress on it: a caller still holding it starts a new process)
        with reader._lock:
            reader._stop()
    return found


@atexit.register
def _stop_readers() -> None:
    for reader in list(_READERS.values()):
        reader._stop()


# -- names read again only when a ref they go through changed ------------------------------------------------
#
# A server answers every call from HEAD, the base branch and files committed there: six `cat-file` round trips
# a call. What a name like `HEAD^{commit}` or `main:PROJECT_PLAN.md` means can change only when a file of the
# ref store changes (HEAD, a loose ref, packed-refs), so its answer is kept with the stat of those files and
# reused while they are unchanged. Like git's own index ("racy git"), a file changed in the last RACY_S
# seconds is never trusted: a later change could leave its size and timestamps as they were, so such names are
# read afresh. ctime is in the key, and no process can set it. Names rooted at an object id never change.

RACY_S = 3.0
MAX_NAMED = 256  # names remembered (least recently used dropped first)
MAX_NAMED_BYTES = 64 * 1024  # larger contents are read each time (the plan's blob is parsed once by its id)
_Found = tuple[str, str, bytes] | None
_NAMED: OrderedDict[tuple[str, bool, str], tuple[tuple[object, ...] | None, _Found]] = OrderedDict()
_NAMED_LOCK = threading.Lock()
_SIMPLE_REF = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_./-]{0,200}")
_PER_WORKTREE = ("refs/worktree/", "refs/bisect/", "refs/rewritten/")
_now_ns = time.time_ns  # (the clock: tests move it on instead of waiting RACY_S)
_DWIM = ("{}", "refs/{}", "refs/tags/{}", "refs/heads/{}", "refs/remotes/{}", "refs/remotes/{}/HEAD")


def _root_ref(name: str) -> str | None:
    """The ref (or object id) a name like `REF`, `REF^{commit}` or `REF:path` starts from; None for the rest."""
    ref, colon, _path = name.partition(":")
    if not colon:
        for peel in ("^{commit}", "^{tree}"):
            ref = ref.removesuffix(peel)
    if not _SIMPLE_REF.fullmatch(ref) or ".." in ref or ref.endswith((".", "/", ".lock")) or "//" in ref:
        return None
    return ref


@functools.lru_cache(maxsize=256)
def _ref_files(git_dir: str, common_dir: str, ref: str) -> tuple[str, ...]:
    """The files of the ref store that say what `ref` names, in git's order of precedence."""
    if ref == "HEAD":  # always there, per worktree, and first in git's order
        return (os.path.join(git_dir, ref),)
    if ref.startswith(_PER_WORKTREE):
        return (os.path.join(git_dir, ref),)
    if ref.startswith("refs/"):
        return (os.path.join(common_dir, ref),)
    own = (os.path.join(git_dir, ref),) + ((os.path.join(common_dir, ref),) if git_dir != common_dir else ())
    return own + tuple(os.path.join(common_dir, pattern.format(ref)) for pattern in _DWIM[1:])


_SYMREFS: dict[tuple[str, tuple[int, int, int, int]], str | None] = {}  # (file, its stat) -> the ref it points to


def _symref(path: str, key: tuple[int, int, int, int]) -> str | None:
    """The target of a symbolic ref file ("ref: refs/heads/main"), read once per version of the file."""
    found = _SYMREFS.get((path, key), "")
    if found != "":
        return found
    target = None
    with contextlib.suppress(OSError):
        with open(path, "rb") as handle:
            content = handle.read(512)
        if content.startswith(b"ref: "):
            target = content[5:].strip().decode("utf-8", "replace")
    if len(_SYMREFS) > 1024:
        _SYMREFS.clear()
    _SYMREFS[(path, key)] = target
    return target


def _settled(path: str, limit: int) -> tuple[os.stat_result | None, tuple[int, int, int, int] | None, bool]:
    """(stat, its key, settled) of a ref-store file: (None, None, True) when it is absent, settled False when it
    changed after `limit` (ns)."""
    try:
        st = os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        return None, None, True
    key = (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
    return st, key, st.st_ctime_ns <= limit and st.st_mtime_ns <= limit


def _ref_token(repo: Repo, ref: str) -> tuple[object, ...] | None:
    """The stat of every ref-store file `ref` goes through (symbolic refs followed), or None when that cannot
    be trusted: a file changed in the last RACY_S seconds, or a ref store other than loose files (reftable)."""
    git_dir, common_dir = str(repo.git_dir), str(repo.common_dir)
    limit = _now_ns() - int(RACY_S * 1e9)
    if os.path.lexists(os.path.join(common_dir, "reftable")):
        return None
    _, packed, settled = _settled(os.path.join(common_dir, "packed-refs"), limit)
    if not settled:
        return None
    token: list[object] = [packed]
    pending: str | None = ref
    for _depth in range(6):  # git follows symbolic refs 5 deep
        if pending is None:
            break
        candidates, pending, decided = _ref_files(git_dir, common_dir, pending), None, False
        for path in candidates:
            st, key, settled = _settled(path, limit)
            if not settled:
                return None
            token.append(key)
            if st is not None and key is not None and not decided and stat.S_ISREG(st.st_mode):
                decided = True  # the first file that exists is the one git reads
                pending = _symref(path, key) if st.st_size < 512 else None
                if pending is not None and not _SIMPLE_REF.fullmatch(pending):
                    return None
    return tuple(token) if pending is None else None


def _read_named(repo: Repo, name: str, check: bool) -> _Found:
    """`name` through the worktree's reader, remembered as the notes above say."""
    ref = _root_ref(name)
    if ref is None:
        return _reader(repo.root, check).read(name)
    immutable = bool(_OID.match(ref))
    key = (str(repo.root), check, name)
    token = None if immutable else _ref_token(repo, ref)
    if immutable or token is not None:
        with _NAMED_LOCK:
            kept = _NAMED.get(key)
            if kept is not None and kept[0] == token:
                _NAMED.move_to_end(key)
                return kept[1]
    found = _reader(repo.root, check).read(name)
    if immutable and found is None and (name == ref or _reader(repo.root, True).read(ref) is None):
        return found  # an object missing now may be fetched later (a path missing from a tree stays missing)
    if not immutable and (token is None or _ref_token(repo, ref) != token):
        return found  # a ref that moved meanwhile: read again next time
    if found is None or len(found[2]) <= MAX_NAMED_BYTES:
        with _NAMED_LOCK:
            _NAMED[key] = (token, found)
            _NAMED.move_to_end(key)
            while len(_NAMED) > MAX_NAMED:
                _NAMED.popitem(last=False)
    return found


_DISCOVERED: dict[tuple[str, int, int], tuple[tuple[int, int], Repo]] = {}
_ANCESTRY: dict[tuple[Path, str, str], bool] = {}


def _marker(root: Path) -> tuple[int, int]:
    """The identity of a worktree's `.git` (a folder, or a file in linked worktrees), to notice a new repository."""
    st = os.stat(root / ".git")
    return st.st_ino, st.st_ctime_ns


@dataclass(frozen=True)
class Repo:
    """A worktree of a git repository: where its files are and where git keeps its data."""

    root: Path
    git_dir: Path
    common_dir: Path

    @classmethod
    def discover(cls, path: str | os.PathLike[str] | None = None) -> Repo:
        """The repository that contains `path` (default: the working directory)."""
        where = Path(path or os.getcwd())
        try:
            st = os.stat(where)
        except OSError:
            st = None
        if st is None or not stat.S_ISDIR(st.st_mode):
            raise UsageError(f"{where} is not a directory: give the path of a git repository.")
        key = (str(where), st.st_dev, st.st_ino)  # the folder itself, however it was named
        cached = _DISCOVERED.get(key)
        if cached is not None:
            with contextlib.suppress(OSError):
                if _marker(cached[1].root) == cached[0]:
                    return cached[1]
        result = proc.run(
            ["git", *_SAFE_CONFIG, "rev-parse", "--show-toplevel", "--absolute-git-dir", "--git-common-dir"],
            cwd=where,
            env=git_env(),
        )
        if not result.ok:
            raise GitError(
                f"{where} is not inside a git repository (git says: {result.stderr.decode().strip()}). "
                "Run this in a repository's working tree, or create one with `git init`.",
            )
        lines = result.text().splitlines()
        if len(lines) < 3 or not lines[0]:
            raise GitError(f"{where} is inside a bare repository or a .git directory: run this in a working tree.")
        root, git_dir, common = (Path(x) for x in lines[:3])
        if not common.is_absolute():
            common = (where / common).resolve()
        repo = cls(root=root, git_dir=git_dir, common_dir=common)
        with contextlib.suppress(OSError):
            _DISCOVERED[key] = (_marker(root), repo)
        return repo

    def read_object(self, name: str) -> tuple[str, str, bytes] | None:
        """(id, type, content) of the object `name` names (`HEAD`, `main:PROJECT_PLAN.md`), or None."""
        return _read_named(self, name, check=False)

    def object_id(self, name: str) -> tuple[str, str] | None:
        """(id, type) of the object `name` names, without reading it; None when it names nothing."""
        found = _read_named(self, name, check=True)
        return (found[0], found[1]) if found else None

    # -- running git ------------------------------------------------------------------------------

    def run(
        self,
        *args: str,
        check: bool = True,
        env: Mapping[str, str] | None = None,
        input: bytes | None = None,
        timeout: float | None = 300,
    ) -> proc.Completed:
        """Run `git ARGS` in this worktree with the safe configuration. Fails with the command and stderr."""
        result = proc.run(
            ["git", *_SAFE_CONFIG, *args],
            cwd=self.root,
            env=env if env is not None else git_env(),
            input=input,
            timeout=timeout,
        )
        if check and not result.ok:  # (said as a person would type it: the safe configuration is noise there)
            said = dataclasses.replace(result, argv=("git", *args))
            raise GitError(f"git failed: {said.describe(tail_lines=10)}")
        return result

    def out(self, *args: str, **kw: object) -> str:
        """stdout of `git ARGS`, stripped."""
        return self.run(*args, **kw).text().strip()  # type: ignore[arg-type]

    # -- facts about the repository ---------------------------------------------------------------

    def head(self) -> str | None:
        """The commit HEAD points at, or None in a repository with no commits yet."""
        found = self.read_object("HEAD^{commit}")
        return found[0] if found else None

    def branch(self) -> str | None:
        """The checked-out branch, or None when HEAD is detached."""
        result = self.run("symbolic-ref", "--quiet", "--short", "HEAD", check=False)
        return result.text().strip() or None

    def resolve(self, ref: str) -> str:
        """The commit id `ref` names; a clear error when it names none."""
        found = self.read_object(check_ref(ref) + "^{commit}")
        if found is None or found[1] != "commit":
            raise UsageError(f"{ref!r} does not name a commit in {self.root}: check it with `git log --oneline`.")
        return found[0]

    def tree_of(self, commit: str) -> str:
        """The tree id of a commit."""
        found = self.read_object(f"{commit}^{{tree}}")
        if found is None:
            raise GitError(f"{commit} has no tree: is it a commit of this repository?")
        return found[0]

    def operation_in_progress(self) -> str | None:
        """The name of an unfinished merge, rebase, cherry-pick, revert or bisect, if any."""
        markers = {
            "MERGE_HEAD": "a merge",
            "rebase-merge": "a rebase",
            "rebase-apply": "a rebase or `git am`",
            "CHERRY_PICK_HEAD": "a cherry-pick",
            "REVERT_HEAD": "a revert",
            "BISECT_LOG": "a bisect",
        }
        for name, what in markers.items():
            if (self.git_dir / name).exists():
                return what
        return None

    def require_commits(self) -> str:
        """HEAD's commit id, or a GitError saying how to make a first commit."""
        head = self.head()
        if head is None:
            raise GitError(
                f"{self.root} has no commits yet, so there is nothing to compare the work with. "
                "Make a first commit (`git add -A && git commit -m 'Initial commit'`) and try again.",
            )
        return head

    def require_clean_state(self, *, allow_detached: bool = False) -> str:
        """HEAD's commit, once no merge or rebase is half-done and (unless allowed) HEAD is on a branch."""
        head = self.require_commits()
        op = self.operation_in_progress()
        if op:
            raise GitError(
                f"{self.root} is in the middle of {op}. Finish it or abort it (for a merge: `git merge --abort`) "
                "before running the gate; the gate never works on a half-done history operation.",
            )
        if not allow_detached and self.branch() is None:
            raise GitError(
                f"HEAD is detached in {self.root}: the gate and `commit` work on a branch. "
                "Create or switch to one with `git switch -c NAME`.",
            )
        return head

    def hooks_dir(self) -> Path:
        """Where git looks for this repository's hooks (`core.hooksPath` when set, else `.git/hooks`)."""
        result = proc.run(
            ["git", "rev-parse", "--path-format=absolute", "--git-path", "hooks"],
            cwd=self.root,
            env=git_env(),
        )
        if not result.ok:
            raise GitError(f"cannot find the hooks directory: {result.describe(tail_lines=5)}")
        return Path(result.text().strip())

    def is_ancestor(self, older: str, newer: str) -> bool:
        """Is commit `older` in the history of `newer`? Remembered for commit ids, which never change."""
        key = (self.common_dir, older, newer)
        if key in _ANCESTRY:
            return _ANCESTRY[key]
        answer = self.run("merge-base", "--is-ancestor", older, newer, check=False).returncode == 0
        if _OID.match(older) and _OID.match(newer):
            if len(_ANCESTRY) > 4096:
                _ANCESTRY.clear()
            _ANCESTRY[key] = answer
        return answer

    # -- trees --------------------------------------------------------------------------------------

    def worktree_tree(self) -> str:
        """The tree id of the working tree (staged, unstaged and untracked files), leaving the index untouched.

        git stages everything (`git add -A`) into a private copy of the index, in a temporary folder of its
        own, so the person's `.git/index` stays byte for byte as they left it: nothing the gate does follows
        them to another branch. The copy keeps ignored files out and lets git reuse its stat data.
        """
        index = self.git_dir / "index"  # (git_env drops GIT_INDEX_FILE: this is the index git would use)
        with tempfile.TemporaryDirectory(prefix="overnight-index-") as private:
            tmp = Path(private) / "index"
            if index.is_file():
                shutil.copy2(index, tmp)  # with its mtime: git trusts an entry's stat data only when the index is
                # newer than the file ("racy git"), so a fresh mtime would hide a same-size edit made meanwhile
            env = git_env()
            env["GIT_INDEX_FILE"] = str(tmp)
            whole = ("-c", "core.splitIndex=false")  # a private index in one file: no shared index left in .git
            self.run(*whole, "add", "-A", "--", ".", env=env)
            return self.run(*whole, "write-tree", env=env).text().strip()

    def export(self, tree: str, dest: Path) -> Path:
        """Write the files of `tree` into the new folder `dest`, as a checkout would (modes, symlinks), through a
        private index: a fresh copy of exactly what is judged, with no ignored file, leftover or virtualenv."""
        dest.mkdir(parents=True)
        index = dest.parent / f".{dest.name}.index"
        env = git_env()
        env["GIT_INDEX_FILE"] = str(index)
        try:
            self.run("read-tree", tree, env=env)
            self.run("checkout-index", "--all", "--force", f"--prefix={dest}/", env=env)
        finally:
            index.unlink(missing_ok=True)
        return dest

    def index_tree(self, env: Mapping[str, str] | None = None) -> str:
        """The tree id of what is staged now (the index named by GIT_INDEX_FILE when `env` keeps it)."""
        return self.run("write-tree", env=env).text().strip()

    def diff_trees(self, old: str, new: str, *options: str, max_bytes: int | None = None) -> bytes:
        """Raw output of `git diff-tree -r OPTIONS OLD NEW` with the safe diff options."""
        result = self.run("diff-tree", "-r", *_DIFF_OPTS, *options, old, new)
        if max_bytes is not None and len(result.stdout) > max_bytes:
            return result.stdout[:max_bytes]
        return result.stdout

    def read_blobs(self, oids: Sequence[str], max_size: int | None = None) -> dict[str, bytes]:
        """The contents of many blobs in one `git cat-file --batch` call (those over `max_size` are left out)."""
        wanted = [o for o in dict.fromkeys(oids) if _OID.match(o)]
        if wanted and max_size is not None:
            sizes = self.run("cat-file", "--batch-check", input=("\n".join(wanted) + "\n").encode()).text()
            rows = [line.split() for line in sizes.splitlines()]
            small = {row[0] for row in rows if len(row) == 3 and int(row[2]) <= max_size}
            wanted = [o for o in wanted if o in small]
        if not wanted:
            return {}
        data = self.run("cat-file", "--batch", input=("\n".join(wanted) + "\n").encode()).stdout
        blobs: dict[str, bytes] = {}
        pos = 0
        for oid in wanted:
            header_end = data.index(b"\n", pos)
            header = data[pos:header_end].split()
            if len(header) == 2 and header[1] == b"missing":
                pos = header_end + 1
                continue
            size = int(header[2])
            blobs[oid] = data[header_end + 1 : header_end + 1 + size]
            pos = header_end + 1 + size + 1
        return blobs

    def show_file(self, ref: str, path: str) -> bytes | None:
        """A file as committed at `ref`, or None when it is not there (a ref that names nothing is an error)."""
        found = self.read_object(f"{check_ref(ref)}:{path}")
        if found is None:
            self.resolve(ref)
            return None
        return found[2] if found[1] == "blob" else None

    def ls_tree(self, treeish: str, paths: Sequence[str] = ()) -> dict[str, tuple[str, str]]:
        """path -> (mode, oid) for the files of a tree (recursively), optionally limited to `paths`."""
        raw = self.run("ls-tree", "-r", "-z", "--full-tree", treeish, "--", *paths).stdout
        entries: dict[str, tuple[str, str]] = {}
        for record in raw.split(b"\0"):
            if not record:
                continue
            meta, _, name = record.partition(b"\t")
            mode, _type, oid = meta.decode().split()
            entries[decode_path(name)] = (mode, oid)
        return entries


def decode_path(raw: bytes) -> str:
    """A path from git's -z output; bytes that are not UTF-8 survive as surrogate escapes."""
    return raw.decode("utf-8", "surrogateescape")


def printable(text: str) -> str:
    """`text` with the undecodable bytes of a path (see decode_path) shown as U+FFFD, fit for JSON."""
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def is_undecodable(path: str) -> bool:
    """True when a path carries bytes that are not UTF-8 (see decode_path)."""
    return any("\udc80" <= ch <= "\udcff" for ch in path)
