"""A cap on concurrent calls from one worker to one FHIR server (origin), refused at once when exceeded.

A FHIR server that hangs holds each thread that calls it until the deadline. Without a cap, enough calls to one
sick server would hold every thread of a worker and calls that need no FHIR server (full prefetch) would queue
behind them; with it, at most `limit` threads per worker wait on any one server and the others stay free.

A call over the cap waits briefly for a slot (WAIT_SECONDS): a healthy server frees one within milliseconds, so a
burst of calls to it is queued rather than refused; a sick one does not, and the call is refused after the wait.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

WAIT_SECONDS = 0.1


class BulkheadFull(Exception):
    """This worker already has `limit` calls in flight to that FHIR server."""


class Bulkhead:
    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._slots: dict[str, threading.BoundedSemaphore] = {}
        self._lock = threading.Lock()

    def _semaphore(self, origin: str) -> threading.BoundedSemaphore:
        with self._lock:
            semaphore = self._slots.get(origin)
            if semaphore is None:
                semaphore = self._slots[origin] = threading.BoundedSemaphore(self.limit)
            return semaphore

    @contextmanager
    def slot(self, origin: str, wait: float = WAIT_SECONDS) -> Iterator[None]:
        semaphore = self._semaphore(origin)
        if not semaphore.acquire(timeout=max(wait, 0.0)):
            raise BulkheadFull(origin)
        try:
            yield
        finally:
            semaphore.release()


__all__ = ["Bulkhead", "BulkheadFull"]
