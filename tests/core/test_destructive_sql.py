"""Destructive SQL judged by a parser: unbounded and always-true statements are found, bounded ones pass."""

from __future__ import annotations

import pytest

from mcp_servers.core import destructive_sql
from mcp_servers.core.destructive_sql import find, scan


@pytest.mark.parametrize(
    ("line", "kind"),
    [
        ("DROP TABLE users;", "drop"),
        ("cursor.execute('drop database prod')", "drop"),
        ("TRUNCATE TABLE sessions", "truncate"),
        ('db.execute("DELETE FROM users")', "delete-without-where"),
        ("ALTER TABLE users DROP COLUMN email;", "drop"),
        ("UPDATE accounts SET balance = 0;", "update-without-where"),
        # issue 10, part 3: each of these got through the check by the word WHERE
        ('q = "DELETE FROM users WHERE 1=1"', "delete-where-always-true"),
        ('q = "UPDATE accounts SET balance = 0 WHERE true"', "update-where-always-true"),
        ('q = "DELETE FROM users WHERE id = 5 OR 1=1"', "delete-where-always-true"),
        ("q = \"DELETE FROM users WHERE 'a' = 'a'\"", "delete-where-always-true"),
        ('q = "DELETE FROM users WHERE id = id"', "delete-where-always-true"),
        ("q = \"DELETE FROM users WHERE name LIKE '%'\"", "delete-where-always-true"),
        ('q = "DELETE FROM users WHERE NOT 0"', "delete-where-always-true"),
        ('q = "DELETE FROM users WHERE (1)"', "delete-where-always-true"),
        ("DELETE FROM users -- WHERE id = 1", "delete-without-where"),
        ('q = "DELETE FROM users -- WHERE id = 1"', "delete-without-where"),
        ("DELETE FROM users /* WHERE id = 1 */;", "delete-without-where"),
        ('cur.execute("DELETE " "FROM users")', "delete-without-where"),
        ('cur.execute("DROP " + "TABLE users")', "drop"),
        ('q = "DELETE u FROM users u JOIN t ON 1=1"', "delete-without-where"),
        ('q = f"DELETE FROM {table}"', "delete-without-where"),
        ("DELETE FROM `users` WHERE TRUE;", "delete-where-always-true"),
        ("DELETE FROM [dbo].[users];", "delete-without-where"),
        ('UPDATE users SET "name" = NULL;', "update-without-where"),
        ("DROP COLLECTION sessions", "drop"),
    ],
)
def test_destructive_sql_is_found(line: str, kind: str) -> None:
    assert find(line) == kind


@pytest.mark.parametrize(
    "line",
    [
        "SELECT * FROM users WHERE id = ?",
        "DELETE FROM users WHERE id = ?",
        "UPDATE users SET name = ? WHERE id = ?",
        "INSERT INTO users (name) VALUES (?)",
        "def drop_table_name(self): ...",
        "# we never truncate logs",
        'q = "DELETE FROM sessions WHERE id = %s"',
        'q = "DELETE FROM sessions WHERE id = %(id)s"',
        'q = "DELETE FROM sessions WHERE id = :id"',
        'q = "DELETE FROM sessions WHERE id = $1"',
        'q = f"DELETE FROM {table} WHERE id = {key}"',
        'q = "UPDATE users SET seen = 1 WHERE 1=1 AND id = ?"',
        'q = "DELETE FROM users WHERE 1=0"',
        'q = "DELETE FROM t USING u WHERE t.id = u.id"',
        'q = "DELETE FROM users WHERE id IN (SELECT id FROM banned)"',
        'cur.execute("UPDATE users SET seen = 1 " "WHERE id = ?")',
        "-- DROP TABLE users",
    ],
)
def test_destructive_sql_bounded_statements_pass(line: str) -> None:
    assert find(line) is None


def test_destructive_sql_statement_over_lines_is_judged_whole() -> None:
    lines = ['cur.execute("""', "    DELETE FROM sessions", "    WHERE 1 = 1", '""")']
    assert scan(lines) == [(1, "delete-where-always-true")]
    assert scan(["DELETE FROM sessions", "WHERE expires_at < now();"]) == []


def test_destructive_sql_split_over_lines_is_found_on_its_first_line() -> None:
    lines = ["q = (", '    "DELETE "', '    "FROM users"', ")"]
    assert scan(lines) == [(1, "delete-without-where")]


def test_destructive_sql_unparseable_statement_falls_back_to_the_where_test() -> None:
    assert destructive_sql.judge("DELETE FROM users WHERE ((", "delete-without-where") is None
    assert destructive_sql.judge("DELETE FROM users ((", "delete-without-where") == "delete-without-where"
    assert destructive_sql.judge("DELETE FROM users ((  -- WHERE x", "delete-without-where") == "delete-without-where"
