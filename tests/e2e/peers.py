"""Real peers for end-to-end tests: a Tocsin set up for alerts, Prometheus Alertmanager, polling.

Alertmanager is Debian's `prometheus-alertmanager` package (or any `alertmanager` binary named
by TOCSIN_TEST_ALERTMANAGER). When it is missing the tests skip locally and FAIL under CI=true,
like the PostgreSQL half of the suite: CI must never pass without having talked to it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
import yaml

from tests.e2e.serving import ROOT, Server, free_port, run_tocsin, running_server, tocsin_env

EXAMPLES = ROOT / "examples"
CORE = EXAMPLES / "core.yaml"
ALERTING = EXAMPLES / "alerting.yaml"
# Keys of examples/alerting.yaml.
AM_KEY = "am-production-0001"  # alertmanager → service api
PD_KEY = "0f1e2d3c4b5a69788796a5b4c3d2e1f0"  # pagerduty → service database
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}
POLL_TIMEOUT = 20.0

T = TypeVar("T")


def require_binary(names: list[str], package: str, env_var: str) -> Path:
    """Return the first binary found ($env_var, then `names` on PATH); skip, or fail under CI."""
    override = os.environ.get(env_var)
    candidates = [override] if override else names
    for name in candidates:
        found = shutil.which(name)
        if found:
            return Path(found)
    message = (
        f"{' or '.join(candidates)} not found: install the Debian package {package} "
        f"(or point {env_var} at the binary) to run tests against it"
    )
    if IN_CI:
        pytest.fail(message)
    pytest.skip(message)


def wait_until(check: Callable[[], T | None], what: str, timeout: float = POLL_TIMEOUT) -> T:
    """Call `check` until it returns something truthy; fail after `timeout` s, saying `what`."""
    deadline = time.monotonic() + timeout
    last: object = None
    while True:
        last = check()
        if last:
            return last
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:g}s waiting for {what}; last saw: {last!r}")
        time.sleep(0.2)


def get_json(server: Server, path: str, **params: Any) -> Any:
    """GET an API path as the admin; assert 200 and return the decoded body."""
    res = server.api("GET", path, params=params)
    assert res.status_code == 200, f"GET {path} {params}: {res.status_code} {res.text}"
    return res.json()


def items(server: Server, path: str, **params: Any) -> list[dict[str, Any]]:
    """The `items` of one page of a list endpoint (limit 200, more than any test makes)."""
    found: list[dict[str, Any]] = get_json(server, path, limit=200, **params)["items"]
    return found


@contextmanager
def alerting_server(db_url: str, tmp_path: Path) -> Iterator[Server]:
    """A real `tocsin serve` with examples/core.yaml, then examples/alerting.yaml, applied."""
    run_tocsin(["apply", "-f", str(CORE)], tocsin_env(db_url, tmp_path / "data"))
    with running_server(db_url, tmp_path, config=ALERTING) as (server, _proc):
        yield server


@dataclass(frozen=True)
class Alertmanager:
    base: str
    log: Path

    def post_alerts(self, alerts: list[dict[str, Any]]) -> None:
        """Push alerts through API v2, as Prometheus does."""
        res = httpx.post(self.base + "/api/v2/alerts", json=alerts, timeout=10)
        assert res.status_code == 200, f"Alertmanager refused alerts: {res.status_code} {res.text}"

    def alerts(self) -> list[dict[str, Any]]:
        """The alerts Alertmanager holds (with their fingerprints)."""
        res = httpx.get(self.base + "/api/v2/alerts", timeout=10)
        assert res.status_code == 200, res.text
        found: list[dict[str, Any]] = res.json()
        return found


def alertmanager_config(webhook_url: str) -> dict[str, Any]:
    """One route, grouped by alertname and cluster, flushing every second, to one webhook."""
    return {
        "route": {
            "receiver": "tocsin",
            "group_by": ["alertname", "cluster"],
            "group_wait": "1s",
            "group_interval": "1s",
            "repeat_interval": "1h",
        },
        "receivers": [
            {
                "name": "tocsin",
                "webhook_configs": [
                    {"url": webhook_url, "send_resolved": True, "max_alerts": 0},
                ],
            }
        ],
    }


@contextmanager
def running_alertmanager(binary: Path, tmp_path: Path, webhook_url: str) -> Iterator[Alertmanager]:
    """Run Alertmanager on a free port, gossip off, until the block ends."""
    config = tmp_path / "alertmanager.yml"
    config.write_text(yaml.safe_dump(alertmanager_config(webhook_url)), encoding="utf-8")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log = tmp_path / f"alertmanager-{port}.log"
    command = [
        str(binary),
        f"--config.file={config}",
        f"--storage.path={tmp_path / 'alertmanager-data'}",
        f"--web.listen-address=127.0.0.1:{port}",
        f"--web.external-url={base}",
        "--cluster.listen-address=",  # no HA gossip: nothing to settle, start at once
        "--log.level=debug",  # the log shows each notification and its answer
    ]
    with log.open("w") as out:
        proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None:
                pytest.fail(f"alertmanager exited with {proc.returncode}:\n{log.read_text()}")
            try:
                if httpx.get(base + "/-/ready", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"alertmanager not ready after 30s:\n{log.read_text()}")
            time.sleep(0.1)
        yield Alertmanager(base, log)
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
