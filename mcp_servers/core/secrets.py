"""Secrets in text: the policy scans added lines with this, memory redacts with it.

No network and no model. Findings come in layers, each adding only spans the earlier ones did not claim:
1. regular expressions for the formats providers publish (and passwords in URLs, `@` included);
2. `*_KEY=`/`*_TOKEN=`/`PASSWORD=` assignments with an entropy test, so that `API_KEY = os.environ["API_KEY"]`
   is not a finding, and short quoted passwords (`"password": "hunter2"`) under a password name;
3. `Authorization: Bearer/Basic` credentials and private keys wrapped in base64;
4. the regex plugins of detect-secrets, a maintained detector (see `core.detectors`);
5. unlabelled AWS secret keys: 40 characters of base64 next to an access key id, or random enough alone.
Adjacent string literals are joined first (`"AKIA" "..."`, `"sk-ant-" + "..."`, see `core.literals`).
"""

from __future__ import annotations

import base64
import binascii
import math
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

from . import detectors, literals


@dataclass(frozen=True)
class Finding:
    kind: str
    start: int
    end: int


# (kind, regex). The secret is group "s" when there is one, else the whole match.
_SECRET_PATTERNS: list[tuple[str, re.Pattern[str]]] = [
    (
        "private-key",
        re.compile(
            r"-----BEGIN (?:RSA |DSA |EC |OPENSSH |PGP |ENCRYPTED |SSH2 )?PRIVATE KEY(?: BLOCK)?-----"
            r"(?:[\s\S]{0,8192}?-----END [A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----|(?:(?:\r?\n|\\n)[A-Za-z0-9+/=]{16,})*)"
        ),
    ),
    (
        "aws-access-key-id",
        re.compile(r"\b(?:AKIA|ASIA|ABIA|ACCA|AGPA|AIDA|AROA|AIPA|ANPA|ANVA|APKA)[0-9A-Z]{16}\b"),
    ),
    (
        "aws-secret-access-key",
        re.compile(
            r"(?i)\baws_?secret_?(?:access_?)?key\b[\"']?\s*[:=]\s*[\"']?(?P<s>[A-Za-z0-9/+]{40})(?![A-Za-z0-9/+])"
        ),
    ),
    ("github-token", re.compile(r"\b(?:gh[pousr]_[A-Za-z0-9]{36,255}|github_pat_[A-Za-z0-9_]{22,255})\b")),
    ("anthropic-key", re.compile(r"\bsk-ant-[A-Za-z0-9_-]{20,}")),
    ("openai-key", re.compile(r"\bsk-(?!ant-)(?:proj-|svcacct-|admin-)?[A-Za-z0-9_-]{32,}")),
    ("google-api-key", re.compile(r"\bAIza[0-9A-Za-z_-]{35}(?![0-9A-Za-z_-])")),
    ("slack-token", re.compile(r"\bxox[abposr]-[A-Za-z0-9-]{10,}")),
    ("stripe-key", re.compile(r"\b[rs]k_(?:live|test)_[A-Za-z0-9]{16,}")),
    ("gitlab-token", re.compile(r"\bglpat-[A-Za-z0-9_-]{20,}")),
    ("npm-token", re.compile(r"\bnpm_[A-Za-z0-9]{36}\b")),
    ("pypi-token", re.compile(r"\bpypi-AgE[A-Za-z0-9_-]{50,}")),
    ("huggingface-token", re.compile(r"\bhf_[A-Za-z0-9]{34,}\b")),
    ("jwt", re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}")),
    (
        # the password runs to the last `@` before the path: `postgres://app:p@ss@db/app` holds `p@ss`
        "url-password",
        re.compile(r"\b[a-zA-Z][a-zA-Z0-9+.-]{1,15}://[^/\s:@'\"?#]{0,64}:(?P<s>[^/\s'\"?#]{3,128})@"),
    ),
]

