"""Outbound calls to an EHR's FHIR server: hard deadline, size cap, no redirects, https (or allowed loopback)."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

import orjson
import requests
import urllib3

from cds_service.fhir.url_policy import scheme_problem

CHUNK = 64 * 1024


class FhirUnavailable(Exception):
    """The FHIR server could not give us the data (reason is safe to log: no tokens, no patient data)."""


@dataclass(frozen=True)
class FhirRequestLimits:
    timeout: float
    max_bytes: int
    allow_http_loopback: bool = False


class FhirClient:
    """One per worker; keeps a keep-alive session per thread."""

    def __init__(self, limits: FhirRequestLimits) -> None:
        self.limits = limits
        self._local = threading.local()

    def _session(self) -> requests.Session:
        session = getattr(self._local, "session", None)
        if session is None:
            session = requests.Session()
            session.trust_env = False  # never route patient data through an environment proxy
            self._local.session = session
        return session

    def _read_body(self, raw: urllib3.HTTPResponse, deadline: float) -> bytearray:
        """The (decoded) body, read as it arrives, before `deadline`.

        read1 returns whatever one socket read brings, and each read may wait only until the deadline: a server that
        drips its answer a byte at a time is cut off at the deadline. (A read of a fixed-size chunk waits for the
        whole chunk: a drip held a sync worker until gunicorn's 30 s timeout killed it.)
        """
        sock = getattr(raw.connection, "sock", None)
        body = bytearray()
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise FhirUnavailable("FHIR server too slow (deadline passed while reading)")
            if sock is not None:
                sock.settimeout(left)
            chunk = raw.read1(CHUNK, decode_content=True)
            if not chunk:
                return body
            body += chunk
            if len(body) > self.limits.max_bytes:
                raise FhirUnavailable(f"FHIR response larger than {self.limits.max_bytes} bytes")

    def get_json(self, url: str, *, token: str | None, deadline: float) -> Any:
        """GET url as FHIR JSON before `deadline` (time.monotonic()); raises FhirUnavailable."""
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise FhirUnavailable("deadline passed before the request")
        problem = scheme_problem(url, self.limits.allow_http_loopback)
        if problem:
            raise FhirUnavailable(f"refusing to call a URL that {problem}")
        headers = {"Accept": "application/fhir+json, application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        try:
            with self._session().get(
                url, headers=headers, timeout=(remaining, remaining), stream=True, allow_redirects=False
            ) as response:
                if response.status_code != 200:
                    raise FhirUnavailable(f"FHIR server answered HTTP {response.status_code}")
                body = self._read_body(response.raw, deadline)
        except (requests.Timeout, urllib3.exceptions.TimeoutError) as exc:
            raise FhirUnavailable("FHIR server too slow (timeout)") from exc
        except (requests.RequestException, urllib3.exceptions.HTTPError) as exc:
            raise FhirUnavailable(f"FHIR server unreachable ({type(exc).__name__})") from exc
        try:
            return orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise FhirUnavailable("FHIR server sent something that is not JSON") from exc


__all__ = ["FhirClient", "FhirRequestLimits", "FhirUnavailable"]
