"""Budgets for agents whose CLI reports tokens, not cost (issue 13): prices in `[agents.codex]` / `[agents.gemini]`,
the estimate, the meter that follows the usage files a CLI writes during its run (real files, written as the
CLIs write them: the lines are the ones Codex 0.171.0 and Gemini CLI 0.61.0 wrote, measured), and what a budget
without prices does: refused when it is the agent's own, a warning when it is `[scheduler]`'s."""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

import pytest

from mcp_servers.core.config import Scheduler
from mcp_servers.core.errors import ConfigError
from scheduler.agents import registry
from scheduler.agents.budget import Meter, Prices, Usage, unenforced, warning
from scheduler.agents.codex import CodexAgent, CodexSettings, RolloutTally, stream_usage
from scheduler.agents.gemini import ChatTally, GeminiAgent, GeminiSettings

PRICES = {"input_usd_per_mtok": 1000.0, "output_usd_per_mtok": 5000.0, "cached_input_usd_per_mtok": 100.0}


def _rollout(total_in: int, total_out: int, cached: int = 0) -> str:
    usage = {
        "input_tokens": total_in,
        "cached_input_tokens": cached,
        "cache_write_input_tokens": 0,
        "output_tokens": total_out,
        "reasoning_output_tokens": 0,
        "total_tokens": total_in + total_out,
    }
    info = {"total_token_usage": usage, "last_token_usage": usage, "model_context_window": 258400}
    payload = {"type": "token_count", "info": info, "rate_limits": {"limit_id": "codex"}}
    return json.dumps({"timestamp": "2026-12-06T21:17:22.828Z", "ordinal": 13, "type": "event_msg", "payload": payload})


def _chat(ident: str, tokens_in: int, tokens_out: int, calls: bool = False) -> str:
    line = {"id": ident, "timestamp": "2026-12-06T21:17:34.209Z", "type": "gemini", "content": "", "thoughts": [],
            "tokens": {"input": tokens_in, "output": tokens_out, "cached": 0, "thoughts": 0, "tool": 0,
                       "total": tokens_in + tokens_out}, "model": "gemini-2.5-flash"}  # fmt: skip
    if calls:
        line["toolCalls"] = [{"id": "run_shell_command__call_fake_0_0", "name": "run_shell_command"}]
    return json.dumps(line)


def test_the_estimate_counts_cached_input_at_its_own_price_and_needs_both_prices() -> None:
    prices = Prices.model_validate(PRICES)
    assert Usage(input=1000, cached=400, output=100).cost(prices) == pytest.approx(0.6 + 0.04 + 0.5)
    assert Usage(1000, 0, 0).cost(Prices(input_usd_per_mtok=1.0, output_usd_per_mtok=2.0)) == pytest.approx(0.001)
    assert Usage(1000, 1000, 0).cost(Prices(input_usd_per_mtok=3.0, output_usd_per_mtok=1.0)) == pytest.approx(0.003)
    assert Usage(1000, 0, 10).cost(Prices(input_usd_per_mtok=1.0)) is None  # no output price: no estimate


def test_prices_are_validated_in_the_agents_table() -> None:
    scheduler = Scheduler()
    for name in ("codex", "gemini"):
        own = registry.settings_for(name, scheduler, {name: PRICES})
        assert isinstance(own, Prices) and own.priced()
        with pytest.raises(ConfigError) as bad:
            registry.settings_for(name, scheduler, {name: {"input_usd_per_mtok": -1}})
        assert f"[agents.{name}] key `input_usd_per_mtok`: Input should be greater than or equal to 0" in str(bad.value)


def test_a_budget_without_prices_is_refused_when_the_agents_own_and_a_warning_when_inherited() -> None:
    own, _ = unenforced("codex", CodexSettings(max_budget_usd=2), Scheduler())
    assert own is not None and "`max_budget_usd = 2` under [agents.codex] cannot be enforced" in own
    assert "input_usd_per_mtok" in own and "set it to 0" in own
    inherited = Scheduler(max_budget_usd=3)
    problem, warned = unenforced("gemini", GeminiSettings(), inherited)
    assert problem is None and warned is not None
    assert "agent gemini: the budget per task (`max_budget_usd = 3` under [scheduler]) is not enforced" in warned
    assert "set `max_budget_usd = 0` under [agents.gemini] to say it runs uncapped" in warned
    assert unenforced("gemini", GeminiSettings(max_budget_usd=0), inherited) == (None, None)  # said so: uncapped
    assert warning(GeminiAgent(inherited, GeminiSettings(), environ={})) == warned
    assert warning(CodexAgent(inherited, CodexSettings(), environ={})) is not None
    assert unenforced("codex", CodexSettings.model_validate({**PRICES, "max_budget_usd": 2}), inherited) == (None, None)
    assert unenforced("codex", CodexSettings(), Scheduler()) == (None, None)  # no budget at all
    assert warning(CodexAgent(inherited, CodexSettings.model_validate(PRICES), environ={})) is None
    # the agent's own budget without prices stops it from running (its problems say what to do)
    problems = CodexAgent(Scheduler(), CodexSettings(command="/nonexistent/codex", max_budget_usd=2),
                          environ={}).problems({})  # fmt: skip
    assert "was not found" in problems[0]  # (its CLI first: nothing else is asked of a missing CLI)


