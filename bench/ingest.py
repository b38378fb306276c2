"""Benchmark of alert ingestion: throughput, storms and time to visible, against a real server.

    .venv/bin/python bench/ingest.py --backend sqlite|postgresql [--no-record]
        [--scenarios ceiling am storm latency] [--duration 60] [--connections 32]
        [--am-duration 30] [--am-connections 8] [--storm-seconds 60] [--rate 1000]
        [--latency-seconds 30] [--gen-procs 1] [--engine-process] [--ingest-thread]

Each scenario gets a fresh database (a SQLite file in a temporary directory, or the PostgreSQL
database `tocsin_bench` at TOCSIN_BENCH_PG_URL, as bench/incidents.py does, whose helpers this
reuses), migrated and configured with `tocsin apply -f` examples/core.yaml, examples/alerting.yaml
and a bench-only file re-declaring the two integrations used with `rate_limit: 1000000/s`; then
its own `tocsin serve` (engine inside, ingest writes in its child process; --ingest-thread
for a thread of the server instead) on a free loopback port, with TOCSIN_ENABLE_NULL_INGEST=1
(POST /bench/null/enqueue parses and validates like /v2/enqueue and stores nothing).

1. ceiling: wrk with bench/ingest_pd.lua (a new PagerDuty trigger per request: unique dedup_key,
   severities error/warning/info, see --pd-severities) on /bench/null/enqueue, then on
   /v2/enqueue, back to back on the same server; --duration s each, --connections.
   Requests/s, latency, server CPU per request, ratio enqueue/ceiling (target >= 50 %).
2. am: wrk with bench/ingest_am.lua: Alertmanager v4 webhooks of --am-alerts (100) new alerts
   (unique fingerprints, severity error) to /api/v1/ingest/am-production-0001; --am-duration s,
   --am-connections. Alerts/s (target >= 20,000).
3. storm: 100,000 alerts in 60 s (--storm-seconds; --storm-alerts defaults to the same rate),
   Alertmanager payloads of 10 alerts (alertname=Storm, cluster c0000..c0999, severity error)
   sent by an open-loop generator at 166.7 requests/s. Request latency (target p99 < 200 ms),
   then exactly 1,000 groups (GET /api/v1/alert-groups?service=api, paginated) holding
   100,000 alerts.
4. latency: open-loop PagerDuty events to /v2/enqueue at --rate (1,000/s) for
   --latency-seconds (30); for 1 event in 20 a task polls GET /api/v1/alerts?dedup_key= every
   5 ms from the answer until the alert is listed (visible = that poll's return - send).
   Request latency (a 2xx is sent only after the commit), sent -> visible, and the engine
   wake delay from the tocsin_engine_wake_delay_seconds histogram on /metrics (difference
   before/after, quantiles interpolated in its buckets).
   Target p99 < 100 ms for all three.

The open-loop generator sends on a fixed schedule whatever the answers (asyncio and uvloop,
with a small keep-alive HTTP/1.1 client: httpx costs milliseconds of CPU per request here),
from --gen-procs processes with --gen-connections connections each; latency runs from the
moment a request is handed to the client, so waiting for a free connection counts. It prints
how far behind schedule it fell and its own CPU per request: if it fell behind, give it more
processes.

Every scenario checks that no event was lost: alerts stored (SQL count, distinct dedup keys)
= 2xx answers counted by the server (tocsin_http_requests_total on /metrics) x alerts per
request, and the client's 2xx count agrees (wrk stops with up to one request per connection
in flight, which the server may still store). Prints each result as it finishes, Markdown
tables at the end, and writes them with the machine and the command line to
bench/results/ingest-<backend>.md (not with --no-record). Exits 1 if a correctness check
failed (lost events, errors, wrong counts, errors in the server log), not for a missed
performance target. Everything it starts or creates is removed at the end, Ctrl-C and
SIGTERM included.

Scaled down for a quick try (the figures mean nothing on a busy machine):

    .venv/bin/python bench/ingest.py --backend sqlite --duration 10 --storm-seconds 10 --no-record
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import multiprocessing
import os
import resource
import shutil
import signal
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from multiprocessing.synchronize import Barrier
from pathlib import Path
from typing import Any

from incidents import (
    ADMIN_TOKEN,
    BIN,
    ROOT,
    _command_line,
    _cpu_seconds,
    _free_port,
    _fresh_database,
    _machine,
    _process,
    _run,
    _run_wrk,
    _server,
    _server_env,
    _step,
    _wait_ready,
)
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import create_engine, text

from tocsin.storage.db import upgrade

LUA_PD = ROOT / "bench" / "ingest_pd.lua"
LUA_AM = ROOT / "bench" / "ingest_am.lua"
CONFIGS = (ROOT / "examples" / "core.yaml", ROOT / "examples" / "alerting.yaml")
RESULTS_DIR = ROOT / "bench" / "results"
PD_KEY = "0f1e2d3c4b5a69788796a5b4c3d2e1f0"  # pagerduty -> service database
AM_KEY = "am-production-0001"  # alertmanager -> service api (grouped by alertname, cluster)
# The examples' integrations again, with a rate limit that never bites (the default is 1000/s).
BENCH_CONFIG = f"""\
# Written by bench/ingest.py: the integrations of examples/alerting.yaml, unlimited.
integrations:
  - {{key: {AM_KEY}, type: alertmanager, service: api, rate_limit: 1000000/s}}
  - {{key: {PD_KEY}, type: pagerduty, service: database, rate_limit: 1000000/s}}
