"""Public keys of trusted issuers fetched from a JWK Set URL (`jwks_url`, or an allow-listed `jku`).

One cache per URL and worker: the set is refetched after LIFESPAN seconds, or sooner when a token names a `kid` the
cached set lacks (key rotation) - but at most once per cooldown, so unknown-kid tokens cannot hammer the EHR.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from jwt import PyJWKSet
from jwt.exceptions import PyJWTError

from cds_service.fhir.client import FhirClient, FhirRequestLimits, FhirUnavailable
from cds_service.security.trusted_issuers import usable_jwk

log = logging.getLogger(__name__)
LIFESPAN = 300.0
FETCH_TIMEOUT = 2.0
MAX_JWKS_BYTES = 256 * 1024


class KeysUnavailable(Exception):
    """The JWK Set could not be fetched (and no earlier copy is cached)."""


class RemoteJwks:
    def __init__(self, url: str, client: FhirClient, cooldown: float) -> None:
        self.url = url
        self.client = client
        self.cooldown = cooldown
        self._keys: dict[str, dict[str, Any]] | None = None
        self._fetched_at = 0.0
        self._last_attempt = -float("inf")
        self._lock = threading.Lock()

    def find(self, kid: str) -> dict[str, Any] | None:
        """The public JWK with this kid, refetching the set when stale or when the kid is unknown."""
        with self._lock:
            now = time.monotonic()
            stale = self._keys is None or now - self._fetched_at > LIFESPAN
            rotated = self._keys is not None and kid not in self._keys and now - self._last_attempt >= self.cooldown
            if stale or rotated:
                self._refresh(now)
            if self._keys is None:
                raise KeysUnavailable(self.url)
            return self._keys.get(kid)

    def _refresh(self, now: float) -> None:
        if now - self._last_attempt < self.cooldown:
            return  # rate-limited: keep whatever is cached
        self._last_attempt = now
        try:
            document = self.client.get_json(self.url, token=None, deadline=now + FETCH_TIMEOUT)
            PyJWKSet.from_dict(document)  # raises when the set holds no usable key
        except (FhirUnavailable, PyJWTError, AttributeError, TypeError) as exc:
            log.warning("jwks_fetch_failed", extra={"reason": type(exc).__name__, "cached": self._keys is not None})
            return
        keys = {raw["kid"]: raw for raw in document.get("keys", []) if usable_jwk(raw) is None}
        if not keys:
            log.warning("jwks_fetch_failed", extra={"reason": "no usable keys", "cached": self._keys is not None})
            return
        self._keys, self._fetched_at = keys, now


class JwksCache:
    """The RemoteJwks of every URL this worker has used (only configured or allow-listed URLs ever get here)."""

    def __init__(self, allow_http_loopback: bool, cooldown: float) -> None:
        self.client = FhirClient(FhirRequestLimits(FETCH_TIMEOUT, MAX_JWKS_BYTES, allow_http_loopback))
        self.cooldown = cooldown
        self._sets: dict[str, RemoteJwks] = {}
        self._lock = threading.Lock()

    def find(self, url: str, kid: str) -> dict[str, Any] | None:
        with self._lock:
            remote = self._sets.get(url)
            if remote is None:
                remote = self._sets[url] = RemoteJwks(url, self.client, self.cooldown)
        return remote.find(kid)
