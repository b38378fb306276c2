"""Benchmark of the on-call engine: step lateness, alert to first page, idle CPU.

    .venv/bin/python bench/oncall.py --backend sqlite|postgresql [--escalations 10000]
        [--duration 600] [--step-gap 30] [--rate 20] [--idle-seconds 60] [--no-record]
    .venv/bin/python bench/oncall.py --backend sqlite --quick   # smoke run, under 2 minutes

A fresh database (a SQLite file in a temporary directory, or the PostgreSQL database
`tocsin_bench_oncall` at TOCSIN_BENCH_PG_URL), migrated and configured with `tocsin apply -f`
examples/core.yaml, examples/alerting.yaml and a bench-only file: user `step-pager` (a webhook
to /steps) paged by policy `bench-steps` (steps at 0, gap and 2 x gap) on service `bench`, and
user `alert-pager` (a webhook to /alerts) paged at once by policy `bench-alerts` on service
`database`, where the alerting example's PagerDuty integration delivers. Both webhooks go to one
local WebhookReceiver (tests/receivers.py), which stamps every arrival.

1. Step lateness. --escalations incidents are declared on `bench` before the server starts
   (each starts an escalation), then their escalations are moved to start at a steady rate
   over the next --duration seconds, as if declared then: all of them are active from the
   start, their steps fall due spread over the next few minutes, and `tocsin serve` (engine
   inside) sleeps from deadline to deadline (one alert wakes it after the move). Lateness =
   when the page's webhook arrived - when its step was due (the page's created_at is the
   step's due time; the rule fires at 0 s). Target p99 <= 1 s. The defaults offer 30,000 steps
   over 11 minutes, ~45/s; the table's first line gives the rate of each run.
2. Alert received -> first page, during 1: single PagerDuty events (POST /v2/enqueue, a new
   dedup key each) at --rate per second, open loop, for --duration seconds; time from just
   before the POST to the arrival of the alert's first page at the receiver. Target p99 <=
   250 ms.
3. Idle engine CPU. The server stops, every escalation is acknowledged (--escalations quiet
   ones, plus the alerts'), and `tocsin engine` runs alone with no work for --idle-seconds;
   its user + system CPU time from /proc/<pid>/stat, as % of one core. Target < 2 %.

Checks (exit 1 if one fails; a missed performance target does not): every step and every
alert paged exactly once per key and no key twice for one message, the outbox drained, no
error in the server or engine log. Prints the Markdown tables and writes them, with the
machine and the command line, to bench/results/oncall-<backend>.md (not with --no-record).
Everything it starts or creates is removed at the end, Ctrl-C and SIGTERM included.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import platform
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import httpx
from incidents import (
    BIN,
    ROOT,
    _command_line,
    _cpu_seconds,
    _free_port,
    _process,
    _run,
    _step,
)
from incidents import _server_env as _base_env
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import bindparam, create_engine, func, select, text, update
from sqlalchemy.engine import make_url

sys.path.insert(0, str(ROOT))  # tests/receivers.py: the receivers the tests use

from tests.receivers import ReceivedRequest, WebhookReceiver

from tocsin.core.actors import SYSTEM
from tocsin.services import escalations, incidents
from tocsin.storage.db import Database, upgrade
from tocsin.storage.oncall_tables import EscalationRow, OutboxRow, PageRow

CONFIGS = (ROOT / "examples" / "core.yaml", ROOT / "examples" / "alerting.yaml")
RESULTS_DIR = ROOT / "bench" / "results"
PG_ADMIN_URL = os.environ.get(
    "TOCSIN_BENCH_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
PG_DATABASE = "tocsin_bench_oncall"
PD_KEY = "0f1e2d3c4b5a69788796a5b4c3d2e1f0"  # pagerduty -> service database
RUNNING = "Tocsin engine running"
DECLARE_BATCH = 500
READY_TIMEOUT_S = 90.0
QUICK = {"escalations": 500, "duration": 20.0, "step_gap": 5.0, "idle_seconds": 15.0}
_ALERT_TITLE = re.compile(r"bench alert (\d+)$")


def bench_config(hooks: WebhookReceiver, gap: float) -> str:
    return f"""\
