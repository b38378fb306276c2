"""Benchmark of outgoing notifications: 10,000 signed webhooks while escalations page.

    .venv/bin/python bench/notifications.py --backend sqlite|postgresql [--incidents 1000]
        [--webhooks 10] [--rate 500] [--escalations 1000] [--duration 60] [--step-gap 10]
        [--no-record]
    .venv/bin/python bench/notifications.py --backend sqlite --quick   # smoke run, ~1 minute

A fresh database (a SQLite file in a temporary directory, or the PostgreSQL database
`tocsin_bench_notifications` at TOCSIN_BENCH_PG_URL), migrated and configured with `tocsin
apply -f` examples/core.yaml and a bench-only file: --webhooks outgoing webhooks (config
section `webhooks`, each with its own secret) for every event of service `notify`, and user
`step-pager` (a webhook to /steps) paged by policy `bench-steps` (steps at 0, gap and 2 x gap)
on service `bench`. Everything goes to one local WebhookReceiver (tests/receivers.py) in this
process, which stamps every arrival.

1. Notifications. --incidents incidents are declared on `notify` through the HTTP API at
   --rate per second (open loop, 32 client threads): each declaration commits an
   `incident.declared` lifecycle event, and the engine (inside `tocsin serve`) turns it into
   one signed webhook per subscription: --incidents x --webhooks notifications (10,000 by
   default) queued within about two seconds. Enqueue -> delivered = from the API's 201 (the
   event's commit) to the webhook's arrival. Throughput = notifications / (last arrival -
   first arrival). No target in the issue; reported.
2. Step lateness meanwhile. --escalations incidents are declared on `bench` before the server
   starts; their escalations are then moved to start at a steady rate over --duration
   seconds (as bench/oncall.py does), and the notification burst is sent a quarter of the
   way in, so steps fall due before, during and after it. Lateness = arrival of the step's
   page - the step's due time. Target (issue 4): p99 <= 1 s; reported for all steps and for
   the steps due while notifications were being delivered.

Checks (exit 1 if one fails; a missed target does not): every notification delivered once per
key (evt:<event>:<webhook>) with no raw repeat, every signature valid (HMAC-SHA256 over
timestamp and body, checked afterwards with each webhook's secret), every step paged once,
the outbox drained, no error in the server log. Prints the Markdown tables and writes them,
with the machine and the command line, to bench/results/notifications-<backend>.md (not with
--no-record). Everything it starts or creates is removed at the end, Ctrl-C included.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import shutil
import signal
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from incidents import ADMIN_TOKEN, BIN, ROOT, _command_line, _cpu_seconds, _free_port, _run, _step
from incidents import _server_env as _base_env
from oncall import (
    Report,
    _engine_metrics,
    _fresh_database,
    _load,
    _log_errors,
    _machine,
    _percentile,
    _servers,
    _spread,
    _tables,
)
from sqlalchemy import func, select
from sqlalchemy.engine import make_url

sys.path.insert(0, str(ROOT))  # tests/receivers.py: the receivers the tests use

from tests.receivers import ReceivedRequest, WebhookReceiver

from tocsin.notify.signing import verify
from tocsin.storage.db import Database, upgrade
from tocsin.storage.oncall_tables import NotificationLogRow, OutboxRow, PageRow

CONFIG = ROOT / "examples" / "core.yaml"
RESULTS_DIR = ROOT / "bench" / "results"
PG_DATABASE = "tocsin_bench_notifications"
STEPS = 3
QUICK = {"incidents": 200, "escalations": 200, "duration": 20.0, "step_gap": 5.0}
DEFAULTS = {"incidents": 1000, "escalations": 1000, "duration": 60.0, "step_gap": 10.0}


def secret_of(n: int) -> str:
    return f"bench-webhook-secret-{n}"


def bench_config(hooks: WebhookReceiver, webhooks: int, gap: float) -> str:
    subscriptions = "\n".join(
        f'  - {{id: hook-{n}, url: "{hooks.url(f"/hooks/{n}")}", secret: {secret_of(n)}, '
        "services: [notify]}"
        for n in range(webhooks)
    )
    return f"""\
# Written by bench/notifications.py, applied after examples/core.yaml.
severities:
  - {{name: B1, label: Bench, description: Benchmark incidents, pages: true}}
users:
  - id: step-pager
    name: Step Pager
    email: step-pager@example.test
    contact_methods:
      - {{id: step-hook, type: webhook, url: "{hooks.url("/steps")}"}}
    notification_rules:
      high: [{{after: 0s, via: step-hook}}]
