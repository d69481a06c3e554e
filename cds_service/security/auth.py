"""Who may call: in `jwt` mode every call must carry a JWT signed by a trusted EHR (CDS Hooks 2.0.1 "Trusting CDS
Clients"); `off` is for local demos only.

A refusal is a 401 that names the class of failure (expired, wrong audience, ...) and nothing more: no key
material, no claim values, never which part of a signature check failed.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import jwt
import orjson
from jwt import PyJWK
from jwt.exceptions import (
    ExpiredSignatureError,
    ImmatureSignatureError,
    InvalidAlgorithmError,
    InvalidAudienceError,
    InvalidIssuerError,
    InvalidKeyError,
    InvalidSignatureError,
    MissingRequiredClaimError,
    PyJWTError,
)

from cds_service.caller import Caller
from cds_service.errors import ClientError
from cds_service.security.jwks import JwksCache, KeysUnavailable
from cds_service.security.trusted_issuers import TrustedIssuer, load_trusted_issuers
from cds_service.settings import Settings, SettingsError
from cds_service.store import Store

log = logging.getLogger(__name__)
REALM = 'Bearer realm="cds-services"'
LEEWAY_SECONDS = 60
MAX_LIFETIME_SECONDS = 3600  # "should be no more than an hour" (CDS Hooks best practice); bounds the replay cache
MAX_TOKEN_CHARS = 8192
MAX_JTI_CHARS = 255
MAX_PARSED_KEYS = 64
REQUIRED_CLAIMS = ["iss", "aud", "exp", "iat", "jti"]  # all REQUIRED by CDS Hooks 2.0.1


class Failure:
    """The classes of refusal; the message of a 401 is exactly one of these."""

    MISSING = "no bearer token"
    TOO_LARGE = "token too large"
    MALFORMED = "malformed token"
    ISSUER = "untrusted issuer"
    ALGORITHM = "algorithm not allowed"
    JKU = "jku not on the issuer's allowlist"
    UNKNOWN_KEY = "unknown signing key"
    KEYS_UNAVAILABLE = "issuer keys unavailable"
    SIGNATURE = "invalid signature"
    AUDIENCE = "wrong audience"
    EXPIRED = "token expired"
    NOT_YET_VALID = "token not yet valid"
    MISSING_CLAIM = "missing required claim"
    LIFETIME = "token lifetime too long"
    REPLAY = "token already used"


class AuthFailure(Exception):
    def __init__(self, failure: str, detail: str | None = None) -> None:
        super().__init__(failure)
        self.failure = failure
        self.detail = detail  # a claim name at most: safe to show

    def client_error(self) -> ClientError:
        message = f"{self.failure}: {self.detail}" if self.detail else self.failure
        header = (
            REALM
            if self.failure == Failure.MISSING
            else (f'{REALM}, error="invalid_token", error_description="{message}"')
        )
        return ClientError(401, f"authentication failed: {message}", code="login", headers={"WWW-Authenticate": header})


_DECODE_ERRORS: tuple[tuple[type[Exception], str], ...] = (
    (InvalidSignatureError, Failure.SIGNATURE),  # before DecodeError, its parent
    (ExpiredSignatureError, Failure.EXPIRED),
    (ImmatureSignatureError, Failure.NOT_YET_VALID),
    (InvalidAudienceError, Failure.AUDIENCE),
    (InvalidIssuerError, Failure.ISSUER),
    (InvalidAlgorithmError, Failure.ALGORITHM),
    (InvalidKeyError, Failure.SIGNATURE),
)


class JwtVerifier:
    def __init__(self, issuers: dict[str, TrustedIssuer], store: Store, jwks: JwksCache) -> None:
        self.issuers = issuers
        self.store = store
        self.jwks = jwks
        self._keys: dict[bytes, PyJWK] = {}  # parsed once per published key (parsing was per call)

    def _parsed_key(self, raw_key: dict[str, Any], algorithm: str) -> PyJWK:
        cache_key = orjson.dumps([algorithm, raw_key], option=orjson.OPT_SORT_KEYS)
        key = self._keys.get(cache_key)
        if key is None:
            if len(self._keys) >= MAX_PARSED_KEYS:
                self._keys.clear()  # keys rotate rarely: a full cache means churn, start again
            key = self._keys[cache_key] = PyJWK(raw_key, algorithm)  # fails when the key type does not fit
        return key

    def verify(self, authorization: str | None, audience: str) -> Caller:
        token = _bearer_token(authorization)
        header, unverified = _peek(token)
        claimed = unverified.get("iss")
        issuer = self.issuers.get(claimed) if isinstance(claimed, str) else None
        if issuer is None:
            raise AuthFailure(Failure.ISSUER)
        algorithm = header.get("alg")
        if algorithm not in issuer.algorithms:
            raise AuthFailure(Failure.ALGORITHM)
        claims = self._decode(token, self._public_key(issuer, header), algorithm, issuer, audience)
        self._check_lifetime_and_replay(issuer, claims)
        return Caller(issuer.iss, issuer.fhir_servers)

    def _public_key(self, issuer: TrustedIssuer, header: dict[str, Any]) -> dict[str, Any]:
        kid, jku = header.get("kid"), header.get("jku")
        if not isinstance(kid, str) or not kid:
            raise AuthFailure(Failure.MALFORMED, "kid")
        if jku is not None and jku not in issuer.jku_allowlist:
            raise AuthFailure(Failure.JKU)
        raw = issuer.jwks.get(kid)
        url = jku or issuer.jwks_url
        if raw is None and url:
            try:
                raw = self.jwks.find(url, kid)
            except KeysUnavailable as exc:
                raise AuthFailure(Failure.KEYS_UNAVAILABLE) from exc
        if raw is None:
            raise AuthFailure(Failure.UNKNOWN_KEY)
        if raw.get("alg", header["alg"]) != header["alg"]:
            raise AuthFailure(Failure.ALGORITHM)  # the key is published for another algorithm
        return raw

    def _decode(
        self, token: str, raw_key: dict[str, Any], algorithm: str, issuer: TrustedIssuer, audience: str
    ) -> dict[str, Any]:
        try:
            key = self._parsed_key(raw_key, algorithm)
        except PyJWTError as exc:
            raise AuthFailure(Failure.ALGORITHM) from exc
        try:
            return jwt.decode(
                token,
                key=key,
                algorithms=[algorithm],
                audience=audience,
                issuer=issuer.iss,
                leeway=LEEWAY_SECONDS,
                options={"require": REQUIRED_CLAIMS, "enforce_minimum_key_length": True},
            )
        except MissingRequiredClaimError as exc:
            raise AuthFailure(Failure.MISSING_CLAIM, exc.claim) from exc
        except PyJWTError as exc:
            failure = next((f for kind, f in _DECODE_ERRORS if isinstance(exc, kind)), Failure.MALFORMED)
            raise AuthFailure(failure) from exc

    def _check_lifetime_and_replay(self, issuer: TrustedIssuer, claims: dict[str, Any]) -> None:
        jti, exp = claims["jti"], int(claims["exp"])
        if not isinstance(jti, str) or not jti or len(jti) > MAX_JTI_CHARS:
            raise AuthFailure(Failure.MALFORMED, "jti")
        if exp > time.time() + MAX_LIFETIME_SECONDS + LEEWAY_SECONDS:
            raise AuthFailure(Failure.LIFETIME)
        if not self.store.claim_token_id(issuer.iss, jti, exp + LEEWAY_SECONDS):
            raise AuthFailure(Failure.REPLAY)


def _bearer_token(authorization: str | None) -> str:
    scheme, _, token = (authorization or "").strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise AuthFailure(Failure.MISSING)
    if len(token) > MAX_TOKEN_CHARS:
        raise AuthFailure(Failure.TOO_LARGE)
    return token


def _peek(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Header and claims WITHOUT verification: only to choose the issuer and its key, never trusted as such."""
    try:
        header = jwt.get_unverified_header(token)
        claims = jwt.decode(token, options={"verify_signature": False})
    except PyJWTError as exc:
        raise AuthFailure(Failure.MALFORMED) from exc
    if not isinstance(header, dict) or not isinstance(claims, dict):
        raise AuthFailure(Failure.MALFORMED)
    return header, claims


class Authenticator:
    def __init__(self, settings: Settings, store: Store) -> None:
        self.settings = settings
        self.verifier: JwtVerifier | None = None
        if settings.auth == "jwt":
            if settings.trusted_issuers_file is None:
                raise SettingsError("CDS_AUTH=jwt needs CDS_TRUSTED_ISSUERS")
            issuers = load_trusted_issuers(settings.trusted_issuers_file, settings.allow_http_loopback)
            self.verifier = JwtVerifier(
                issuers, store, JwksCache(settings.allow_http_loopback, settings.jwks_refresh_cooldown)
            )

    def authenticate(self, authorization: str | None, audience: str) -> Caller:
        if self.verifier is None:
            return Caller(None, self.settings.allowed_fhir_servers)
        try:
            return self.verifier.verify(authorization, audience)
        except AuthFailure as failure:
            log.warning("authentication_failed", extra={"failure": failure.failure})
            raise failure.client_error() from None