# Written by bench/oncall.py, applied after examples/core.yaml and examples/alerting.yaml.
severities:
  - {{name: B1, label: Bench, description: Benchmark escalations, pages: true}}
users:
  - id: step-pager
    name: Step Pager
    email: step-pager@example.test
    contact_methods:
      - {{id: step-hook, type: webhook, url: "{hooks.url("/steps")}"}}
    notification_rules:
      high: [{{after: 0s, via: step-hook}}]
  - id: alert-pager
    name: Alert Pager
    email: alert-pager@example.test
    contact_methods:
      - {{id: alert-hook, type: webhook, url: "{hooks.url("/alerts")}"}}
    notification_rules:
      high: [{{after: 0s, via: alert-hook}}]
escalation_policies:
  - id: bench-steps
    steps:
      - {{after: 0s, notify: [user:step-pager]}}
      - {{after: {gap:g}s, notify: [user:step-pager]}}
      - {{after: {2 * gap:g}s, notify: [user:step-pager]}}
  - id: bench-alerts
    steps:
      - {{after: 0m, notify: [user:alert-pager]}}
services:
  - {{id: bench, name: Bench, escalation_policy: bench-steps}}
  - {{id: database, name: Database, team: platform, escalation_policy: bench-alerts}}
"""


STEPS = 3  # steps of bench-steps


# --- results ---


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    measured: str
    target: str
    ok: bool
    integrity: bool  # a failed integrity check fails the run; a missed target does not


@dataclass(slots=True)
class Report:
    rows: list[str] = field(default_factory=list)
    checks: list[Check] = field(default_factory=list)
    settings: str = ""

    def check(
        self, name: str, measured: str, target: str, ok: bool, *, integrity: bool = False
    ) -> None:
        self.checks.append(Check(name, measured, target, ok, integrity))
        _step(f"  {name}: {measured} (target {target}){'' if ok else '  <-- NOT MET'}")

    def latency_row(self, name: str, samples: list[float], target: str, ok: bool) -> None:
        p50, p95, p99 = (_percentile(samples, q) for q in (0.5, 0.95, 0.99))
        worst = max(samples, default=math.nan)
        self.rows.append(
            f"| {name} | {len(samples):,} | {1000 * p50:.1f} | {1000 * p95:.1f} "
            f"| {1000 * p99:.1f} | {1000 * worst:.1f} | {target} | {'yes' if ok else '**no**'} |"
        )


def _percentile(samples: list[float], q: float) -> float:
    if not samples:
        return math.nan
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


# --- main ---


def main() -> int:
    args = _parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    command = _command_line()
    report = Report()
    try:
        with contextlib.ExitStack() as stack:
            tmp = Path(tempfile.mkdtemp(prefix="tocsin-bench-oncall-"))
            stack.callback(shutil.rmtree, tmp, ignore_errors=True)
            url = stack.enter_context(_fresh_database(args.backend, tmp))
            machine = _machine(url)
            hooks = stack.enter_context(WebhookReceiver())
            env = _prepare(url, tmp, hooks, args)
            _load(url, args.escalations)
            _under_load(url, env, tmp, hooks, args, report)
            _idle(url, env, tmp, args, report)
    except KeyboardInterrupt:
        print("\ninterrupted; everything started was stopped and removed", file=sys.stderr)
        return 130
    tables = _tables(report)
    print()
    print(tables)
    print("\nMachine:\n\n" + "\n".join(f"- {k}: {v}" for k, v in machine.items()))
    if args.record:
        path = _record(args, machine, tables, command)
        print(f"\nwritten to {path.relative_to(ROOT)}")
    return 1 if any(c.integrity and not c.ok for c in report.checks) else 0


def _parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], epilog="See the module docstring."
    )
    parser.add_argument("--backend", choices=["sqlite", "postgresql"], required=True)
    parser.add_argument(
        "--escalations", type=int, help="Active escalations during the run (10,000)."
    )
    parser.add_argument(
        "--duration",
        type=float,
        help="Seconds over which the escalations start, and alerts are sent (600).",
    )
    parser.add_argument(
        "--step-gap", type=float, help="Seconds between the steps of bench-steps (30)."
    )
    parser.add_argument("--rate", type=float, default=20.0, help="PagerDuty events/s (20).")
    parser.add_argument(
        "--idle-seconds", type=float, help="Seconds the idle engine is measured (60)."
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="Smoke run under 2 minutes: 500 escalations, 20 s, steps 5 s apart, 15 s idle.",
    )
    parser.add_argument(
        "--engine-process",
        action="store_true",
        help="Run the engine as its own `tocsin engine` process beside `tocsin serve` "
        "(TOCSIN_ENGINE=false), as a large PostgreSQL deployment would.",
    )
    parser.add_argument(
        "--no-record",
        dest="record",
        action="store_false",
        help="Do not write bench/results/oncall-<backend>.md.",
    )
    args = parser.parse_args()
    defaults = {"escalations": 10_000, "duration": 600.0, "step_gap": 30.0, "idle_seconds": 60.0}
    for name, value in (QUICK if args.quick else defaults).items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    return args


@contextlib.contextmanager
def _fresh_database(backend: str, tmp: Path, database: str = PG_DATABASE) -> Iterator[str]:
    """Yield the URL of an empty database (PostgreSQL: `database`), removed afterwards."""
    if backend == "sqlite":
        yield f"sqlite:///{tmp / 'bench.db'}"
        return
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    url = make_url(PG_ADMIN_URL).set(database=database).render_as_string(hide_password=False)
    try:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))
            conn.execute(text(f'CREATE DATABASE "{database}"'))
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))
        admin.dispose()


def _prepare(
    url: str, tmp: Path, hooks: WebhookReceiver, args: argparse.Namespace
) -> dict[str, str]:
    """Migrate and configure the database; return the environment of Tocsin processes."""
    _step(f"migrating {make_url(url).render_as_string(hide_password=True)}")
    upgrade(url)
    env = _base_env(url, tmp)
    env["TOCSIN_SECRET_KEY"] = "bench-secret-key"
    config = tmp / "bench-oncall.yaml"
    config.write_text(bench_config(hooks, args.step_gap), encoding="utf-8")
    for path in (*CONFIGS, config):
        _run([str(BIN / "tocsin"), "apply", "-f", str(path)], env)
    return env


def _load(url: str, count: int) -> None:
    """Declare `count` incidents on `bench`; their escalations start a day from now."""
    started = time.perf_counter()
    db = Database(url)
    try:
        for first in range(0, count, DECLARE_BATCH):
            now = datetime.now(UTC)
            batch = [
                (SYSTEM, now, incidents.Declaration(title=f"bench incident {n}", severity="B1",
                                                    services=["bench"]))
                for n in range(first, min(count, first + DECLARE_BATCH))
            ]  # fmt: skip
            with db.write() as session:
                for result in incidents.declare_many(session, batch):
                    if isinstance(result, Exception):
                        raise result
                session.commit()
        # Parked a day ahead until the server runs (then _spread moves them to the run).
        later = datetime.now(UTC) + timedelta(days=1)
        with db.write() as session:
            session.execute(
                update(EscalationRow).values(run_started_at=later, next_at=later, sla_due_at=None)
            )
            session.commit()
    finally:
        db.dispose()
    _step(f"declared {count:,} incidents in {time.perf_counter() - started:.1f} s")


def _spread(url: str, start: datetime, seconds: float) -> int:
    """Start the escalations at a steady rate from `start` over `seconds`; return how many."""
    db = Database(url)
    try:
        with db.write() as session:
            query = select(EscalationRow.id).where(EscalationRow.service_id == "bench")
            ids = list(session.scalars(query.order_by(EscalationRow.id)))
            every = seconds / max(1, len(ids))
            rows = [
                {"key": escalation_id, "at": start + timedelta(seconds=n * every)}
                for n, escalation_id in enumerate(ids)
            ]
            session.connection().execute(
                update(EscalationRow.__table__)  # type: ignore[arg-type]
                .where(EscalationRow.__table__.c.id == bindparam("key"))
                .values(run_started_at=bindparam("at"), next_at=bindparam("at")),
                rows,
            )
            session.commit()
    finally:
        db.dispose()
    return len(ids)


# --- processes ---


def _wait_ready(base: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited:\n{log.read_text(errors='replace')[-3000:]}")
        with contextlib.suppress(httpx.TransportError):
            if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                return
        time.sleep(0.2)
    raise RuntimeError(f"server at {base} not ready after {READY_TIMEOUT_S:.0f} s")


def _log_errors(name: str, log: Path, report: Report) -> None:
    lines = log.read_text(errors="replace").splitlines()
    bad = [ln for ln in lines if "Traceback" in ln or " ERROR " in ln or ln.startswith("ERROR")]
    if bad:
        print("\n".join(lines[-40:]), file=sys.stderr)
    report.check(f"{name} log: errors", f"{len(bad)}", "0", not bad, integrity=True)


# --- 1 and 2: under load ---


@dataclass(slots=True)
class AlertStream:
    """PagerDuty events at a fixed rate (open loop), each remembered with when it was sent."""

    base: str
    rate: float
    seconds: float
    sent: dict[int, float] = field(default_factory=dict)
    answered: list[float] = field(default_factory=list)  # seconds from send to 202
    failures: list[str] = field(default_factory=list)
    behind: float = 0.0  # the most the sender fell behind its schedule, seconds
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def post(self, client: httpx.Client, number: int) -> None:
        body = {
            "routing_key": PD_KEY,
            "event_action": "trigger",
            "dedup_key": f"bench-{number}",
            "payload": {"summary": f"bench alert {number}", "source": "bench",
                        "severity": "error"},
        }  # fmt: skip
        sent = time.monotonic()
        with self._lock:
            self.sent[number] = sent
        try:
            res = client.post("/v2/enqueue", json=body)
        except httpx.HTTPError as exc:
            self.failures.append(f"{number}: {type(exc).__name__}: {exc}")
            return
        if res.status_code != 202:
            self.failures.append(f"{number}: HTTP {res.status_code} {res.text[:200]}")
            return
        with self._lock:
            self.answered.append(time.monotonic() - sent)

    def run(self, first: int = 0, threads: int = 32) -> None:
        """Send round(rate x seconds) events on schedule from `threads` senders sharing one
        keep-alive client: a slow answer delays only its own sender's next event."""
        total = round(self.rate * self.seconds)
        limits = httpx.Limits(max_connections=threads, max_keepalive_connections=threads)
        with httpx.Client(base_url=self.base, timeout=10, limits=limits) as client:
            start = time.monotonic() + 0.2

            def sender(offset: int) -> None:
                for n in range(offset, total, threads):
                    delay = start + n / self.rate - time.monotonic()
                    if delay > 0:
                        time.sleep(delay)
                    else:
                        self.behind = max(self.behind, -delay)
                    self.post(client, first + n)

            workers = [threading.Thread(target=sender, args=(i,)) for i in range(threads)]
            for worker in workers:
                worker.start()
            for worker in workers:
                worker.join()


