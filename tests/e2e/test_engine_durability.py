"""The engine as separate `tocsin engine` processes: kill -9 loses no page and sends none twice.

Every test pages real receivers (tests/receivers.py): people have a webhook and an email contact
method, pointed at a WebhookReceiver and an SmtpReceiver. A message is sent at least once with its
idempotency key (header `Idempotency-Key`, email `Message-ID`); the receivers here keep every raw
arrival, and the checks count the way a receiver that drops repeated keys would:

- every expected message (incident, step, pass, person, channel) arrived at least once;
- each arrived under exactly one key (two keys for one message would be a logical duplicate,
  which no receiver can drop), and the keys that arrived are exactly the outbox's keys;
- raw repeats of a key happen only for messages sent but not yet recorded when a sender died:
  at most one claimed batch (64), whose outcomes are recorded together.

Also: a second engine on one SQLite file refuses to start, two engines on PostgreSQL share the
work and one carries on when the other dies, and a declared incident wakes the engine at once.

The kill tests take over a minute each: the messages a dead sender had claimed but not sent wait
for its lease (60 s) before another sender takes them.
"""

from __future__ import annotations

import re
import signal
import socket
import subprocess
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.engine import make_url

from tests.conftest import apply_yaml
from tests.e2e.peers import wait_until
from tests.e2e.serving import ADMIN_TOKEN, TOCSIN, Server, free_port, tocsin_env
from tests.receivers import SmtpReceiver, WebhookReceiver
from tocsin.core.actors import SYSTEM
from tocsin.notify.email import message_id
from tocsin.services import incidents
from tocsin.storage.db import Database
from tocsin.storage.oncall_tables import EngineModuleRow, OutboxRow

pytestmark = pytest.mark.e2e

ESCALATIONS = 1_000
# Step 1 pages whoever the schedule has on call (ann), step 2 pages ben 3 s later; each of them
# has a webhook rule at once and an email rule a second later: four messages per escalation.
STEPS = ((0, "ann"), (1, "ben"))
CHANNELS = ("webhook", "email")
PER_ESCALATION = len(STEPS) * len(CHANNELS)
# OutboxSender's defaults (src/tocsin/engine/outbox_sender.py): messages mid-send at once, and
# how long a dead sender's claimed messages wait before another sender takes them.
IN_FLIGHT = 16
LEASE_S = 30.0
# Sent but not yet recorded when the engine dies, at most: one claimed batch (outcomes are
# recorded together, all that finished meanwhile in one transaction). Only these may arrive
# twice, under the same key.
UNRECORDED_MAX = 64
# How long the webhook receiver holds its answers around a kill: the engine dies with messages
# that arrived but whose answer it never read, which it must send again under the same key.
HOLD_S = 2.0
SEND_TIMEOUT = 240.0  # sending 4,000 messages on a busy two-core machine takes ~40 s
RUNNING = "Tocsin engine running"

Logical = tuple[int, int, int, str, str]  # incident, step, pass, user, channel


def oncall_config(hooks: WebhookReceiver, smtp: SmtpReceiver) -> str:
    return f"""\
severities:
  - {{name: P1, label: High, respond_within: 1h, pages: true}}
users:
  - id: ann
    name: Ann Example
    email: ann@example.test
    contact_methods:
      - {{id: ann-hook, type: webhook, url: "{hooks.url("/ann")}"}}
      - {{id: ann-mail, type: email, address: ann@example.test}}
    notification_rules:
      high: [{{after: 0s, via: ann-hook}}, {{after: 1s, via: ann-mail}}]
  - id: ben
    name: Ben Example
    email: ben@example.test
    contact_methods:
      - {{id: ben-hook, type: webhook, url: "{hooks.url("/ben")}"}}
      - {{id: ben-mail, type: email, address: ben@example.test}}
    notification_rules:
      high: [{{after: 0s, via: ben-hook}}, {{after: 1s, via: ben-mail}}]
schedules:
  - id: checkout-primary
    time_zone: UTC
    layers:
      - rotation: {{type: daily, handoff: "00:00", start: "2026-01-01"}}
        users: [ann]
escalation_policies:
  - id: checkout-quick
    steps:
      - {{after: 0s, notify: [schedule:checkout-primary]}}
      - {{after: 3s, notify: [user:ben]}}
services:
  - {{id: checkout, name: Checkout, escalation_policy: checkout-quick}}
channels:
  email: {{host: 127.0.0.1, port: {smtp.port}, from: tocsin@example.test, tls: none}}
"""