# Text each pattern needs (lower-cased): a pattern whose needles are all missing is not run. A regex that
# starts with `\b` gets no fast literal search from `re`; `str.__contains__` is one pass in C.
_NEEDLES: dict[str, tuple[str, ...]] = {
    "private-key": ("private key",),
    "aws-access-key-id": ("akia", "asia", "abia", "acca", "agpa", "aida", "aroa", "aipa", "anpa", "anva", "apka"),
    "aws-secret-access-key": ("aws",),
    "github-token": ("ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_"),
    "anthropic-key": ("sk-ant-",),
    "openai-key": ("sk-",),
    "google-api-key": ("aiza",),
    "slack-token": ("xox",),
    "stripe-key": ("k_live_", "k_test_"),
    "gitlab-token": ("glpat-",),
    "npm-token": ("npm_",),
    "pypi-token": ("pypi-age",),
    "huggingface-token": ("hf_",),
    "jwt": ("eyj",),
    "url-password": ("://",),
}
_ASSIGNMENT_NEEDLES = ("key", "token", "secret", "passw", "pwd")
_ASSIGNMENT = re.compile(
    r"(?i)\b(?P<name>[A-Z0-9_]*(?:KEY|TOKEN|SECRET|PASSWORD|PASSWD|PWD)[A-Z0-9_]*)\b[\"']?\s*[:=]\s*"
    r"(?:(?P<q>[\"'])(?P<s>[^\s\"']{4,256}?)(?P=q)|(?P<u>[^\s\"'`;,)]{8,}))",
)
_PLACEHOLDER = re.compile(r"[{}<>]|%\(?\w*\)?s|^\$|\$\{|^\*+$")
_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_URL = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*://[^@\s]*$")  # no userinfo: url-password handles those
_PATH = re.compile(r"^(?:~|\.{1,2})?/(?:[a-z0-9._@-]+/)*[a-z0-9._@-]+$|^[a-z0-9._-]+(?:/[a-z0-9._-]+)+$")
_DIGEST = re.compile(r"(?i)^(?:sha(?:1|224|256|384|512)|md5|blake2[bs]?)[:-][0-9a-f]{32,}$")
_HEX = re.compile(r"^[0-9a-fA-F]+$")
_DIGIT = re.compile(r"\d")
# A short password that says it is made up (`"test1234"` in a fixture) is not flagged; `"hunter2"` is.
_DUMMY = re.compile(r"(?i)test|example|dummy|sample|fake|changeme|placeholder|xxx")
_TEXTBOOK = {"password", "pass", "secret", "open sesame"}  # RFC 7617's `Aladdin:open sesame`, `user:password`
# `Authorization: Bearer <token>` and `Basic <base64 of user:password>`; templates (`{token}`, `$TOKEN`) never match.
_BEARER = re.compile(r"\bBearer\s+(?P<s>[A-Za-z0-9._~+/-]{16,}=*)(?![A-Za-z0-9._~+/=-])")
_BASIC = re.compile(r"\bBasic\s+(?P<s>[A-Za-z0-9+/]{8,}={0,2})(?![A-Za-z0-9+/=])")
# A PEM block in base64 (Kubernetes secrets, CI variables): `-----BEGIN` encodes to `LS0tLS1CRUdJTi`.
_PEM_BASE64 = re.compile(r"LS0tLS1CRUdJTi[A-Za-z0-9+/]*={0,2}(?:(?:\r?\n|\\n)[ \t]*[A-Za-z0-9+/]{16,}={0,2})*")
# 40 characters of base64 standing alone as a value (quoted, assigned, listed): an AWS secret access key's shape.
# Not after a `.` or before one: that is a piece of a URL or a dotted path.
_BASE64_40 = re.compile(r"(?<![^\s\"'`=:,(\[{>])[A-Za-z0-9+/]{40}(?![^\s\"'`,)\]};<])")
_AWS_KEY_ID = re.compile(r"\b(?:AKIA|ASIA|ABIA|ACCA)[0-9A-Z]{16}\b")
_AWS_PAIR_REACH = 200  # characters between a key id and its secret, as in a tuple, a CSV row or a config block
_REFERENCE = re.compile(r"^(?:\$|%|\{|<|os\.|env\.|process\.env|getenv|settings\.|config\.|self\.|[A-Z_]+$)")


def _entropy(value: str) -> float:
    counts = Counter(value)
    return -sum(n / len(value) * math.log2(n / len(value)) for n in counts.values())


def _looks_secret(name: str, value: str) -> bool:
    """A literal that looks like a real credential rather than a reference, placeholder, hash or UUID."""
    password = re.search(r"(?i)secret|password|passwd|pwd", name)
    if _REFERENCE.match(value) or _UUID.match(value) or len(set(value)) < (4 if password else 6):
        return False
    if len(value) < 12 and (not password or _PLACEHOLDER.search(value) or _DUMMY.search(value)):
        return False
    if _URL.match(value) or _PATH.match(value) or _DIGEST.match(value):
        return False
    if not (re.search(r"[A-Za-z]", value) and re.search(r"\d", value)):
        return False
    if _HEX.match(value) and not re.search(r"(?i)token|secret|password|passwd|pwd", name):
        return False  # a bare hex digest under a *_KEY name is usually a cache key or a hash
    return _entropy(value) >= min(3.3, math.log2(len(value)) - 0.1)


