"""Pickling of the objects that cross to the ingest writer process."""

from __future__ import annotations

import pickle
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest

from tocsin.core.alerts import Action, Link, Routing, Signal, Urgency
from tocsin.core.wire import fast_pickle


@fast_pickle
@dataclass(frozen=True, slots=True)
class _One:
    only: int


def test_signals_survive_the_trip_whole() -> None:
    signal = Signal(
        action=Action.RESOLVE,
        dedup_key="k",
        title="t",
        severity="error",
        labels={"a": "1"},
        details={"n": 2, "nested": {"x": [1, 2]}},
        links=(Link("https://x.test", "X"),),
        starts_at=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
        group_key="{}:{}",
    )
    back = pickle.loads(pickle.dumps(signal))  # noqa: S301 - our own object
    assert back == signal
    assert type(back.links[0]) is Link
    routing = Routing(urgency=Urgency.LOW, matched=(0, 2))
    assert pickle.loads(pickle.dumps(routing)) == routing  # noqa: S301


def test_a_one_field_class_round_trips_and_stays_frozen() -> None:
    back = pickle.loads(pickle.dumps(_One(7)))  # noqa: S301
    assert back == _One(7)
    with pytest.raises(AttributeError):
        back.only = 8  # type: ignore[misc]
