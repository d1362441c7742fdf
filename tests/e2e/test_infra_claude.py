"""A usage limit with the real `claude` CLI against the scripted model server (issue 12).

The server answers 429 with the `anthropic-ratelimit-unified-*` headers, as the API does at a subscription's
limit. Measured with Claude Code 2.1.332: with a subscription token (CLAUDE_CODE_OAUTH_TOKEN) it writes a
`rate_limit_event` (`status: "rejected"`, `resetsAt`) and gives up at once, even for a reset seconds away; with an
API key it retries a near reset itself (`api_retry` lines) and gives up on a far one with a bare 429 result (no
reset time). The scheduler waits the first out, probes the second, and resumes the same task either way. The first,
a subscription's limit waited out, is proven by the Claude Code nights of tests/e2e/test_thirty_nights.py.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from mcp_servers.core import taskstore

from ..scheduler.sessions import Person
from ..support.fake_anthropic import ApiError, FakeAnthropic
from .test_scheduler_claude import _planned, _session, _ws, done_properly

pytestmark = pytest.mark.e2e


def _limit(reset_in: float) -> ApiError:
    reset = str(int(time.time() + reset_in))
    headers = {
        "anthropic-ratelimit-unified-status": "rejected", "anthropic-ratelimit-unified-reset": reset,
        "anthropic-ratelimit-unified-5h-status": "rejected", "anthropic-ratelimit-unified-5h-reset": reset,
        "anthropic-ratelimit-unified-7d-status": "allowed",
        "anthropic-ratelimit-unified-7d-reset": str(int(time.time() + 86400)),
        "anthropic-ratelimit-unified-representative-claim": "five_hour",
        "anthropic-ratelimit-unified-overage-status": "rejected",
        "anthropic-ratelimit-unified-overage-disabled-reason": "org_level_disabled",
        "anthropic-ratelimit-unified-fallback": "available", "retry-after": str(int(reset_in)),
    }  # fmt: skip
    return ApiError(status=429, error_type="rate_limit_error", message="Rate limited", headers=headers, times=1)


def _not_counted(repo: object) -> None:
    with _ws(repo).db() as conn:  # type: ignore[arg-type]
        state = taskstore.states(conn, time.time())["sub"]
        outcomes = [r["outcome"] for r in conn.execute("SELECT outcome FROM task_attempts ORDER BY id")]
    assert state.failures == 0 and outcomes == [taskstore.INFRA, "done"]


def test_an_api_key_limit_with_no_reset_time_is_probed(
    tmp_path: Path, claude_bin: Path, fake_model: FakeAnthropic, offline_env: dict[str, str]
) -> None:
    repo = _planned(tmp_path, claude_bin, scheduler='max_tasks = 1\nfallback_model = "claude-sonnet-4-5"\n'
                    "\n[infra]\nprobe_delays_s = [1]\n")  # (the CLI takes --fallback-model)
    person = Person.of(repo)
    fake_model.set_script([_limit(7200), *done_properly()])
    record, said = _session(repo, dict(offline_env))
    assert record.outcome == "completed" and record.tasks[0].outcome == "passed", (record.stop_reason, said)
    [stop] = record.infra
    assert stop.stop.kind == "usage-limit" and stop.stop.resets_at is None and stop.stop.status == 429
    assert [w.kind for w in record.waits] == ["probe"]
    assert fake_model.main_requests[0].headers.get("x-api-key") and fake_model.remaining == 0
    _not_counted(repo)
    person.assert_untouched(repo)
