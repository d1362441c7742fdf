"""Secrets and destructive SQL: real-looking credentials are found, ordinary text is left alone."""

from __future__ import annotations

import pytest

from mcp_servers.core.secrets import find_destructive_sql, find_secrets, redact

# Built from parts so that no scanner mistakes this file for a leak.
GITHUB = "ghp_" + "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8"
ANTHROPIC = (
    "sk-ant-api03-" + "x9Y8w7V6u5T4s3R2q1P0o9N8m7L6k5J4i3H2g1F0e9D8c7B6a5Z4y3X2w1V0u9T8s7R6q5P4o3N2m1L0k9J8i7H6g5F4e3D2"
)
OPENAI = "sk-proj-" + "Zq3kR9mN2pL7vX4bC8dF1gH6jK0sT5wY" + "T3BlbkFJ" + "aB3cD4eF5gH6iJ7kL8mN9oP0"
AWS_ID = "AKIA" + "IOSFODNN7EXAMPLE"
AWS_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCY" + "EXAMPLEKEY"
SLACK = "xoxb-" + "123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx"
STRIPE = "sk_live_" + "4eC39HqLyjWDarjtT1zdp7dc"
JWT = "eyJhbGciOiJIUzI1NiJ9." + "eyJzdWIiOiIxMjM0NTY3ODkwIn0." + "dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U"
KEY_BLOCK = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmU=\n-----END OPENSSH PRIVATE KEY-----"


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        (f"token = '{GITHUB}'", "github-token"),
        (f"ANTHROPIC_API_KEY={ANTHROPIC}", "anthropic-key"),
        (f"client = OpenAI(api_key='{OPENAI}')", "openai-key"),
        (f"aws_access_key_id = {AWS_ID}", "aws-access-key-id"),
        (f"aws_secret_access_key = {AWS_SECRET}", "aws-secret-access-key"),
        (f"SLACK = '{SLACK}'", "slack-token"),
        (f"stripe.api_key = '{STRIPE}'", "stripe-key"),
        (f"auth = 'Bearer {JWT}'", "jwt"),
        (KEY_BLOCK, "private-key"),
        ("url = 'postgres://admin:s3cr3tPassw0rd@db.internal:5432/app'", "url-password"),
        ("DB_PASSWORD = 'hR7#kL2$mQ9!vX4z'", "assigned-secret"),
        ('"api_token": "9f8e7d6c5b4a3f2e1d0c9b8a7f6e5d4c"', "assigned-secret"),
    ],
)
def test_secrets_real_looking_credentials_are_found_and_redacted(text: str, kind: str) -> None:
    assert kind in [f.kind for f in find_secrets(text)]
    redacted, count = redact(text)
    assert count >= 1 and f"[REDACTED:{kind}]" in redacted


@pytest.mark.parametrize(
    "text",
    [
        "commit 3f786850e387550fdab836ed7e6dc881de23001b fixed it",
        "CACHE_KEY = '3f786850e387550fdab836ed7e6dc881de23001b'",
        "request_id = 550e8400-e29b-41d4-a716-446655440000",
        "API_KEY = os.environ['API_KEY']",
        "token = settings.GITHUB_TOKEN",
        "password = ''",
        "PASSWORD=changeme",
        "def get_token(self) -> str: return self._token",
        "SECRET_KEY = '${SECRET_KEY}'",
        "sha256: e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "x = {'key': value, 'token_count': 12345678901234}",
        "The password reset flow sends an email.",
    ],
)
def test_secrets_ordinary_text_is_not_mangled(text: str) -> None:
    assert redact(text) == (text, 0)


def test_secrets_redaction_keeps_the_text_around_a_secret() -> None:
    text = f"use {GITHUB} then call postgres://u:hunter2hunter2@h/db"
    redacted, count = redact(text)
    assert count == 2
    assert redacted == "use [REDACTED:github-token] then call postgres://u:[REDACTED:url-password]@h/db"


@pytest.mark.parametrize(
    ("line", "kind"),
    [
        ("DROP TABLE users;", "drop"),
        ("cursor.execute('drop database prod')", "drop"),
        ("TRUNCATE TABLE sessions", "truncate"),
        ('db.execute("DELETE FROM users")', "delete-without-where"),
        ("ALTER TABLE users DROP COLUMN email;", "drop"),
        ("UPDATE accounts SET balance = 0;", "update-without-where"),
    ],
)
def test_secrets_destructive_sql_is_found(line: str, kind: str) -> None:
    assert find_destructive_sql(line) == kind


@pytest.mark.parametrize(
    "line",
    [
        "SELECT * FROM users WHERE id = ?",
        "DELETE FROM users WHERE id = ?",
        "UPDATE users SET name = ? WHERE id = ?",
        "INSERT INTO users (name) VALUES (?)",
        "def drop_table_name(self): ...",
        "# we never truncate logs",
    ],
)
def test_secrets_ordinary_sql_passes(line: str) -> None:
    assert find_destructive_sql(line) is None
