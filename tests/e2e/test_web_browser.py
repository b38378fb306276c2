"""Drive the web UI in a real Chromium against a real `tocsin serve` process.

Runs on both backends (the `db_url` fixture) and at desktop and phone sizes. Debian's chromium
is used through Playwright's executable_path; nothing is downloaded.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.serving import (
    CONFIG,
    Server,
    run_tocsin,
    running_server,
    tocsin_env,
)

pytestmark = pytest.mark.e2e

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
PASSWORD = "correct horse battery"
VIEWPORTS = {"desktop": {"width": 1366, "height": 900}, "phone": {"width": 390, "height": 844}}


@pytest.fixture
def chromium_path() -> Path:
    if not CHROMIUM.exists():
        message = f"{CHROMIUM} is missing: install Debian's chromium package to run browser tests"
        if os.environ.get("CI", "").lower() in {"1", "true", "yes"}:
            pytest.fail(message)
        pytest.skip(message)
    return CHROMIUM


@pytest.fixture
def server(db_url: str, tmp_path: Path) -> Iterator[Server]:
    env = tocsin_env(db_url, tmp_path / "data")
    run_tocsin(["apply", "-f", str(CONFIG)], env)
    run_tocsin(["user", "set-password", "alice", "--password", PASSWORD], env)
    with running_server(db_url, tmp_path) as (srv, _proc):
        yield srv


@pytest.mark.parametrize("viewport", list(VIEWPORTS))
def test_log_in_declare_acknowledge_resolve(
    server: Server, chromium_path: Path, viewport: str, tmp_path: Path
) -> None:
    from playwright.sync_api import expect, sync_playwright

    shots = Path(os.environ.get("TOCSIN_E2E_SCREENSHOTS", tmp_path))
    shots.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(chromium_path), args=CHROMIUM_ARGS)
        context = browser.new_context(viewport=VIEWPORTS[viewport])  # type: ignore[arg-type]
        page = context.new_page()
        problems: list[str] = []
        # A Content-Security-Policy violation or a script error shows up as a console error.
        page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: problems.append(str(e)))
        try:
            page.goto(server.base + "/")
            expect(page).to_have_url(re.compile(r"/login$"))
            page.get_by_label("User id or email").fill("alice")
            page.get_by_label("Password").fill(PASSWORD)
            page.get_by_role("button", name="Sign in").click()
            expect(page).to_have_url(re.compile(r"/incidents$"))

            page.get_by_role("link", name="Declare").click()
            page.get_by_label("Title", exact=True).fill("Checkout API returns 502")
            page.get_by_label("Severity").select_option("P1")
            page.get_by_label("Public API").check()
            page.get_by_label("Customer impact").fill("EU customers cannot pay")
            page.get_by_role("button", name="Declare incident").click()
            expect(page).to_have_url(re.compile(r"/incidents/\d+$"))
            incident_id = int(page.url.rsplit("/", 1)[1])
            status = page.locator("#summary .status")
            expect(status).to_have_text("Triggered")
            expect(page.locator("#summary")).to_contain_text(f"INC-{incident_id}")

            page.get_by_role("button", name="Acknowledge", exact=True).click()
            expect(status).to_have_text("Investigating")
            expect(page.get_by_role("button", name="Acknowledge", exact=True)).to_have_count(0)

            # Someone else writes through the API: the open page shows it without a reload.
            note = server.api(
                "POST", f"/api/v1/incidents/{incident_id}/notes", json={"text": "Note from the API"}
            )
            assert note.status_code == 201, note.text
            timeline = page.locator("#timeline-list")
            expect(timeline).to_contain_text("Note from the API", timeout=10_000)
            page.screenshot(path=str(shots / f"incident-{viewport}.png"), full_page=True)

            page.locator("#resolve summary").click()
            page.get_by_label("Resolution").fill("Rolled back deploy 4411")
            page.get_by_role("button", name="Resolve incident").click()
            expect(status).to_have_text("Resolved")
            expect(page.locator("#summary")).to_contain_text("Rolled back deploy 4411")
            expect(page.get_by_role("button", name="Close", exact=True)).to_be_visible()
            if viewport == "phone":
                fits = page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
                assert fits, "the incident page scrolls sideways on a phone"
            page.screenshot(path=str(shots / f"resolved-{viewport}.png"), full_page=True)
        finally:
            context.close()
            browser.close()
    assert problems == []

    body = server.api("GET", f"/api/v1/incidents/{incident_id}").json()
    assert body["status"] == "resolved"
    assert body["resolution"] == "Rolled back deploy 4411"
    assert body["created_by"] == "alice"
    assert body["services"] == ["api"]
    events = server.api("GET", f"/api/v1/incidents/{incident_id}/timeline").json()["items"]
    seen = [(e["kind"], e["actor"], e["source"]) for e in events]
    assert seen[0] == ("declared", "alice", "web")
    assert ("acknowledged", "alice", "web") in seen
    assert ("note", "admin-token", "api") in seen
    changes = [e["data"] for e in events if e["kind"] == "status_changed"]
    assert changes == [
        {"old": "triggered", "new": "investigating"},
        {"old": "investigating", "new": "resolved"},
    ]
