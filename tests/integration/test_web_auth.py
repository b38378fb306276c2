"""Web UI sign-in: passwords, the session cookie, login CSRF, and who may do what."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from httpx import Response

from tocsin.api.app import create_app
from tocsin.api.deps import SESSION_COOKIE
from tocsin.services import access
from tocsin.storage.db import Database

PASSWORD = "correct horse battery"
_CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def set_passwords(db: Database) -> None:
    with db.write() as session:
        for user in ("alice", "bob", "carol"):
            access.set_password(session, user, PASSWORD)
        session.commit()


def csrf_of(html: str) -> str:
    match = _CSRF.search(html)
    assert match, "no csrf field on the page"
    return match.group(1)


def login(client: TestClient, who: str, password: str = PASSWORD) -> Any:
    page = client.get("/login")
    return client.post(
        "/login",
        data={"login": who, "password": password, "csrf": csrf_of(page.text)},
        follow_redirects=False,
    )


@pytest.fixture
def make_client(
    core_config: Database, make_settings: Callable[..., Any], clock: Any
) -> Iterator[Callable[..., TestClient]]:
    set_passwords(core_config)
    clients: list[TestClient] = []

    def _make(**settings: Any) -> TestClient:
        app = create_app(make_settings(core_config.url, **settings), core_config, clock)
        # A Secure cookie only comes back over HTTPS.
        scheme = "https" if settings.get("secure_cookies") else "http"
        client = TestClient(app, base_url=f"{scheme}://testserver")
        clients.append(client)
        return client

    yield _make
    for client in clients:
        client.close()


@pytest.fixture
def client(make_client: Callable[..., TestClient]) -> TestClient:
    return make_client()


def test_login_sets_a_hardened_session_cookie(client: TestClient) -> None:
    response = login(client, "alice")
    assert response.status_code == 303
    assert response.headers["location"] == "/incidents"
    cookie = next(
        c for c in response.headers.get_list("set-cookie") if c.startswith(SESSION_COOKIE)
    )
    assert "HttpOnly" in cookie
    assert "SameSite=lax" in cookie
    assert "Secure" not in cookie
    assert "Max-Age=1209600" in cookie
    page = client.get("/incidents")
    assert page.status_code == 200
    assert "Alice Example" in page.text


def test_secure_cookies_setting_marks_the_cookie_secure(
    make_client: Callable[..., TestClient],
) -> None:
    client = make_client(secure_cookies=True)
    response = login(client, "alice")
    cookie = next(
        c for c in response.headers.get_list("set-cookie") if c.startswith(SESSION_COOKIE)
    )
    assert "Secure" in cookie


def test_login_by_email_address(client: TestClient) -> None:
    assert login(client, "Bob@Example.test").status_code == 303
    assert "Bob Example" in client.get("/incidents").text


@pytest.mark.parametrize(("who", "password"), [("alice", "wrong password"), ("nobody", PASSWORD)])
def test_bad_credentials_are_refused_without_saying_which(
    client: TestClient, who: str, password: str
) -> None:
    response = login(client, who, password)
    assert response.status_code == 401
    assert "Unknown user or wrong password." in response.text
    assert SESSION_COOKIE not in response.headers.get("set-cookie", "")
    assert client.get("/incidents", follow_redirects=False).status_code == 303


def test_login_form_needs_its_pre_session_token(client: TestClient) -> None:
    client.get("/login")
    forged = client.post(
        "/login",
        data={"login": "alice", "password": PASSWORD, "csrf": "not-the-cookie"},
        follow_redirects=False,
    )
    assert forged.status_code == 403
    client.cookies.clear()
    no_cookie = client.post(
        "/login", data={"login": "alice", "password": PASSWORD, "csrf": "x" * 43}
    )
    assert no_cookie.status_code == 403
    assert SESSION_COOKIE not in client.cookies


def _log_in(client: TestClient, next_: str) -> Response:
    """Post the login form as alice with `next` set, without following the redirect."""
    page = client.get("/login")
    data = {"login": "alice", "password": PASSWORD, "csrf": csrf_of(page.text), "next": next_}
    return client.post("/login", data=data, follow_redirects=False)


def test_anonymous_pages_redirect_to_login_and_back(client: TestClient) -> None:
    response = client.get("/incidents?status=open", follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == "/login?next=%2Fincidents%3Fstatus%3Dopen"
    assert client.get("/", follow_redirects=False).headers["location"] == "/login"
    assert _log_in(client, "/incidents/new").headers["location"] == "/incidents/new"


def test_login_never_redirects_off_site(client: TestClient) -> None:
    for target in ("//evil.example/", "https://evil.example/", "/\\evil.example"):
        client.cookies.clear()
        assert _log_in(client, target).headers["location"] == "/incidents"


def test_htmx_poll_without_session_asks_for_a_full_redirect(client: TestClient) -> None:
    response = client.get("/incidents/1/live", headers={"HX-Request": "true"})
    assert response.status_code == 401
    assert response.headers["HX-Redirect"].startswith("/login")


def test_forged_session_cookie_is_not_a_session(client: TestClient) -> None:
    client.cookies.set(SESSION_COOKIE, "eyJ1aWQiOiJhbGljZSJ9.forged.signature")
    assert client.get("/incidents", follow_redirects=False).status_code == 303


def test_logout_needs_the_csrf_token_and_ends_the_session(client: TestClient) -> None:
    login(client, "alice")
    page = client.get("/incidents")
    assert client.post("/logout", data={}, follow_redirects=False).status_code == 403
    response = client.post("/logout", data={"csrf": csrf_of(page.text)}, follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == "/login"
    assert client.get("/incidents", follow_redirects=False).status_code == 303


def test_session_cookie_works_for_the_api_with_the_csrf_header(client: TestClient) -> None:
    login(client, "bob")
    token = csrf_of(client.get("/incidents").text)
    body = {"title": "From the page's own script", "severity": "P2"}
    assert client.post("/api/v1/incidents", json=body).status_code == 403
    created = client.post("/api/v1/incidents", json=body, headers={"X-CSRF-Token": token})
    assert created.status_code == 201
    assert created.json()["created_by"] == "bob"


def test_viewer_reads_but_cannot_write(client: TestClient, core_config: Database) -> None:
    login(client, "alice")
    alice_csrf = csrf_of(client.get("/incidents").text)
    client.post("/incidents", data={"csrf": alice_csrf, "title": "Disk full", "severity": "P2"})
    client.cookies.clear()
    login(client, "carol")
    page = client.get("/incidents/1")
    assert page.status_code == 200
    assert "Disk full" in page.text
    for control in ("Acknowledge</button>", "Add note", "Resolve…", "Assign", "/checklist/"):
        assert control not in page.text
    assert 'href="/incidents/new"' not in client.get("/incidents").text
    assert client.get("/incidents/new").status_code == 403
    csrf = csrf_of(page.text)
    for path, data in [
        ("/incidents", {"title": "Nope", "severity": "P2"}),
        ("/incidents/1/acknowledge", {}),
        ("/incidents/1/status", {"status": "resolved"}),
        ("/incidents/1/notes", {"text": "hello"}),
    ]:
        response = client.post(path, data={"csrf": csrf, **data}, follow_redirects=False)
        assert response.status_code == 403, path
        assert "viewer" in response.text
    with core_config.read() as session:
        from tocsin.services import timeline

        assert [e.kind for e in timeline.events(session, 1)] == ["declared", "role_assigned"]
