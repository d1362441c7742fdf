"""Notifications (issue 12) through real receivers on 127.0.0.1: an SMTP server and a webhook endpoint that
checks the HMAC signature; a dead channel (a closed port) never stops a night; the event filter; the env file."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any, cast

import pytest

from mcp_servers.core.notify_config import Notify
from mcp_servers.core.workspace import Workspace
from scheduler.cli import main
from scheduler.events import RunEvent
from scheduler.notify import Notifier, Outbox, message, of_event, send
from scheduler.notify.channels import deliver, fill
from scheduler.notify.webhook import SIGNATURE, TIMESTAMP, verify

from ..conftest import FAST_CONFIG, GitRepo, make_repo
from ..support.receivers import Hook, closed_port, smtp_server, webhook_server
from .sessions import BREAK, make_planned, passing, run_session, task_script, write_script

HOOK_SECRET = "whsec-0123456789abcdef"
FAST = "attempts = 2\nretry_s = 0.05\nbudget_s = 3\nflush_s = 10\n"


def _repo(root: Path, notify: str) -> GitRepo:
    return make_repo(root, config=FAST_CONFIG + "\n[notify]\n" + FAST + notify)


def _env_file(repo: GitRepo, text: str, mode: int = 0o600) -> Path:
    path = Workspace.open(repo.root).state_dir / "cron.env"
    path.write_text(text)
    path.chmod(mode)
    return path


def _ws(repo: GitRepo, **env: str) -> Workspace:
    return Workspace.open(repo.root, environ={**os.environ, **env})


def _hook_channel(name: str, port: int, events: str = "") -> str:
    events_line = f"events = {events}\n" if events else ""
    return (f'[[notify.channels]]\nname = "{name}"\n'
            f'url = "hmac://127.0.0.1:{port}/hook?secret={{HOOK_SECRET}}"\n{events_line}')  # fmt: skip


def _payloads(hook: Hook) -> list[dict[str, object]]:
    for headers, body in hook.requests:  # every request signed with the env file's secret, and recent
        assert verify(HOOK_SECRET, headers[TIMESTAMP.lower()], body, headers[SIGNATURE.lower()])
    return [json.loads(body) for _, body in hook.requests]


def test_an_email_reaches_a_real_smtp_server_with_the_env_files_login(tmp_path: Path) -> None:
    with smtp_server(password="p@ss/w:rd?#1") as (box, port):  # filled in percent-encoded: it still logs in
        repo = _repo(tmp_path / "r", f'[[notify.channels]]\nname = "mail"\nurl = "mailto://{{SMTP_USER}}:'
                     f'{{SMTP_PASSWORD}}@127.0.0.1:{port}?to=me@example.org&from=night@example.org"\n')  # fmt: skip
        _env_file(repo, "SMTP_USER=night\nSMTP_PASSWORD='p@ss/w:rd?#1'\n")
        failed = send(Workspace.open(repo.root), "paused", "overnight: paused", "three error cycles in a row")
        assert failed == []
        [mail] = box.mails
        assert box.logins == [("night", "p@ss/w:rd?#1")]
        assert mail["To"] == "me@example.org" and mail["Subject"] == "overnight: paused"
        assert "three error cycles in a row" in mail.get_payload(decode=True).decode()


def test_a_wrong_smtp_password_is_a_failure_said_without_the_password(tmp_path: Path) -> None:
    with smtp_server() as (box, port):
        repo = _repo(tmp_path / "r", f'[[notify.channels]]\nname = "mail"\nurl = "mailto://night:{{SMTP_PASSWORD}}'
                     f'@127.0.0.1:{port}?to=me@example.org&from=night@example.org"\n')  # fmt: skip
        said: list[str] = []
        box_out = Outbox.of(_ws(repo, SMTP_PASSWORD="wrong-password-1"), warn=said.append)
        failed = box_out.send(message("complete", "done", "all tasks done"))
        assert box.mails == [] and len(failed) == 1 and "channel mail not sent" in failed[0]
        assert "wrong-password-1" not in failed[0] + "".join(said) and said


def test_a_signed_webhook_carries_an_hmac_a_receiver_can_check(tmp_path: Path) -> None:
    with webhook_server() as hook:
        repo = _repo(tmp_path / "r", _hook_channel("hook", hook.port))
        _env_file(repo, f"HOOK_SECRET={HOOK_SECRET}\n")
        assert send(Workspace.open(repo.root), "complete", "overnight: complete", "every task done", session="s1") == []
        [payload] = _payloads(hook)
        assert payload["event"] == "complete" and payload["session"] == "s1" and payload["text"] == "every task done"
        [(headers, body)] = hook.requests
        assert HOOK_SECRET not in body.decode() and "secret" not in hook.requests[0][0].get("path", "")
        # a forged body, another secret or an old timestamp do not verify
        stamp, signature = headers[TIMESTAMP.lower()], headers[SIGNATURE.lower()]
        assert not verify(HOOK_SECRET, stamp, body + b" ", signature)
        assert not verify("another-secret", stamp, body, signature)
        assert not verify(HOOK_SECRET, stamp, body, signature, now=int(stamp) + 301)


def test_a_failing_channel_is_retried_with_backoff_then_delivered(tmp_path: Path) -> None:
    with webhook_server() as hook:
        hook.statuses = [500, 502]
        repo = _repo(tmp_path / "r", _hook_channel("hook", hook.port))
        ws = _ws(repo, HOOK_SECRET=HOOK_SECRET)
        pauses: list[float] = []
        settings = ws.settings.notify.model_copy(update={"attempts": 3, "retry_s": 0.5})
        ready = fill(settings.channels[0], ws.environ.get, Path("/nonexistent"))
        assert deliver(ready, message("paused", "t", "x"), settings, sleep=pauses.append) is None
        assert len(hook.requests) == 3 and pauses == [0.5, 1.0]
        hook.statuses = [500, 500, 500]
        why = deliver(ready, message("paused", "t", "x"), settings, sleep=pauses.append)
        assert why is not None and "HTTP 500" in why and "after 3 attempts" in why


def test_retries_stop_at_the_channels_budget(tmp_path: Path) -> None:
    repo = _repo(tmp_path / "r", _hook_channel("dead", closed_port()))
    ws = _ws(repo, HOOK_SECRET=HOOK_SECRET)
    settings: Notify = ws.settings.notify.model_copy(update={"attempts": 5, "retry_s": 2.0, "budget_s": 3.0})
    ready = fill(settings.channels[0], ws.environ.get, Path("/nonexistent"))
    pauses: list[float] = []
    why = deliver(ready, message("paused", "t", "x"), settings, sleep=pauses.append)
    assert why is not None and "could not be reached" in why
    assert pauses == [2.0]  # a second pause (4 s) would pass the 3 s budget: given up instead


def test_each_channel_hears_only_its_events(tmp_path: Path) -> None:
    with webhook_server() as kept_hook, webhook_server() as all_hook:
        repo = _repo(tmp_path / "r", _hook_channel("kept", kept_hook.port, '["task-kept"]')
                     + _hook_channel("all", all_hook.port))  # fmt: skip
        notifier = Notifier.of(_ws(repo, HOOK_SECRET=HOOK_SECRET))
        for event in (RunEvent("outcome", "task a: kept", session="s", task_id="a", title="A", outcome="passed"),
                      RunEvent("outcome", "task b: rolled back", session="s", task_id="b", outcome="failed"),
                      RunEvent("agent", "task b: Edit", session="s", task_id="b"),
                      RunEvent("end", "session s completed", session="s", outcome="completed",
                               security=("the agent changed ~/.bashrc (put back)",))):  # fmt: skip
            notifier.tell(event)
        assert notifier.flush() == []
        notifier.close()
        assert [p["event"] for p in _payloads(kept_hook)] == ["task-kept"]
        events = [p["event"] for p in _payloads(all_hook)]
        assert events == ["task-kept", "task-rolled-back", "session-end", "security-event"]
        assert "~/.bashrc" in str(_payloads(all_hook)[-1]["text"])


def test_a_slow_channel_never_holds_the_session_and_the_flush_is_bounded(tmp_path: Path) -> None:
    with webhook_server() as hook:
        hook.hold = __import__("threading").Event()
        repo = _repo(tmp_path / "r", _hook_channel("slow", hook.port))
        notifier = Notifier.of(_ws(repo, HOOK_SECRET=HOOK_SECRET))
        started = time.monotonic()
        notifier.tell(RunEvent("outcome", "task a: kept", session="s", task_id="a", outcome="passed"))
        assert time.monotonic() - started < 0.5  # queued, not sent on the caller's thread
        warnings = notifier.flush(wait_s=0.3)
        assert len(warnings) == 1 and "still being sent" in warnings[0]
        hook.hold.set()
        notifier.close()


def test_agent_text_is_redacted_cut_and_defused(tmp_path: Path) -> None:
    title = "Fix @everyone <!channel> \x1b]52;c;AAAA\x07 login\nBcc: evil@example.org"
    text = "token ghp_" + "a1B2" * 9 + " and {HOOK_SECRET} " + "x" * 5000
    msg = message("task-kept", title, text, limit=300)
    assert "\n" not in msg.title and "\x1b" not in msg.title and "@everyone" not in msg.title
    assert "<!channel>" not in msg.title and "Bcc: evil" in msg.title  # one line: no header of its own
    assert "ghp_" not in msg.text and "REDACTED" in msg.text and len(msg.text) == 300
    assert "{HOOK_SECRET}" in msg.text  # never filled in: only channel URLs are
    with pytest.raises(ValueError, match="unknown notification event"):
        message("lunch", "t", "x")


def test_an_env_file_others_can_read_is_refused(tmp_path: Path) -> None:
    with webhook_server() as hook:
        repo = _repo(tmp_path / "r", _hook_channel("hook", hook.port))
        env = _env_file(repo, f"HOOK_SECRET={HOOK_SECRET}\n", mode=0o644)
        [failed] = send(Workspace.open(repo.root), "paused", "t", "x")
        assert f"chmod 600 {env}" in failed and hook.requests == []
        env.unlink()
        [failed] = send(Workspace.open(repo.root), "paused", "t", "x")
        assert "{HOOK_SECRET} is not set" in failed and "HOOK_SECRET=..." in failed


def test_a_dead_channel_does_not_stop_a_replay_session_and_is_in_the_report(tmp_path: Path) -> None:
    with webhook_server() as hook, webhook_server() as evil:
        channels = _hook_channel("hook", hook.port) + _hook_channel("dead", closed_port(), '["session-end"]')
        repo = make_planned(tmp_path / "r", scheduler="max_tasks = 2\nmax_consecutive_failures = 3\n"
                            "\n[notify]\n" + FAST + channels)  # fmt: skip
        _env_file(repo, f"HOOK_SECRET={HOOK_SECRET}\n")
        # the agent adds a channel of its own choosing to its copy of overnight.toml: it is never used
        redirect = _hook_channel("evil", evil.port).replace("\n", "\\n").replace('"', '\\"')
        steps = f'[[task.step]]\nappend = "overnight.toml"\ntext = "\\n{redirect}"\n' + BREAK
        script = write_script(tmp_path / "s.toml", passing("sub", "sub"), task_script("mul", steps))
        record, said = run_session(repo, script)
        assert evil.requests == []
        assert record.outcome == "completed", said
        assert [t.outcome for t in record.tasks] == ["passed", "failed"]
        assert "overnight.toml [protected-path]" in str(record.tasks[1].reasons)  # it did write its channel
        payloads = _payloads(hook)
        assert [p["event"] for p in payloads] == ["task-kept", "task-rolled-back", "session-end"]
        assert payloads[0]["task"] == "sub" and payloads[2]["session"] == record.id
        assert "rolled back" in str(payloads[1]["title"])
        ended = str(payloads[2]["text"])  # the session's end says what it kept and rolled back
        assert f"Branch: {record.branch};" in ended and "Kept:\n- sub (Add sub())" in ended
        assert "Rolled back:\n- mul (Add mul()): failed: no commit was made" in ended
        [warning] = record.warnings
        assert "`session-end` to channel dead not sent" in warning and "could not be reached" in warning
        saved = json.loads((Workspace.open(repo.root).state_dir / "reports" / f"{record.id}.json").read_text())
        assert saved["warnings"] == [warning]


def test_notify_test_says_per_channel_whether_it_was_delivered(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with webhook_server() as hook:
        repo = _repo(tmp_path / "r", _hook_channel("hook", hook.port, '["complete"]')
                     + _hook_channel("dead", closed_port()))  # fmt: skip
        _env_file(repo, f"HOOK_SECRET={HOOK_SECRET}\n")
        assert main(["-C", str(repo.root), "notify", "test", "--channel", "hook"]) == 0
        assert capsys.readouterr().out.strip() == "hook: delivered"
        assert _payloads(hook)[0]["title"] == "overnight: test notification"
        assert main(["-C", str(repo.root), "notify", "test"]) == 1
        lines = capsys.readouterr().out.strip().splitlines()
        assert lines[0] == "hook: delivered" and lines[1].startswith("dead: NOT delivered: ")
        assert main(["-C", str(repo.root), "notify", "test", "--json"]) == 1
        assert [r["delivered"] for r in json.loads(capsys.readouterr().out)] == [True, False]
        assert main(["-C", str(repo.root), "notify", "test", "--channel", "nope"]) == 2
        assert "no channel named 'nope'" in capsys.readouterr().err


def test_notify_test_without_channels_says_how_to_add_one(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    repo = make_repo(tmp_path / "r", config=FAST_CONFIG)
    assert main(["-C", str(repo.root), "notify", "test"]) == 2
    assert "[[notify.channels]]" in capsys.readouterr().err


def test_doctor_says_which_channel_lacks_its_secret(tmp_path: Path) -> None:
    from scheduler.doctor import diagnose

    repo = _repo(tmp_path / "r", _hook_channel("hook", closed_port(), '["paused"]'))
    [finding] = [f for f in diagnose(str(repo.root)).findings if f.name == "notify hook"]
    assert finding.status == "warn" and "{HOOK_SECRET} is not set" in finding.detail
    _env_file(repo, f"HOOK_SECRET={HOOK_SECRET}\n")
    assert Outbox.of(Workspace.open(repo.root)).unready(Workspace.open(repo.root).settings.notify.channels[0]) is None


def test_the_routes_table_maps_session_events_to_notifications() -> None:
    def events(kind: str, **fields: Any) -> list[str]:
        return [m.event for m in of_event(RunEvent(cast(Any, kind), f"overnight: {kind}", session="s", **fields))]

    assert events("outcome", task_id="a", outcome="passed") == ["task-kept"]
    assert events("outcome", task_id="a", outcome="timed-out", security=("~/.bashrc changed",)) == [
        "task-rolled-back",
        "security-event",
    ]
    assert events("end", outcome="completed") == ["session-end"]
    assert events("end", outcome="no-work") == [] and events("end", outcome="already-running") == []
    assert events("end", outcome="preflight-failed") == ["session-end"]
    # the kinds the daemon and the usage-limit wait tell: one line each in ROUTES
    assert events("wait", wait_kind="usage-limit") == ["usage-limit-wait"] and events("paused") == ["paused"]
    assert events("wait", wait_kind="probe") == ["usage-limit-wait"]  # a limit without a reset time, probed
    assert events("wait", wait_kind="retry") == [] and events("wait", wait_kind="breaker") == []
    assert events("complete") == ["complete"]
    assert events("agent") == [] and events("verify") == [] and events("task") == [] and events("session") == []


def test_a_whole_url_can_come_from_the_env_file(tmp_path: Path) -> None:
    with webhook_server() as hook:
        repo = _repo(tmp_path / "r", '[[notify.channels]]\nname = "hook"\nurl = "{HOOK_URL}"\n')
        _env_file(repo, f"HOOK_URL=hmac://127.0.0.1:{hook.port}/in?secret={HOOK_SECRET}\n")
        assert send(Workspace.open(repo.root), "complete", "overnight: complete", "done") == []
        assert [p["event"] for p in _payloads(hook)] == ["complete"]
