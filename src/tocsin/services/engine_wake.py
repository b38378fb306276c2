"""Wake the engines when a transaction that made work for them commits.

Work reaches an engine two ways. Engines in other processes hear a PostgreSQL NOTIFY on
`tocsin_engine`, delivered at COMMIT (identical notifications of one transaction fold into
one). The engine in this process is woken directly, by an after-commit hook on the session:
it learns of the work in microseconds, on SQLite too, whoever the caller was.

The notification carries this process's name, and this process's listener ignores its own:
hearing them too would wake the local engine a second time for work it was already woken
for, a whole extra engine cycle (every module's round trips) per ingest batch under load.

The caller owns the transaction, as everywhere: nothing here commits.
"""

from __future__ import annotations

import os
import socket
import threading
import weakref
from typing import Any, Protocol

from sqlalchemy import event, text
from sqlalchemy.orm import Session

CHANNEL = "tocsin_engine"
_NOTIFY = text(f"SELECT pg_notify('{CHANNEL}', :origin)")
_REGISTERED = "tocsin_engine_wake"


class Wakeable(Protocol):
    def notify(self) -> None: ...


_wakers: weakref.WeakSet[Any] = weakref.WeakSet()
_wakers_lock = threading.Lock()


def origin() -> str:
    """Return this process's name in notifications (read each time: workers are forked)."""
    return f"{socket.gethostname()}:{os.getpid()}"


def register(waker: Wakeable) -> None:
    """Have `waker` notified whenever a transaction that made engine work commits here."""
    with _wakers_lock:
        _wakers.add(waker)


def at_commit(session: Session) -> None:
    """Wake every engine when the caller's transaction commits (nothing if it rolls back)."""
    if session.get_bind().dialect.name == "postgresql":
        # Sent on every call, not once per transaction: a savepoint rolled back since an
        # earlier call may have taken that one with it.
        session.execute(_NOTIFY, {"origin": origin()})
    if session.info.get(_REGISTERED):
        return
    session.info[_REGISTERED] = True
    event.listen(session, "after_commit", _after_commit, once=True)
    event.listen(session, "after_rollback", _forget, once=True)


def is_own(payload: str) -> bool:
    """Whether a notification was sent by this process (which woke its engine already)."""
    return payload == origin()


def _after_commit(session: Session) -> None:
    session.info.pop(_REGISTERED, None)
    with _wakers_lock:
        wakers = list(_wakers)
    for waker in wakers:
        waker.notify()


def _forget(session: Session) -> None:
    session.info.pop(_REGISTERED, None)
