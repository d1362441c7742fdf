"""The safety policy: what an unattended agent may change, judged on git's view of the change.

`check_changes` judges the working tree against a base; `check_task` judges a task before work starts.
Every violation carries a stable rule id, the path, what is wrong and how to undo it.
"""

from __future__ import annotations

import bisect
import itertools
import posixpath
import re
import tomllib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from . import changes as ch
from . import destructive_sql, size
from .config import CONFIG_NAME, Policy, Settings
from .git import EMPTY_TREE, Repo, is_undecodable, printable
from .models import ChangeReport, FileSummary, TaskCheck, Violation, cut
from .paths import Globs, clean_glob, look_alike, odd_characters
from .secrets import find_secrets

_STATUS = {"A": "added", "M": "modified", "D": "deleted", "R": "renamed", "C": "copied", "T": "type-changed"}
_EMPTY_BLOB = "e69de29bb2d1d6434b8b29ae775ad8c2e48c5391"
# A line of a secret file this long, repeated in a change, is a copy of it (shorter ones are too common).
_SECRET_LINE_MIN = 12
_SECRET_FILE_MAX = 256 * 1024
_DEPENDENCY_TABLES = (
    ("project", "dependencies"),
    ("project", "optional-dependencies"),
    ("build-system", "requires"),
    ("dependency-groups",),
    ("tool", "poetry", "dependencies"),
    ("tool", "poetry", "dev-dependencies"),
    ("tool", "poetry", "group"),
    ("tool", "pdm", "dev-dependencies"),
    ("tool", "uv", "dev-dependencies"),
    ("tool", "uv", "sources"),
    ("tool", "uv", "override-dependencies"),
    ("tool", "uv", "constraint-dependencies"),
    ("tool", "uv", "index"),
)
# `[tool.<name>]` tables of pyproject.toml that configure the test run (pytest's ini_options, coverage.py's run
# and report); like the dependency tables, only a person changes them.
_TEST_TOOLS = ("pytest", "coverage")


# Protected whatever the configuration says: the policy itself.
ALWAYS_PROTECTED = (CONFIG_NAME,)


class PlanGuard(Protocol):
    """Tells whether a change to the plan file is exactly what the project tools wrote (see core.queue)."""

    path: str

    def accepts(self, old: bytes, new: bytes) -> bool: ...


@dataclass
class NoToolEdits:
    """The guard when no tool has written the plan: any change to it is a person's or an agent's hand edit."""

    path: str

    def accepts(self, old: bytes, new: bytes) -> bool:
        return old == new


class _Rules:
    """The policy's globs, compiled once per check."""

    def __init__(self, policy: Policy, scope: Sequence[str]) -> None:
        self.policy = policy
        self.allowed = Globs(policy.allowed_paths)
        self.protected = Globs([*ALWAYS_PROTECTED, *policy.all_protected], folded=True)
        self.scope = Globs(scope)


def check_changes(
    repo: Repo,
    settings: Settings,
    *,
    base: str | None = None,
    task_files: Sequence[str] | None = None,
    tree: str | None = None,
    environ: Mapping[str, str] | None = None,
    plan: PlanGuard | None = None,
) -> ChangeReport:
    """The working tree (staged, unstaged, untracked), or `tree` if given, against `base`, judged by the policy."""
    repo.require_commits()
    changes = ch.collect(repo, base or ch.default_base(environ), tree or repo.worktree_tree())
    guard = plan or NoToolEdits(settings.plan.path)
    violations = evaluate(repo, settings.policy, changes, task_files or [], guard)
    files = [_summary(f) for f in changes.files]
    return ChangeReport(
        safe=not violations,
        base=changes.base,
        tree=changes.tree,
        violations=cut(violations),
        violations_total=len(violations),
        files=cut(files),
        files_total=len(files),
        lines_added=changes.lines_added,
        lines_removed=changes.lines_removed,
        policy_hash=settings.policy_hash(),
    )


