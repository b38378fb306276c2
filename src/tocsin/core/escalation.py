"""Escalation policies and personal notification rules as pure decisions over time.

An escalation walks a policy's steps: step k fires at run start + cycle × cycle length +
steps[k].after. After the last step the policy starts over (a new cycle) `repeat` more times,
then stops. Acknowledging stops it; with an ack timeout, an acknowledgement that is not
followed by a resolution within the timeout restarts it from the first step (a new run).
Resolving stops everything. Independently of the steps, the severity's respond_within gives an
SLA deadline; passing it unacknowledged is a breach, recorded once, which may page extra
targets.

Everything here takes `now` as an argument and returns what should happen, so the engine's
I/O stays thin and every timing rule is tested with a fake clock.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Literal

Status = Literal["active", "acknowledged", "resolved"]
# With one step there is no spacing to copy; a quarter of an hour mirrors PagerDuty's default.
DEFAULT_CYCLE_GAP = timedelta(minutes=15)


@dataclass(frozen=True, slots=True)
class Step:
    after: timedelta
    targets: tuple[str, ...]
    round_robin: bool = False


@dataclass(frozen=True, slots=True)
class Policy:
    id: str
    steps: tuple[Step, ...]
    repeat: int = 0
    ack_timeout: timedelta | None = None
    sla_targets: tuple[str, ...] = ()

    @property
    def cycle_length(self) -> timedelta:
        """Return the time from one pass's start to the next pass's start.

        The last step gets as long as the gap before it (0 / 15 / 30 min repeats at 45 min), so
        a repeat keeps the rhythm the author wrote.
        """
        last = self.steps[-1].after
        gap = last - self.steps[-2].after if len(self.steps) > 1 else DEFAULT_CYCLE_GAP
        return last + (gap if gap > timedelta(0) else DEFAULT_CYCLE_GAP)


@dataclass(frozen=True, slots=True)
class State:
    status: Status
    run_started_at: datetime
    run: int = 0
    cycle: int = 0
    step: int = 0
    acknowledged_at: datetime | None = None
    sla_due_at: datetime | None = None
    sla_breached_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Fire:
    """One step firing: page its targets."""

    run: int
    cycle: int
    step: int
    due_at: datetime
    targets: tuple[str, ...]
    round_robin: bool


@dataclass(frozen=True, slots=True)
class Decision:
    state: State
    fires: tuple[Fire, ...] = ()
    sla_breached: bool = False
    ack_timed_out: bool = False
    # The last step of the last pass has fired: nothing more will happen by itself.
    exhausted: bool = False


def start(now: datetime, respond_within: timedelta | None) -> State:
    """Return the state of a new escalation started at `now`."""
    sla = now + respond_within if respond_within is not None else None
    return State(status="active", run_started_at=now, sla_due_at=sla)


def step_due(policy: Policy, state: State) -> datetime | None:
    """Return when the next step fires, or None once every pass is done."""
    if state.cycle > policy.repeat or not policy.steps:
        return None
    offset = policy.cycle_length * state.cycle + policy.steps[state.step].after
    return state.run_started_at + offset


def ack_timeout_due(policy: Policy, state: State) -> datetime | None:
    """Return when an acknowledgement runs out, if it can."""
    if state.status != "acknowledged" or policy.ack_timeout is None:
        return None
    if state.acknowledged_at is None:
        return None
    return state.acknowledged_at + policy.ack_timeout


def next_deadline(policy: Policy, state: State) -> datetime | None:
    """Return the next instant at which advance() has something to do."""
    if state.status == "resolved":
        return None
    if state.status == "acknowledged":
        return ack_timeout_due(policy, state)
    candidates = [step_due(policy, state)]
    if state.sla_due_at is not None and state.sla_breached_at is None:
        candidates.append(state.sla_due_at)
    present = [moment for moment in candidates if moment is not None]
    return min(present, default=None)


def acknowledge(state: State, now: datetime) -> State:
    """Return the state after an acknowledgement (a no-op unless active)."""
    if state.status != "active":
        return state
    return replace(state, status="acknowledged", acknowledged_at=now)


def resolve(state: State) -> State:
    return replace(state, status="resolved")


def advance(policy: Policy, state: State, now: datetime) -> Decision:
    """Return what is due at `now`: steps to fire, an SLA breach, an ack timeout."""
    timed_out = False
    timeout_at = ack_timeout_due(policy, state)
    if timeout_at is not None and timeout_at <= now:
        # The restart counts from when the acknowledgement ran out, not from when the engine
        # noticed, so a late engine fires the steps that were due since then.
        state = replace(
            state,
            status="active",
            run=state.run + 1,
            cycle=0,
            step=0,
            run_started_at=timeout_at,
            acknowledged_at=None,
        )
        timed_out = True
    if state.status != "active":
        return Decision(state, ack_timed_out=timed_out)

    breached = False
    if state.sla_due_at is not None and state.sla_breached_at is None and state.sla_due_at <= now:
        state = replace(state, sla_breached_at=state.sla_due_at)
        breached = True

    fires: list[Fire] = []
    due = step_due(policy, state)
    while due is not None and due <= now:
        step = policy.steps[state.step]
        fires.append(Fire(state.run, state.cycle, state.step, due, step.targets, step.round_robin))
        following = state.step + 1
        if following == len(policy.steps):
            state = replace(state, step=0, cycle=state.cycle + 1)
        else:
            state = replace(state, step=following)
        due = step_due(policy, state)
    exhausted = bool(fires) and step_due(policy, state) is None
    return Decision(state, tuple(fires), breached, timed_out, exhausted)


def expand_targets(
    targets: Iterable[str],
    on_call: Callable[[str], Sequence[str]],
    team_members: Callable[[str], Sequence[str]],
) -> tuple[str, ...]:
    """Return the users a list of targets names (schedules: who is on call), no repeats."""
    users: list[str] = []
    for target in targets:
        kind, _, key = target.partition(":")
        if kind == "user":
            found: Sequence[str] = (key,)
        elif kind == "schedule":
            found = on_call(key)
        elif kind == "team":
            found = team_members(key)
        else:
            raise ValueError(f"unknown target kind in {target!r}")
        users.extend(user for user in found if user not in users)
    return tuple(users)


def round_robin_pick(users: Sequence[str], counter: int) -> tuple[tuple[str, ...], int]:
    """Return the one user whose turn it is, and the counter for the next escalation."""
    if not users:
        return (), counter
    return (users[counter % len(users)],), counter + 1


# --- personal notification rules ---


@dataclass(frozen=True, slots=True)
class Rule:
    after: timedelta
    contact_method: str


def due_rules(
    rules: Sequence[Rule], paged_at: datetime, next_rule: int, now: datetime
) -> tuple[list[int], int, datetime | None]:
    """Return (indexes of rules due now, the next rule index, when it is due or None)."""
    due = []
    index = next_rule
    while index < len(rules) and paged_at + rules[index].after <= now:
        due.append(index)
        index += 1
    upcoming = paged_at + rules[index].after if index < len(rules) else None
    return due, index, upcoming
