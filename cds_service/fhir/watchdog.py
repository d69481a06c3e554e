"""A deadline on a whole HTTP exchange: connect, status line, headers and body together.

A socket timeout bounds one read, and restarts with every byte: a server that drips its status line a byte at a
time held a worker for 11 s with a 2 s deadline. The watchdog (one thread per process) shuts the exchange's socket
down when the deadline passes, so whatever read is blocked returns at once.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import os
import socket
import threading
import time
from typing import Any

RETRY_SECONDS = 0.05  # the socket did not exist yet at the deadline (connect in progress): look again this soon


class Exchange:
    """One request/response under a deadline; the pool hands it the connection it uses (`attach`)."""

    def __init__(self, deadline: float) -> None:
        self.deadline = deadline
        self.expired = False
        self._connection: Any = None
        self._done = False
        self._lock = threading.Lock()

    def attach(self, connection: Any) -> None:
        with self._lock:
            self._connection = connection

    def finish(self) -> None:
        with self._lock:
            self._done = True
            self._connection = None

    def expire(self) -> bool:
        """Cut the exchange off; False when its socket does not exist yet (ask again shortly)."""
        with self._lock:
            if self._done:
                return True
            self.expired = True
            sock = getattr(self._connection, "sock", None)
            if sock is None:
                return False
            with contextlib.suppress(OSError):  # already closed
                socket.socket.shutdown(sock, socket.SHUT_RDWR)  # the raw socket, also under TLS
            return True


class Watchdog:
    def __init__(self) -> None:
        self._due: list[tuple[float, int, Exchange]] = []
        self._order = itertools.count()
        self._wake = threading.Condition()
        self._pid = 0  # the thread is started in the process that uses it (gunicorn forks workers)

    def watch(self, exchange: Exchange) -> None:
        with self._wake:
            if self._pid != os.getpid():
                self._pid = os.getpid()
                self._due = []
                threading.Thread(target=self._run, name="fhir-deadline-watchdog", daemon=True).start()
            heapq.heappush(self._due, (exchange.deadline, next(self._order), exchange))
            self._wake.notify()

    def _run(self) -> None:
        while True:
            with self._wake:
                while not self._due or self._due[0][0] > time.monotonic():
                    self._wake.wait(self._due[0][0] - time.monotonic() if self._due else None)
                _, _, exchange = heapq.heappop(self._due)
            if not exchange.expire():
                with self._wake:
                    heapq.heappush(self._due, (time.monotonic() + RETRY_SECONDS, next(self._order), exchange))


WATCHDOG = Watchdog()

__all__ = ["WATCHDOG", "Exchange", "Watchdog"]
