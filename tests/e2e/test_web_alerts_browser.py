"""An alert reaches the web UI of a real `tocsin serve` and is acknowledged in a real Chromium.

Phone-sized on purpose: the person acknowledging an alert at night is holding a phone.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.serving import CONFIG, ROOT, Server, run_tocsin, running_server, tocsin_env
from tests.e2e.test_web_browser import CHROMIUM_ARGS, PASSWORD, VIEWPORTS, chromium_path

pytestmark = pytest.mark.e2e

ALERTING = ROOT / "examples" / "alerting.yaml"
PD_KEY = "0f1e2d3c4b5a69788796a5b4c3d2e1f0"  # examples/alerting.yaml: service database
__all__ = ["chromium_path"]  # a fixture, imported for pytest to find


@pytest.fixture
def server(db_url: str, tmp_path: Path) -> Iterator[Server]:
    env = tocsin_env(db_url, tmp_path / "data")
    run_tocsin(["apply", "-f", str(CONFIG)], env)
    run_tocsin(["apply", "-f", str(ALERTING)], env)
    run_tocsin(["user", "set-password", "alice", "--password", PASSWORD], env)
    with running_server(db_url, tmp_path, config=ALERTING) as (srv, _proc):
        yield srv


def test_alert_appears_live_and_is_acknowledged(
    server: Server, chromium_path: Path, tmp_path: Path
) -> None:
    from playwright.sync_api import expect, sync_playwright

    shots = Path(os.environ.get("TOCSIN_E2E_SCREENSHOTS", tmp_path))
    shots.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(chromium_path), args=CHROMIUM_ARGS)
        context = browser.new_context(viewport=VIEWPORTS["phone"])  # type: ignore[arg-type]
        page = context.new_page()
        problems: list[str] = []
        # A Content-Security-Policy violation or a script error shows up as a console error.
        page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: problems.append(str(e)))
        try:
            page.goto(server.base + "/alerts")
            page.get_by_label("User id or email").fill("alice")
            page.get_by_label("Password").fill(PASSWORD)
            page.get_by_role("button", name="Sign in").click()
            expect(page).to_have_url(re.compile(r"/alerts$"))
            expect(page.locator("#group-list")).to_contain_text("No alerts yet")

            # The monitoring system speaks PagerDuty; the open page shows it without a reload.
            sent = httpx.post(
                server.base + "/v2/enqueue",
                json={
                    "routing_key": PD_KEY,
                    "event_action": "trigger",
                    "dedup_key": "disk-db-1",
                    "payload": {
                        "summary": "Disk almost full on db-1",
                        "source": "db-1",
                        "severity": "error",
                    },
                },
                timeout=10,
            )
            assert sent.status_code == 202, sent.text
            link = page.get_by_role("link", name="Disk almost full on db-1")
            expect(link).to_be_visible(timeout=10_000)
            expect(page.locator("#group-list .status").first).to_have_text("Firing")
            assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
            page.screenshot(path=str(shots / "alerts-phone.png"), full_page=True)

            link.click()
            expect(page).to_have_url(re.compile(r"/alerts/\d+$"))
            status = page.locator("#group-summary .status")
            expect(status).to_have_text("Firing")
            page.get_by_role("button", name="Acknowledge", exact=True).click()
            expect(status).to_have_text("Acknowledged")
            expect(page.get_by_role("button", name="Acknowledge", exact=True)).to_have_count(0)
            expect(page.locator("#group-history")).to_contain_text("Acknowledged")
            fits = page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
            assert fits, "the alert group page scrolls sideways on a phone"
            page.screenshot(path=str(shots / "alert-group-phone.png"), full_page=True)
            group_id = int(page.url.rsplit("/", 1)[1])
        finally:
            context.close()
            browser.close()
    assert problems == []

    group = server.api("GET", f"/api/v1/alert-groups/{group_id}").json()
    assert (group["status"], group["acknowledged_by"]) == ("acknowledged", "alice")
    assert [a["status"] for a in group["alerts"]] == ["acknowledged"]
