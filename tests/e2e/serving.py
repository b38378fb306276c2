"""Start and stop real `tocsin serve` processes for end-to-end tests."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from tocsin.api.http_protocol import OneSendHttpProtocol

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "examples" / "core.yaml"
TOCSIN = Path(sys.executable).with_name("tocsin")
ADMIN_TOKEN = "e2e-admin-token-0123456789abcdef"


@dataclass(frozen=True)
class Server:
    base: str
    log: Path

    def api(self, method: str, path: str, **kwargs: object) -> httpx.Response:
        headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
        return httpx.request(method, self.base + path, headers=headers, timeout=10, **kwargs)  # type: ignore[arg-type]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def tocsin_env(db_url: str, data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOCSIN_")}
    env.update(
        TOCSIN_DATABASE_URL=db_url,
        TOCSIN_SECRET_KEY="e2e-secret-key",
        TOCSIN_DATA_DIR=str(data_dir),
        TOCSIN_ADMIN_TOKEN=ADMIN_TOKEN,
        TOCSIN_LOG_LEVEL="WARNING",
    )
    return env


def run_tocsin(args: list[str], env: dict[str, str]) -> None:
    command = [str(TOCSIN), *args]
    done = subprocess.run(command, check=False, env=env, capture_output=True, text=True, timeout=99)
    assert done.returncode == 0, f"tocsin {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"


@contextmanager
def running_server(
    db_url: str, tmp_path: Path, *, config: Path = CONFIG
) -> Iterator[tuple[Server, subprocess.Popen[bytes]]]:
    """Run `tocsin serve` on a free port until the block ends (terminated, killed if stuck)."""
    env = tocsin_env(db_url, tmp_path / "data")
    port = free_port()
    log = tmp_path / f"server-{port}.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [str(TOCSIN), "serve", "--port", str(port), "--config", str(config)],
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
        yield Server(base, log), proc
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)


@contextmanager
def in_thread(app: Any, http: Any = OneSendHttpProtocol) -> Iterator[str]:
    """Serve an ASGI app with uvicorn on a free port in a thread; yield its base URL.

    The protocol is the one `tocsin serve` uses unless the test names another.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))  # bound before the server starts: no race for the port
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", http=http)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            pytest.fail("test server did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=15)
        sock.close()