def expected_messages(incident_ids: list[int]) -> set[Logical]:
    return {
        (incident, step, 0, user, channel)
        for incident in incident_ids
        for step, user in STEPS
        for channel in CHANNELS
    }


# --- what arrived ---


@dataclass(frozen=True)
class Arrival:
    key: str
    logical: Logical
    monotonic: float


_INCIDENT = re.compile(r"Incident #(\d+) needs you")
_STEP = re.compile(r"Escalation step (\d+), pass (\d+)\.")


class Inbox:
    """Both receivers' arrivals, each read back as (key, logical message)."""

    def __init__(self, hooks: WebhookReceiver, smtp: SmtpReceiver) -> None:
        self.hooks = hooks
        self.smtp = smtp

    def count(self) -> int:
        return len(self.hooks.requests) + len(self.smtp.messages)

    def keys(self) -> set[str]:
        hook_keys = {r.headers["idempotency-key"] for r in self.hooks.requests}
        return hook_keys | {str(m.message["X-Tocsin-Idempotency-Key"]) for m in self.smtp.messages}

    def arrivals(self) -> list[Arrival]:
        found: list[Arrival] = []
        for request in self.hooks.requests:
            payload = request.json
            key = request.headers["idempotency-key"]
            assert payload["idempotency_key"] == key
            assert request.path == f"/{payload['user']}"
            escalation = payload["escalation"]
            logical = (payload["subject"]["id"], escalation["step"], escalation["cycle"],
                       payload["user"], "webhook")  # fmt: skip
            found.append(Arrival(key, logical, request.monotonic))
        for mail in self.smtp.messages:
            message = mail.message
            assert isinstance(message, EmailMessage)  # parsed with email.policy.default
            key = str(message["X-Tocsin-Idempotency-Key"])
            assert message["Message-ID"] == message_id(key)
            body = message.get_body(("plain",))
            assert isinstance(body, EmailMessage)
            text = body.get_content()
            incident, step = _INCIDENT.search(text), _STEP.search(text)
            assert incident is not None, text
            assert step is not None, text
            user = mail.rcpt_tos[0].split("@")[0]
            logical = (int(incident[1]), int(step[1]) - 1, int(step[2]) - 1, user, "email")
            found.append(Arrival(key, logical, mail.monotonic))
        return found


@dataclass(frozen=True)
class Outbox:
    keys: set[str]
    statuses: Counter[str]
    claimed_by: Counter[str]


def read_outbox(db: Database) -> Outbox:
    with db.read() as session:
        rows = session.execute(
            select(OutboxRow.idempotency_key, OutboxRow.status, OutboxRow.claimed_by)
        ).all()
    return Outbox(
        {row.idempotency_key for row in rows},
        Counter(row.status for row in rows),
        Counter(row.claimed_by or "-" for row in rows),
    )


def held_by_lease(db: Database) -> int:
    """Pending messages a sender claimed and has not finished: after a kill, held until the
    lease runs out."""
    with db.read() as session:
        found = session.scalar(
            select(func.count())
            .select_from(OutboxRow)
            .where(OutboxRow.status == "pending", OutboxRow.claimed_until > datetime.now(UTC))
        )
    return found or 0


def drained(db: Database, inbox: Inbox, expected: int) -> str | None:
    """Every expected message is in the outbox, none is pending, and all keys arrived."""
    outbox = read_outbox(db)
    arrived = len(inbox.keys())
    if len(outbox.keys) >= expected and not outbox.statuses["pending"] and arrived >= expected:
        return f"{len(outbox.keys)} in the outbox, {arrived} keys arrived"
    return None


def check_sent_once(inbox: Inbox, expected: set[Logical], outbox: Outbox) -> int:
    """Assert the properties in the module docstring; return the raw repeats of a key."""
    arrivals = inbox.arrivals()
    keys_of: dict[Logical, set[str]] = defaultdict(set)
    for arrival in arrivals:
        keys_of[arrival.logical].add(arrival.key)
    missing = expected - keys_of.keys()
    unexpected = keys_of.keys() - expected
    assert not missing, f"{len(missing)} messages never arrived, e.g. {sorted(missing)[:5]}"
    assert not unexpected, f"{len(unexpected)} unexpected messages: {sorted(unexpected)[:5]}"
    twice = {logical: keys for logical, keys in keys_of.items() if len(keys) > 1}
    assert not twice, f"{len(twice)} messages arrived under two keys: {list(twice.items())[:5]}"
    distinct = {arrival.key for arrival in arrivals}
    assert len(distinct) == len(expected)
    assert distinct == outbox.keys
    assert outbox.statuses == Counter({"sent": len(expected)}), outbox.statuses
    return len(arrivals) - len(distinct)