def _under_load(
    url: str,
    env: dict[str, str],
    tmp: Path,
    hooks: WebhookReceiver,
    args: argparse.Namespace,
    report: Report,
) -> None:
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    with _servers(port, env, tmp, engine_process=args.engine_process) as (proc, engine):
        # One alert wakes the engine (the API signals it; on PostgreSQL NOTIFY too) and proves
        # the pipeline before anything is measured.
        with httpx.Client(base_url=base, timeout=10) as client:
            warm = AlertStream(base, 1, 1)
            warm.post(client, 1_000_000)
        hooks.wait_for(1, timeout=60)
        hooks.clear()
        begin = datetime.now(UTC) + timedelta(seconds=2)
        count = _spread(url, begin, args.duration)
        # Moving deadlines earlier in the database wakes nobody: one more alert does.
        with httpx.Client(base_url=base, timeout=10) as client:
            warm.post(client, 1_000_001)
        steps_expected = count * STEPS
        rate = steps_expected / (args.duration + 2 * args.step_gap)
        _step(
            f"{count:,} escalations start over {args.duration:g} s from {begin:%H:%M:%S}: "
            f"{steps_expected:,} steps, ~{rate:.0f}/s; alerts at {args.rate:g}/s meanwhile"
        )
        time.sleep(max(0.0, (begin - datetime.now(UTC)).total_seconds()))
        stream = AlertStream(base, args.rate, args.duration)
        stream.run()
        _step(f"sent {len(stream.sent):,} alerts; waiting for the last steps")
        deadline = time.monotonic() + 2 * args.step_gap + 120
        while time.monotonic() < deadline:
            steps = sum(1 for r in hooks.requests if r.path == "/steps")
            alerts = sum(1 for r in hooks.requests if r.path == "/alerts")
            if steps >= steps_expected and alerts >= len(stream.sent) + 1:
                break
            time.sleep(0.5)
        time.sleep(1.0)  # late repeats still count
        cpu = _cpu_seconds(proc.pid) + (_cpu_seconds(engine.pid) if engine else 0.0)
        wakes, failures = _engine_metrics(base, engine)
        _step(f"server CPU so far {cpu:.1f} s")
    _log_errors("server", tmp / "server.log", report)
    if engine:
        _log_errors("engine process", tmp / "engine-process.log", report)
    received = hooks.requests
    _lateness(url, [r for r in received if r.path == "/steps"], steps_expected, report)
    _first_page([r for r in received if r.path == "/alerts"], stream, report)
    _first_page_parts(url, [r for r in received if r.path == "/alerts"], stream, report)
    report.check(
        "alerts: requests not answered 202",
        f"{len(stream.failures)}" + (f" ({stream.failures[0]})" if stream.failures else ""),
        "0",
        not stream.failures,
        integrity=True,
    )
    report.check(
        "engine: wake-ups / module failures (/metrics)",
        f"{wakes:,.0f} / {failures:,.0f}",
        "- / 0",
        failures == 0,
        integrity=True,
    )
    report.check(
        "alerts: sender behind schedule",
        f"{1000 * stream.behind:.0f} ms",
        "< 100 ms (else the generator, not Tocsin, set the pace)",
        stream.behind < 0.1,
    )
    report.settings = (
        f"{count:,} escalations starting over {args.duration:g} s (steps 0 / {args.step_gap:g} /"
        f" {2 * args.step_gap:g} s, {steps_expected:,} steps, ~{rate:.0f} steps/s); PagerDuty "
        f"events at {args.rate:g}/s for {args.duration:g} s meanwhile; idle engine measured "
        f"{args.idle_seconds:g} s."
    )