def find_secrets(text: str) -> list[Finding]:
    """Every credential-looking span in `text`, in order, without overlaps (see the module docstring)."""
    joined = literals.join(text)
    found = _scan(joined.text)
    if not joined.changed:
        return found
    return _without_overlaps([Finding(f.kind, *joined.span(f.start, f.end)) for f in found])


def _scan(text: str) -> list[Finding]:
    layers = [_provider_formats(text), _assignments(text), _headers_and_wrapped_keys(text)]
    found: list[Finding] = []
    for layer in layers:
        found = _add(found, layer)
    if _DIGIT.search(text):  # every plugin format and every AWS secret key worth flagging has a digit
        found = _add(found, (Finding(kind, start, end) for kind, start, end in detectors.scan(text)))
        found = _add(found, _aws_secret_keys(text))
    return found


def _add(found: list[Finding], more: Iterable[Finding]) -> list[Finding]:
    """`found` plus the findings of `more` that overlap none of `found` (earlier layers win)."""
    kept = list(found)
    for f in _without_overlaps(list(more)):
        if not any(k.start < f.end and f.start < k.end for k in found):
            kept.append(f)
    return sorted(kept, key=lambda f: f.start)


def _provider_formats(text: str) -> Iterable[Finding]:
    lower = text.lower()
    for kind, regex in _SECRET_PATTERNS:
        if not any(needle in lower for needle in _NEEDLES.get(kind, ("",))):
            continue
        for m in regex.finditer(text):
            if kind == "url-password" and _PLACEHOLDER.search(m.group("s")):
                continue  # f"postgres://{user}:{password}@{host}" builds a URL; it holds no password
            span = m.span("s") if "s" in regex.groupindex and m.group("s") else m.span()
            yield Finding(kind, *span)


def _assignments(text: str) -> Iterable[Finding]:
    lower = text.lower()
    if not any(needle in lower for needle in _ASSIGNMENT_NEEDLES):
        return
    for m in _ASSIGNMENT.finditer(text):
        group = "s" if m.group("s") is not None else "u"
        if _looks_secret(m.group("name"), m.group(group)):
            yield Finding("assigned-secret", *m.span(group))


def _headers_and_wrapped_keys(text: str) -> Iterable[Finding]:
    for m in _BEARER.finditer(text) if "Bearer" in text else ():
        token = m.group("s")
        if re.search(r"\d", token) and re.search(r"[A-Za-z]", token) and _entropy(token) >= 3.5:
            yield Finding("bearer-token", *m.span("s"))
    for m in _BASIC.finditer(text) if "Basic" in text else ():
        _user, colon, password = _unbase64(m.group("s")).decode("utf-8", "replace").partition(":")
        if colon and len(password) >= 4 and not _DUMMY.search(password) and password.lower() not in _TEXTBOOK:
            yield Finding("basic-auth", *m.span("s"))
    for m in _PEM_BASE64.finditer(text):
        if b"PRIVATE KEY" in _unbase64(m.group(0)[:120]):
            yield Finding("private-key", *m.span())


def _aws_secret_keys(text: str) -> Iterable[Finding]:
    """40 characters of base64 beside an AWS access key id, or mixed and random enough to be a key by itself."""
    ids = [m.start() for m in _AWS_KEY_ID.finditer(text)]
    for m in _BASE64_40.finditer(text):
        value = m.group(0)
        if not (re.search(r"[a-z]", value) and re.search(r"[A-Z]", value) and re.search(r"\d", value)):
            continue
        near = any(abs(i - m.start()) <= _AWS_PAIR_REACH for i in ids)
        if near or (_entropy(value) >= 4.5 and len(re.findall(r"\d", value)) >= 2 and not _PATH.match(value)):
            yield Finding("aws-secret-access-key", *m.span())


def _unbase64(value: str) -> bytes:
    value = value.replace("\\n", "").replace("\n", "").replace("\r", "").replace(" ", "").replace("\t", "")
    value = value[: len(value) // 4 * 4]
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return b""


def redact(text: str) -> tuple[str, int]:
    """`text` with every secret replaced by `[REDACTED:<kind>]`, and how many were replaced."""
    findings = find_secrets(text)
    parts, pos = [], 0
    for f in findings:
        parts.append(text[pos : f.start])
        parts.append(f"[REDACTED:{f.kind}]")
        pos = f.end
    parts.append(text[pos:])
    return "".join(parts), len(findings)


def _without_overlaps(findings: list[Finding]) -> list[Finding]:
    kept: list[Finding] = []
    for f in sorted(findings, key=lambda f: (f.start, -(f.end - f.start))):
        if kept and f.start < kept[-1].end:
            continue
        kept.append(f)
    return kept