def evaluate(
    repo: Repo, policy: Policy, changes: ch.ChangeSet, task_files: Sequence[str], plan: PlanGuard
) -> list[Violation]:
    """Every violation in `changes`, in file order, then the whole-change rules."""
    rules = _Rules(policy, [clean_glob(p) for p in task_files])
    found: list[Violation] = []
    for f in changes.files:
        if plan.path in f.paths:
            found.extend(_plan_file(repo, f, rules, changes.base, plan))
            continue
        for rule in _FILE_RULES:
            found.extend(rule(f, rules, changes.base))
    found.extend(_copies_of_protected(repo, changes, rules))
    found.extend(_pyproject_tables(repo, changes))
    found.extend(_size(repo, policy, changes))
    found = [_printable(v) for v in found]
    if not changes.scanned:
        found.append(
            Violation(
                rule="unscanned",
                message=f"the diff is larger than {ch.MAX_PATCH_BYTES // 2**20} MB, so its lines could not be scanned",
                fix="make a smaller change",
            )
        )
    return found


def _size(repo: Repo, policy: Policy, changes: ch.ChangeSet) -> Iterator[Violation]:
    """The first size limit the change breaks: lines, then bytes, then Python statements (see core.size)."""
    smaller = "make a smaller change: split the task, or undo part of the work"
    total = changes.lines_added + changes.lines_removed
    if total > policy.max_changed_lines:
        biggest = sorted(changes.files, key=lambda f: f.added + f.removed, reverse=True)[:5]
        where = ", ".join(f"{printable(f.path)} +{f.added}/-{f.removed}" for f in biggest)
        yield Violation(
            rule="too-large",
            path=printable(biggest[0].path) if biggest else None,
            message=f"the change has {total} changed lines ({changes.lines_added} added, {changes.lines_removed} "
            f"removed; {where}); a task may change at most {policy.max_changed_lines}",
            fix=smaller,
        )
        return
    added = size.added_bytes(changes)
    if added > policy.byte_limit:
        yield Violation(
            rule="too-large-bytes",
            message=f"the change adds {added:,} bytes in {changes.lines_added} lines; a task may add at most "
            f"{policy.byte_limit:,} (policy.max_changed_bytes)",
            fix=f"{smaller}; data and generated code belong in a person's commit",
        )
        return
    statements = size.added_statements(repo, changes)
    if statements > policy.statement_limit:
        yield Violation(
            rule="too-large-statements",
            message=f"the change adds {statements} Python statements in {changes.lines_added} lines; a task may "
            f"add at most {policy.statement_limit} (policy.max_changed_statements)",
            fix=f"write one statement per line and {smaller}",
        )


def _printable(v: Violation) -> Violation:
    """Undecodable file names are matched as they are, but shown with U+FFFD so the answer is valid JSON."""
    return Violation(
        rule=v.rule,
        path=printable(v.path) if v.path else None,
        message=printable(v.message),
        fix=printable(v.fix),
    )


def _undo(f: ch.FileChange, base: str) -> str:
    short = base[:12]
    if f.status == "A":
        return f"remove it (`rm -- '{f.path}'`)"
    if f.status in {"R", "C"} and f.old_path:
        return f"undo it (`git checkout {short} -- '{f.old_path}'` and `rm -- '{f.path}'`)"
    return f"restore it (`git checkout {short} -- '{f.path}'`)"


# -- rules on one file --------------------------------------------------------------------------------


def _path_names(f: ch.FileChange, rules: _Rules, base: str) -> Iterator[Violation]:
    for path in f.paths:
        if is_undecodable(path):
            yield Violation(
                rule="undecodable-path",
                path=path,
                message="the file name is not valid UTF-8",
                fix=f"give the file a plain ASCII name; {_undo(f, base)}",
            )
            continue
        odd = odd_characters(path)
        if odd:
            yield Violation(
                rule="suspicious-path",
                path=path,
                message=f"the file name contains invisible or control characters ({', '.join(odd)})",
                fix=f"give the file a plain name; {_undo(f, base)}",
            )
        elif rules.policy.ascii_paths_only and not path.isascii():
            why = look_alike(path)
            if why is None and (pattern := rules.protected.match(path)):
                why = f"it folds to a name protected by `{pattern}`"
            if why is not None:
                yield Violation(
                    rule="non-ascii-path",
                    path=path,
                    message=f"the file name is a look-alike: {why} (policy.ascii_paths_only is on)",
                    fix=f"give the file a name without look-alike characters; {_undo(f, base)}",
                )