@contextlib.contextmanager
def _servers(
    port: int, env: dict[str, str], tmp: Path, *, engine_process: bool
) -> Iterator[tuple[subprocess.Popen[bytes], subprocess.Popen[bytes] | None]]:
    """Run `tocsin serve` on `port` (logging to tmp/server.log), ready; yield it and the engine.

    With engine_process, the large-deployment shape: the API without an engine
    (TOCSIN_ENGINE=false) and `tocsin engine` as a process of its own (woken by NOTIFY on
    PostgreSQL), so neither waits for the other's interpreter lock.
    """
    argv = [str(BIN / "tocsin"), "serve", "--host", "127.0.0.1", "--port", str(port)]
    server_env = {**env, "TOCSIN_ENGINE": "false"} if engine_process else env
    with contextlib.ExitStack() as stack:
        proc = stack.enter_context(_process(argv, server_env, tmp / "server.log"))
        _wait_ready(f"http://127.0.0.1:{port}", proc, tmp / "server.log")
        engine = None
        if engine_process:
            engine_argv = [str(BIN / "tocsin"), "engine"]
            engine = stack.enter_context(_process(engine_argv, env, tmp / "engine-process.log"))
        yield proc, engine


def _engine_metrics(
    base: str, engine: subprocess.Popen[bytes] | None = None
) -> tuple[float, float]:
    """Return the server engine's wake-ups and module failures so far, from /metrics.

    An engine process of its own serves no /metrics: its failures show in its log instead.
    """
    if engine is not None:
        return float("nan"), 0.0
    wakes = failures = 0.0
    body = httpx.get(f"{base}/metrics", timeout=30).text
    for family in text_string_to_metric_families(body):
        for sample in family.samples:
            if sample.name == "tocsin_engine_wake_delay_seconds_count":
                wakes += sample.value
            elif sample.name == "tocsin_engine_module_failures_total":
                failures += sample.value
    return wakes, failures


