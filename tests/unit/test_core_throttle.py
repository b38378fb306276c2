"""Throttle decisions: at most N deliveries per period per destination, the rest wait, and
what is due at once for one destination goes out as one bundle."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tocsin.core.throttle import (
    DEFAULTS,
    Decision,
    Throttle,
    bundle_text,
    channel_throttles,
    decide,
    in_window,
    parse_throttle,
    record,
)

T0 = datetime(2026, 3, 14, 9, 0, tzinfo=UTC)
MINUTE = timedelta(minutes=1)
ONE_A_MINUTE = Throttle(1, MINUTE)


@pytest.mark.parametrize(
    ("text", "limit", "seconds"),
    [
        ("1/minute", 1, 60),
        ("1/m", 1, 60),
        ("2/minutes", 2, 120 // 2),
        ("10/h", 10, 3600),
        ("3 / hour", 3, 3600),
        ("5/s", 5, 1),
        ("1/second", 1, 1),
        ("4/day", 4, 86400),
    ],
)
def test_parse_throttle(text: str, limit: int, seconds: int) -> None:
    assert parse_throttle(text) == Throttle(limit, timedelta(seconds=seconds))


def test_parse_throttle_off_and_errors() -> None:
    assert parse_throttle("off") is None
    assert parse_throttle("None") is None
    for bad in ("", "1", "minute", "1/fortnight", "x/m", "1/ms", "-1/m"):
        with pytest.raises(ValueError, match="invalid throttle"):
            parse_throttle(bad)
    with pytest.raises(ValueError, match="at least one"):
        parse_throttle("0/m")
    assert str(Throttle(1, MINUTE)) == "1/minute"


def test_defaults_and_channel_settings() -> None:
    assert DEFAULTS["sms"] == DEFAULTS["voice"] == ONE_A_MINUTE
    assert "email" not in DEFAULTS
    got = channel_throttles(
        {
            "sms": {"throttle": "2/m"},
            "voice": {"throttle": "off"},
            "email": {"throttle": "10/h"},
            "slack": {"throttle": "nonsense"},  # unreadable: ignored (apply reports it)
            "webhook": {"timeout": 3},
        }
    )
    assert got == {"sms": Throttle(2, MINUTE), "email": Throttle(10, timedelta(hours=1))}
    assert channel_throttles({}) == DEFAULTS


def test_a_free_destination_sends_everything_due() -> None:
    assert decide([], ONE_A_MINUTE, T0, 1) == Decision(1)
    assert decide([], Throttle(3, MINUTE), T0, 3) == Decision(3)
    assert decide([T0 - MINUTE], ONE_A_MINUTE, T0, 1) == Decision(1)  # just left the window
    assert decide([], ONE_A_MINUTE, T0, 0) == Decision(0)


def test_a_full_window_waits_until_the_oldest_delivery_leaves_it() -> None:
    sent = [T0 - timedelta(seconds=20)]
    assert decide(sent, ONE_A_MINUTE, T0, 2) == Decision(0, wait_until=T0 + timedelta(seconds=40))
    three = Throttle(3, MINUTE)
    sent = [T0 - timedelta(seconds=s) for s in (50, 30, 10)]
    assert decide(sent, three, T0, 1) == Decision(0, wait_until=T0 + timedelta(seconds=10))


def test_more_due_than_the_window_allows_go_out_as_one_bundle() -> None:
    assert decide([], ONE_A_MINUTE, T0, 3) == Decision(1, bundle=True)
    assert decide([T0 - timedelta(seconds=5)], Throttle(2, MINUTE), T0, 2) == Decision(
        1, bundle=True
    )


def test_record_keeps_the_window_only() -> None:
    old = T0 - timedelta(minutes=5)
    recent = T0 - timedelta(seconds=10)
    assert record([old, recent], Throttle(2, MINUTE), T0, 1) == [recent, T0]
    assert record([recent], ONE_A_MINUTE, T0, 1) == [T0]
    # A time slightly ahead (another engine's clock) still counts.
    ahead = T0 + timedelta(seconds=1)
    assert in_window([ahead], ONE_A_MINUTE, T0) == [ahead]


@given(
    st.lists(st.integers(min_value=0, max_value=600), min_size=1, max_size=60),
    st.integers(min_value=1, max_value=4),
    st.integers(min_value=1, max_value=120),
)
def test_a_destination_never_gets_more_than_the_limit_in_any_window(
    arrivals: list[int], limit: int, period_s: int
) -> None:
    """Messages arriving at any times: deliveries, simulated, never exceed the throttle."""
    throttle = Throttle(limit, timedelta(seconds=period_s))
    due = sorted(T0 + timedelta(seconds=s) for s in arrivals)
    waiting: list[datetime] = []  # due times of messages not yet delivered
    sent: list[datetime] = []
    delivered: list[datetime] = []
    bundled = 0
    now = due[0]
    pending = list(due)
    for _ in range(10_000):
        waiting += [t for t in pending if t <= now]
        pending = [t for t in pending if t > now]
        if waiting:
            decision = decide(sent, throttle, now, len(waiting))
            if decision.deliveries:
                sent = record(sent, throttle, now, decision.deliveries)
                delivered += [now] * decision.deliveries
                bundled += len(waiting) - decision.deliveries
                waiting = []
                continue
            assert decision.wait_until is not None
            assert decision.wait_until > now
            nxt = decision.wait_until
        else:
            nxt = None
        if pending:
            nxt = min(nxt or pending[0], pending[0])
        if nxt is None:
            break
        now = nxt
    assert not waiting
    assert not pending
    # Every message went out, on its own or in a bundle.
    assert len(delivered) + bundled == len(due)
    for start in delivered:
        inside = [t for t in delivered if start <= t < start + throttle.period]
        assert len(inside) <= limit


def test_bundle_text_lists_every_message() -> None:
    assert bundle_text([("Disk full", "db1")]) == ("Disk full", "db1")
    title, body = bundle_text([("Disk full", "db1"), ("API down", "5xx"), ("Late", "")])
    assert title == "3 alerts: Disk full; API down; Late"
    assert body == "1. Disk full\ndb1\n\n2. API down\n5xx\n\n3. Late"