def _protected(f: ch.FileChange, rules: _Rules, base: str) -> Iterator[Violation]:
    for path in f.paths:
        pattern = rules.protected.match(path)
        if not pattern and f.new_mode == "120000" and path == f.path:
            pattern = rules.protected.match(path + "/x")  # a link stands for a folder: `src/.claude -> docs/x`
        if pattern:
            verb = "deleted" if f.status == "D" or (path == f.old_path and f.status == "R") else _STATUS[f.status]
            if path == f.old_path and f.status == "C":
                continue  # reading a protected file is judged by _copies_of_protected
            yield Violation(
                rule="protected-path",
                path=path,
                message=f"`{path}` is protected (pattern `{pattern}`) and was {verb}; only a person may change it",
                fix=_undo(f, base),
            )


def _outside(f: ch.FileChange, rules: _Rules, base: str) -> Iterator[Violation]:
    for path in f.paths:
        if path == f.old_path and f.status == "C":
            continue
        if not rules.allowed.match(path):
            allowed = ", ".join(f"`{p}`" for p in rules.policy.allowed_paths) or "nothing"
            yield Violation(
                rule="outside-allowed",
                path=path,
                message=f"`{path}` is outside the paths agents may change ({allowed})",
                fix=f"keep the work inside the allowed paths; {_undo(f, base)}",
            )
        if rules.scope and not rules.scope.match(path):
            scope = ", ".join(f"`{p}`" for p in rules.scope.patterns)
            yield Violation(
                rule="out-of-scope",
                path=path,
                message=f"`{path}` is outside this task's Files: scope ({scope})",
                fix=f"change only the task's files; {_undo(f, base)}",
            )


def _deletes(f: ch.FileChange, rules: _Rules, base: str) -> Iterator[Violation]:
    if rules.policy.allow_delete:
        return
    if f.status == "D":
        yield Violation(
            rule="no-delete",
            path=f.path,
            message=f"`{f.path}` was deleted; agents may not delete files",
            fix=_undo(f, base),
        )
    elif f.status == "R" and f.old_path:
        yield Violation(
            rule="no-delete",
            path=f.old_path,
            message=f"renaming `{f.old_path}` to `{f.path}` deletes `{f.old_path}`; agents may not "
            "delete or move files",
            fix=_undo(f, base),
        )


def _modes(f: ch.FileChange, rules: _Rules, base: str) -> Iterator[Violation]:
    if "160000" in (f.old_mode, f.new_mode):
        yield Violation(
            rule="submodule",
            path=f.path,
            message=f"`{f.path}` is a submodule (gitlink) that was {_STATUS[f.status]}; agents may not "
            "add, move or repoint submodules",
            fix=f"`git rm --cached -- '{f.path}'`, or `git submodule update -- '{f.path}'` to restore it",
        )
        return
    if rules.policy.allow_mode_changes:
        return
    if f.status == "A" and f.new_mode == "100755":
        yield Violation(
            rule="executable",
            path=f.path,
            message=f"`{f.path}` was added as an executable file",
            fix=f"`chmod 644 '{f.path}'`",
        )
    elif f.status not in {"A", "D"} and f.old_mode != f.new_mode and "120000" not in (f.old_mode, f.new_mode):
        yield Violation(
            rule="mode-change",
            path=f.path,
            message=f"the mode of `{f.path}` changed from {f.old_mode} to {f.new_mode}",
            fix=f"`chmod {'644' if f.old_mode == '100644' else '755'} '{f.path}'`",
        )