def _keys(requests: list[ReceivedRequest]) -> tuple[int, int]:
    """Return (raw arrivals, distinct idempotency keys)."""
    return len(requests), len({r.headers["idempotency-key"] for r in requests})


def _lateness(url: str, requests: list[ReceivedRequest], expected: int, report: Report) -> None:
    raw, distinct = _keys(requests)
    # What each page is about, read from the message itself: one key per (escalation, step).
    logical = len({(r.json["escalation"]["id"], r.json["escalation"]["step"]) for r in requests})
    # The key is page-<page id>-rule-<n>; the page was created at its step's due time.
    page_ids = {int(r.headers["idempotency-key"].split("-")[1]) for r in requests}
    db = Database(url)
    try:
        with db.read() as session:
            query = select(PageRow.id, PageRow.created_at).where(PageRow.id.in_(page_ids))
            due = dict(session.execute(query).all())
            pending = session.scalar(
                select(func.count()).select_from(OutboxRow).where(OutboxRow.status != "sent")
            )
    finally:
        db.dispose()
    first: dict[str, float] = {}
    for request in requests:
        key = request.headers["idempotency-key"]
        page_id = int(key.split("-")[1])
        late = (request.received_at - due[page_id]).total_seconds()
        first[key] = min(first.get(key, late), late)
    samples = list(first.values())
    ok = bool(samples) and _percentile(samples, 0.99) <= 1.0
    report.latency_row("step lateness (arrival - due)", samples, "p99 <= 1,000 ms", ok)
    if len(requests) > 1:
        span = max(r.monotonic for r in requests) - min(r.monotonic for r in requests)
        report.check("steps: delivered per second", f"{len(requests) / span:.1f}",
                     "the offered rate (see above)", True)  # fmt: skip
    report.check(
        "steps: paged", f"{distinct:,} of {expected:,}", "all", distinct == expected,
        integrity=True,
    )  # fmt: skip
    report.check(
        "steps: keys per (escalation, step)", f"{distinct:,} keys for {logical:,} steps",
        "one each", logical == distinct, integrity=True,
    )  # fmt: skip
    report.check(
        "steps: raw repeats of a key", f"{raw - distinct}", "0", raw == distinct, integrity=True
    )
    report.check("outbox: not sent at the end", f"{pending}", "0", pending == 0, integrity=True)


