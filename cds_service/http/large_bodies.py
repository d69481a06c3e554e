"""At most a few large hook requests per worker at once.

A 1,000-Observation chart, parsed, is some ten megabytes of Python objects, and eight threads working on eight of
them at once hold a worker's memory at that peak for good (the allocator keeps what it grew to). The threads share
one interpreter lock anyway, so queueing the large bodies costs no throughput; small ones never wait.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

LARGE_BODY_BYTES = 256 * 1024
LARGE_BODIES_AT_ONCE = 2
_gate = threading.BoundedSemaphore(LARGE_BODIES_AT_ONCE)


@contextmanager
def large_body_turn(content_length: int | None) -> Iterator[None]:
    """Wait for a turn when the body is large; go at once otherwise."""
    if content_length is None or content_length < LARGE_BODY_BYTES:
        yield
        return
    with _gate:
        yield
