"""Secrets and destructive SQL in text: the policy scans added lines with this, memory redacts with it.

No network and no model: regular expressions for the formats providers publish, plus an entropy test for
`*_KEY=`/`*_TOKEN=`/`PASSWORD=` assignments so that `API_KEY = os.environ["API_KEY"]` is not a finding.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass


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
        "url-password",
        re.compile(r"\b[a-zA-Z][a-zA-Z0-9+.-]{1,15}://[^/\s:@'\"?#]{0,64}:(?P<s>[^/\s@'\"?#]{3,128})@"),
    ),
]

_ASSIGNMENT = re.compile(
    r"(?i)\b(?P<name>[A-Z0-9_]*(?:KEY|TOKEN|SECRET|PASSWORD|PASSWD|PWD)[A-Z0-9_]*)\b[\"']?\s*[:=]\s*"
    r"(?:(?P<q>[\"'])(?P<s>[^\s\"']{8,256}?)(?P=q)|(?P<u>[^\s\"'`;,)]{8,}))",
)
_PLACEHOLDER = re.compile(r"[{}<>]|%\(?\w*\)?s|^\$|\$\{|^\*+$")
_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_URL = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*://[^@\s]*$")  # no userinfo: url-password handles those
_PATH = re.compile(r"^(?:~|\.{1,2})?/(?:[a-z0-9._@-]+/)*[a-z0-9._@-]+$|^[a-z0-9._-]+(?:/[a-z0-9._-]+)+$")
_DIGEST = re.compile(r"(?i)^(?:sha(?:1|224|256|384|512)|md5|blake2[bs]?)[:-][0-9a-f]{32,}$")
_HEX = re.compile(r"^[0-9a-fA-F]+$")
_REFERENCE = re.compile(r"^(?:\$|%|\{|<|os\.|env\.|process\.env|getenv|settings\.|config\.|self\.|[A-Z_]+$)")


def _entropy(value: str) -> float:
    counts = Counter(value)
    return -sum(n / len(value) * math.log2(n / len(value)) for n in counts.values())


def _looks_secret(name: str, value: str) -> bool:
    """A literal that looks like a real credential rather than a reference, placeholder, hash or UUID."""
    if _REFERENCE.match(value) or _UUID.match(value) or len(set(value)) < 6:
        return False
    password = re.search(r"(?i)secret|password|passwd|pwd", name)
    if len(value) < 12 and not password:
        return False
    if _URL.match(value) or _PATH.match(value) or _DIGEST.match(value):
        return False
    if not (re.search(r"[A-Za-z]", value) and re.search(r"\d", value)):
        return False
    if _HEX.match(value) and not re.search(r"(?i)token|secret|password|passwd|pwd", name):
        return False  # a bare hex digest under a *_KEY name is usually a cache key or a hash
    return _entropy(value) >= min(3.3, math.log2(len(value)) - 0.1)


def find_secrets(text: str) -> list[Finding]:
    """Every credential-looking span in `text`, in order, without overlaps."""
    found: list[Finding] = []
    for kind, regex in _SECRET_PATTERNS:
        for m in regex.finditer(text):
            if kind == "url-password" and _PLACEHOLDER.search(m.group("s")):
                continue  # f"postgres://{user}:{password}@{host}" builds a URL; it holds no password
            span = m.span("s") if "s" in regex.groupindex and m.group("s") else m.span()
            found.append(Finding(kind, *span))
    specific = _without_overlaps(found)
    for m in _ASSIGNMENT.finditer(text):
        group = "s" if m.group("s") is not None else "u"
        start, end = m.span(group)
        if _looks_secret(m.group("name"), m.group(group)) and not any(
            f.start < end and start < f.end for f in specific
        ):
            found.append(Finding("assigned-secret", start, end))
    return _without_overlaps(found)


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


_SQL_PATTERNS: list[tuple[str, re.Pattern[str]]] = [
    ("drop", re.compile(r"(?i)\bdrop\s+(?:table|database|schema|view|index|column|collection)\b")),
    ("truncate", re.compile(r"(?i)\btruncate\s+(?:table\s+[\w.\"`\[\]]+|[\w.\"`\[\]]+\s*(?:;|[\"'`)]))")),
    ("alter-drop", re.compile(r"(?i)\balter\s+table\s+[\w.\"`\[\]]+\s+drop\b")),
    ("delete-without-where", re.compile(r"(?i)\bdelete\s+from\s+[\w.\"`\[\]]+")),
    ("update-without-where", re.compile(r"(?i)\bupdate\s+[\w.\"`\[\]]+\s+set\s+\w+\s*=")),
]
_NEEDS_WHERE = {"delete-without-where", "update-without-where"}
_WHERE = re.compile(r"(?i)\bwhere\b")
_BLOCK_COMMENT = re.compile(r"/\*.*?\*/")
_LINE_COMMENT = re.compile(r"^\s*(#|--|//|\*)")
# How many following lines a DELETE or UPDATE may take to reach its WHERE (SQL is often split over lines).
_WHERE_REACH = 3


def _code(line: str) -> str:
    """A line without its block comments, or empty when the whole line is a comment."""
    text = _BLOCK_COMMENT.sub(" ", line)
    return "" if _LINE_COMMENT.match(text) else text


def destructive_sql(lines: list[str]) -> list[tuple[int, str]]:
    """(index, kind) of each line, in a run of consecutive lines, that starts a destructive SQL statement:
    DROP, TRUNCATE, ALTER TABLE ... DROP, or a DELETE or UPDATE with no WHERE before its `;`."""
    code = [_code(line) for line in lines]
    found = []
    for i, text in enumerate(code):
        for kind, regex in _SQL_PATTERNS:
            m = regex.search(text)
            if not m:
                continue
            if kind in _NEEDS_WHERE:
                statement = " ".join([text[m.end() :], *code[i + 1 : i + 1 + _WHERE_REACH]]).split(";")[0]
                if _WHERE.search(statement):
                    continue
            found.append((i, kind))
            break
    return found


def find_destructive_sql(line: str) -> str | None:
    """The kind of destructive SQL statement one line holds, or None (see destructive_sql)."""
    found = destructive_sql([line])
    return found[0][1] if found else None