"""
SCENARIOS = ("ceiling", "am", "storm", "latency")
WRK_ERRORS = ("connect_errors", "read_errors", "write_errors", "timeouts", "bad_status")
WAKE_METRIC = "tocsin_engine_wake_delay_seconds"
VISIBLE_TIMEOUT_S = 10.0
IDLE_REUSE_S = 2.0  # the generator reuses a keep-alive connection idle for less than this


@dataclass(frozen=True, slots=True)
class Server:
    base: str
    pid: int
    url: str  # database
    log: Path
    # Where the engine's metrics are: the server's own, or an engine process's.
    engine_metrics: str = ""
    engine_log: Path | None = None


@dataclass(slots=True)
class Row:
    """One line of the results table."""

    name: str
    load_model: str
    requests: int
    seconds: float
    alerts_per_request: int
    p50_ms: float
    p99_ms: float
    max_ms: float
    cpu_ms: float  # server CPU (user + system) per request
    load: float  # 1-minute load average before the measurement
    errors: str  # "0" or what went wrong

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    measured: str
    target: str
    ok: bool
    integrity: bool  # a failed integrity check (lost events, errors) fails the run


@dataclass(slots=True)
class Report:
    rows: list[Row] = field(default_factory=list)
    checks: list[Check] = field(default_factory=list)

    def check(
        self, name: str, measured: str, target: str, ok: bool, *, integrity: bool = False
    ) -> None:
        self.checks.append(Check(name, measured, target, ok, integrity))
        mark = "ok" if ok else ("FAILED" if integrity else "target missed")
        _step(f"  check: {name}: {measured} (target {target}) -> {mark}")

    def add(self, row: Row) -> None:
        self.rows.append(row)
        alerts = (
            f"  = {row.rate * row.alerts_per_request:,.0f} alerts/s"
            if row.alerts_per_request > 1
            else ""
        )
        _step(
            f"  {row.name}: {row.rate:,.0f} requests/s{alerts}  p50 {row.p50_ms:.1f} ms"
            f"  p99 {row.p99_ms:.1f} ms  max {row.max_ms:.1f} ms"
            f"  server CPU {row.cpu_ms:.2f} ms/request  load {row.load:.1f}"
            + (f"  ERRORS: {row.errors}" if row.errors != "0" else "")
        )


def main() -> int:
    args = _parse_args()
    if shutil.which("wrk") is None and {"ceiling", "am"} & set(args.scenarios):
        print(
            "wrk is not installed (Debian: apt-get install wrk; or make bench-deps)",
            file=sys.stderr,
        )
        return 2
    # SIGTERM unwinds like Ctrl-C, so the server, the database and the files go too.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    command = _command_line()
    report = Report()
    machine: dict[str, str] = {}
    try:
        with contextlib.ExitStack() as stack:
            tmp = Path(tempfile.mkdtemp(prefix="tocsin-bench-ingest-"))
            stack.callback(shutil.rmtree, tmp, ignore_errors=True)
            bench_config = tmp / "bench-integrations.yaml"
            bench_config.write_text(BENCH_CONFIG, encoding="utf-8")
            for name in args.scenarios:
                with _bench_server(
                    args.backend,
                    tmp / name,
                    bench_config,
                    args.workers,
                    args.engine_process,
                    args.ingest_process,
                ) as server:
                    if not machine:
                        machine = _machine(server.url)
                    {
                        "ceiling": _ceiling,
                        "am": _alertmanager,
                        "storm": _storm,
                        "latency": _latency,
                    }[name](server, args, report)
                    _check_log(server, name, report)
    except KeyboardInterrupt:
        print("\ninterrupted; everything started was stopped and removed", file=sys.stderr)
        return 130
    tables = _tables(report)
    print()
    print(tables)
    if args.record:
        path = _record(args, machine, tables, command)
        print(f"\nwritten to {path.relative_to(ROOT)}")
    return 1 if any(c.integrity and not c.ok for c in report.checks) else 0


def _parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], epilog="See the module docstring and bench/README.md."
    )
    parser.add_argument("--backend", choices=["sqlite", "postgresql"], required=True)
    parser.add_argument(
        "--scenarios",
        nargs="+",
        choices=SCENARIOS,
        default=list(SCENARIOS),
        help="Which to run (all).",
    )
    parser.add_argument(
        "--duration", type=int, default=60, help="Seconds of each ceiling measurement (60)."
    )
    parser.add_argument(
        "--connections", type=int, default=64, help="wrk connections, ceiling (64)."
    )
    parser.add_argument(
        "--am-duration", type=int, help="Seconds of the am run (30, or --duration if shorter)."
    )
    parser.add_argument("--am-connections", type=int, default=8, help="wrk connections, am (8).")
    parser.add_argument("--am-alerts", type=int, default=100, help="Alerts per am payload (100).")
    parser.add_argument("--storm-seconds", type=float, default=60.0, help="Storm length (60).")
    parser.add_argument(
        "--storm-alerts",
        type=int,
        help="Storm alerts (default 100,000 per 60 s of --storm-seconds, i.e. 166.7 requests/s).",
    )
    parser.add_argument(
        "--storm-batch", type=int, default=10, help="Alerts per storm payload (10)."
    )
    parser.add_argument(
        "--storm-groups", type=int, default=1000, help="Storm groups, one per cluster (1000)."
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        help="Server worker processes (PostgreSQL only; 1).",
    )
    parser.add_argument(
        "--engine-process",
        action="store_true",
        help="Run the engine as a process of its own (`tocsin engine`, the API with "
        "TOCSIN_ENGINE=false), as README recommends for PostgreSQL under load.",
    )
    parser.add_argument(
        "--ingest-thread",
        dest="ingest_process",
        action="store_false",
        help="Serve with TOCSIN_INGEST_PROCESS=false: ingested alerts are written by a thread "
        "of `tocsin serve`, not its child process (the default).",
    )
    parser.add_argument(
        "--rate", type=float, default=1000.0, help="Events/s of the latency run (1000)."
    )
    parser.add_argument(
        "--latency-seconds",
        type=float,
        help="Seconds of the latency run (30, or --duration if shorter).",
    )
    parser.add_argument(
        "--pd-severities",
        default="error,warning,info",
        help="Severities of the PagerDuty events, drawn at random (error,warning,info; "
        "critical would declare an incident per event).",
    )
    parser.add_argument("--sample-every", type=int, default=20, help="Poll 1 event in N (20).")
    parser.add_argument(
        "--poll-ms", type=float, default=5.0, help="Visibility poll interval, ms (5)."
    )
    parser.add_argument(
        "--gen-procs", type=int, default=1, help="Processes of the open-loop generator (1)."
    )
    parser.add_argument(
        "--gen-connections",
        type=int,
        default=128,
        help="Connection pool of the open-loop generator, per process (128).",
    )
    parser.add_argument(
        "--no-record",
        dest="record",
        action="store_false",
        help="Do not write bench/results/ingest-<backend>.md.",
    )
    args = parser.parse_args()
    if not 1 <= args.duration <= 600:
        parser.error("--duration must be between 1 and 600 seconds")
    args.am_duration = args.am_duration or min(30, args.duration)
    args.latency_seconds = args.latency_seconds or float(min(30, args.duration))
    if not 1 <= args.am_duration <= 600 or not 1 <= args.latency_seconds <= 600:
        parser.error("--am-duration and --latency-seconds must be between 1 and 600 seconds")
    if not 1 <= args.storm_seconds <= 600:
        parser.error("--storm-seconds must be between 1 and 600")
    if not all(1 <= c <= 1024 for c in (args.connections, args.am_connections)):
        parser.error("connection counts must be between 1 and 1024")
    if not 1 <= args.am_alerts <= 1000 or not 1 <= args.storm_batch <= 1000:
        parser.error("--am-alerts and --storm-batch must be between 1 and 1000")
    if args.storm_alerts is None:
        per_second = 100_000 / 60
        requests = max(1, round(per_second * args.storm_seconds / args.storm_batch))
        args.storm_alerts = requests * args.storm_batch
    if args.storm_alerts < args.storm_batch or args.storm_alerts % args.storm_batch:
        parser.error("--storm-alerts must be a positive multiple of --storm-batch")
    if not 1 <= args.storm_groups <= 10_000:
        parser.error("--storm-groups must be between 1 and 10,000")
    if not 1 <= args.rate <= 100_000 or args.sample_every < 1 or args.poll_ms <= 0:
        parser.error("--rate, --sample-every and --poll-ms must be positive")
    if not set(args.pd_severities.split(",")) <= {"critical", "error", "warning", "info"}:
        parser.error("--pd-severities: a comma-separated list of critical, error, warning, info")
    if not 1 <= args.gen_procs <= 16 or not 1 <= args.gen_connections <= 1024:
        parser.error("--gen-procs must be 1..16 and --gen-connections 1..1024")
    return args


# --- server ---


@contextlib.contextmanager
def _bench_server(
    backend: str,
    work: Path,
    bench_config: Path,
    workers: int = 1,
    engine_process: bool = False,
    ingest_process: bool = True,
) -> Iterator[Server]:
    """A fresh database, configured, and `tocsin serve` on it (and with engine_process, the
    API without an engine beside `tocsin engine`); all removed afterwards."""
    work.mkdir(parents=True)
    with _fresh_database(backend, work) as url:
        upgrade(url)
        env = _server_env(url, work)
        env["TOCSIN_ENABLE_NULL_INGEST"] = "1"
        env["TOCSIN_INGEST_PROCESS"] = "true" if ingest_process else "false"
        for config in (*CONFIGS, bench_config):
            _run([str(BIN / "tocsin"), "apply", "-f", str(config)], env)
        port = _free_port()
        log = work / "server.log"
        server_env = {**env, "TOCSIN_ENGINE": "false"} if engine_process else env
        with contextlib.ExitStack() as stack:
            pid = stack.enter_context(_server(server_env, port, workers, log))
            base = f"http://127.0.0.1:{port}"
            _wait_ready(base)
            if not engine_process:
                yield Server(base, pid, url, log, engine_metrics=base)
                return
            metrics_port = _free_port()
            engine_log = work / "engine.log"
            engine_env = {**env, "TOCSIN_ENGINE_METRICS_PORT": str(metrics_port)}
            stack.enter_context(_process([str(BIN / "tocsin"), "engine"], engine_env, engine_log))
            engine_base = f"http://127.0.0.1:{metrics_port}"
            _wait_metrics(engine_base)
            yield Server(base, pid, url, log, engine_metrics=engine_base, engine_log=engine_log)


def _wait_metrics(base: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError):
            if any(name.startswith(WAKE_METRIC) for name, _ in _metrics(base)):
                return
        time.sleep(0.2)
    raise RuntimeError(f"engine metrics at {base} not up after 30 s")


def _check_log(server: Server, scenario: str, report: Report) -> None:
    lines = server.log.read_text(errors="replace").splitlines()
    if server.engine_log is not None:
        lines += server.engine_log.read_text(errors="replace").splitlines()
    bad = [ln for ln in lines if "Traceback" in ln or " ERROR " in ln or ln.startswith("ERROR")]
    if bad:
        print("\n".join(lines[-40:]), file=sys.stderr)
    report.check(
        f"{scenario}: server log", f"{len(bad)} errors", "0 errors", not bad, integrity=True
    )


def _get_json(base: str, path: str, params: dict[str, Any] | None = None) -> Any:
    query = f"?{urllib.parse.urlencode(params)}" if params else ""
    request = urllib.request.Request(
        f"{base}{path}{query}", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.load(response)


def _metrics(base: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    with urllib.request.urlopen(f"{base}/metrics", timeout=30) as response:
        body = response.read().decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(body)
        for sample in family.samples
    }


def _answered_2xx(base: str, route: str) -> int:
    """How many 2xx answers the server has sent on `route` (POST), by its own count."""
    total = 0.0
    for (name, labels), value in _metrics(base).items():
        tags = dict(labels)
        if (
            name == "tocsin_http_requests_total"
            and tags.get("route") == route
            and tags.get("method") == "POST"
            and tags.get("status", "").startswith("2")
        ):
            total += value
    return int(total)


def _settled_2xx(base: str, route: str) -> int:
    """Wait until the server has answered what was in flight; return its 2xx count."""
    last, deadline = -1, time.monotonic() + 30
    while time.monotonic() < deadline:
        count = _answered_2xx(base, route)
        if count == last:
            return count
        last = count
        time.sleep(0.5)
    return last


def _count_alerts(url: str, integration: str) -> tuple[int, int]:
    """Return the alerts stored for `integration` and how many distinct dedup keys they have."""
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            row = conn.execute(
                text(
                    "SELECT count(*), count(DISTINCT dedup_key) FROM alerts "
                    "WHERE integration_key = :key"
                ),
                {"key": integration},
            ).one()
    finally:
        engine.dispose()
    return int(row[0]), int(row[1])


def _groups_via_api(base: str, service: str) -> tuple[int, int]:
    """Page through GET /api/v1/alert-groups; return the groups and the sum of alert_count."""
    groups = alerts = 0
    cursor: str | None = None
    for _ in range(100_000):
        params: dict[str, Any] = {"service": service, "limit": 200}
        if cursor:
            params["cursor"] = cursor
        page = _get_json(base, "/api/v1/alert-groups", params)
        groups += len(page["items"])
        alerts += sum(item["alert_count"] for item in page["items"])
        cursor = page["next_cursor"]
        if not cursor:
            break
    return groups, alerts


def _no_loss(
    report: Report,
    scenario: str,
    server: Server,
    route: str,
    integration: str,
    client_2xx: int,
    per_request: int,
    in_flight: int,
) -> int:
    """Check stored alerts == server 2xx answers x alerts per request (>= client 2xx)."""
    server_2xx = _settled_2xx(server.base, route)
    stored, distinct = _count_alerts(server.url, integration)
    expected = server_2xx * per_request
    ok = stored == expected == distinct and client_2xx <= server_2xx <= client_2xx + in_flight
    report.check(
        f"{scenario}: no event lost",
        f"{stored:,} alerts stored ({distinct:,} distinct keys); server answered 2xx "
        f"{server_2xx:,} x {per_request}; client counted {client_2xx:,} 2xx"
        + (f" (+{server_2xx - client_2xx} in flight at stop)" if server_2xx > client_2xx else ""),
        "stored = 2xx x alerts per request",
        ok,
        integrity=True,
    )
    return stored


# --- scenarios driven by wrk ---


def _wrk_row(
    name: str, data: dict[str, Any], cpu: float, load: float, connections: int, per_request: int
) -> Row:
    errors = ", ".join(f"{data[k]} {k.replace('_', ' ')}" for k in WRK_ERRORS if data[k])
    return Row(
        name=name,
        load_model=f"wrk, {connections} connections",
        requests=data["requests"],
        seconds=data["duration_us"] / 1e6,
        alerts_per_request=per_request,
        p50_ms=data["p50"] / 1000,
        p99_ms=data["p99"] / 1000,
        max_ms=data["max"] / 1000,
        cpu_ms=1000 * cpu / max(1, data["requests"]),
        load=load,
        errors=errors or "0",
    )


def _ceiling(server: Server, args: argparse.Namespace, report: Report) -> None:
    conns, duration = args.connections, args.duration
    null_url, enqueue_url = f"{server.base}/bench/null/enqueue", f"{server.base}/v2/enqueue"
    sev = args.pd_severities
    _step(f"ceiling: warm-up, /bench/null/enqueue, {min(3, duration)} s")
    _run_wrk(
        null_url, conns, min(3, duration), server.pid, lua=LUA_PD, script_args=["w", PD_KEY, sev]
    )
    _step(f"ceiling: POST /bench/null/enqueue, {conns} connections, {duration} s")
    data, cpu, load = _run_wrk(
        null_url, conns, duration, server.pid, lua=LUA_PD, script_args=["n", PD_KEY, sev]
    )
    null = _wrk_row("null ingest (ceiling)", data, cpu, load, conns, 1)
    report.add(null)
    _step(f"ceiling: POST /v2/enqueue, {conns} connections, {duration} s")
    data, cpu, load = _run_wrk(
        enqueue_url, conns, duration, server.pid, lua=LUA_PD, script_args=["e", PD_KEY, sev]
    )
    enqueue = _wrk_row("PagerDuty /v2/enqueue", data, cpu, load, conns, 1)
    report.add(enqueue)
    ratio = enqueue.rate / null.rate if null.rate else 0.0
    report.check(
        "/v2/enqueue vs ceiling",
        f"{ratio:.0%} ({enqueue.rate:,.0f} / {null.rate:,.0f} requests/s)",
        ">= 50 %",
        ratio >= 0.5,
    )
    report.check(
        "ceiling: errors", f"{null.errors} / {enqueue.errors}", "0 / 0",
        null.errors == enqueue.errors == "0", integrity=True,
    )  # fmt: skip
    _no_loss(
        report, "/v2/enqueue", server, "/v2/enqueue", PD_KEY,
        data["requests"] - data["bad_status"], 1, conns,
    )  # fmt: skip
    newest = _get_json(server.base, "/api/v1/alerts", {"limit": 1})["items"]
    seen = f"{newest[0]['dedup_key']} on {newest[0]['service']}" if newest else "none"
    report.check(
        "/v2/enqueue: GET /api/v1/alerts?limit=1",
        seen,
        "one of the run's alerts (e-…) on service database",
        bool(newest) and seen.startswith("e-") and seen.endswith(" on database"),
        integrity=True,
    )


def _alertmanager(server: Server, args: argparse.Namespace, report: Report) -> None:
    conns, duration, per = args.am_connections, args.am_duration, args.am_alerts
    route = "/api/v1/ingest/{key}"
    _step(f"am: POST {route} ({per} alerts each), {conns} connections, {duration} s")
    data, cpu, load = _run_wrk(
        f"{server.base}/api/v1/ingest/{AM_KEY}",
        conns,
        duration,
        server.pid,
        lua=LUA_AM,
        script_args=["a", str(per)],
    )
    row = _wrk_row(f"Alertmanager, {per} alerts/payload", data, cpu, load, conns, per)
    report.add(row)
    alerts_per_s = row.rate * per
    report.check(
        "Alertmanager: alerts/s", f"{alerts_per_s:,.0f}", ">= 20,000", alerts_per_s >= 20_000
    )
    report.check("am: errors", row.errors, "0", row.errors == "0", integrity=True)
    _no_loss(report, "am", server, route, AM_KEY, data["requests"] - data["bad_status"], per, conns)


# --- open-loop generator ---


@dataclass(frozen=True, slots=True)
class LoadSpec:
    """What an open-loop run sends; every process builds its share of the bodies from it."""

    kind: str  # "storm" (Alertmanager payloads) or "pd" (PagerDuty trigger events)
    base: str
    count: int  # requests
    rate: float  # requests per second, over all processes
    connections: int  # per process
    batch: int = 10  # storm: alerts per payload
    groups: int = 1000  # storm: clusters
    severities: tuple[str, ...] = ("error", "warning", "info")  # pd: taken in turn
    sample_every: int = 0  # pd: poll visibility of 1 event in this many (0: none)
    poll_s: float = 0.005
    tag: str = "g"


@dataclass(slots=True)
class LoadResult:
    first_due: float = math.inf
    last_sent: float = 0.0
    last_done: float = 0.0
    sent: int = 0
    latencies: list[float] = field(default_factory=list)  # answer - send, seconds
    lags: list[float] = field(default_factory=list)  # send - scheduled time
    statuses: Counter[str] = field(default_factory=Counter)
    ok: int = 0
    visible: list[float] = field(default_factory=list)  # visible - sent
    invisible: int = 0  # sampled events not listed VISIBLE_TIMEOUT_S after their 2xx
    polls: int = 0
    cpu_s: float = 0.0  # the generator's own CPU time

    def merge(self, other: LoadResult) -> None:
        self.first_due = min(self.first_due, other.first_due)
        self.last_sent = max(self.last_sent, other.last_sent)
        self.last_done = max(self.last_done, other.last_done)
        self.sent += other.sent
        self.latencies += other.latencies
        self.lags += other.lags
        self.statuses.update(other.statuses)
        self.ok += other.ok
        self.visible += other.visible
        self.invisible += other.invisible
        self.polls += other.polls
        self.cpu_s += other.cpu_s


def _storm_body(spec: LoadSpec, index: int) -> bytes:
    """One Alertmanager notification: `batch` new alerts of one (alertname, cluster) group."""
    cluster = f"c{index % spec.groups:04d}"
    alerts = [
        {
            "status": "firing",
            "labels": {
                "alertname": "Storm",
                "cluster": cluster,
                "instance": f"10.{index % 250}.{number % 250}.{number % 7}:9100",
                "job": "node",
                "severity": "error",
            },
            "annotations": {
                "summary": f"Storm on {cluster}",
                "description": "Everything fires at once: a network partition.",
            },
            "startsAt": "2026-01-01T00:00:00Z",
            "endsAt": "0001-01-01T00:00:00Z",
            "generatorURL": "http://prometheus.example.test:9090/graph?g0.expr=up",
            "fingerprint": f"{spec.tag}{number:015x}",
        }
        for number in range(index * spec.batch, (index + 1) * spec.batch)
    ]
    body = {
        "version": "4",
        "groupKey": f'{{}}:{{alertname="Storm", cluster="{cluster}"}}',
        "truncatedAlerts": 0,
        "status": "firing",
        "receiver": "tocsin",
        "groupLabels": {"alertname": "Storm", "cluster": cluster},
        "commonLabels": {"alertname": "Storm", "cluster": cluster, "severity": "error"},
        "commonAnnotations": {},
        "externalURL": "http://alertmanager.example.test:9093",
        "alerts": alerts,
    }
    return json.dumps(body, separators=(",", ":")).encode()


def _pd_key(spec: LoadSpec, index: int) -> str:
    return f"{spec.tag}-{index}"


def _pd_body(spec: LoadSpec, index: int) -> bytes:
    host = f"db-{index % 6 + 1:02d}.prod.example.test"
    body = {
        "routing_key": PD_KEY,
        "event_action": "trigger",
        "dedup_key": _pd_key(spec, index),
        "client": "Prometheus",
        "client_url": "https://prometheus.example.test/alerts",
        "payload": {
            "summary": f"Replication lag above 30 s on {host}",
            "source": host,
            "severity": spec.severities[index % len(spec.severities)],
            "component": "postgres",
            "group": "prod-databases",
            "class": "replication",
            "custom_details": {"lag_seconds": 30 + index % 90, "region": "eu-west-1"},
        },
    }
    return json.dumps(body, separators=(",", ":")).encode()


def _open_loop(spec: LoadSpec, processes: int) -> LoadResult:
    """Send spec.count requests at spec.rate on a fixed schedule, from `processes` processes."""
    if processes == 1:
        return _load_share(spec, 0, 1, None, None, None)
    ctx = multiprocessing.get_context("spawn")
    ready, go = ctx.Barrier(processes + 1), ctx.Barrier(processes + 1)
    start = ctx.Value("d", 0.0)
    results = ctx.Queue()
    workers = [
        ctx.Process(
            target=_load_worker,
            args=(spec, share, processes, ready, go, start, results),
            daemon=True,
        )
        for share in range(processes)
    ]
    try:
        for worker in workers:
            worker.start()
        ready.wait(timeout=120)
        start.value = time.monotonic() + 0.2
        go.wait(timeout=30)
        total = LoadResult()
        for _ in workers:
            total.merge(results.get(timeout=spec.count / spec.rate + 120))
        for worker in workers:
            worker.join(timeout=10)
        return total
    finally:
        for worker in workers:
            if worker.is_alive():
                worker.terminate()
                worker.join(timeout=5)


def _load_worker(
    spec: LoadSpec,
    share: int,
    shares: int,
    ready: Barrier,
    go: Barrier,
    start: Any,
    results: Any,
) -> None:
    with contextlib.suppress(KeyboardInterrupt):
        results.put(_load_share(spec, share, shares, ready, go, start))


def _load_share(
    spec: LoadSpec,
    share: int,
    shares: int,
    ready: Barrier | None,
    go: Barrier | None,
    start: Any,
) -> LoadResult:
    """Build this process's bodies, wait for the common start, then run its schedule."""
    build = _storm_body if spec.kind == "storm" else _pd_body
    items = [(i, build(spec, i)) for i in range(share, spec.count, shares)]
    if ready is not None and go is not None:
        ready.wait()
        go.wait()
        start_at = float(start.value)
    else:
        start_at = time.monotonic() + 0.2
    try:
        import uvloop

        factory: Any = uvloop.new_event_loop
    except ImportError:
        factory = None
    cpu = resource.getrusage(resource.RUSAGE_SELF)
    with asyncio.Runner(loop_factory=factory) as runner:
        result = runner.run(_send_all(spec, items, start_at))
    after = resource.getrusage(resource.RUSAGE_SELF)
    result.cpu_s = after.ru_utime + after.ru_stime - cpu.ru_utime - cpu.ru_stime
    return result


