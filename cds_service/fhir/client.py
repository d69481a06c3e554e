"""Outbound calls to an EHR's FHIR server: a deadline on the whole exchange, a size cap, a cap on concurrent calls
per FHIR server, no redirects, https (or allowed loopback)."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

import orjson
import requests
import urllib3
from requests.adapters import HTTPAdapter
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

from cds_service.fhir.bulkhead import WAIT_SECONDS, Bulkhead, BulkheadFull
from cds_service.fhir.url_policy import origin, scheme_problem
from cds_service.fhir.watchdog import WATCHDOG, Exchange

CHUNK = 64 * 1024
_current = threading.local()  # the exchange this thread is running, handed to the connection pool


class FhirUnavailable(Exception):
    """The FHIR server could not give us the data (reason is safe to log: no tokens, no patient data)."""


@dataclass(frozen=True)
class FhirRequestLimits:
    timeout: float
    max_bytes: int
    allow_http_loopback: bool = False
    max_concurrent_per_server: int = 4  # per worker; keep it below the threads per worker


def _attach_to_exchange(connection: Any) -> Any:
    exchange: Exchange | None = getattr(_current, "exchange", None)
    if exchange is not None:
        exchange.attach(connection)
    return connection


class _WatchedHTTPPool(HTTPConnectionPool):
    def _get_conn(self, timeout: float | None = None) -> Any:
        return _attach_to_exchange(super()._get_conn(timeout))


class _WatchedHTTPSPool(HTTPSConnectionPool):
    def _get_conn(self, timeout: float | None = None) -> Any:
        return _attach_to_exchange(super()._get_conn(timeout))


class _WatchedAdapter(HTTPAdapter):
    """Hands each connection it uses to the running exchange, so that the watchdog can cut it off."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": _WatchedHTTPPool, "https": _WatchedHTTPSPool}


class FhirClient:
    """One per worker; keeps a keep-alive session per thread."""

    def __init__(self, limits: FhirRequestLimits) -> None:
        self.limits = limits
        self.bulkhead = Bulkhead(limits.max_concurrent_per_server)
        self._local = threading.local()

    def _session(self) -> requests.Session:
        session = getattr(self._local, "session", None)
        if session is None:
            session = requests.Session()
            session.trust_env = False  # never route patient data through an environment proxy
            for prefix in ("http://", "https://"):
                session.mount(prefix, _WatchedAdapter())
            self._local.session = session
        return session

    def _read_body(self, raw: urllib3.HTTPResponse, deadline: float) -> bytearray:
        """The (decoded) body, read as it arrives (read1: whatever one socket read brings), until the deadline."""
        body = bytearray()
        while True:
            if time.monotonic() >= deadline:
                raise FhirUnavailable("FHIR server too slow (deadline passed while reading)")
            chunk = raw.read1(CHUNK, decode_content=True)
            if not chunk:
                return body
            body += chunk
            if len(body) > self.limits.max_bytes:
                raise FhirUnavailable(f"FHIR response larger than {self.limits.max_bytes} bytes")

    def get_json(self, url: str, *, token: str | None, deadline: float) -> Any:
        """GET url as FHIR JSON before `deadline` (time.monotonic()); raises FhirUnavailable."""
        if deadline - time.monotonic() <= 0:
            raise FhirUnavailable("deadline passed before the request")
        problem = scheme_problem(url, self.limits.allow_http_loopback)
        if problem:
            raise FhirUnavailable(f"refusing to call a URL that {problem}")
        server = "{}://{}:{}".format(*origin(url))
        try:
            with self.bulkhead.slot(server, wait=min(WAIT_SECONDS, deadline - time.monotonic())):
                body = self._exchange(url, token, deadline)
        except BulkheadFull as exc:
            raise FhirUnavailable(
                f"{self.limits.max_concurrent_per_server} calls to this FHIR server are already waiting"
            ) from exc
        try:
            return orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise FhirUnavailable("FHIR server sent something that is not JSON") from exc

    def _exchange(self, url: str, token: str | None, deadline: float) -> bytearray:
        """The body of a 200 answer, the whole exchange before `deadline` (the watchdog cuts it off then)."""
        headers = {"Accept": "application/fhir+json, application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        exchange = Exchange(deadline)
        _current.exchange = exchange
        WATCHDOG.watch(exchange)
        remaining = max(deadline - time.monotonic(), 0.001)
        try:
            with self._session().get(
                url, headers=headers, timeout=(remaining, remaining), stream=True, allow_redirects=False
            ) as response:
                if response.status_code != 200:
                    raise FhirUnavailable(f"FHIR server answered HTTP {response.status_code}")
                body = self._read_body(response.raw, deadline)
            if exchange.expired:  # cut off by the watchdog after a read that ended quietly
                raise FhirUnavailable("FHIR server too slow (deadline passed)")
            return body
        except (requests.Timeout, urllib3.exceptions.TimeoutError) as exc:
            raise FhirUnavailable("FHIR server too slow (timeout)") from exc
        except (requests.RequestException, urllib3.exceptions.HTTPError, OSError) as exc:
            if exchange.expired:
                raise FhirUnavailable("FHIR server too slow (deadline passed)") from exc
            raise FhirUnavailable(f"FHIR server unreachable ({type(exc).__name__})") from exc
        finally:
            exchange.finish()
            _current.exchange = None


__all__ = ["FhirClient", "FhirRequestLimits", "FhirUnavailable"]