def test_the_rollout_tally_takes_the_highest_cumulative_count_so_a_forged_line_cannot_lower_it() -> None:
    tally = RolloutTally()
    for line in (_rollout(100, 20), _rollout(200, 40, cached=50), _rollout(1, 1), '{"type": "event_msg"}'):
        tally.add(json.loads(line))
    assert tally.usage() == Usage(200, 50, 40)
    lines = [{"type": "turn.completed", "usage": {"input_tokens": 300, "cached_input_tokens": 30, "output_tokens": 60}}]
    assert stream_usage(lines) == Usage(300, 30, 60)


def test_the_chat_tally_counts_each_reply_once_at_its_highest() -> None:
    tally = ChatTally()
    for line in (_chat("a", 100, 20), _chat("a", 100, 20, calls=True), _chat("b", 100, 20), _chat("b", 1, 1)):
        tally.add(json.loads(line))
    tally.add({"type": "user", "tokens": {"input": 10**9}})  # only the model's replies count
    assert tally.usage() == Usage(200, 0, 40)


def test_the_meter_ends_the_run_once_the_estimate_reaches_the_budget(tmp_path: Path) -> None:
    home = tmp_path / "sessions" / "2026" / "12" / "06"
    stop = threading.Event()
    prices = Prices(input_usd_per_mtok=1000.0, output_usd_per_mtok=1000.0)  # 120 tokens: $0.12 a request
    meter = Meter(0.3, prices, lambda: sorted((tmp_path / "sessions").rglob("rollout-*.jsonl")), RolloutTally, stop,
                  marker=b"token_count").start()  # fmt: skip
    home.mkdir(parents=True)
    path = home / "rollout-1.jsonl"
    with path.open("w") as out:
        out.write('{"type":"session_meta"}\n')
        for n in (1, 2):
            out.write(_rollout(100 * n, 20 * n) + "\n")
            out.flush()
        time.sleep(0.8)
        assert not stop.is_set()  # $0.24 of $0.30
        out.write(_rollout(300, 60)[:40])  # half a line is not read yet
        out.flush()
        time.sleep(0.6)
        assert not stop.is_set()
        path.unlink()  # gone from the folder: still read through the meter's handle
        out.write(_rollout(300, 60)[40:] + "\n")
        out.flush()
        assert stop.wait(5)
    used = meter.finish()
    assert meter.over and used == Usage(300, 0, 60) and meter.spent() == pytest.approx(0.36)
    assert meter.reason() == "budget (an estimated $0.36 reached max_budget_usd $0.30)"


def test_a_meter_without_a_budget_or_prices_only_reads_at_the_end(tmp_path: Path) -> None:
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "session-1.jsonl").write_text(_chat("a", 100, 20) + "\n" + _chat("b", 50, 10) + "\n")
    stop = threading.Event()
    meter = Meter(0.0, Prices.model_validate(PRICES), lambda: list(tmp_path.glob("*/session-*.jsonl")), ChatTally,
                  stop, marker=b'"tokens"').start()  # fmt: skip
    assert not meter.thread.is_alive()
    assert meter.finish() == Usage(150, 0, 30) and not stop.is_set() and not meter.over


def test_the_meter_reads_no_fifo_device_or_link_the_agent_planted(tmp_path: Path) -> None:
    """The agent can write where the CLI writes its usage: a FIFO (which would block an open) or a link (to a
    device that never ends, or to a file of the person's) is not read; a regular file beside them still is."""
    sessions = tmp_path / "sessions"
    sessions.mkdir()
    os.mkfifo(sessions / "rollout-fifo.jsonl")
    (sessions / "rollout-zero.jsonl").symlink_to("/dev/zero")
    (tmp_path / "elsewhere.jsonl").write_text(_rollout(10**6, 10**6) + "\n")
    (sessions / "rollout-link.jsonl").symlink_to(tmp_path / "elsewhere.jsonl")
    (sessions / "rollout-real.jsonl").write_text(_rollout(100, 20) + "\n")
    meter = Meter(1.0, Prices.model_validate(PRICES), lambda: sorted(sessions.glob("rollout-*.jsonl")), RolloutTally,
                  threading.Event(), marker=b"token_count")  # fmt: skip
    started = time.monotonic()
    assert meter.finish() == Usage(100, 0, 20) and time.monotonic() - started < 5
    assert list(meter.files) == [sessions / "rollout-real.jsonl"]


def test_the_report_says_which_costs_are_estimated() -> None:
    from scheduler import report
    from scheduler.agents import AgentResult

    record = report.SessionRecord(id="s", repo="/r", started="2026-12-06T21:00:00+00:00", agent="claude",
                                  agents=["claude", "codex"], outcome="completed")  # fmt: skip
    for task_id, agent, cost, guessed in (("a", "claude", 0.5, False), ("b", "codex", 0.25, True)):
        task = report.TaskRecord(task_id=task_id, title=task_id, outcome="failed", started=record.started, attempt=1)
        task.agent = AgentResult(agent=agent, cost_usd=cost, cost_estimated=guessed, tokens_in=100, tokens_out=20)
        record.tasks.append(task)
    text = report.render(record)
    assert "- Cost by agent: `claude` $0.50, `codex` $0.25 (estimated)" in text
    assert "agent `codex`; 0 turns; $0.25 (estimated from its tokens and the prices in [agents])" in text
    assert "agent `claude`; 0 turns; $0.50;" in text