class _Pool:
    """Keep-alive HTTP/1.1 connections to one server, at most `size` requests in flight.

    A few dozen lines instead of httpx: with the httpcore and anyio installed here, httpx
    spends ~4 ms of CPU per request (a failed `import sniffio` on every request, and a pool
    that rescans its connections each time), so one process could not send 1,000 requests/s
    and would take the CPU the server needs. This costs ~0.05 ms. Requests beyond `size` wait
    for a connection; the wait is part of their latency, as it would be for any client.
    """

    def __init__(self, base: str, size: int) -> None:
        parsed = urllib.parse.urlsplit(base)
        self.host, self.port = parsed.hostname or "127.0.0.1", parsed.port or 80
        self.slots = asyncio.Semaphore(size)
        # (reader, writer, when last answered), most recently used last.
        self.idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter, float]] = []

    async def request(
        self, method: str, target: str, body: bytes = b"", headers: str = ""
    ) -> tuple[int, bytes]:
        head = (
            f"{method} {target} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n{headers}"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode()
        async with self.slots:
            reader, writer = await self._connection()
            try:
                async with asyncio.timeout(60):
                    writer.write(head + body)
                    status, data, keep = await _read_response(reader)
            except BaseException:
                writer.close()
                raise
            if keep:
                self.idle.append((reader, writer, time.monotonic()))
            else:
                writer.close()
            return status, data

    async def _connection(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """An idle connection the server has not closed, or a new one.

        uvicorn closes connections idle for 5 s: one unused for 2 s is not reused, so a
        request is never written into a connection the server is closing.
        """
        while self.idle:
            reader, writer, used = self.idle.pop()
            if not reader.at_eof() and time.monotonic() - used < IDLE_REUSE_S:
                return reader, writer
            writer.close()
        return await asyncio.open_connection(self.host, self.port)

    def close(self) -> None:
        for _reader, writer, _used in self.idle:
            writer.close()
        self.idle.clear()


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bytes, bool]:
    """Read one response: its status, its body, and whether the connection stays open."""
    head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
    status = int(head[0].split(" ", 2)[1])
    fields = {}
    for line in head[1:]:
        name, _, value = line.partition(":")
        fields[name.strip().lower()] = value.strip().lower()
    if fields.get("transfer-encoding") == "chunked":
        chunks = []
        while size := int((await reader.readuntil(b"\r\n")).split(b";")[0], 16):
            chunks.append(await reader.readexactly(size + 2))
        await reader.readuntil(b"\r\n")  # no trailers are sent
        data = b"".join(chunk[:-2] for chunk in chunks)
    else:
        data = await reader.readexactly(int(fields.get("content-length", "0")))
    return status, data, fields.get("connection") != "close"


async def _send_all(
    spec: LoadSpec, items: Sequence[tuple[int, bytes]], start_at: float
) -> LoadResult:
    result = LoadResult()
    path = f"/api/v1/ingest/{AM_KEY}" if spec.kind == "storm" else "/v2/enqueue"
    json_type = "Content-Type: application/json\r\n"
    auth = f"Authorization: Bearer {ADMIN_TOKEN}\r\n"
    errors = (OSError, EOFError, ValueError, TimeoutError, asyncio.IncompleteReadError)

    async def send(
        client: _Pool, body: bytes, due: float, answered: asyncio.Future[float | None]
    ) -> None:
        sent = time.monotonic()
        result.lags.append(sent - due)
        result.last_sent = max(result.last_sent, sent)
        status = "no answer"
        try:
            status = str((await client.request("POST", path, body, json_type))[0])
        except errors as exc:
            status = type(exc).__name__
        finally:
            done = time.monotonic()
            result.latencies.append(done - sent)
            result.last_done = max(result.last_done, done)
            result.statuses[status] += 1
            ok = status.startswith("2")
            result.ok += ok
            answered.set_result(done if ok else None)

    async def watch(poller: _Pool, key: str, answered: asyncio.Future[float | None]) -> None:
        """Poll from the answer until the alert is listed; give up VISIBLE_TIMEOUT_S after it.

        Polling starts when the answer arrives, not at the send: the 2xx follows the commit,
        so earlier polls could only find nothing, and each costs the server more than an
        ingest (an authenticated list query); at 5 ms intervals they took half its CPU and
        became the load being measured. Visible = when the first poll that lists it returns.
        """
        sent = time.monotonic()
        target = "/api/v1/alerts?" + urllib.parse.urlencode({"dedup_key": key, "limit": 1})
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.shield(answered)
        while True:
            polled = time.monotonic()
            result.polls += 1
            with contextlib.suppress(*errors):
                status, data = await poller.request("GET", target, headers=auth)
                if status == 200 and json.loads(data)["items"]:
                    result.visible.append(time.monotonic() - sent)
                    return
            if answered.done():
                at = answered.result()
                if at is None:
                    return  # refused (counted as non-2xx): there is nothing to see
                if time.monotonic() - at > VISIBLE_TIMEOUT_S:
                    result.invisible += 1
                    return
            await asyncio.sleep(max(0.0, polled + spec.poll_s - time.monotonic()))

    client, poller = _Pool(spec.base, spec.connections), _Pool(spec.base, spec.connections)
    loop = asyncio.get_running_loop()
    try:
        async with asyncio.TaskGroup() as tasks:
            result.first_due = start_at + items[0][0] / spec.rate if items else start_at
            for index, body in items:
                due = start_at + index / spec.rate
                delay = due - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                answered: asyncio.Future[float | None] = loop.create_future()
                tasks.create_task(send(client, body, due, answered))
                if spec.sample_every and index % spec.sample_every == 0:
                    tasks.create_task(watch(poller, _pd_key(spec, index), answered))
            result.sent = len(items)
    finally:
        client.close()
        poller.close()
    return result


def _open_loop_row(
    name: str, spec: LoadSpec, result: LoadResult, cpu: float, load: float, per_request: int
) -> Row:
    latencies = sorted(result.latencies)
    bad = {status: n for status, n in result.statuses.items() if not status.startswith("2")}
    return Row(
        name=name,
        load_model=f"open loop, {spec.rate:,.4g} requests/s",
        requests=result.sent,
        seconds=max(1e-9, result.last_sent - result.first_due)
        * result.sent
        / max(1, result.sent - 1),
        alerts_per_request=per_request,
        p50_ms=1000 * _percentile(latencies, 0.50),
        p99_ms=1000 * _percentile(latencies, 0.99),
        max_ms=1000 * (latencies[-1] if latencies else 0.0),
        cpu_ms=1000 * cpu / max(1, result.sent),
        load=load,
        errors=", ".join(f"{n} x {status}" for status, n in sorted(bad.items())) or "0",
    )


def _percentile(ordered: Sequence[float], q: float) -> float:
    """Nearest-rank percentile of an ascending sequence (0 when empty)."""
    if not ordered:
        return 0.0
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def _run_open_loop(
    server: Server, spec: LoadSpec, processes: int
) -> tuple[LoadResult, float, float]:
    load = os.getloadavg()[0]
    cpu_before = _cpu_seconds(server.pid)
    result = _open_loop(spec, processes)
    cpu = _cpu_seconds(server.pid) - cpu_before
    lags = sorted(result.lags)
    _step(
        f"  generator: {result.sent:,} sent, behind schedule p99 "
        f"{1000 * _percentile(lags, 0.99):.1f} ms, max {1000 * (lags[-1] if lags else 0):.1f} ms;"
        f" its own CPU {1000 * result.cpu_s / max(1, result.sent + result.polls):.3f} ms/request"
    )
    return result, cpu, load


# --- scenarios driven by the open-loop generator ---


def _storm(server: Server, args: argparse.Namespace, report: Report) -> None:
    requests = args.storm_alerts // args.storm_batch
    spec = LoadSpec(
        kind="storm",
        base=server.base,
        count=requests,
        rate=requests / args.storm_seconds,
        connections=args.gen_connections,
        batch=args.storm_batch,
        groups=args.storm_groups,
        tag="5",
    )
    _step(
        f"storm: {args.storm_alerts:,} alerts in {args.storm_seconds:g} s, {requests:,} "
        f"payloads of {args.storm_batch} at {spec.rate:.1f}/s, {args.storm_groups:,} groups"
    )
    result, cpu, load = _run_open_loop(server, spec, args.gen_procs)
    row = _open_loop_row(
        f"storm, {args.storm_batch} alerts/payload", spec, result, cpu, load, args.storm_batch
    )
    report.add(row)
    achieved = row.rate * args.storm_batch
    report.check(
        "storm: send rate",
        f"{achieved:,.0f} alerts/s ({row.rate:,.1f} requests/s)",
        f"{spec.rate * args.storm_batch:,.0f} alerts/s",
        row.rate >= 0.98 * spec.rate,
    )
    report.check("storm: request p99", f"{row.p99_ms:.1f} ms", "< 200 ms", row.p99_ms < 200)
    report.check("storm: non-2xx", row.errors, "0", row.errors == "0", integrity=True)
    route = "/api/v1/ingest/{key}"
    stored = _no_loss(report, "storm", server, route, AM_KEY, result.ok, args.storm_batch, 0)
    groups, grouped = _groups_via_api(server.base, "api")
    want_groups = min(args.storm_groups, requests)
    report.check(
        "storm: alert groups (GET /api/v1/alert-groups?service=api)",
        f"{groups:,} groups holding {grouped:,} alerts; {stored:,} alerts stored",
        f"exactly {want_groups:,} groups and {args.storm_alerts:,} alerts",
        groups == want_groups and grouped == stored == args.storm_alerts,
        integrity=True,
    )


def _latency(server: Server, args: argparse.Namespace, report: Report) -> None:
    count = max(1, round(args.rate * args.latency_seconds))
    spec = LoadSpec(
        kind="pd",
        base=server.base,
        count=count,
        rate=args.rate,
        connections=args.gen_connections,
        severities=tuple(args.pd_severities.split(",")),
        sample_every=args.sample_every,
        poll_s=args.poll_ms / 1000,
        tag="lat",
    )
    _step(
        f"latency: {count:,} PagerDuty events at {args.rate:,.0f}/s, 1 in {args.sample_every} "
        f"polled every {args.poll_ms:g} ms until visible, {args.gen_procs} generator process(es)"
    )
    before = _wake_buckets(server.engine_metrics)
    result, cpu, load = _run_open_loop(server, spec, args.gen_procs)
    row = _open_loop_row("PagerDuty events, open loop", spec, result, cpu, load, 1)
    report.add(row)
    report.check(
        "latency: send rate",
        f"{row.rate:,.0f} events/s",
        f"{args.rate:,.0f} events/s",
        row.rate >= 0.98 * args.rate,
    )
    report.check("latency: request p99", f"{row.p99_ms:.1f} ms", "< 100 ms", row.p99_ms < 100)
    visible = sorted(result.visible)
    report.check(
        "latency: sent -> visible",
        f"p50 {1000 * _percentile(visible, 0.5):.1f} ms, p99 "
        f"{1000 * _percentile(visible, 0.99):.1f} ms, max "
        f"{1000 * (visible[-1] if visible else 0):.1f} ms ({len(visible):,} sampled, "
        f"{result.polls:,} polls)",
        "p99 < 100 ms",
        bool(visible) and _percentile(visible, 0.99) < 0.1,
    )
    report.check(
        "latency: sampled events never visible",
        f"{result.invisible}",
        f"0 (listed within {VISIBLE_TIMEOUT_S:.0f} s of their 2xx)",
        result.invisible == 0,
        integrity=True,
    )
    report.check("latency: non-2xx", row.errors, "0", row.errors == "0", integrity=True)
    _no_loss(report, "latency", server, "/v2/enqueue", PD_KEY, result.ok, 1, 0)
    after = _wake_buckets(server.engine_metrics)
    wakes = {le: after.get(le, 0.0) - before.get(le, 0.0) for le in after}
    total = wakes.get(math.inf, 0.0)
    p50, p99 = _histogram_quantile(wakes, 0.5), _histogram_quantile(wakes, 0.99)
    report.check(
        "latency: engine wake delay (/metrics histogram)",
        f"p50 {1000 * p50:.2f} ms, p99 {1000 * p99:.2f} ms ({total:,.0f} wakes)",
        "p99 < 100 ms",
        total > 0 and p99 < 0.1,
    )


def _wake_buckets(base: str) -> dict[float, float]:
    """The engine wake delay histogram's cumulative buckets, by upper bound in seconds."""
    return {
        float(dict(labels)["le"]): value
        for (name, labels), value in _metrics(base).items()
        if name == f"{WAKE_METRIC}_bucket"
    }


def _histogram_quantile(buckets: dict[float, float], q: float) -> float:
    """Like PromQL histogram_quantile: linear inside the bucket holding the q-th observation."""
    bounds = sorted(buckets)
    if not bounds or buckets[bounds[-1]] <= 0:
        return 0.0
    rank = q * buckets[bounds[-1]]
    lower, below = 0.0, 0.0
    for bound in bounds:
        count = buckets[bound]
        if count >= rank:
            if math.isinf(bound):
                return lower  # beyond the largest finite bucket: its bound is all we know
            inside = count - below
            return lower + (bound - lower) * ((rank - below) / inside if inside else 1.0)
        lower, below = bound, count
    return lower


# --- output ---


def _tables(report: Report) -> str:
    lines = [
        "| Scenario | Load | Requests/s | Alerts/s | p50 ms | p99 ms | max ms "
        "| Server CPU ms/req | Load avg | Errors |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    lines += [
        f"| {r.name} | {r.load_model} | {r.rate:,.0f} | {r.rate * r.alerts_per_request:,.0f} "
        f"| {r.p50_ms:.1f} | {r.p99_ms:.1f} | {r.max_ms:.1f} | {r.cpu_ms:.2f} | {r.load:.1f} "
        f"| {r.errors} |"
        for r in report.rows
    ]
    lines += ["", "| Check | Measured | Target | Met |", "|---|---|---|---|"]
    lines += [
        f"| {c.name} | {c.measured} | {c.target} | {'yes' if c.ok else '**no**'} |"
        for c in report.checks
    ]
    return "\n".join(lines)


def _settings(args: argparse.Namespace) -> str:
    return (
        f"Settings: ceiling {args.duration} s per endpoint, {args.connections} connections; "
        f"am {args.am_duration} s, {args.am_connections} connections, {args.am_alerts} "
        f"alerts/payload; storm {args.storm_alerts:,} alerts in {args.storm_seconds:g} s, "
        f"{args.storm_batch}/payload, {args.storm_groups:,} groups; latency {args.rate:,g} "
        f"events/s for {args.latency_seconds:g} s, 1 in {args.sample_every} polled from its "
        f"2xx every {args.poll_ms:g} ms; PagerDuty severities {args.pd_severities}; generator "
        f"{args.gen_procs} process(es) x {args.gen_connections} connections."
    )


def _shape(args: argparse.Namespace) -> str:
    writer = (
        "ingest writes in its child process"
        if args.ingest_process
        else "ingest writes in a thread (TOCSIN_INGEST_PROCESS=false)"
    )
    if args.engine_process:
        return (
            f"`tocsin serve` (TOCSIN_ENGINE=false, {writer}) beside `tocsin engine` (its own "
            "process, woken by NOTIFY or PRAGMA data_version), on loopback,"
        )
    return f"`tocsin serve` (engine inside, {writer}, on loopback)"


def _record(args: argparse.Namespace, machine: dict[str, str], tables: str, command: str) -> Path:
    title = {"sqlite": "SQLite", "postgresql": "PostgreSQL"}[args.backend]
    if args.engine_process:
        title += ", engine as its own process"
    if not args.ingest_process:
        title += ", ingest writes in a thread"
    machine_lines = "\n".join(f"- {k}: {v}" for k, v in machine.items())
    text_ = (
        f"## Alert ingestion, {title}\n\n"
        f"```\n{command}\n```\n\n{_settings(args)}\n\n"
        "Produced by `bench/ingest.py` (see bench/README.md): a fresh database and "
        f"{_shape(args)} per scenario. wrk rows are closed "
        "loops (each connection sends its next request when the last one is answered); "
        "open-loop rows send on a fixed schedule whatever the answers, latency measured from "
        "the send. *Server CPU ms/req* is the server's user + system CPU time per request; "
        "*Load avg* the 1-minute load average before the measurement. Every scenario counts "
        "the alerts stored against the 2xx answers.\n\n"
        f"{tables}\n\nMachine:\n\n{machine_lines}\n"
    )
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    suffix = "-engine-process" if args.engine_process else ""
    suffix += "" if args.ingest_process else "-ingest-thread"
    path = RESULTS_DIR / f"ingest-{args.backend}{suffix}.md"
    path.write_text(text_, encoding="utf-8")
    return path


if __name__ == "__main__":
    sys.exit(main())
