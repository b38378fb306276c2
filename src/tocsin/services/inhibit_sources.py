"""The firing alerts that may inhibit others, remembered per database for a second.

Finding them is a query over the firing alerts with conditions on JSON labels that no index
serves: run once per ingest batch, it scanned every firing alert, so an alert storm slowed
down as it grew (6.8 % of the server's time at 16,000 firing alerts, growing with the table).
Only alerts that some inhibit rule targets need it, but those are common (warnings, under the
example rules).

Kept SOURCE_SECONDS per database, like Alertmanager's inhibitor working from its own alert
store. An ingest batch that created, re-fired, acknowledged or resolved an alert matching some
rule's source forgets the snapshot when it commits, so the next batch of this process sees the
change at once; changes made elsewhere (another instance, a group resolved in the UI) take
effect within SOURCE_SECONDS, as do inhibition decisions that depend on them.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from sqlalchemy import event
from sqlalchemy.orm import Session

SOURCE_SECONDS = 1.0

View = Mapping[str, Any]
_lock = threading.Lock()
# Per database URL: when loaded, the rules they were loaded for, the sources.
_cache: dict[str, tuple[float, Sequence[object], list[View]]] = {}


def firing_sources(
    session: Session, rules: Sequence[object], load: Callable[[], list[View]]
) -> list[View]:
    """Return the stored sources for `rules`, from the snapshot or from `load()`.

    A snapshot serves only the very rules object it was loaded for: a configuration reloaded
    (or changed) brings new rules and a fresh query.
    """
    key = str(session.get_bind().engine.url)
    now = time.monotonic()
    cached = _cache.get(key)
    if cached is not None and cached[1] is rules and now - cached[0] < SOURCE_SECONDS:
        return cached[2]
    views = load()
    with _lock:
        _cache[key] = (now, rules, views)
    return views


def forget_after_commit(session: Session) -> None:
    """Drop every snapshot once this session's transaction commits."""
    event.listen(session, "after_commit", _forget, once=True)


def _forget(_session: Session) -> None:
    with _lock:
        _cache.clear()