# --- processes ---


def engine_env(db_url: str, tmp_path: Path, **extra: str) -> dict[str, str]:
    env = tocsin_env(db_url, tmp_path / "data")
    env.update(extra)
    return env


@dataclass
class EngineProcess:
    name: str
    proc: subprocess.Popen[bytes]
    log: Path

    @property
    def owner(self) -> str:
        # What the engine writes in claimed_by and engine_modules.last_run_by.
        return f"{socket.gethostname()}:{self.proc.pid}"

    def running(self) -> bool:
        return self.proc.poll() is None and RUNNING in self.log.read_text()

    def kill_9(self) -> float:
        """SIGKILL the engine; return the moment (monotonic) it was sent."""
        at = time.monotonic()
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)
        return at

    def kill_9_mid_send(self, hooks: WebhookReceiver) -> float:
        """Hold the next webhook answers, wait until one is held, then SIGKILL the engine."""
        before = len(hooks.requests)
        hooks.delay(HOLD_S, times=IN_FLIGHT)
        wait_until(lambda: len(hooks.requests) > before, "a held webhook", timeout=60)
        time.sleep(0.1)  # let more of the batch in flight arrive
        return self.kill_9()


@contextmanager
def engines(env: dict[str, str], tmp_path: Path) -> Iterator[Callable[[str], EngineProcess]]:
    """Start `tocsin engine` processes on demand; stop whichever still run at the end."""
    started: list[EngineProcess] = []

    def start(name: str) -> EngineProcess:
        log = tmp_path / f"{name}.log"
        with log.open("w") as out:
            proc = subprocess.Popen(
                [str(TOCSIN), "engine"], env=env, stdout=out, stderr=subprocess.STDOUT
            )
        started.append(EngineProcess(name, proc, log))
        return started[-1]

    try:
        yield start
    finally:
        for engine in started:
            if engine.proc.poll() is None:
                engine.proc.terminate()
                try:
                    engine.proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    engine.proc.kill()
                    engine.proc.wait(timeout=5)


def wait_running(*started: EngineProcess) -> None:
    for engine in started:
        wait_until(
            lambda e=engine: e.running() or e.proc.poll() is not None,  # type: ignore[misc]
            f"{engine.name} to start",
            timeout=60,
        )
        assert engine.proc.poll() is None, f"{engine.name} exited:\n{engine.log.read_text()}"


@contextmanager
def server(env: dict[str, str], tmp_path: Path, config: Path) -> Iterator[Server]:
    """Run `tocsin serve --config` with `env` until the block ends."""
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

    def ready() -> bool:
        assert proc.poll() is None, f"server exited:\n{log.read_text()}"
        try:
            return httpx.get(base + "/readyz", timeout=1).status_code == 200
        except httpx.TransportError:
            return False

    try:
        wait_until(ready, "the server to be ready", timeout=60)
        yield Server(base, log)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


def declare_in_process(db: Database, count: int) -> list[int]:
    """Declare `count` P1 incidents on checkout (each starts an escalation); return their ids."""
    ids: list[int] = []
    for first in range(0, count, 250):
        now = datetime.now(UTC)
        batch = [
            (SYSTEM, now, incidents.Declaration(title=f"Checkout down {n}", severity="P1",
                                                services=["checkout"]))
            for n in range(first, min(count, first + 250))
        ]  # fmt: skip
        with db.write() as session:
            results = incidents.declare_many(session, batch)
            session.commit()
        for result in results:
            assert not isinstance(result, Exception), result
            ids.append(result.incident.id)
    return ids