def _first_page(requests: list[ReceivedRequest], stream: AlertStream, report: Report) -> None:
    raw, distinct = _keys(requests)
    first: dict[int, float] = {}
    for request in requests:
        found = _ALERT_TITLE.search(str(request.json["subject"]["title"]))
        if found is None or int(found[1]) not in stream.sent:
            continue
        number = int(found[1])
        took = request.monotonic - stream.sent[number]
        first[number] = min(first.get(number, took), took)
    samples = list(first.values())
    ok = bool(samples) and _percentile(samples, 0.99) <= 0.25
    report.latency_row("alert received -> first page", samples, "p99 <= 250 ms", ok)
    # Part of the above: the request itself (a 202 is sent after the commit).
    report.latency_row("  of which POST /v2/enqueue -> 202", stream.answered, "-", True)
    report.check(
        "alerts: paged", f"{len(first):,} of {len(stream.sent):,}", "all",
        len(first) == len(stream.sent), integrity=True,
    )  # fmt: skip
    report.check(
        "alerts: raw repeats of a key", f"{raw - distinct}", "0", raw == distinct, integrity=True
    )


def _first_page_parts(
    url: str, requests: list[ReceivedRequest], stream: AlertStream, report: Report
) -> None:
    """Split alert -> first page at the moment the message was queued (outbox.created_at):
    before it, ingest and the engine's escalation and notification-rule modules; after it,
    the sender and the receiver. Wall clocks of one machine, so the split is to ~1 ms."""
    firsts: dict[int, ReceivedRequest] = {}
    for request in requests:
        found = _ALERT_TITLE.search(str(request.json["subject"]["title"]))
        if found is None or int(found[1]) not in stream.sent:
            continue
        number = int(found[1])
        if number not in firsts or request.monotonic < firsts[number].monotonic:
            firsts[number] = request
    if not firsts:
        return
    keys = [r.headers["idempotency-key"] for r in firsts.values()]
    db = Database(url)
    try:
        with db.read() as session:
            query = select(OutboxRow.idempotency_key, OutboxRow.created_at).where(
                OutboxRow.idempotency_key.in_(keys)
            )
            queued = dict(session.execute(query).all())
    finally:
        db.dispose()
    before: list[float] = []
    after: list[float] = []
    for number, request in firsts.items():
        at = queued.get(request.headers["idempotency-key"])
        if at is None:
            continue
        # The alert's send time on the wall clock, through this request's two clocks.
        sent_wall = request.received_at.timestamp() - (request.monotonic - stream.sent[number])
        before.append(at.timestamp() - sent_wall)
        after.append((request.received_at - at).total_seconds())
    report.latency_row("  of which alert sent -> page message queued", before, "-", True)
    report.latency_row("  of which message queued -> received", after, "-", True)