escalation_policies:
  - id: bench-steps
    steps:
      - {{after: 0s, notify: [user:step-pager]}}
      - {{after: {gap:g}s, notify: [user:step-pager]}}
      - {{after: {2 * gap:g}s, notify: [user:step-pager]}}
services:
  - {{id: bench, name: Bench, escalation_policy: bench-steps}}
  - {{id: notify, name: Notify}}
webhooks:
{subscriptions}
"""


# --- main ---


def main() -> int:
    args = _parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    command = _command_line()
    report = Report()
    try:
        with contextlib.ExitStack() as stack:
            tmp = Path(tempfile.mkdtemp(prefix="tocsin-bench-notifications-"))
            stack.callback(shutil.rmtree, tmp, ignore_errors=True)
            url = stack.enter_context(_fresh_database(args.backend, tmp, PG_DATABASE))
            machine = _machine(url)
            hooks = stack.enter_context(WebhookReceiver())
            env = _prepare(url, tmp, hooks, args)
            _load(url, args.escalations)
            _measure(url, env, tmp, hooks, args, report)
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
    parser.add_argument("--incidents", type=int, help="Incidents declared on notify (1,000).")
    parser.add_argument("--webhooks", type=int, default=10, help="Subscriptions (10).")
    parser.add_argument("--rate", type=float, default=500.0, help="Declarations/s (500).")
    parser.add_argument("--escalations", type=int, help="Escalations paging meanwhile (1,000).")
    parser.add_argument("--duration", type=float, help="Seconds the escalations start over (60).")
    parser.add_argument("--step-gap", type=float, help="Seconds between steps (10).")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="Smoke run: 200 incidents (2,000 notifications), 200 escalations over 20 s.",
    )
    parser.add_argument(
        "--engine-process",
        action="store_true",
        help="Run the engine as its own `tocsin engine` process beside `tocsin serve`.",
    )
    parser.add_argument(
        "--no-record",
        dest="record",
        action="store_false",
        help="Do not write bench/results/notifications-<backend>.md.",
    )
    args = parser.parse_args()
    for name, value in (QUICK if args.quick else DEFAULTS).items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    return args


def _prepare(
    url: str, tmp: Path, hooks: WebhookReceiver, args: argparse.Namespace
) -> dict[str, str]:
    """Migrate and configure the database; return the environment of Tocsin processes."""
    _step(f"migrating {make_url(url).render_as_string(hide_password=True)}")
    upgrade(url)
    env = _base_env(url, tmp)
    env["TOCSIN_SECRET_KEY"] = "bench-secret-key"
    config = tmp / "bench-notifications.yaml"
    config.write_text(bench_config(hooks, args.webhooks, args.step_gap), encoding="utf-8")
    for path in (CONFIG, config):
        _run([str(BIN / "tocsin"), "apply", "-f", str(path)], env)
    return env


# --- the burst ---


@dataclass(slots=True)
class Declarations:
    """Incidents declared through the API at a fixed rate (open loop)."""

    base: str
    rate: float
    count: int
    committed: dict[int, float] = field(default_factory=dict)  # incident id -> 201 (monotonic)
    failures: list[str] = field(default_factory=list)
    behind: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def run(self, threads: int = 32) -> None:
        limits = httpx.Limits(max_connections=threads, max_keepalive_connections=threads)
        headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
        with httpx.Client(base_url=self.base, timeout=30, limits=limits, headers=headers) as client:
            start = time.monotonic() + 0.1

            def sender(offset: int) -> None:
                for n in range(offset, self.count, threads):
                    delay = start + n / self.rate - time.monotonic()
                    if delay > 0:
                        time.sleep(delay)
                    else:
                        self.behind = max(self.behind, -delay)
                    self.post(client, n)

            workers = [threading.Thread(target=sender, args=(i,)) for i in range(threads)]
            for worker in workers:
                worker.start()
            for worker in workers:
                worker.join()

    def post(self, client: httpx.Client, number: int) -> None:
        body = {"title": f"notify {number}", "severity": "P2", "services": ["notify"]}
        try:
            res = client.post("/api/v1/incidents", json=body)
        except httpx.HTTPError as exc:
            self.failures.append(f"{number}: {type(exc).__name__}: {exc}")
            return
        if res.status_code != 201:
            self.failures.append(f"{number}: HTTP {res.status_code} {res.text[:200]}")
            return
        with self._lock:
            self.committed[int(res.json()["id"])] = time.monotonic()


def _measure(
    url: str,
    env: dict[str, str],
    tmp: Path,
    hooks: WebhookReceiver,
    args: argparse.Namespace,
    report: Report,
) -> None:
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    expected = args.incidents * args.webhooks
    with _servers(port, env, tmp, engine_process=args.engine_process) as (proc, engine):
        # The escalating incidents' own declared events are handled at start (no webhook
        # wants them); let that finish before anything is measured.
        _drain_events(url)
        begin = datetime.now(UTC) + timedelta(seconds=2)
        count = _spread(url, begin, args.duration)
        # Moving deadlines in the database wakes nobody; a declaration does (its event),
        # and proves the webhook pipeline before anything is measured.
        headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
        with httpx.Client(base_url=base, headers=headers, timeout=10) as client:
            Declarations(base, 1, 0).post(client, -1)
        hooks.wait_for(args.webhooks, timeout=60)
        steps_expected = count * STEPS
        _step(
            f"{count:,} escalations start over {args.duration:g} s from {begin:%H:%M:%S} "
            f"({steps_expected:,} steps); {expected:,} notifications queued at +"
            f"{args.duration / 4:g} s"
        )
        time.sleep(max(0.0, (begin - datetime.now(UTC)).total_seconds() + args.duration / 4))
        burst = Declarations(base, args.rate, args.incidents)
        cpu_before = _cpu_seconds(proc.pid) + (_cpu_seconds(engine.pid) if engine else 0.0)
        burst.run()
        _step(f"declared {len(burst.committed):,} incidents; waiting for the notifications")
        deadline = time.monotonic() + args.duration + 2 * args.step_gap + 180
        while time.monotonic() < deadline:
            received = hooks.requests
            notes = sum(1 for r in received if r.path.startswith("/hooks/"))
            steps = sum(1 for r in received if r.path == "/steps")
            if notes >= expected + args.webhooks and steps >= steps_expected:
                break
            time.sleep(0.5)
        time.sleep(1.0)  # late repeats still count
        cpu = _cpu_seconds(proc.pid) + (_cpu_seconds(engine.pid) if engine else 0.0)
        cpu -= cpu_before
        wakes, failures = _engine_metrics(base, engine)
    _log_errors("server", tmp / "server.log", report)
    if engine:
        _log_errors("engine process", tmp / "engine-process.log", report)
    received = hooks.requests
    window = _notifications(
        [r for r in received if r.path.startswith("/hooks/")], burst, args, report
    )
    _steps(url, [r for r in received if r.path == "/steps"], steps_expected, window, report)
    report.check("server CPU from the burst to the end", f"{cpu:.1f} s", "-", True)
    report.check(
        "declarations: not answered 201",
        f"{len(burst.failures)}" + (f" ({burst.failures[0]})" if burst.failures else ""),
        "0",
        not burst.failures,
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
        "declarations: sender behind schedule",
        f"{1000 * burst.behind:.0f} ms",
        "< 100 ms (else the generator, not Tocsin, set the pace)",
        burst.behind < 0.1,
    )
    report.settings = (
        f"{args.incidents:,} incidents declared through the API at {args.rate:g}/s, each "
        f"told to {args.webhooks} signed webhooks ({expected:,} notifications); meanwhile "
        f"{count:,} escalations starting over {args.duration:g} s (steps 0 / {args.step_gap:g}"
        f" / {2 * args.step_gap:g} s, {steps_expected:,} steps), the burst a quarter of the "
        "way in."
    )


def _drain_events(url: str, timeout: float = 120.0) -> None:
    """Wait until the engine has handled every lifecycle event written so far."""
    from tocsin.storage.lifecycle_tables import LifecycleEventRow

    started = time.monotonic()
    db = Database(url)
    try:
        while time.monotonic() - started < timeout:
            with db.read() as session:
                pending = session.scalar(
                    select(func.count())
                    .select_from(LifecycleEventRow)
                    .where(LifecycleEventRow.status == "pending")
                )
            if not pending:
                break
            time.sleep(0.5)
    finally:
        db.dispose()
    _step(f"start-up events handled in {time.monotonic() - started:.1f} s")


def _notifications(
    requests: list[ReceivedRequest], burst: Declarations, args: argparse.Namespace, report: Report
) -> tuple[float, float]:
    """Report throughput, enqueue -> delivered and integrity; return the delivery window
    (monotonic first and last arrival)."""
    ours = [r for r in requests if int(r.json["subject"]["id"]) in burst.committed]
    raw = len(ours)
    keys = {r.headers["idempotency-key"] for r in ours}
    expected = len(burst.committed) * args.webhooks
    first: dict[str, float] = {}
    for request in ours:
        key = request.headers["idempotency-key"]
        took = request.monotonic - burst.committed[int(request.json["subject"]["id"])]
        first[key] = min(first.get(key, took), took)
    samples = list(first.values())
    report.latency_row("notification: enqueue (201) -> delivered", samples, "- (reported)", True)
    start = min((r.monotonic for r in ours), default=math.nan)
    end = max((r.monotonic for r in ours), default=math.nan)
    span = end - start
    queued_from = min(burst.committed.values(), default=math.nan)
    report.check(
        "notifications: delivered per second (first to last arrival)",
        f"{len(keys) / span:,.0f}" if span > 0 else "-",
        "- (reported)",
        True,
    )
    report.check(
        "notifications: first declaration -> last delivered",
        f"{end - queued_from:.1f} s",
        "- (reported)",
        True,
    )
    report.check(
        "notifications: delivered", f"{len(keys):,} of {expected:,}", "all",
        len(keys) == expected, integrity=True,
    )  # fmt: skip
    report.check(
        "notifications: raw repeats of a key", f"{raw - len(keys)}", "0", raw == len(keys),
        integrity=True,
    )  # fmt: skip
    bad = 0
    for request in ours:
        n = int(request.path.rsplit("/", 1)[1])
        headers = request.headers
        if not verify(secret_of(n), headers.get("x-tocsin-timestamp"), request.body,
                      headers.get("x-tocsin-signature"), float("inf")):  # fmt: skip
            bad += 1
    report.check("notifications: bad signatures", f"{bad}", "0", bad == 0, integrity=True)
    return start, end


def _steps(
    url: str,
    requests: list[ReceivedRequest],
    expected: int,
    window: tuple[float, float],
    report: Report,
) -> None:
    raw = len(requests)
    keys = {r.headers["idempotency-key"] for r in requests}
    page_ids = {int(key.split("-")[1]) for key in keys}
    db = Database(url)
    try:
        with db.read() as session:
            due = dict(
                session.execute(
                    select(PageRow.id, PageRow.created_at).where(PageRow.id.in_(page_ids))
                ).all()
            )
            pending = session.scalar(
                select(func.count()).select_from(OutboxRow).where(OutboxRow.status != "sent")
            )
            retried = (
                session.execute(
                    select(NotificationLogRow.text).where(
                        NotificationLogRow.kind == "message_retry"
                    )
                )
                .scalars()
                .all()
            )
    finally:
        db.dispose()
    report.check(
        "outbox: failed attempts retried",
        f"{len(retried)}" + (f" (first: {retried[0]})" if retried else ""),
        "0",
        not retried,
    )
    # Wall time of the delivery window, to pick the steps due while notifications went out.
    offset = time.time() - time.monotonic()
    lo = datetime.fromtimestamp(window[0] + offset, UTC)
    hi = datetime.fromtimestamp(window[1] + offset, UTC)
    lateness: dict[str, tuple[float, datetime]] = {}
    for request in requests:
        key = request.headers["idempotency-key"]
        at = due[int(key.split("-")[1])]
        late = (request.received_at - at).total_seconds()
        if key not in lateness or late < lateness[key][0]:
            lateness[key] = (late, at)
    every = [late for late, _ in lateness.values()]
    during = [late for late, at in lateness.values() if lo <= at <= hi]
    for name, samples in (("step lateness, all steps", every),
                          ("step lateness, steps due during the delivery", during)):  # fmt: skip
        ok = bool(samples) and _percentile(samples, 0.99) <= 1.0
        report.latency_row(name, samples, "p99 <= 1,000 ms", ok)
    report.check(
        "steps: paged", f"{len(keys):,} of {expected:,}", "all", len(keys) == expected,
        integrity=True,
    )  # fmt: skip
    report.check("steps: raw repeats of a key", f"{raw - len(keys)}", "0", raw == len(keys),
                 integrity=True)  # fmt: skip
    report.check("outbox: not sent at the end", f"{pending}", "0", pending == 0, integrity=True)


def _record(args: argparse.Namespace, machine: dict[str, str], tables: str, command: str) -> Path:
    title = {"sqlite": "SQLite", "postgresql": "PostgreSQL"}[args.backend]
    machine_lines = "\n".join(f"- {k}: {v}" for k, v in machine.items())
    text_ = (
        f"## Notifications, {title}\n\n```\n{command}\n```\n\n"
        "Produced by `bench/notifications.py` (see its docstring): one `tocsin serve` (engine "
        "inside, on loopback); incidents declared through the API become signed webhooks to a "
        "local receiver while escalations page the same receiver.\n\n"
        f"{tables}\n\nMachine:\n\n{machine_lines}\n"
    )
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    suffix = "-engine-process" if args.engine_process else ""
    path = RESULTS_DIR / f"notifications-{args.backend}{suffix}.md"
    path.write_text(text_, encoding="utf-8")
    return path


if __name__ == "__main__":
    sys.exit(main())
