"""Claude Code's infrastructure stops (issue 12), read from the structured lines it writes at the top level of its
stream-json, never from text: a `rate_limit_event` (`rate_limit_info.status == "rejected"`, `resetsAt` in epoch
seconds, `rateLimitType`) and the final `result` (`is_error`, `terminal_reason: "api_error"`, `api_error_status`,
`api_error_type`). What a tool printed sits inside a message's content and is never looked at, so an agent that
prints "usage limit reached" or a line shaped like a `rate_limit_event` inside a tool result is not taken for a
limit. A run whose `result` says it succeeded had no infrastructure stop, whatever came before (Claude Code retries
short limits itself: `system` `api_retry` lines, counted here for the report). The replay agent writes the same.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from .stops import InfraStop, Kind

# `overageDisabledReason` values under which no reset brings the allowance back: a person must act (the binary of
# Claude Code 2.1.332 says "Your usage allocation has been disabled by your admin" for the first two)
DISABLED_FOR_GOOD = frozenset({"member_level_disabled", "member_zero_credit_limit", "group_zero_credit_limit"})


def classify(lines: Sequence[Mapping[str, Any]]) -> InfraStop | None:
    """The infrastructure stop a run's stream ended on, or None (it succeeded, or failed for another reason)."""
    top = [line for line in lines if isinstance(line, Mapping)]
    final = next((line for line in reversed(top) if line.get("type") == "result"), None)
    if final is None or final.get("is_error") is not True or final.get("terminal_reason") != "api_error":
        return None  # it recovered, never stopped, or ended for another reason: the work is judged as usual
    retries = sum(1 for line in top if line.get("type") == "system" and line.get("subtype") == "api_retry")
    status = final.get("api_error_status")
    status = status if isinstance(status, int) and not isinstance(status, bool) else None
    kind_of = str(final.get("api_error_type") or "")
    detail = ", ".join(f"{k} {final[k]}" for k in ("api_error_type", "api_error") if isinstance(final.get(k), str))
    kind: Kind | None = None
    if status == 429 or kind_of == "rate_limit_error":
        limit = _rejected(top)  # a subscription's limit says when it resets; an API key's does not (probed)
        if limit is not None:
            return limit.model_copy(update={"retries": retries})
        kind = "usage-limit"
    elif status == 529 or kind_of == "overloaded_error":
        kind = "overloaded"
    elif status is not None and 500 <= status <= 599:
        kind = "server-error"
    elif status is None:
        kind = "network"  # no HTTP answer at all: connection refused, reset, timed out
    if kind is None:
        return None  # 400, 401, 403...: not something waiting fixes
    return InfraStop(kind=kind, status=status, detail=detail or "api_error", retries=retries)


def _rejected(lines: Sequence[Mapping[str, Any]]) -> InfraStop | None:
    """The last `rate_limit_event` when it says rejected: a usage limit (with its reset) or a disabled one."""
    event = next((line for line in reversed(lines) if line.get("type") == "rate_limit_event"), None)
    info = event.get("rate_limit_info") if event is not None else None
    if not isinstance(info, Mapping) or info.get("status") != "rejected":
        return None
    resets = info.get("resetsAt")
    resets_at = float(resets) if isinstance(resets, int | float) and not isinstance(resets, bool) and resets > 0 \
        else None  # fmt: skip
    limit_type = str(info["rateLimitType"]) if isinstance(info.get("rateLimitType"), str) else None
    reason = str(info["overageDisabledReason"]) if isinstance(info.get("overageDisabledReason"), str) else None
    detail = ", ".join(p for p in (f"rateLimitType {limit_type}" if limit_type else "",
                                   f"overageDisabledReason {reason}" if reason else "") if p)  # fmt: skip
    disabled = reason in DISABLED_FOR_GOOD or (resets_at is None and (reason is not None or limit_type == "overage"))
    if disabled:
        return InfraStop(kind="limit-disabled", limit_type=limit_type, status=429, detail=detail)
    return InfraStop(kind="usage-limit", resets_at=resets_at, limit_type=limit_type, status=429, detail=detail)
