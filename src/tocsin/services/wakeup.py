"""Waking engines in other processes on PostgreSQL: NOTIFY tocsin_engine at commit.

The payload names the sending process. Every writer that notifies also wakes the engine of
its own process directly (at commit or right after it), so an engine's listener skips its own
process's notices: on PostgreSQL each ingest batch otherwise woke the engine beside it up to
three times (the direct wake, the batch's notice, its lifecycle events' notice, which differ
in payload and so are not folded), and a wake that arrives mid-cycle costs another cycle.
"""

from __future__ import annotations

import os
import socket
from functools import cache

from sqlalchemy import text
from sqlalchemy.orm import Session

CHANNEL = "tocsin_engine"
_NOTIFIED = "tocsin.notified"  # session.info: the transaction that already sent its notice


@cache
def _host() -> str:
    return socket.gethostname()


def origin() -> str:
    """This process as host:pid, in notices and as the engine's instance name (computed per
    call: worker processes fork)."""
    return f"{_host()}:{os.getpid()}"


def notify_engines(session: Session) -> None:
    """Queue a notice to every listening engine, delivered when the transaction commits.

    Once per transaction: PostgreSQL folds identical notices of a transaction anyway, but
    each call is a round trip (an ingest batch made up to three).
    """
    transaction = session.get_transaction()
    if transaction is not None and session.info.get(_NOTIFIED) is transaction:
        return
    session.execute(text("SELECT pg_notify('tocsin_engine', :origin)"), {"origin": origin()})
    session.info[_NOTIFIED] = session.get_transaction()  # begun by the execute if it was not