def _symlinks(f: ch.FileChange, rules: _Rules, base: str) -> Iterator[Violation]:
    if f.new_mode != "120000" or f.status == "D":
        return
    target = f.symlink_target or ""
    resolved = posixpath.normpath(posixpath.join(posixpath.dirname(f.path), target))
    if target.startswith("/") or resolved == ".." or resolved.startswith("../"):
        problem = f"points out of the repository (`{target}`)"
    elif rules.protected.match(resolved) or rules.protected.match(resolved + "/x"):
        problem = f"points at the protected path `{resolved}`"
    elif not rules.allowed.match(resolved):
        problem = f"points at `{resolved}`, outside the allowed paths"
    elif not rules.policy.allow_symlinks:
        problem = f"is a symbolic link (to `{target}`), and policy.allow_symlinks is off"
    else:
        return
    yield Violation(
        rule="symlink", path=f.path, message=f"`{f.path}` {problem}", fix=f"remove the link; {_undo(f, base)}"
    )


def _content(f: ch.FileChange, rules: _Rules, base: str) -> Iterator[Violation]:
    if f.binary and f.status != "D" and not rules.policy.allow_binary:
        yield Violation(
            rule="binary",
            path=f.path,
            message=f"`{f.path}` is a binary file: it cannot be reviewed or scanned for secrets",
            fix=f"commit text only, or have a person add it; {_undo(f, base)}",
        )
    if rules.policy.scan_secrets:
        for run in _runs(f.added_lines):
            # a run is scanned as one text: a key split over lines (`("AKIA"\n "...")`) is joined like any other
            text = "\n".join(line for _, line in run)
            starts = list(itertools.accumulate((len(line) + 1 for _, line in run[:-1]), initial=0))
            for secret in find_secrets(text):
                number = run[bisect.bisect_right(starts, secret.start) - 1][0]
                yield Violation(
                    rule="secret",
                    path=f.path,
                    message=f"line {number} of `{f.path}` adds what looks like a secret ({secret.kind})",
                    fix="never commit credentials: read them from the environment, and remove the line",
                )
    if rules.policy.scan_destructive_sql:
        for run in _runs(f.added_lines):
            for index, kind in destructive_sql.scan([text for _, text in run]):
                yield Violation(
                    rule="destructive-sql",
                    path=f.path,
                    message=f"line {run[index][0]} of `{f.path}` adds destructive SQL ({kind})",
                    fix="agents may not drop, truncate or delete data; remove the statement, or bound it with a "
                    "WHERE that names the rows",
                )


def _runs(lines: list[tuple[int, str]]) -> Iterator[list[tuple[int, str]]]:
    """Consecutive added lines, run by run: a SQL statement can span lines, never a gap in the patch."""
    run: list[tuple[int, str]] = []
    for number, text in lines:
        if run and number != run[-1][0] + 1:
            yield run
            run = []
        run.append((number, text))
    if run:
        yield run


_FILE_RULES: list[Callable[[ch.FileChange, _Rules, str], Iterator[Violation]]] = [
    _path_names,
    _protected,
    _outside,
    _deletes,
    _modes,
    _symlinks,
    _content,
]


def _plan_file(repo: Repo, f: ch.FileChange, rules: _Rules, base: str, plan: PlanGuard) -> Iterator[Violation]:
    """The plan file changes only through the project tools (a completed task's Status, a proposal)."""
    if f.status == "M" and f.path == plan.path:
        blobs = repo.read_blobs([f.old_oid, f.new_oid], max_size=ch.MAX_BLOB_BYTES)
        old, new = blobs.get(f.old_oid), blobs.get(f.new_oid)
        if old is not None and new is not None and plan.accepts(old, new):
            yield from _path_names(f, rules, base)
            yield from _content(f, rules, base)
            return
    yield Violation(
        rule="plan-edit",
        path=plan.path,
        message=f"`{plan.path}` was {_STATUS.get(f.status, 'changed')} by hand: only people edit the plan; "
        "an agent changes it only through `complete_task` (a Status line) and `propose_task` (a new proposal)",
        fix=_undo(f, base),
    )


# -- rules that need more than one file ----------------------------------------------------------------


