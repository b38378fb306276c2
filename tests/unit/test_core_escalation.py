"""Escalation decisions as pure functions of (policy, state, now)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from tocsin.core import escalation as esc

T0 = datetime(2026, 3, 16, 10, 0, tzinfo=UTC)
MIN = timedelta(minutes=1)
POLICY = esc.Policy(
    "p",
    (
        esc.Step(0 * MIN, ("schedule:primary",)),
        esc.Step(15 * MIN, ("schedule:secondary",)),
        esc.Step(30 * MIN, ("user:carol",)),
    ),
    repeat=2,
)


def fired_at(policy: esc.Policy, until: timedelta, every: timedelta = MIN) -> list[tuple[int, int]]:
    """Advance minute by minute; return (minute, step) of every fire."""
    state = esc.start(T0, None)
    out = []
    moment = T0
    while moment <= T0 + until:
        decision = esc.advance(policy, state, moment)
        out += [(int((f.due_at - T0) / MIN), f.step) for f in decision.fires]
        state = decision.state
        moment += every
    return out


def test_steps_fire_in_order_and_the_policy_repeats() -> None:
    assert POLICY.cycle_length == 45 * MIN
    assert fired_at(POLICY, 4 * 60 * MIN) == [
        (0, 0), (15, 1), (30, 2), (45, 0), (60, 1), (75, 2), (90, 0), (105, 1), (120, 2)
    ]  # fmt: skip


def test_a_late_run_fires_every_missed_step_once_with_its_own_due_time() -> None:
    decision = esc.advance(POLICY, esc.start(T0, None), T0 + 40 * MIN)
    assert [(f.step, f.due_at) for f in decision.fires] == [
        (0, T0), (1, T0 + 15 * MIN), (2, T0 + 30 * MIN)
    ]  # fmt: skip
    again = esc.advance(POLICY, decision.state, T0 + 40 * MIN)
    assert again.fires == ()


def test_exhausted_after_the_last_pass() -> None:
    decision = esc.advance(POLICY, esc.start(T0, None), T0 + 10 * 60 * MIN)
    assert len(decision.fires) == 9
    assert decision.exhausted
    assert esc.next_deadline(POLICY, decision.state) is None


def test_acknowledged_escalations_fire_nothing_and_time_out_when_configured() -> None:
    policy = esc.Policy("p", POLICY.steps, ack_timeout=20 * MIN)
    state = esc.acknowledge(esc.advance(policy, esc.start(T0, None), T0).state, T0 + 2 * MIN)
    assert esc.next_deadline(policy, state) == T0 + 22 * MIN
    assert esc.advance(policy, state, T0 + 21 * MIN).fires == ()
    decision = esc.advance(policy, state, T0 + 22 * MIN)
    assert decision.ack_timed_out
    assert [(f.run, f.step, f.due_at) for f in decision.fires] == [(1, 0, T0 + 22 * MIN)]
    # Without a timeout an acknowledgement is final.
    plain = esc.acknowledge(esc.start(T0, None), T0)
    assert esc.next_deadline(POLICY, plain) is None


def test_sla_breach_happens_once_and_not_after_acknowledgement() -> None:
    state = esc.start(T0, 15 * MIN)
    assert esc.next_deadline(POLICY, esc.advance(POLICY, state, T0).state) == T0 + 15 * MIN
    breached = esc.advance(POLICY, state, T0 + 16 * MIN)
    assert breached.sla_breached
    assert breached.state.sla_breached_at == T0 + 15 * MIN
    assert not esc.advance(POLICY, breached.state, T0 + 17 * MIN).sla_breached
    acked = esc.acknowledge(state, T0 + MIN)
    assert not esc.advance(POLICY, acked, T0 + 60 * MIN).sla_breached


def test_resolved_escalations_do_nothing() -> None:
    state = esc.resolve(esc.start(T0, 15 * MIN))
    assert esc.next_deadline(POLICY, state) is None
    assert esc.advance(POLICY, state, T0 + 60 * MIN).fires == ()


def test_targets_expand_without_repeats_and_round_robin_turns() -> None:
    users = esc.expand_targets(
        ["schedule:primary", "team:platform", "user:alice"],
        lambda s: ("alice",) if s == "primary" else (),
        lambda t: ("alice", "bob"),
    )
    assert users == ("alice", "bob")
    picks = []
    counter = 0
    for _ in range(3):
        chosen, counter = esc.round_robin_pick(users, counter)
        picks += chosen
    assert picks == ["alice", "bob", "alice"]
    assert esc.round_robin_pick((), 4) == ((), 4)


def test_notification_rules_come_due_in_time() -> None:
    rules = [esc.Rule(0 * MIN, "hook"), esc.Rule(5 * MIN, "mail"), esc.Rule(10 * MIN, "sms")]
    assert esc.due_rules(rules, T0, 0, T0) == ([0], 1, T0 + 5 * MIN)
    assert esc.due_rules(rules, T0, 1, T0 + 11 * MIN) == ([1, 2], 3, None)


@given(
    st.lists(st.integers(0, 120), min_size=1, max_size=6).map(sorted),
    st.integers(0, 3),
    st.lists(st.integers(1, 400), min_size=1, max_size=20),
)
def test_each_step_of_each_pass_fires_exactly_once_however_the_engine_is_scheduled(
    afters: list[int], repeat: int, gaps: list[int]
) -> None:
    policy = esc.Policy("p", tuple(esc.Step(a * MIN, ("user:x",)) for a in afters), repeat=repeat)
    state = esc.start(T0, None)
    moment = T0
    fired = []
    for gap in gaps:
        decision = esc.advance(policy, state, moment)
        assert all(f.due_at <= moment for f in decision.fires)
        fired += [(f.cycle, f.step) for f in decision.fires]
        state = decision.state
        moment += gap * MIN
    final = esc.advance(policy, state, T0 + timedelta(days=30))
    fired += [(f.cycle, f.step) for f in final.fires]
    expected = [(c, s) for c in range(repeat + 1) for s in range(len(afters))]
    assert fired == expected
