"""Every environment variable the service reads, parsed once into one frozen object."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from cds_service.url_policy import base_url_problem

REPO_ROOT = Path(__file__).resolve().parent.parent
AUTH_MODES = ("jwt", "off")


_N = TypeVar("_N", int, float)


class SettingsError(ValueError):
    """An environment variable has a value the service cannot run with."""


@dataclass(frozen=True)
class Settings:
    public_url: str = "http://127.0.0.1:8080"
    auth: str = "jwt"
    database_url: str = f"sqlite:///{REPO_ROOT / 'var' / 'cds-service.db'}"
    allowed_fhir_servers: tuple[str, ...] = ()
    fhir_timeout: float = 0.35
    fhir_max_pages: int = 10
    fhir_max_response_bytes: int = 5_000_000
    max_request_bytes: int = 5_000_000
    content_dir: Path = REPO_ROOT / "content"
    cards_dir: Path = REPO_ROOT / "cards"
    guide_id: str = "weakness"
    cors_origins: tuple[str, ...] = field(default=("*",))
    patient_hash_key: str | None = None
    trusted_issuers_file: Path | None = None  # CDS_TRUSTED_ISSUERS: required with auth=jwt
    allow_http_loopback: bool = False  # plain http to 127.0.0.1/localhost/::1 (tests, local demos)
    jwks_refresh_cooldown: float = 30.0  # at most one JWKS refetch per URL per this many seconds on unknown kid
    # Test rigs only: honour the X-CDS-Evaluation-Time header so a scenario can fix "now". Never in production.
    allow_clock_header: bool = False

    @property
    def base_url(self) -> str:
        return self.public_url.rstrip("/")


def _positive(env: Mapping[str, str], name: str, default: _N, kind: type[_N]) -> _N:
    raw = env.get(name)
    if raw in (None, ""):
        return default
    try:
        value = kind(raw)
    except ValueError as exc:
        raise SettingsError(f"{name} must be {'an integer' if kind is int else 'a number'}, got {raw!r}") from exc
    if value <= 0:
        raise SettingsError(f"{name} must be positive, got {raw!r}")
    return value


def _float(env: Mapping[str, str], name: str, default: float) -> float:
    return _positive(env, name, default, float)


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    return _positive(env, name, default, int)


def _list(env: Mapping[str, str], name: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in env.get(name, "").split(",") if part.strip())


def _checked_urls(urls: tuple[str, ...], name: str, allow_http_loopback: bool) -> tuple[str, ...]:
    for url in urls:
        problem = base_url_problem(url, allow_http_loopback)
        if problem:
            raise SettingsError(f"{name}: {url!r} {problem}")
    return urls


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Read the CDS_* variables (see the README's configuration table)."""
    env = os.environ if env is None else env
    defaults = Settings()
    auth = env.get("CDS_AUTH", "jwt").strip().lower() or "jwt"
    if auth not in AUTH_MODES:
        raise SettingsError(f"CDS_AUTH must be one of {', '.join(AUTH_MODES)}, got {auth!r}")
    public_url = env.get("CDS_PUBLIC_URL", defaults.public_url).strip()
    if not public_url.startswith(("http://", "https://")):
        raise SettingsError(f"CDS_PUBLIC_URL must be an absolute http(s) URL, got {public_url!r}")
    cors_default = ("*",) if auth == "off" else ()
    cors_origins = _list(env, "CDS_CORS_ORIGINS") or cors_default
    if auth == "jwt" and "*" in cors_origins:
        raise SettingsError("CDS_CORS_ORIGINS must list the EHR origins explicitly when CDS_AUTH=jwt (no '*')")
    allow_http_loopback = env.get("CDS_ALLOW_HTTP_LOOPBACK", "") == "1"
    issuers_file = env.get("CDS_TRUSTED_ISSUERS", "").strip()
    if auth == "jwt" and not issuers_file:
        raise SettingsError("CDS_AUTH=jwt needs CDS_TRUSTED_ISSUERS=<YAML file of trusted EHR issuers> "
                            "(see docs/security.md); CDS_AUTH=off is for local demos only")
    return Settings(
        public_url=public_url,
        auth=auth,
        database_url=env.get("CDS_DATABASE_URL", "").strip() or defaults.database_url,
        allowed_fhir_servers=_checked_urls(_list(env, "CDS_ALLOWED_FHIR_SERVERS"), "CDS_ALLOWED_FHIR_SERVERS",
                                           allow_http_loopback),
        fhir_timeout=_float(env, "CDS_FHIR_TIMEOUT", defaults.fhir_timeout),
        fhir_max_pages=_int(env, "CDS_FHIR_MAX_PAGES", defaults.fhir_max_pages),
        fhir_max_response_bytes=_int(env, "CDS_FHIR_MAX_RESPONSE_BYTES", defaults.fhir_max_response_bytes),
        max_request_bytes=_int(env, "CDS_MAX_REQUEST_BYTES", defaults.max_request_bytes),
        content_dir=Path(env.get("CDS_CONTENT_DIR", "") or defaults.content_dir),
        cards_dir=Path(env.get("CDS_CARDS_DIR", "") or defaults.cards_dir),
        cors_origins=cors_origins,
        patient_hash_key=env.get("CDS_PATIENT_HASH_KEY") or None,
        trusted_issuers_file=Path(issuers_file) if issuers_file else None,
        allow_http_loopback=allow_http_loopback,
        jwks_refresh_cooldown=_float(env, "CDS_JWKS_REFRESH_COOLDOWN", defaults.jwks_refresh_cooldown),
        allow_clock_header=env.get("CDS_ALLOW_CLOCK_HEADER", "") == "1",
    )
