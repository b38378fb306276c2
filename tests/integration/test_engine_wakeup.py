"""PostgreSQL wake-ups: an engine hears other processes' notices, not its own process's."""

from __future__ import annotations

import threading

import psycopg

from tocsin.engine.loop import listen_postgres
from tocsin.engine.waker import Waker
from tocsin.services import wakeup


def test_listener_skips_its_own_process_and_wakes_for_others(pg_url: str) -> None:
    waker, stop = Waker(), threading.Event()
    listener = threading.Thread(target=listen_postgres, args=(pg_url, waker, stop), daemon=True)
    listener.start()
    conninfo = pg_url.replace("postgresql+psycopg://", "postgresql://")
    try:
        with psycopg.connect(conninfo, autocommit=True) as conn:
            # The listener is up once a notice from elsewhere gets through.
            heard = None
            for _ in range(50):
                conn.execute("SELECT pg_notify('tocsin_engine', 'elsewhere:1')")
                heard = waker.wait(0.1)
                if heard is not None:
                    break
            assert heard is not None, "the listener never heard another process"
            while waker.wait(0.3) is not None:
                pass  # drain the notices sent while it started
            conn.execute("SELECT pg_notify('tocsin_engine', %s)", (wakeup.origin(),))
            assert waker.wait(0.5) is None, "woken by its own process's notice"
            conn.execute("SELECT pg_notify('tocsin_engine', 'elsewhere:2')")
            assert waker.wait(2.0) is not None
    finally:
        stop.set()
        listener.join(timeout=5)


def test_one_notice_per_transaction_and_one_for_each_transaction(pg_url: str) -> None:
    """notify_engines sends once per transaction (each call was a round trip), but a later
    transaction of the same session sends its own."""
    from sqlalchemy import event
    from sqlalchemy.orm import Session

    from tocsin.storage.db import Database

    db = Database(pg_url)
    sent: list[str] = []

    def count(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        if "pg_notify" in statement:
            sent.append(statement)

    event.listen(db.engine, "before_cursor_execute", count)
    try:
        with Session(db.engine) as session:
            wakeup.notify_engines(session)
            wakeup.notify_engines(session)
            session.commit()
            assert len(sent) == 1
            wakeup.notify_engines(session)
            session.commit()
            assert len(sent) == 2
    finally:
        db.dispose()