# --- 3: idle ---


def _quiet(url: str) -> int:
    """Acknowledge every open escalation (pages stop); return how many escalations exist."""
    db = Database(url)
    try:
        now = datetime.now(UTC)
        with db.write() as session:
            for kind in (escalations.INCIDENT, escalations.GROUP):
                subjects = list(
                    session.scalars(
                        select(EscalationRow.subject_id).where(
                            EscalationRow.subject_type == kind, EscalationRow.status == "active"
                        )
                    )
                )
                escalations.acknowledge(session, kind, subjects, now, "bench")
            session.commit()
        with db.read() as session:
            total = session.scalar(select(func.count()).select_from(EscalationRow)) or 0
    finally:
        db.dispose()
    return total


def _idle(
    url: str, env: dict[str, str], tmp: Path, args: argparse.Namespace, report: Report
) -> None:
    total = _quiet(url)
    _step(f"{total:,} escalations acknowledged; measuring an idle `tocsin engine`")
    log = tmp / "engine.log"
    with _process([str(BIN / "tocsin"), "engine"], env, log) as proc:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while RUNNING not in log.read_text(errors="replace"):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"engine did not start:\n{log.read_text(errors='replace')}")
            time.sleep(0.2)
        time.sleep(5.0)  # start-up work (the first cycle over every module) is not idling
        before, started = _cpu_seconds(proc.pid), time.monotonic()
        time.sleep(args.idle_seconds)
        cpu, wall = _cpu_seconds(proc.pid) - before, time.monotonic() - started
    share = 100 * cpu / wall
    report.rows.append(
        f"| idle engine CPU, {total:,} acknowledged escalations | {wall:.0f} s | "
        f"{share:.2f} % of one core ({1000 * cpu:.0f} ms CPU) | | | | < 2 % "
        f"| {'yes' if share < 2 else '**no**'} |"
    )
    report.check("idle engine: CPU", f"{share:.2f} % of one core", "< 2 %", share < 2)
    _log_errors("engine", log, report)