def _copies_of_protected(repo: Repo, changes: ch.ChangeSet, rules: _Rules) -> Iterator[Violation]:
    """A copy out of a protected path: a file whose content is exactly a protected file's, or added lines that
    repeat a line of a secret file (`.env`, keys), however the copy was made."""
    for f in changes.files:
        if f.status == "C" and f.old_path and rules.protected.match(f.old_path):
            yield _copy_violation(f, f.old_path, changes.base)
    written: dict[str, list[ch.FileChange]] = {}
    for f in changes.files:
        if f.status in {"A", "M", "T", "R", "C"} and f.new_oid != _EMPTY_BLOB:
            written.setdefault(f.new_oid, []).append(f)
    if not written or changes.base_tree == EMPTY_TREE:
        return
    secret_files = Globs(rules.policy.secret_files, folded=True)
    secrets: dict[str, str] = {}
    for path, (_mode, oid) in repo.ls_tree(changes.base_tree).items():
        for f in written.get(oid, ()):
            if path != f.path and rules.protected.match(path):
                yield _copy_violation(f, path, changes.base)
        if secret_files.match(path):
            secrets[oid] = path
    yield from _leaked_lines(repo, changes, secrets)


def _leaked_lines(repo: Repo, changes: ch.ChangeSet, secrets: dict[str, str]) -> Iterator[Violation]:
    """Added lines that repeat a line of a secret file: a copy with an edit is still a copy."""
    if not secrets:
        return
    known: dict[str, str] = {}
    for oid, data in repo.read_blobs(list(secrets), max_size=_SECRET_FILE_MAX).items():
        for line in data.decode("utf-8", "replace").splitlines():
            if len(line.strip()) >= _SECRET_LINE_MIN:
                known.setdefault(line.strip(), secrets[oid])
    for f in changes.files:
        repeated = {known[t.strip()] for _, t in f.added_lines if t.strip() in known}
        for source in sorted(repeated - {f.path}):
            yield Violation(
                rule="copy-from-protected",
                path=f.path,
                message=f"`{f.path}` repeats lines of the secret file `{source}`",
                fix=f"never copy credentials out of `{source}`; remove those lines",
            )


def _copy_violation(f: ch.FileChange, source: str, base: str) -> Violation:
    return Violation(
        rule="copy-from-protected",
        path=f.path,
        message=f"`{f.path}` holds a copy of the protected file `{source}`",
        fix=_undo(f, base),
    )


def _pyproject_tables(repo: Repo, changes: ch.ChangeSet) -> Iterator[Violation]:
    """pyproject.toml may change, but never its dependency tables nor the tables that configure the test run."""
    manifests = [f for f in changes.files if posixpath.basename(f.path) == "pyproject.toml" and f.status != "D"]
    if not manifests:
        return
    blobs = repo.read_blobs([oid for f in manifests for oid in (f.old_oid, f.new_oid)])
    for f in manifests:
        try:
            old, new = (_toml(blobs.get(oid, b"")) for oid in (f.old_oid, f.new_oid))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
            yield Violation(
                rule="dependency-change",
                path=f.path,
                message=f"`{f.path}` does not parse ({e}), so its dependency and test tables cannot be checked",
                fix=_undo(f, changes.base),
            )
            continue
        for table in _DEPENDENCY_TABLES:
            if _dig(old, table) != _dig(new, table):
                yield Violation(
                    rule="dependency-change",
                    path=f.path,
                    message=f"`{'.'.join(table)}` in `{f.path}` changed; only a person changes dependencies",
                    fix=f"undo the change to `{'.'.join(table)}`",
                )
        old_tools, new_tools = _test_tools(old), _test_tools(new)
        for name in sorted(old_tools.keys() | new_tools.keys()):
            if old_tools.get(name) != new_tools.get(name):
                yield Violation(
                    rule="test-config-change",
                    path=f.path,
                    message=f"`[tool.{name}]` in `{f.path}` changed; it decides which tests run and what coverage "
                    "counts, so only a person changes it",
                    fix=f"undo the change to `[tool.{name}]`",
                )


def _test_tools(doc: dict[str, Any]) -> dict[str, Any]:
    """The `[tool.pytest*]` and `[tool.coverage*]` tables: they configure the run the gate judges."""
    tool = doc.get("tool")
    if not isinstance(tool, dict):
        return {}
    return {name: value for name, value in tool.items() if name.startswith(_TEST_TOOLS)}


