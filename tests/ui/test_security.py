"""The command center's guard, through the real app over a real planned repository (Starlette's TestClient):
login once with the token, the session cookie, the Host check, CSRF on every POST, the headers, escaping."""

from __future__ import annotations

import re

import pytest
from starlette.testclient import TestClient

from mcp_servers.core.workspace import Workspace
from scheduler.ui import security
from scheduler.ui.app import make_app

from ..conftest import GitRepo
from .conftest import XSS_SCRIPT

BASE = "http://127.0.0.1:8765"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def keys() -> security.Keys:
    clock = Clock()
    keys = security.Keys(clock=clock, issued=clock.now)
    keys.allow(8765)
    return keys


@pytest.fixture
def client(planned: GitRepo, keys: security.Keys) -> TestClient:
    return TestClient(make_app(Workspace.open(planned.root), keys), base_url=BASE, follow_redirects=False)


def logged_in(client: TestClient, keys: security.Keys) -> str:
    """Log in with the token; the page's CSRF token."""
    answer = client.get(f"/login?token={keys.login}")
    assert answer.status_code == 303 and answer.headers["location"] == "/"
    cookie = answer.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/" in cookie
    page = client.get("/tasks")
    assert page.status_code == 200
    found = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert found
    return found.group(1)


def commits(repo: GitRepo) -> int:
    return int(repo.git("rev-list", "--count", "HEAD"))


def test_no_cookie_a_bad_token_and_a_reused_token_are_refused(client: TestClient, keys: security.Keys) -> None:
    for path in ("/", "/tasks", "/tasks/sub", "/events", "/sessions"):
        answer = client.get(path)
        assert answer.status_code == 401, path
        assert "overnight ui" in answer.text and "Log in" in answer.text
    assert client.get("/login?token=wrong").status_code == 401
    assert client.get("/login").status_code == 401
    assert "set-cookie" not in client.get(f"/login?token={keys.login[:-1]}x").headers
    logged_in(client, keys)
    assert client.get("/").status_code == 200
    other = TestClient(client.app, base_url=BASE, follow_redirects=False)
    reused = other.get(f"/login?token={keys.login}")
    assert reused.status_code == 401 and "set-cookie" not in reused.headers
    assert other.get("/").status_code == 401
    forged = TestClient(
        client.app, base_url=BASE, cookies={security.cookie_name(8765): "made-up"}, follow_redirects=False
    )
    assert forged.get("/tasks").status_code == 401


def test_a_websocket_is_closed_even_with_a_session(client: TestClient, keys: security.Keys) -> None:
    from starlette.websockets import WebSocketDisconnect

    logged_in(client, keys)
    for path in ("/", "/events"):
        with pytest.raises(WebSocketDisconnect) as closed, client.websocket_connect(path):
            pass
        assert closed.value.code == 1008, path


def test_the_token_expires(client: TestClient, keys: security.Keys) -> None:
    assert isinstance(keys.clock, Clock)
    keys.clock.now += security.LOGIN_TTL_S + 1
    assert client.get(f"/login?token={keys.login}").status_code == 401


def test_a_wrong_host_is_refused(client: TestClient, keys: security.Keys) -> None:
    logged_in(client, keys)
    for host in ("evil.example:8765", "127.0.0.1:9999", "localhost", "127.0.0.1"):
        answer = client.get("/tasks", headers={"host": host})
        assert answer.status_code == 421, host
        assert "allowed_hosts" in answer.text
    assert client.get(f"/login?token={keys.login}", headers={"host": "evil.example:8765"}).status_code == 421
    assert client.get("/tasks", headers={"host": "localhost:8765"}).status_code == 200


def test_a_post_without_or_with_a_wrong_csrf_token_changes_nothing(planned: GitRepo, client: TestClient,
                                                                   keys: security.Keys) -> None:  # fmt: skip
    csrf = logged_in(client, keys)
    before, plan = commits(planned), (planned.root / "PROJECT_PLAN.md").read_text()
    refused = [
        client.post("/tasks/mul/approve"),
        client.post("/tasks/mul/approve", data={"csrf": "wrong"}),
        client.post("/tasks/mul/approve", data={"csrf": csrf + "x"}),
        client.post("/tasks/mul/approve", headers={"x-csrf-token": "wrong"}),
        client.post("/tasks/mul/approve", data={"csrf": csrf}, headers={"origin": "http://evil.example"}),
        client.post("/tasks/add", data={"title": "sneaked in"}),
        client.post("/stop"),
    ]
    assert [r.status_code for r in refused] == [403] * len(refused)
    assert "nothing was changed" in refused[0].text
    assert commits(planned) == before and (planned.root / "PROJECT_PLAN.md").read_text() == plan
    state_dir = Workspace.open(planned.root).state_dir
    assert not (state_dir / "STOP").exists()
    # a session's CSRF token is no other session's
    assert client.request("PUT", "/tasks/mul/approve", data={"csrf": csrf}).status_code == 405
    done = client.post("/tasks/mul/approve", data={"csrf": csrf})
    assert done.status_code == 303 and "approved" in done.headers["location"]
    assert commits(planned) == before + 1
    assert planned.git("log", "-1", "--format=%s") == "approved mul"


def test_headers_on_every_answer(client: TestClient, keys: security.Keys) -> None:
    answers = [client.get("/"), client.get("/login?token=nope"), client.get("/static/ui.css")]
    logged_in(client, keys)
    answers += [client.get("/"), client.get("/tasks"), client.get("/nowhere"), client.post("/stop")]
    for answer in answers:
        csp = answer.headers["content-security-policy"]
        assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp and "unsafe-inline" not in csp
        assert answer.headers["x-frame-options"] == "DENY"
        assert answer.headers["referrer-policy"] == "no-referrer"
        assert answer.headers["x-content-type-options"] == "nosniff"


def test_titles_an_agent_could_write_render_escaped(client: TestClient, keys: security.Keys) -> None:
    logged_in(client, keys)
    for path in ("/tasks", "/tasks/xss"):
        page = client.get(path).text
        assert XSS_SCRIPT not in page and "<img src=x" not in page and 'onerror="alert' not in page
        assert "&lt;script&gt;alert(&#39;xss-1&#39;)&lt;/script&gt;" in page
        assert "&lt;img src=x onerror=" in page
        assert "<script" not in page.replace('<script src="/static/now.js" defer></script>', "")
    said = client.get("/tasks?said=<script>alert(1)</script>").text
    assert "<script>alert(1)" not in said and "&lt;script&gt;alert(1)" in said
