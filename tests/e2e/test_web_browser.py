"""Drive the web UI in a real Chromium against a real `tocsin serve` process.

Runs on both backends (the `db_url` fixture) and at desktop and phone sizes. Debian's chromium
is used through Playwright's executable_path; nothing is downloaded.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "examples" / "core.yaml"
TOCSIN = Path(sys.executable).with_name("tocsin")
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ADMIN_TOKEN = "e2e-admin-token-0123456789abcdef"
PASSWORD = "correct horse battery"
VIEWPORTS = {"desktop": {"width": 1366, "height": 900}, "phone": {"width": 390, "height": 844}}


@dataclass(frozen=True)
class Server:
    base: str
    log: Path

    def api(self, method: str, path: str, **kwargs: object) -> httpx.Response:
        headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
        return httpx.request(method, self.base + path, headers=headers, timeout=10, **kwargs)  # type: ignore[arg-type]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _env(db_url: str, data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOCSIN_")}
    env.update(
        TOCSIN_DATABASE_URL=db_url,
        TOCSIN_SECRET_KEY="e2e-secret-key",
        TOCSIN_DATA_DIR=str(data_dir),
        TOCSIN_ADMIN_TOKEN=ADMIN_TOKEN,
        TOCSIN_LOG_LEVEL="WARNING",
    )
    return env


def _run(args: list[str], env: dict[str, str]) -> None:
    command = [str(TOCSIN), *args]
    done = subprocess.run(command, check=False, env=env, capture_output=True, text=True, timeout=99)
    assert done.returncode == 0, f"tocsin {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"


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
    env = _env(db_url, tmp_path / "data")
    _run(["apply", "-f", str(CONFIG)], env)
    _run(["user", "set-password", "alice", "--password", PASSWORD], env)
    port = _free_port()
    log = tmp_path / "server.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [str(TOCSIN), "serve", "--port", str(port), "--config", str(CONFIG)],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                pytest.fail(f"server exited with {proc.returncode}:\n{log.read_text()}")
            try:
                if httpx.get(base + "/readyz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"server not ready after 60s:\n{log.read_text()}")
            time.sleep(0.2)
        yield Server(base, log)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


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
