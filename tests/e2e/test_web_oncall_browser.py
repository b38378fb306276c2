"""The on-call pages of a real `tocsin serve` in a real Chromium, at phone size first: a
schedule with an override added and deleted through its form, the escalation policy, and the
paging panel of an incident the running engine pages for.

The server runs on the real clock, so who is on call is asked of the API, not assumed.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.serving import CONFIG, ROOT, Server, run_tocsin, running_server, tocsin_env
from tests.e2e.test_web_browser import CHROMIUM_ARGS, PASSWORD, VIEWPORTS, chromium_path

pytestmark = pytest.mark.e2e

ALERTING = ROOT / "examples" / "alerting.yaml"
ONCALL = ROOT / "examples" / "oncall.yaml"
__all__ = ["chromium_path"]  # a fixture, imported for pytest to find
FITS = "document.documentElement.scrollWidth <= window.innerWidth"


@pytest.fixture
def server(db_url: str, tmp_path: Path) -> Iterator[Server]:
    env = tocsin_env(db_url, tmp_path / "data")
    for config in (CONFIG, ALERTING, ONCALL):
        run_tocsin(["apply", "-f", str(config)], env)
    run_tocsin(["user", "set-password", "alice", "--password", PASSWORD], env)
    with running_server(db_url, tmp_path, config=ONCALL) as (srv, _proc):
        yield srv


def on_call_names(server: Server, schedule: str) -> list[str]:
    found = server.api("GET", f"/api/v1/schedules/{schedule}")
    assert found.status_code == 200, found.text
    return [person["name"] for person in found.json()["on_call"]]


def test_schedule_override_and_paging_panel_on_a_phone(
    server: Server, chromium_path: Path, tmp_path: Path
) -> None:
    from playwright.sync_api import Page, expect, sync_playwright

    shots = Path(os.environ.get("TOCSIN_E2E_SCREENSHOTS", tmp_path))
    shots.mkdir(parents=True, exist_ok=True)
    declared = server.api(
        "POST",
        "/api/v1/incidents",
        json={"title": "Checkout is down", "severity": "P1", "services": ["api"]},
    )
    assert declared.status_code == 201, declared.text
    number = declared.json()["id"]
    primary = on_call_names(server, "primary")

    def fits(page: Page, what: str) -> None:
        assert page.evaluate(FITS), f"{what} scrolls sideways at {page.viewport_size}"

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(chromium_path), args=CHROMIUM_ARGS)
        problems: list[str] = []
        try:
            context = browser.new_context(viewport=VIEWPORTS["phone"])  # type: ignore[arg-type]
            page = context.new_page()
            # A Content-Security-Policy violation or a script error shows up as a console error.
            page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: problems.append(str(e)))
            page.goto(server.base + "/schedules/primary")
            page.get_by_label("User id or email").fill("alice")
            page.get_by_label("Password").fill(PASSWORD)
            page.get_by_role("button", name="Sign in").click()
            expect(page).to_have_url(re.compile(r"/schedules/primary$"))

            now = page.locator("#now")
            for name in primary or ["Nobody: this is a gap in coverage"]:
                expect(now).to_contain_text(name)
            expect(page.locator("#days .day")).to_have_count(14)
            expect(page.locator("#layers")).to_contain_text("weekly rotation")
            feed = page.locator("#calendar-url")
            expect(feed).to_have_value(
                re.compile(r"/api/v1/schedules/primary/calendar\.ics\?token=")
            )
            fits(page, "the schedule page")
            page.screenshot(path=str(shots / "schedule-phone.png"), full_page=True)

            # Carol joins for the rest of the shift (the form offers now → the next handoff).
            page.get_by_text("Add override…").click()
            form = page.locator("#override-form")
            form.locator("select[name=kind]").select_option("add")
            form.locator("select[name=user]").select_option("carol")
            fits(page, "the open override form")
            form.get_by_role("button", name="Add override").click()
            expect(page).to_have_url(re.compile(r"/schedules/primary#overrides$"))
            expect(page.locator("#overrides")).to_contain_text("Carol Example also on call")
            expect(now).to_contain_text("Carol Example")
            assert "Carol Example" in on_call_names(server, "primary")
            page.get_by_role("button", name="Delete override Carol Example also on call").click()
            expect(page.locator("#overrides")).to_contain_text("No current or upcoming overrides")
            expect(now).not_to_contain_text("Carol Example")

            # Weekdays 08:00-18:00 only: every fortnight has gaps, flagged in the warning colour.
            page.goto(server.base + "/schedules/secondary")
            expect(page.locator("#days .gap-note")).to_contain_text("Coverage gaps")
            gap = page.locator("#days .entry.gap").first
            expect(gap).to_contain_text("Gap: nobody")
            assert gap.evaluate("e => getComputedStyle(e).borderLeftColor") == "rgb(179, 92, 0)"
            fits(page, "a schedule with gaps")
            page.screenshot(path=str(shots / "schedule-gaps-phone.png"), full_page=True)

            page.goto(server.base + "/escalation-policies/api-default")
            expect(page.locator("#steps")).to_contain_text("at 0 min")
            expect(page.locator("#steps")).to_contain_text("at 30 min")
            fits(page, "the escalation policy page")

            # The engine fires step 1 at once; the panel is drawn with the page, so reload.
            page.goto(f"{server.base}/incidents/{number}")
            paging = page.locator("#paging")
            deadline = time.monotonic() + 15
            while "Step fired" not in (paging.text_content() or ""):
                assert time.monotonic() < deadline, paging.text_content()
                time.sleep(0.3)
                page.reload()
            expect(paging).to_contain_text("Active")
            expect(paging).to_contain_text("Step 2 of 3")
            expect(paging).to_contain_text("Respond by")
            fits(page, "the incident page with its paging panel")
            paging.scroll_into_view_if_needed()
            page.screenshot(path=str(shots / "incident-paging-phone.png"), full_page=True)

            page.goto(server.base + "/profile")
            expect(page.locator("#methods")).to_contain_text("from configuration")
            page.get_by_text("Edit rules…").click()
            fits(page, "the profile page with its rules form open")
            page.screenshot(path=str(shots / "profile-phone.png"), full_page=True)
            context.close()

            context = browser.new_context(viewport=VIEWPORTS["desktop"])  # type: ignore[arg-type]
            desk = context.new_page()
            desk.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
            desk.goto(server.base + "/schedules")
            desk.get_by_label("User id or email").fill("alice")
            desk.get_by_label("Password").fill(PASSWORD)
            desk.get_by_role("button", name="Sign in").click()
            expect(desk.locator("#schedule-list")).to_contain_text("secondary")
            fits(desk, "the schedule list")
            desk.goto(server.base + "/schedules/primary")
            fits(desk, "the schedule page")
            desk.screenshot(path=str(shots / "schedule-desktop.png"), full_page=True)
            desk.goto(f"{server.base}/incidents/{number}")
            expect(desk.locator("#paging")).to_contain_text("Step fired")
            fits(desk, "the incident page")
            desk.screenshot(path=str(shots / "incident-paging-desktop.png"), full_page=True)
            context.close()
        finally:
            browser.close()
    assert problems == []