def declare_through_api(server: Server, count: int, threads: int = 8) -> list[int]:
    """Declare `count` P1 incidents on checkout through the API; return their ids."""
    ids: list[int] = []
    lock = threading.Lock()
    numbers = iter(range(count))

    def fire() -> None:
        headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
        with httpx.Client(base_url=server.base, headers=headers, timeout=30) as client:
            for n in numbers:  # shared: each number is taken by one thread
                body = {"title": f"Checkout down {n}", "severity": "P1", "services": ["checkout"]}
                res = client.post("/api/v1/incidents", json=body)
                assert res.status_code == 201, res.text
                with lock:
                    ids.append(res.json()["id"])

    workers = [threading.Thread(target=fire) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(120)
    assert len(ids) == count
    return ids


@pytest.fixture
def receivers() -> Iterator[tuple[WebhookReceiver, SmtpReceiver]]:
    with WebhookReceiver() as hooks, SmtpReceiver() as smtp:
        yield hooks, smtp


# --- kill -9 ---


def test_kill_9_mid_send_loses_no_page_and_sends_none_twice(
    db_url: str, tmp_path: Path, receivers: tuple[WebhookReceiver, SmtpReceiver]
) -> None:
    hooks, smtp = receivers
    inbox = Inbox(hooks, smtp)
    db = Database(db_url)
    try:
        apply_yaml(db, oncall_config(hooks, smtp))
        expected = expected_messages(declare_in_process(db, ESCALATIONS))
        with engines(engine_env(db_url, tmp_path), tmp_path) as start:
            first = start("engine-1")
            started = time.monotonic()
            wait_until(
                lambda: len(inbox.keys()) >= 0.3 * len(expected) or first.proc.poll() is not None,
                "30 % of the messages",
                timeout=SEND_TIMEOUT,
            )
            assert first.proc.poll() is None, first.log.read_text()
            killed_at = first.kill_9_mid_send(hooks)
            at_kill, held = inbox.count(), held_by_lease(db)
            second = start("engine-2")
            wait_until(lambda: drained(db, inbox, len(expected)), "the outbox to drain",
                       timeout=LEASE_S + SEND_TIMEOUT)  # fmt: skip
            recovered = time.monotonic() - killed_at
            time.sleep(1.0)  # a late repeat would still be counted
            assert second.proc.poll() is None, second.log.read_text()
        repeats = check_sent_once(inbox, expected, read_outbox(db))
    finally:
        db.dispose()
    print(
        f"\n{make_url(db_url).get_backend_name()}: {len(expected)} messages; killed after "
        f"{killed_at - started:.1f} s with {at_kill} arrived and {held} claimed but unfinished "
        f"(held for the {LEASE_S:.0f} s lease); drained {recovered:.1f} s after the kill; "
        f"{repeats} raw repeat(s) of a key"
    )
    # The held messages arrived, but the engine died before their answer: sent again, same key.
    assert 1 <= repeats <= UNRECORDED_MAX


# --- two engines on PostgreSQL ---


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_two_engines_share_the_work_and_one_carries_on_after_kill_9(
    db_url: str, tmp_path: Path, receivers: tuple[WebhookReceiver, SmtpReceiver]
) -> None:
    hooks, smtp = receivers
    inbox = Inbox(hooks, smtp)
    config = tmp_path / "oncall.yaml"
    config.write_text(oncall_config(hooks, smtp))
    db = Database(db_url)
    try:
        with (
            server(engine_env(db_url, tmp_path, TOCSIN_ENGINE="false"), tmp_path, config) as api,
            engines(engine_env(db_url, tmp_path), tmp_path) as start,
        ):
            one, two = start("engine-1"), start("engine-2")
            wait_running(one, two)
            expected = expected_messages(declare_through_api(api, ESCALATIONS))
            wait_until(lambda: len(inbox.keys()) >= 0.4 * len(expected), "40 % of the messages",
                       timeout=SEND_TIMEOUT)  # fmt: skip
            before = read_outbox(db).claimed_by
            killed_at = one.kill_9_mid_send(hooks)
            held = held_by_lease(db)
            wait_until(
                lambda: any(a.monotonic > killed_at for a in inbox.arrivals()),
                "a message after the kill",
                timeout=30,
            )
            next_after = min(a.monotonic for a in inbox.arrivals() if a.monotonic > killed_at)
            wait_until(lambda: drained(db, inbox, len(expected)), "the outbox to drain",
                       timeout=LEASE_S + SEND_TIMEOUT)  # fmt: skip
            recovered = time.monotonic() - killed_at
            time.sleep(1.0)
            assert two.proc.poll() is None, two.log.read_text()
            with db.read() as session:
                query = select(EngineModuleRow.name, EngineModuleRow.last_run_by)
                modules = dict(session.execute(query).all())
        outbox = read_outbox(db)
        repeats = check_sent_once(inbox, expected, outbox)
    finally:
        db.dispose()
    print(
        f"\nclaimed before the kill {dict(before)}; at the end {dict(outbox.claimed_by)}; "
        f"{held} held by the dead engine's lease; next message {next_after - killed_at:.3f} s "
        f"after the kill; drained {recovered:.1f} s after it; {repeats} raw repeat(s)"
    )
    # Both took part: the outbox's SKIP LOCKED claims split the messages between them.
    assert before[one.owner] > 0
    assert before[two.owner] > 0
    # The survivor carried on within a cycle (one cycle over a batch of 500 escalations takes
    # a few seconds on a busy two-core machine, and its own held answers take HOLD_S) …
    assert next_after - killed_at < 10.0
    # … and runs the modules the dead engine may have held (PostgreSQL dropped its row locks).
    assert outbox.claimed_by[two.owner] > before[two.owner]
    assert modules["escalations"] == modules["notification-rules"] == two.owner, modules
    assert repeats <= UNRECORDED_MAX


# --- one engine per SQLite file ---


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_second_engine_on_one_sqlite_file_exits_1_saying_why(db_url: str, tmp_path: Path) -> None:
    env = engine_env(db_url, tmp_path)
    with engines(env, tmp_path) as start:
        first = start("engine-1")
        wait_running(first)
        second = subprocess.run(
            [str(TOCSIN), "engine"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert second.returncode == 1, second.stdout + second.stderr
        said = " ".join(second.stderr.split())  # Rich wraps long lines
        assert f"another Tocsin engine (pid {first.proc.pid}) is already running" in said
        assert "SQLite allows one engine" in said
        assert first.proc.poll() is None  # the first engine is unharmed
        # kill -9 frees the lock with the process: the next engine starts.
        first.kill_9()
        third = start("engine-3")
        wait_running(third)


# --- metrics ---


def test_an_engine_of_its_own_serves_its_metrics(db_url: str, tmp_path: Path) -> None:
    """`tocsin engine --metrics-port` (here through its environment variable): with the API
    started with TOCSIN_ENGINE=false, the engine's figures are only there."""
    port = free_port()
    env = engine_env(db_url, tmp_path, TOCSIN_ENGINE_METRICS_PORT=str(port))
    with engines(env, tmp_path) as start:
        wait_running(one := start("engine-metrics"))
        text = ""

        def scraped() -> bool:
            nonlocal text
            try:
                text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2).text
            except httpx.TransportError:
                return False
            return 'tocsin_engine_module_seconds_count{module="heartbeats"}' in text

        wait_until(scraped, "the engine's /metrics", timeout=30)
        assert "tocsin_engine_wake_delay_seconds_bucket" in text
        assert "tocsin_engine_module_failures" in text
        assert one.proc.poll() is None


# --- waking ---


def _first_page_after_declaring(server_: Server, hooks: WebhookReceiver) -> float:
    """Declare one incident; return the seconds until its first page arrived (or 35)."""
    started = time.monotonic()
    res = server_.api(
        "POST", "/api/v1/incidents", json={"title": "Checkout down", "severity": "P1",
                                           "services": ["checkout"]}
    )  # fmt: skip
    assert res.status_code == 201, res.text
    try:
        arrived = hooks.wait_for(1, timeout=35)[0].monotonic
    except TimeoutError:
        return 35.0
    return arrived - started


def test_a_declared_incident_wakes_the_engine_in_serve(
    db_url: str, tmp_path: Path, receivers: tuple[WebhookReceiver, SmtpReceiver]
) -> None:
    hooks, smtp = receivers
    config = tmp_path / "oncall.yaml"
    config.write_text(oncall_config(hooks, smtp))
    with server(engine_env(db_url, tmp_path), tmp_path, config) as api:
        time.sleep(2.0)  # the engine's first cycles are over: it sleeps until woken
        took = _first_page_after_declaring(api, hooks)
    assert took < 1.0, f"the first page left {took:.1f} s after the declaration"


def test_a_declared_incident_wakes_a_separate_engine(
    db_url: str, tmp_path: Path, receivers: tuple[WebhookReceiver, SmtpReceiver]
) -> None:
    hooks, smtp = receivers
    config = tmp_path / "oncall.yaml"
    config.write_text(oncall_config(hooks, smtp))
    with (
        server(engine_env(db_url, tmp_path, TOCSIN_ENGINE="false"), tmp_path, config) as api,
        engines(engine_env(db_url, tmp_path), tmp_path) as start,
    ):
        wait_running(start("engine-1"))
        time.sleep(2.0)
        took = _first_page_after_declaring(api, hooks)
    assert took < 1.0, f"the first page left {took:.1f} s after the declaration"