# --- output ---


def _tables(report: Report) -> str:
    lines = [
        "| Measurement | Samples | p50 ms | p95 ms | p99 ms | max ms | Target | Met |",
        "|---|---:|---:|---:|---:|---:|---|---|",
        *report.rows,
        "",
        "| Check | Measured | Target | Met |",
        "|---|---|---|---|",
    ]
    lines += [
        f"| {c.name} | {c.measured} | {c.target} | {'yes' if c.ok else '**no**'} |"
        for c in report.checks
    ]
    return (f"{report.settings}\n\n" if report.settings else "") + "\n".join(lines)


def _machine(url: str) -> dict[str, str]:
    cpuinfo = Path("/proc/cpuinfo").read_text(errors="replace")
    model = re.search(r"^model name\s*:\s*(.+)$", cpuinfo, re.MULTILINE)
    meminfo = Path("/proc/meminfo").read_text(errors="replace")
    mem = re.search(r"^MemTotal:\s*(\d+) kB", meminfo, re.MULTILINE)
    info = {
        "Date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "CPU": f"{model.group(1).strip() if model else platform.processor()}, "
        f"{len(os.sched_getaffinity(0))} cores (nproc)",
        "RAM": f"{int(mem.group(1)) / 1024**2:.0f} GiB" if mem else "?",
        "OS": f"{platform.system()} {platform.release()}",
        "Load average (1 min) at start": f"{os.getloadavg()[0]:.1f}",
        "Python": platform.python_version(),
        "SQLite": sqlite3.sqlite_version,
    }
    for package in ("uvicorn", "fastapi", "sqlalchemy", "psycopg", "httpx"):
        with contextlib.suppress(PackageNotFoundError):
            info[package] = version(package)
    if url.startswith("postgresql"):
        engine = create_engine(url)
        with engine.connect() as conn:
            info["PostgreSQL"] = str(conn.exec_driver_sql("SHOW server_version").scalar())
        engine.dispose()
    _step("machine: " + "; ".join(f"{k} {v}" for k, v in info.items()))
    return info


def _record(args: argparse.Namespace, machine: dict[str, str], tables: str, command: str) -> Path:
    title = {"sqlite": "SQLite", "postgresql": "PostgreSQL"}[args.backend]
    machine_lines = "\n".join(f"- {k}: {v}" for k, v in machine.items())
    shape = (
        "one `tocsin serve` (TOCSIN_ENGINE=false) and one `tocsin engine` process"
        if args.engine_process
        else "one `tocsin serve` (engine inside, on loopback)"
    )
    text_ = (
        f"## On-call engine, {title}\n\n```\n{command}\n```\n\n"
        f"Produced by `bench/oncall.py` (see its docstring): {shape} for the step lateness "
        "and the alert-to-page latency, measured together; "
        "then `tocsin engine` alone for the idle CPU. Pages go to a local webhook receiver.\n\n"
        f"{tables}\n\nMachine:\n\n{machine_lines}\n"
    )
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    suffix = "-engine-process" if args.engine_process else ""
    path = RESULTS_DIR / f"oncall-{args.backend}{suffix}.md"
    path.write_text(text_, encoding="utf-8")
    return path


if __name__ == "__main__":
    sys.exit(main())
