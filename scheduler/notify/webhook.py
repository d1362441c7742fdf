"""overnight's signed webhook, an apprise plugin: `hmac://host[:port]/path?secret={NAME}` (`hmacs://` for HTTPS).

apprise's `json://` does not sign what it posts, so this plugin does, through apprise's custom-notification
decorator. It POSTs the notification's JSON (`Message.payload`: event, title, text, session, task, at) with:

    Content-Type: application/json
    X-Overnight-Timestamp: <unix seconds when it was sent>
    X-Overnight-Signature: sha256=<hex HMAC-SHA256 over "<timestamp>." followed by the raw body, keyed by the secret>

A receiver checks it with `verify()` (or the same three lines in any language): recompute the HMAC over the
timestamp, a dot and the body bytes as received, compare in constant time, and refuse a timestamp more than five
minutes away from its own clock, so a captured request cannot be replayed later. The `secret` query value comes
from the env file (`{NAME}`); it is never sent, only used to sign. Redirects are not followed.
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import logging
import time
from typing import Any
from urllib.parse import urlencode

from apprise.decorators import notify

SIGNATURE = "X-Overnight-Signature"
TIMESTAMP = "X-Overnight-Timestamp"
TOLERANCE_S = 300
TIMEOUT_S = 5.0
SCHEMES = ("hmac", "hmacs")

_log = logging.getLogger("apprise")  # apprise gathers its plugins' log lines into each send's result
_log.addHandler(logging.NullHandler())  # so they are not printed twice: the Outbox says what failed


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """The signature header's value: `sha256=<hex>` over `timestamp.` + body."""
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def verify(secret: str, timestamp: str, body: bytes, signature: str, now: float | None = None,
           tolerance_s: float = TOLERANCE_S) -> bool:  # fmt: skip
    """What a receiver checks: the signature matches and the timestamp is recent (no replay)."""
    try:
        age = abs((time.time() if now is None else now) - int(timestamp))
    except ValueError:
        return False
    return age <= tolerance_s and hmac.compare_digest(sign(secret, timestamp, body), signature)


def post(meta: dict[str, Any], body: str, secure: bool) -> bool:
    """POST the signed body to the URL in `meta` (apprise's parsed URL); False, with the reason logged, on failure."""
    query = dict(meta.get("qsd") or {})
    secret = query.pop("secret", "")
    host = meta.get("host") or ""
    if not secret or not host:
        _log.warning("the signed webhook URL needs a host and ?secret={NAME} (a variable in the env file)")
        return False
    path = (meta.get("fullpath") or "/") + (f"?{urlencode(query)}" if query else "")
    data = body.encode()
    stamp = str(int(time.time()))
    headers = {"Content-Type": "application/json", "User-Agent": "overnight", TIMESTAMP: stamp,
               SIGNATURE: sign(secret, stamp, data)}  # fmt: skip
    kind = http.client.HTTPSConnection if secure else http.client.HTTPConnection
    conn = kind(host, meta.get("port"), timeout=TIMEOUT_S)
    try:
        conn.request("POST", path, body=data, headers=headers)
        status = conn.getresponse().status
    except OSError as e:
        _log.warning("the signed webhook at %s could not be reached: %s", host, e)
        return False
    finally:
        conn.close()
    if not 200 <= status < 300:
        _log.warning("the signed webhook at %s answered HTTP %s", host, status)
        return False
    return True


def _hmac(body: str, title: str, notify_type: str, meta: dict[str, Any], *args: Any, **kwargs: Any) -> bool:
    return post(meta, body, secure=False)


def _hmacs(body: str, title: str, notify_type: str, meta: dict[str, Any], *args: Any, **kwargs: Any) -> bool:
    return post(meta, body, secure=True)


# apprise's decorator, called as a function (it is untyped): registered once, when this module is imported
notify(on="hmac", name="overnight signed webhook")(_hmac)  # type: ignore[no-untyped-call]
notify(on="hmacs", name="overnight signed webhook (HTTPS)")(_hmacs)  # type: ignore[no-untyped-call]
