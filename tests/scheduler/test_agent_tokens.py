"""The tokens of a run as it happens (issue 14: the Now page shows turns, tokens and cost so far): each adapter's
stream reader tells them on its `usage` events, from the real logs in tests/fixtures/agent_logs (see
test_agent_logs.py), and the replay agent reports the tokens its script spends.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from mcp_servers.core.errors import UsageError
from scheduler.agents import AgentEvent
from scheduler.agents.claude import ClaudeEvents
from scheduler.agents.codex_events import CodexEvents
from scheduler.agents.gemini_stream import GeminiEvents
from scheduler.agents.replay import ReplayEvents, load_script

LOGS = Path(__file__).parent.parent / "fixtures" / "agent_logs"


def _lines(name: str) -> list[dict[str, Any]]:
    return [json.loads(raw) for raw in (LOGS / name).read_text().splitlines() if raw.strip()]


def _usage(events: list[AgentEvent]) -> list[tuple[int | None, int | None]]:
    return [(e.tokens_in, e.tokens_out) for e in events if e.kind == "usage"]


def test_claude_code_s_tokens_grow_with_each_model_message_and_end_at_the_result_s() -> None:
    read = ClaudeEvents()
    lines = _lines("claude-task-done.jsonl")
    events = [e for line in lines for e in read(line)]
    told = _usage(events)
    # six model messages (the first told on three lines, counted once), each adding its input tokens
    assert told[:6] == [(14711, 1), (29713, 2), (45335, 3), (61094, 4), (76996, 5), (92999, 6)]
    final = next(line for line in lines if line["type"] == "result")["usage"]
    assert told[-1] == (final["input_tokens"], final["output_tokens"]) == (92999, 299)
    assert [e.turns for e in events if e.kind == "usage"][:6] == [1, 2, 3, 4, 5, 6]


def test_a_message_told_again_with_more_output_counts_its_latest_usage_once() -> None:
    read = ClaudeEvents()
    first = {"type": "assistant", "message": {"id": "m1", "content": [{"type": "text", "text": "a"}],
                                              "usage": {"input_tokens": 100, "cache_read_input_tokens": 900,
                                                        "output_tokens": 1}}}  # fmt: skip
    again = json.loads(json.dumps(first))
    again["message"]["usage"]["output_tokens"] = 40
    forged = {"type": "assistant", "message": {"id": "m2", "content": [],
                                               "usage": {"input_tokens": -5, "output_tokens": "many"}}}  # fmt: skip
    events = [e for line in (first, again, again, forged) for e in read(line)]
    assert _usage(events) == [(1000, 1), (1000, 40), (1000, 40)]  # the same usage again tells nothing new
    assert read.turns == 2


def test_codex_s_tokens_come_with_each_completed_turn() -> None:
    read = CodexEvents()
    events = [e for line in _lines("codex-escaping-test.jsonl") for e in read(line)]
    assert _usage(events)[-1] == (400, 80)
    assert all(t == (None, None) for t in _usage(events)[:-1])  # nothing told before the turn ended
    assert _usage(read({"type": "turn.completed", "usage": {"input_tokens": 50, "output_tokens": 5}})) == [(450, 85)]


def test_gemini_s_tokens_come_with_its_result() -> None:
    read = GeminiEvents()
    events = [e for line in _lines("gemini-git-commit-refused.jsonl") for e in read(line)]
    assert _usage(events)[-1] == (500, 100)


def test_the_replay_agent_s_spend_steps_tell_their_tokens(tmp_path: Path) -> None:
    read = ReplayEvents()
    step = {"type": "step", "n": 2, "action": "spend", "ok": True, "spent": 0.1, "tokens_in": 1500, "tokens_out": 90}
    [event] = read(step)
    assert (event.cost_usd, event.tokens_in, event.tokens_out, event.turns) == (0.1, 1500, 90, 2)
    result = {"type": "result", "num_turns": 3, "total_cost_usd": 0.1,
              "usage": {"input_tokens": 1500, "output_tokens": 90}}  # fmt: skip
    assert _usage(read(result)) == [(1500, 90)]
    script = tmp_path / "s.toml"
    script.write_text('[[task]]\nid = "a"\n[[task.step]]\nspend = 0.1\ntokens_in = -3\n')
    with pytest.raises(UsageError, match="`tokens_in` is a whole number of tokens"):
        load_script(script)
