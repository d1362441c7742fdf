"""Destructive SQL in added lines, judged by a parser.

Regular expressions only find candidates: a DROP, TRUNCATE, ALTER TABLE ... DROP, DELETE or UPDATE. Each
candidate's statement (the rest of its string literal, or up to its `;` in SQL files) is parsed by sqlglot,
trying a few dialects, and the verdict comes from the tree: DROP and TRUNCATE are destructive; a DELETE or
UPDATE is destructive with no WHERE, or with a WHERE that holds for every row (`1=1`, `true`, `... OR 1=1`,
`'a' = 'a'`, `id = id`, `name LIKE '%'`). A WHERE inside a comment is no WHERE: the parser drops comments.
Adjacent string literals are joined first (`"DELETE " "FROM users"`, `"DROP " + "TABLE x"`), and placeholders
(`?`, `%s`, `{name}`, `${name}`) are made parseable. A statement no dialect parses is judged the old way: by
whether a WHERE follows it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from . import literals

_CANDIDATES: list[tuple[str, re.Pattern[str]]] = [
    ("alter-drop", re.compile(r"(?i)\balter\s+table\s+[\w.\"`\[\]{}$]+\s+drop\b")),
    ("drop", re.compile(r"(?i)\bdrop\s+(?:table|database|schema|view|index|column|collection)\b")),
    ("truncate", re.compile(r"(?i)\btruncate\s+(?:table\s+[\w.\"`\[\]{}$]+|[\w.\"`\[\]{}$]+\s*(?:;|[\"'`)]|$))")),
    ("delete-without-where", re.compile(r"(?i)\bdelete\s+from\s+[\w.\"`\[\]{}$]+")),
    # MySQL's multi-table form, upper case only: `delete items from the list` is prose
    ("delete-without-where", re.compile(r"\bDELETE\s+[\w.`\"]+\s+FROM\s")),
    ("update-without-where", re.compile(r"(?i)\bupdate\s+[\w.\"`\[\]{}$]+\s+set\s+[\w.\"`\[\]]+\s*=")),
]
_WHERE = re.compile(r"(?i)\bwhere\b")
_BLOCK_COMMENT = re.compile(r"/\*.*?\*/")
_LINE_COMMENT = re.compile(r"^\s*(#|--|//|\*)")
_SQL_COMMENT = re.compile(r"--[^\n]*|#[^\n]*")
_TRIPLE = re.compile(r"(\"\"\"|''')(.*?)\1", re.DOTALL)
_SINGLE = re.compile(r"""(["'`])((?:\\.|(?!\1)[^\\\n])*)\1""")
_PLACEHOLDERS = re.compile(r"%\(\w+\)s|%s|\$?\{[^{}\n]*\}")
_DIALECTS = (None, "mysql", "postgres", "tsql")
# How many lines a statement outside a string literal may take to reach its `;`.
_REACH = 20
_MAX_STATEMENT = 20_000


@dataclass(frozen=True)
class _Statement:
    start: int  # in the joined text
    end: int
    text: str


def scan(lines: list[str]) -> list[tuple[int, str]]:
    """(index, kind) of each line, in a run of consecutive lines, that starts a destructive SQL statement."""
    text = "\n".join(_code(line) for line in lines)
    joined = literals.join(text)
    found: dict[int, str] = {}
    judged_until = -1
    for start, hint in sorted(_candidates(joined.text)):
        if start < judged_until:
            continue  # part of a statement already judged (the DROP of an ALTER TABLE ... DROP)
        statement = _statement(joined.text, start)
        judged_until = statement.end
        kind = judge(statement.text, hint)
        if kind:
            found.setdefault(text.count("\n", 0, joined.span(start, start + 1)[0]), kind)
    return sorted(found.items())


def find(line: str) -> str | None:
    """The kind of destructive SQL statement one line holds, or None (see scan)."""
    found = scan([line])
    return found[0][1] if found else None


def _code(line: str) -> str:
    """A line without its block comments, or empty when the whole line is a comment."""
    text = _BLOCK_COMMENT.sub(" ", line)
    return "" if _LINE_COMMENT.match(text) else text


def _candidates(text: str) -> Iterator[tuple[int, str]]:
    for kind, regex in _CANDIDATES:
        for m in regex.finditer(text):
            yield m.start(), kind


def _statement(text: str, start: int) -> _Statement:
    """The SQL a candidate starts: to the end of the string literal around it, else to its `;`."""
    for regex in (_TRIPLE, _SINGLE):
        for m in regex.finditer(text, max(0, text.rfind("\n", 0, start) + 1) if regex is _SINGLE else 0):
            if m.start(2) <= start < m.end(2):
                return _Statement(start, m.end(2), text[start : m.end(2)])
            if m.start() > start:
                break
    end = len(text)
    for stop in (text.find(";", start), text.find('"""', start), text.find("'''", start)):
        if stop != -1:
            end = min(end, stop + (1 if text[stop] == ";" else 0))
    lines = text[start:end].split("\n")
    return _Statement(start, end, "\n".join(lines[:_REACH]))


def judge(sql: str, hint: str) -> str | None:
    """The kind of destruction `sql` does (its first statement), or None; `hint` is what the regex saw."""
    tree = _parse(sql)
    from sqlglot import exp

    if tree is None or isinstance(tree, exp.Command):
        return _heuristic(sql, hint)  # no dialect parses it, or sqlglot kept it as text: judge it the old way
    if isinstance(tree, exp.Drop) or (isinstance(tree, exp.Alter) and _drops(tree)):
        return "drop"
    if isinstance(tree, exp.TruncateTable):
        return "truncate"
    if not isinstance(tree, exp.Delete | exp.Update):
        return None
    verb = "delete" if isinstance(tree, exp.Delete) else "update"
    where = tree.args.get("where")
    if where is None:
        return f"{verb}-without-where"
    return f"{verb}-where-always-true" if always_true(where.this) else None


def _drops(tree: Any) -> bool:
    from sqlglot import exp

    return any(isinstance(action, exp.Drop) for action in tree.args.get("actions") or [])


def _parse(sql: str) -> Any:
    """The first statement of `sql` as a sqlglot tree, in the first dialect that parses it; None if none does."""
    if len(sql) > _MAX_STATEMENT:
        return None
    import sqlglot
    from sqlglot.errors import SqlglotError

    counter = iter(range(1, 10_000))
    text = _PLACEHOLDERS.sub(lambda m: "?" if m.group(0).startswith("%") else f"_p{next(counter)}_", sql)
    for dialect in _DIALECTS:
        try:
            statements = [s for s in sqlglot.parse(text, read=dialect) if s is not None]
        except (SqlglotError, ValueError, RecursionError):
            continue
        if statements:
            return statements[0]
    return None


def always_true(condition: Any) -> bool:
    """Whether a WHERE condition holds for every row (for every row where its column is not NULL)."""
    from sqlglot import exp
    from sqlglot.optimizer.simplify import simplify

    try:
        node = simplify(condition.copy())
    except Exception:  # the simplifier is best effort: judge the condition as written
        node = condition
    while isinstance(node, exp.Paren):
        node = node.this
    if isinstance(node, exp.Or | exp.And):
        sides = (always_true(node.left), always_true(node.right))
        return any(sides) if isinstance(node, exp.Or) else all(sides)
    if isinstance(node, exp.Boolean):
        return bool(node.this)
    if not _refers_to_data(node):
        return not _false_constant(node)  # no column and no parameter: the same for every row
    if isinstance(node, exp.EQ | exp.GTE | exp.LTE | exp.NullSafeEQ) and node.left == node.right:
        return not _refers_to_parameters(node)  # `id = id`
    if isinstance(node, exp.Like | exp.ILike) and isinstance(node.expression, exp.Literal):
        return set(str(node.expression.this)) <= {"%"}  # `name LIKE '%'`
    return False


def _refers_to_data(node: Any) -> bool:
    from sqlglot import exp

    return node.find(exp.Column, exp.Placeholder, exp.Parameter, exp.Subquery, exp.Select) is not None


def _refers_to_parameters(node: Any) -> bool:
    from sqlglot import exp

    names = {c.name for c in node.find_all(exp.Column)}
    return node.find(exp.Placeholder, exp.Parameter) is not None or any(re.fullmatch(r"_p\d+_", n) for n in names)


def _false_constant(node: Any) -> bool:
    from sqlglot import exp

    if isinstance(node, exp.Null):
        return True
    if isinstance(node, exp.Literal) and not node.is_string:
        try:
            return float(node.this) == 0
        except ValueError:
            return False
    return False


def _heuristic(sql: str, hint: str) -> str | None:
    """The verdict without a parse: a DELETE or UPDATE is bounded when a WHERE follows it outside comments."""
    if hint in {"delete-without-where", "update-without-where"}:
        return None if _WHERE.search(_SQL_COMMENT.sub(" ", sql.split(";", maxsplit=1)[0])) else hint
    return "drop" if hint == "alter-drop" else hint
