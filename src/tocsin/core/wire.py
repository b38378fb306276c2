"""Cheaper pickling for the slotted dataclasses that cross from the API to the ingest writer.

A frozen slotted dataclass pickles through dataclasses' generic __getstate__/__setstate__,
which call fields() for every object: at storm rates (thousands of signals a second each
way) that lookup costs more than the values. The field names are fixed per class, so they
are worked out once here.
"""

from __future__ import annotations

from dataclasses import fields
from operator import attrgetter
from typing import Any, TypeVar

T = TypeVar("T")

_set = object.__setattr__


def fast_pickle(cls: type[T]) -> type[T]:
    """Give a slotted dataclass a __getstate__/__setstate__ with its field names precomputed."""
    names = tuple(f.name for f in fields(cls))  # type: ignore[arg-type]
    values = attrgetter(*names)

    def get_state(self: Any) -> tuple[Any, ...]:
        state = values(self)
        return state if len(names) > 1 else (state,)

    def set_state(self: Any, state: tuple[Any, ...]) -> None:
        for name, value in zip(names, state, strict=True):
            _set(self, name, value)

    cls.__getstate__ = get_state  # type: ignore[method-assign]
    cls.__setstate__ = set_state  # type: ignore[attr-defined]
    return cls
