"""Benchmark of issue 2: declare and list incidents against a real server with 100,000 incidents.

    .venv/bin/python bench/incidents.py --backend sqlite|postgresql [--incidents 100000]
        [--duration 20] [--workers 1] [--no-record]

Builds a fresh database (a SQLite file in a temporary directory, or the PostgreSQL database
`tocsin_bench`), migrates it, applies examples/core.yaml, bulk-loads the incidents with
SQLAlchemy Core, starts `tocsin serve` on a free loopback port and measures it with wrk
(bench/incidents.lua). Prints a Markdown table and records it, with the machine, in the
backend's section of BENCHMARKS.md. Everything it starts or creates is removed at the end.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import re
import shlex
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from loaddata import load_incidents
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from tocsin.services.queries import encode_cursor
from tocsin.storage.db import upgrade

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
LUA = ROOT / "bench" / "incidents.lua"
CONFIG = ROOT / "examples" / "core.yaml"
RESULTS = ROOT / "BENCHMARKS.md"
PG_ADMIN_URL = os.environ.get(
    "TOCSIN_BENCH_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
PG_DATABASE = "tocsin_bench"
ADMIN_TOKEN = "bench-admin-token-" + "0123456789abcdef" * 2
DEEP_ROWS = 90_000
READY_TIMEOUT_S = 60.0


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    mode: str  # "get" or "declare" (see bench/incidents.lua)
    path: str
    connections: int
    token: str


@dataclass(frozen=True, slots=True)
class Result:
    scenario: Scenario
    requests: int
    seconds: float
    errors: int
    error_kinds: str
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    cpu_ms: float  # server CPU time (user + system, all its processes) per request
    load: float  # the machine's 1-minute load average just before the measurement

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


def main() -> int:
    args = _parse_args()
    if shutil.which("wrk") is None:
        print("wrk is not installed (Debian: apt-get install wrk)", file=sys.stderr)
        return 2
    command = _command_line()
    with contextlib.ExitStack() as stack:
        tmp = Path(tempfile.mkdtemp(prefix="tocsin-bench-"))
        stack.callback(shutil.rmtree, tmp, ignore_errors=True)
        url = stack.enter_context(_fresh_database(args.backend, tmp))
        _step(f"migrating {_redact(url)}")
        upgrade(url)
        _step(f"applying {CONFIG.relative_to(ROOT)}")
        env = _server_env(url, tmp)
        _run([str(BIN / "tocsin"), "apply", "-f", str(CONFIG)], env)
        started = time.perf_counter()
        newest = load_incidents(url, args.incidents, seed=args.seed)
        _step(f"loaded {args.incidents:,} incidents in {time.perf_counter() - started:.1f} s")
        user_token = _run(
            [str(BIN / "tocsin"), "token", "create", "--name", "bench", "-s", "respond",
             "--user", "bob"],
            env,
        ).strip()  # fmt: skip
        port = _free_port()
        base = f"http://127.0.0.1:{port}"
        server_pid = stack.enter_context(_server(env, port, args.workers, tmp / "server.log"))
        _wait_ready(base)
        deep = encode_cursor(newest - min(DEEP_ROWS, newest * 9 // 10) + 1)
        _check(base, deep)
        scenarios = _scenarios(deep, user_token, args.connections, args.declare_connections)
        results = []
        for scenario in scenarios:
            if scenario.mode == "get":
                _wrk(base, scenario, min(3, args.duration), server_pid)  # warm caches, pool
            _step(f"{scenario.name}, {scenario.connections} connections, {args.duration} s")
            result = _wrk(base, scenario, args.duration, server_pid)
            _step(
                f"  {result.rate:,.0f}/s  p50 {result.p50_ms:.1f} ms  p99 {result.p99_ms:.1f} ms"
                f"  server CPU {result.cpu_ms:.1f} ms/request  load {result.load:.1f}"
                + (f"  ERRORS: {result.error_kinds}" if result.errors else "")
            )
            results.append(result)
        machine = _machine(url)
    table = _table(results)
    print()
    print(table)
    if args.record:
        _record(args.backend, args, machine, table, command)
        print(f"\nrecorded in {RESULTS.relative_to(ROOT)}")
    return 1 if any(r.errors for r in results) else 0


def _parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=["sqlite", "postgresql"], required=True)
    parser.add_argument("--incidents", type=int, default=100_000)
    parser.add_argument("--duration", type=int, default=20, help="Seconds per measurement.")
    parser.add_argument(
        "--connections",
        type=int,
        nargs="+",
        default=[1, 4, 16],
        help="Connection counts for the list scenarios.",
    )
    parser.add_argument(
        "--declare-connections",
        type=int,
        nargs="+",
        default=[16, 64],
        help="Connection counts for the declare scenarios.",
    )
    parser.add_argument("--workers", type=int, default=1, help="Server worker processes.")
    parser.add_argument("--seed", type=int, default=2)
    parser.add_argument(
        "--no-record", dest="record", action="store_false", help="Leave BENCHMARKS.md alone."
    )
    args = parser.parse_args()
    if not 1 <= args.incidents <= 10_000_000:
        parser.error("--incidents must be between 1 and 10,000,000")
    if not 1 <= args.duration <= 600:
        parser.error("--duration must be between 1 and 600 seconds")
    if not all(1 <= c <= 1024 for c in args.connections + args.declare_connections):
        parser.error("connection counts must be between 1 and 1024")
    if not 1 <= args.workers <= 16:
        parser.error("--workers must be between 1 and 16")
    return args


def _scenarios(
    deep: str, user_token: str, connections: list[int], declare_connections: list[int]
) -> list[Scenario]:
    # Reads run first so the declares do not change what they see.
    out = [
        Scenario("list, first page", "get", "/api/v1/incidents?limit=50", c, ADMIN_TOKEN)
        for c in connections
    ]
    out += [
        Scenario(
            "list, deep page (~90,000 rows in)",
            "get",
            f"/api/v1/incidents?limit=50&cursor={deep}",
            c,
            ADMIN_TOKEN,
        )
        for c in connections
    ]
    # Declares use a token bound to a responder: the common path, which also makes the
    # declarer the incident commander.
    out += [
        Scenario("declare", "declare", "/api/v1/incidents", c, user_token)
        for c in declare_connections
    ]
    return out


# --- database ---


@contextlib.contextmanager
def _fresh_database(backend: str, tmp: Path) -> Iterator[str]:
    """Yield the URL of an empty database, removed afterwards."""
    if backend == "sqlite":
        yield f"sqlite:///{tmp / 'bench.db'}"
        return
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    url = make_url(PG_ADMIN_URL).set(database=PG_DATABASE).render_as_string(hide_password=False)
    try:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{PG_DATABASE}" WITH (FORCE)'))
            conn.execute(text(f'CREATE DATABASE "{PG_DATABASE}"'))
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{PG_DATABASE}" WITH (FORCE)'))
        admin.dispose()


# --- server ---


def _server_env(url: str, tmp: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOCSIN_")}
    env.update(
        TOCSIN_DATABASE_URL=url,
        TOCSIN_ADMIN_TOKEN=ADMIN_TOKEN,
        TOCSIN_DATA_DIR=str(tmp / "data"),
        TOCSIN_LOG_LEVEL="WARNING",
    )
    return env


@contextlib.contextmanager
def _process(argv: list[str], env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """Run a Tocsin process in its own process group; stop the group afterwards."""
    _step(f"starting {' '.join(argv[1:])}")
    with log.open("wb") as out:
        proc = subprocess.Popen(
            argv, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        yield proc
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=15)


@contextlib.contextmanager
def _server(env: dict[str, str], port: int, workers: int, log: Path) -> Iterator[int]:
    """Run `tocsin serve` in its own process group and yield its pid; stop the group after."""
    argv = [str(BIN / "tocsin"), "serve", "--host", "127.0.0.1", "--port", str(port)]
    if workers > 1:
        argv += ["--workers", str(workers)]
    with _process(argv, env, log) as proc:
        yield proc.pid
    if proc.returncode not in (0, -signal.SIGTERM):
        print(log.read_text(errors="replace")[-3000:], file=sys.stderr)


def _wait_ready(base: str) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{base}/readyz", timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.2)
    raise RuntimeError(f"server at {base} not ready after {READY_TIMEOUT_S:.0f} s")


def _check(base: str, deep: str) -> None:
    """Fail early unless both pages answer with 50 incidents."""
    for query in ("limit=50", f"limit=50&cursor={deep}"):
        request = urllib.request.Request(
            f"{base}/api/v1/incidents?{query}", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            items = json.load(response)["items"]
        if len(items) != 50:
            raise RuntimeError(f"GET ?{query} returned {len(items)} incidents, not 50")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


# --- measuring ---


def _wrk(base: str, scenario: Scenario, duration: int, server_pid: int) -> Result:
    data, cpu, load = _run_wrk(
        base + scenario.path,
        scenario.connections,
        duration,
        server_pid,
        lua=LUA,
        script_args=[scenario.mode],
        token=scenario.token,
    )
    kinds = ("connect_errors", "read_errors", "write_errors", "timeouts", "bad_status")
    errors = sum(data[k] for k in kinds)
    return Result(
        scenario=scenario,
        requests=data["requests"],
        seconds=data["duration_us"] / 1e6,
        errors=errors,
        error_kinds=", ".join(f"{data[k]} {k.replace('_', ' ')}" for k in kinds if data[k]),
        p50_ms=data["p50"] / 1000,
        p90_ms=data["p90"] / 1000,
        p99_ms=data["p99"] / 1000,
        max_ms=data["max"] / 1000,
        cpu_ms=1000 * cpu / max(1, data["requests"]),
        load=load,
    )


def _run_wrk(
    url: str,
    connections: int,
    duration: int,
    server_pid: int,
    *,
    lua: Path,
    script_args: list[str],
    token: str | None = None,
) -> tuple[dict[str, Any], float, float]:
    """Run wrk; return its done() JSON line, the server's CPU seconds, the load before.

    Also used by bench/ingest.py, with its own Lua scripts.
    """
    threads = min(2, connections)
    argv = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{duration}s", "--timeout", "10s"]
    if token is not None:
        argv += ["-H", f"Authorization: Bearer {token}"]
    argv += ["-s", str(lua), url, "--", *script_args]
    load = os.getloadavg()[0]
    cpu_before = _cpu_seconds(server_pid)
    output = subprocess.run(
        argv, capture_output=True, text=True, check=True, timeout=duration + 60
    ).stdout
    cpu = _cpu_seconds(server_pid) - cpu_before
    line = next((ln for ln in output.splitlines() if ln.startswith('{"requests"')), None)
    if line is None:
        raise RuntimeError(f"no results from wrk:\n{output}")
    data: dict[str, Any] = json.loads(line)
    return data, cpu, load


def _cpu_seconds(pid: int) -> float:
    """Return the CPU time used so far by `pid` and its descendants (uvicorn workers)."""
    total = 0.0
    pending, seen = [pid], set()
    while pending and len(seen) < 1000:
        current = pending.pop()
        seen.add(current)
        try:
            fields = Path(f"/proc/{current}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
            for task in Path(f"/proc/{current}/task").iterdir():
                children = (task / "children").read_text().split()
                pending += [int(c) for c in children if int(c) not in seen]
        except (OSError, IndexError, ValueError):
            continue
    return total


def _table(results: list[Result]) -> str:
    lines = [
        "| Scenario | Conns | Requests/s | p50 ms | p90 ms | p99 ms | max ms "
        "| Server CPU ms/req | Load | Errors |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    lines += [
        f"| {r.scenario.name} | {r.scenario.connections} | {r.rate:,.0f} | {r.p50_ms:.1f} "
        f"| {r.p90_ms:.1f} | {r.p99_ms:.1f} | {r.max_ms:.1f} | {r.cpu_ms:.1f} | {r.load:.1f} "
        f"| {r.error_kinds or 0} |"
        for r in results
    ]
    return "\n".join(lines)


# --- recording ---


def _machine(url: str) -> dict[str, str]:
    cpuinfo = Path("/proc/cpuinfo").read_text(errors="replace")
    model = re.search(r"^model name\s*:\s*(.+)$", cpuinfo, re.MULTILINE)
    meminfo = Path("/proc/meminfo").read_text(errors="replace")
    mem = re.search(r"^MemTotal:\s*(\d+) kB", meminfo, re.MULTILINE)
    wrk = subprocess.run(["wrk", "-v"], capture_output=True, text=True, check=False).stdout
    info = {
        "Date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "CPU": f"{model.group(1).strip() if model else platform.processor()}, "
        f"{len(os.sched_getaffinity(0))} cores (nproc)",
        "RAM": f"{int(mem.group(1)) / 1024**2:.0f} GiB" if mem else "?",
        "OS": f"{platform.system()} {platform.release()}",
        "Python": platform.python_version(),
        "SQLite": sqlite3.sqlite_version,
        "wrk": wrk.split("[")[0].strip() or "?",
    }
    for package in ("uvicorn", "uvloop", "httptools", "fastapi", "pydantic", "sqlalchemy"):
        with contextlib.suppress(PackageNotFoundError):
            info[package] = version(package)
    if url.startswith("postgresql"):
        engine = create_engine(url)
        with engine.connect() as conn:
            info["PostgreSQL"] = str(conn.exec_driver_sql("SHOW server_version").scalar())
        engine.dispose()
    return info


def _record(
    backend: str, args: argparse.Namespace, machine: dict[str, str], table: str, command: str
) -> None:
    """Replace (or append) this backend's section of BENCHMARKS.md."""
    start, end = f"<!-- bench:{backend} -->", f"<!-- /bench:{backend} -->"
    title = {"sqlite": "SQLite", "postgresql": "PostgreSQL"}[backend]
    machine_lines = "\n".join(f"- {k}: {v}" for k, v in machine.items())
    section = (
        f"{start}\n## {title}\n\n"
        f"{args.incidents:,} incidents loaded, {args.duration} s per measurement, "
        f"{args.workers} server worker(s), `tocsin serve` on loopback, measured with wrk "
        "(closed loop: each connection sends its next request when the last one is answered). "
        "Lists use the admin token; declares use a token bound to a responder, who becomes "
        "the incident commander. *Server CPU ms/req* is the server's user + system CPU time "
        "per request, which other load on the machine changes much less than latency; *Load* "
        "is the 1-minute load average just before the measurement (it includes the tail of the "
        "previous one; well above 2 on 2 cores means other work was competing).\n\n"
        f"```\n{command}\n```\n\n{table}\n\nMachine:\n\n{machine_lines}\n{end}"
    )
    header = (
        "# Benchmarks\n\n"
        "Issue 2: against a running server with 100,000 incidents, declare throughput and "
        "latency, and list latency (first page and a page ~90,000 rows deep).\n"
        "Targets: list p99 < 50 ms; declare >= 1,000/s on SQLite. Produced by "
        "`bench/incidents.py` (see bench/README.md).\n"
    )
    current = RESULTS.read_text(encoding="utf-8") if RESULTS.exists() else header
    pattern = re.compile(re.escape(start) + r".*?" + re.escape(end), re.DOTALL)
    if pattern.search(current):
        updated = pattern.sub(lambda _m: section, current)
    else:
        updated = current.rstrip("\n") + "\n\n" + section
    RESULTS.write_text(updated.rstrip("\n") + "\n", encoding="utf-8")


# --- small helpers ---


def _run(argv: list[str], env: dict[str, str]) -> str:
    done = subprocess.run(argv, env=env, capture_output=True, text=True, check=False, timeout=120)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv[:3])} failed:\n{done.stdout}\n{done.stderr}")
    return done.stdout


def _command_line() -> str:
    script = Path(sys.argv[0]).resolve()
    with contextlib.suppress(ValueError):
        script = script.relative_to(ROOT)
    python = Path(sys.executable)
    with contextlib.suppress(ValueError):
        python = python.relative_to(ROOT)
    return shlex.join([str(python), str(script), *sys.argv[1:]])


def _redact(url: str) -> str:
    return make_url(url).render_as_string(hide_password=True)


def _step(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
