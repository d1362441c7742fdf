"""Secrets: real-looking credentials are found, ordinary text is left alone."""

from __future__ import annotations

import base64

import pytest

from mcp_servers.core.secrets import find_secrets, redact

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
AWS_SECRET_40 = "Zk3pQ8/vN2xR7tL4mB9w" + "C1yD6fH0jS5gA+eU2iO7"
SENDGRID = "SG." + "Xq8vN2kLp4Rt7Ym1Bz6Wc3" + "." + "Hd9Fg5Jk2Lm7Np4Qr8St1Vw6Xy3Za0Bc5De8Fg2Hj4K"
TWILIO_SK = "SK" + "3f9a1c7e5b2d8f4a6c0e9b1d7f3a5c8e"
TWILIO_AC = "AC" + "8e2b4d6f1a3c5e7b9d0f2a4c6e8b1d3f"
DISCORD = "MTA4Nz" + "k2NTQzMjEwOTg3NjU0" + ".GxY7Qp." + "Zk8vN2xR7tL4mB9wC1yD6fH0jS5"
BASIC = base64.b64encode(b"deploy:" + b"Tr0ub4dor-3x").decode()
PEM_B64 = base64.b64encode(("-----BEGIN " + "PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n").encode()).decode()
CERT_B64 = base64.b64encode(b"-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIUY2VydGlmaWNhdGU=\n").decode()


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
        # issue 10, part 3
        (f"signing = '{AWS_SECRET_40}'", "aws-secret-access-key"),
        (f"{AWS_ID},{AWS_SECRET_40[:20]}aaaaaaaaaaaaaaaaaaaa", "aws-secret-access-key"),  # beside its id
        ("url = 'postgres://user:" + "p@ss@host/db'", "url-password"),
        ('{"password": "' + "hunter2" + '"}', "assigned-secret"),
        ("Authorization: Bearer 8f3kLq9ZxP2m" + "N7vR4tW1yB6cD0eH5jU", "bearer-token"),
        (f"-H 'Authorization: Basic {BASIC}'", "basic-auth"),
        (f"sg = SendGridAPIClient('{SENDGRID}')", "sendgrid-api-key"),
        (f"client = Client('{TWILIO_SK}', secret)", "twilio-api-key"),
        (f"ACCOUNT_SID = '{TWILIO_AC}'", "twilio-api-key"),
        (f"bot.run('{DISCORD}')", "discord-bot-token"),
        (f"  server.pem: {PEM_B64}", "private-key"),
        (f'KEY_ID = "{AWS_ID[:4]}" "{AWS_ID[4:]}"', "aws-access-key-id"),
        (f"key = '{ANTHROPIC[:7]}' + '{ANTHROPIC[7:]}'", "anthropic-key"),
        (f'KEY_ID = (\n    "{AWS_ID[:10]}"\n    "{AWS_ID[10:]}"\n)', "aws-access-key-id"),
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
        # issue 10, part 3: next to the new detectors
        'headers = {"Authorization": f"Bearer {token}"}',
        "curl -H 'Authorization: Bearer $TOKEN' https://api.example.com",
        "Basic authentication is off; send a Bearer token instead.",
        'errors = {"password": "required", "email": "invalid"}',
        'user = {"password": "", "name": "bob"}',
        'PASSWORD_FIELD = "password"',
        'client.login(username="bob", password="test1234")',
        "Authorization: Basic " + base64.b64encode(b"Aladdin:open sesame").decode(),
        "Authorization: Basic " + base64.b64encode(b"user:password").decode(),
        '<input type="password" autocomplete="current-password">',
        f"  tls.crt: {CERT_B64}",
        'HANDLER = "RequestValidationErrorHandlerFactoryImpl"',
        "see http://hg.python.org/cpython/file/603b4d593758/Lib/socket.py#l535",
        'msg = "Twilio account SIDs start with AC" + " and keys with SK"',
        'cur.execute("SELECT id " "FROM users " "WHERE id = ?")',
    ],
)
def test_secrets_ordinary_text_is_not_mangled(text: str) -> None:
    assert redact(text) == (text, 0)


def test_secrets_redaction_keeps_the_text_around_a_secret() -> None:
    text = f"use {GITHUB} then call postgres://u:hunter2hunter2@h/db"
    redacted, count = redact(text)
    assert count == 2
    assert redacted == "use [REDACTED:github-token] then call postgres://u:[REDACTED:url-password]@h/db"


def test_secrets_split_literals_are_redacted_from_the_first_piece_to_the_last() -> None:
    text = f'KEY_ID = "{AWS_ID[:4]}" "{AWS_ID[4:]}"  # rotated'
    assert redact(text) == ('KEY_ID = "[REDACTED:aws-access-key-id]"  # rotated', 1)


def test_secrets_url_password_with_at_is_redacted_whole() -> None:
    assert redact("postgres://app:" + "p@ss@db.internal/app") == (
        "postgres://app:[REDACTED:url-password]@db.internal/app",
        1,
    )


def test_secrets_aws_pair_both_redacted() -> None:
    text = f"{AWS_ID} {AWS_SECRET_40}"
    assert redact(text) == ("[REDACTED:aws-access-key-id] [REDACTED:aws-secret-access-key]", 2)
