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