def _toml(data: bytes) -> dict[str, Any]:
    return tomllib.loads(data.decode("utf-8")) if data else {}


def _dig(doc: dict[str, Any], keys: tuple[str, ...]) -> Any:
    for key in keys:
        if not isinstance(doc, dict) or key not in doc:
            return None
        doc = doc[key]
    return doc


def _summary(f: ch.FileChange) -> FileSummary:
    return FileSummary(
        path=printable(f.path),
        status=_STATUS.get(f.status, "unknown"),  # type: ignore[arg-type]
        old_path=printable(f.old_path) if f.old_path else None,
        added=f.added,
        removed=f.removed,
        binary=f.binary,
        mode=f.new_mode,
    )


# -- tasks ------------------------------------------------------------------------------------------------


def check_task(
    settings: Settings,
    description: str,
    *,
    estimated_lines: int | None = None,
    alignment_score: int | None = None,
    tests_defined: bool | None = None,
    files: Sequence[str] | None = None,
    task_id: str | None = None,
) -> TaskCheck:
    """A task against the policy before any work starts: forbidden operations, size, alignment, tests, scope."""
    policy = settings.policy
    found: list[Violation] = []
    text = " ".join(description.split())  # a phrase wrapped over two lines is still one phrase
    for op in policy.all_forbidden:
        m = re.search(op.pattern, text, re.IGNORECASE)
        if m:
            found.append(
                Violation(
                    rule=f"forbidden:{op.id}",
                    message=f'the task asks for {op.message} ("{m.group(0).strip()}"), which an '
                    "unattended agent may not do",
                    fix="leave this task to a person, or reword it if it does not really ask for that",
                )
            )
    if estimated_lines is None:
        if policy.require_estimate:
            found.append(
                Violation(
                    rule="no-estimate",
                    message="the task has no estimated size",
                    fix="add `Estimated lines: N` to the task",
                )
            )
    elif estimated_lines > policy.max_changed_lines:
        found.append(
            Violation(
                rule="too-large",
                message=f"the task is estimated at {estimated_lines} lines; the limit is {policy.max_changed_lines}",
                fix="split it into smaller tasks",
            )
        )
    if alignment_score is None or alignment_score < policy.min_alignment_score:
        got = "no alignment score" if alignment_score is None else f"an alignment score of {alignment_score}"
        found.append(
            Violation(
                rule="low-alignment",
                message=f"the task has {got}; at least {policy.min_alignment_score} is needed",
                fix="have a person rescore or rework the task",
            )
        )
    if policy.require_tests and not tests_defined:
        found.append(
            Violation(
                rule="no-tests",
                message="the task defines no tests",
                fix="add `Tests defined: Yes (path/to/test_file.py)` to the task",
            )
        )
    found.extend(_task_files(settings.policy, files or []))
    return TaskCheck(ok=not found, task_id=task_id, violations=found)


def _task_files(policy: Policy, files: Sequence[str]) -> Iterator[Violation]:
    allowed, protected = Globs(policy.allowed_paths), Globs([*ALWAYS_PROTECTED, *policy.all_protected], folded=True)
    for raw in files:
        pattern = clean_glob(raw)
        sample = _example(pattern)
        if protected.match(sample) or protected.match(pattern):
            yield Violation(
                rule="protected-path",
                path=pattern,
                message=f"the task's scope `{pattern}` covers protected files",
                fix="only a person may change protected files; narrow the scope",
            )
        elif not allowed.match(sample):
            yield Violation(
                rule="outside-allowed",
                path=pattern,
                message=f"the task's scope `{pattern}` reaches outside the paths agents may change",
                fix=f"keep the scope inside {', '.join(policy.allowed_paths)}",
            )


def _example(pattern: str) -> str:
    """A concrete path a glob matches, to test the glob against other globs."""
    text = re.sub(r"\[!?([^\]])[^\]]*\]", r"\1", pattern)
    return text.replace("**", "x").replace("*", "x").replace("?", "x")
