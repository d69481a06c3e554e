"""Every environment variable the service reads, parsed once into one frozen object.

`Settings` is the one schema: each field is the variable CDS_<FIELD> (see `ENV_NAMES`) and its validator the rule
for it. `Settings(...)` alone never reads the environment; `load_settings` feeds it the CDS_* variables.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any

from pydantic import ValidationError, ValidationInfo, field_validator, model_validator
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, NoDecode, PydanticBaseSettingsSource, SettingsConfigDict
from sqlalchemy.engine import make_url
from typing_extensions import override

from cds_service.fhir.url_policy import base_url_problem

REPO_ROOT = Path(__file__).resolve().parent.parent
AUTH_MODES = ("jwt", "off")
DATABASE_DRIVERS = ("sqlite", "sqlite+pysqlite", "postgresql", "postgresql+psycopg")

log = logging.getLogger("cds_service.settings")


class SettingsError(ValueError):
    """An environment variable has a value the service cannot run with."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(frozen=True, extra="forbid", validate_default=False)

    public_url: str = "http://127.0.0.1:8080"
    auth: str = "jwt"
    database_url: str = f"sqlite:///{REPO_ROOT / 'var' / 'cds-service.db'}"
    allowed_fhir_servers: Annotated[tuple[str, ...], NoDecode] = ()
    fhir_timeout: float = 0.35
    fhir_max_pages: int = 50
    fhir_max_response_bytes: int = 5_000_000
    fhir_max_concurrent: int = 4  # per worker and FHIR server; more calls get 412 at once (fhir/bulkhead.py)
    max_request_bytes: int = 5_000_000
    content_dir: Path = REPO_ROOT / "content"
    cards_dir: Path = REPO_ROOT / "cards"
    guide_id: str = "weakness"  # not configurable
    cors_origins: Annotated[tuple[str, ...], NoDecode] = ("*",)
    patient_hash_key: str | None = None
    trusted_issuers_file: Path | None = None  # CDS_TRUSTED_ISSUERS: required with auth=jwt
    allow_http_loopback: bool = False  # plain http to 127.0.0.1/localhost/::1 (tests, local demos)
    jwks_refresh_cooldown: float = 30.0  # at most one JWKS refetch per URL per this many seconds on unknown kid
    # Test rigs only: honour the X-CDS-Evaluation-Time header so a scenario can fix "now". Never in production.
    allow_clock_header: bool = False
    workers: int = 0  # gunicorn workers; 0: the CPU count (min 2)
    threads: int = 0  # threads per worker; 0: DEFAULT_THREADS
    store_override_comments: bool = False  # clinician free text, may hold patient details: kept only when "1"
    metrics: str = "on"  # CDS_METRICS: on (GET /metrics on the service port), off, or a port of its own

    @property
    def base_url(self) -> str:
        return self.public_url.rstrip("/")

    @classmethod
    @override
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings,)  # the environment comes in through load_settings, never implicitly

    @field_validator("public_url", mode="before")
    @classmethod
    def _public_url(cls, value: Any) -> Any:
        url = value.strip() if isinstance(value, str) else value
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise SettingsError(f"CDS_PUBLIC_URL must be an absolute http(s) URL, got {value!r}")
        return url

    @field_validator("auth", mode="before")
    @classmethod
    def _auth(cls, value: Any) -> Any:
        auth = (value.strip().lower() or "jwt") if isinstance(value, str) else value
        if auth not in AUTH_MODES:
            raise SettingsError(f"CDS_AUTH must be one of {', '.join(AUTH_MODES)}, got {auth!r}")
        return auth

    @field_validator("database_url", mode="before")
    @classmethod
    def _database_url(cls, value: Any) -> Any:
        url = value.strip() if isinstance(value, str) else value
        problem = _database_problem(url) if isinstance(url, str) else "is not a string"
        if problem:
            raise SettingsError(f"CDS_DATABASE_URL {problem}, got {_redacted(value)!r}")
        return url

    @field_validator("allowed_fhir_servers", "cors_origins", mode="before")
    @classmethod
    def _comma_list(cls, value: Any) -> Any:
        return _split(value) if isinstance(value, str) else value

    @field_validator("fhir_timeout", "jwks_refresh_cooldown", mode="before")
    @classmethod
    def _positive_number(cls, value: Any, info: ValidationInfo) -> float:
        try:
            number = float(value)
        except (TypeError, ValueError):
            number = math.nan
        if isinstance(value, bool) or not math.isfinite(number) or number <= 0:
            raise SettingsError(f"{_env_name(info)} must be a finite positive number, got {value!r}")
        return number

    @field_validator(
        "fhir_max_pages",
        "fhir_max_response_bytes",
        "fhir_max_concurrent",
        "max_request_bytes",
        "workers",
        "threads",
        mode="before",
    )
    @classmethod
    def _integer(cls, value: Any, info: ValidationInfo) -> int:
        least, kind = (0, "a non-negative") if info.field_name in ("workers", "threads") else (1, "a positive")
        try:
            number = value if isinstance(value, int) and not isinstance(value, bool) else int(str(value))
        except ValueError:
            number = least - 1
        if number < least:
            raise SettingsError(f"{_env_name(info)} must be {kind} integer, got {value!r}")
        return number

    @field_validator("trusted_issuers_file", mode="before")
    @classmethod
    def _optional_path(cls, value: Any) -> Any:
        return (value.strip() or None) if isinstance(value, str) else value

    @field_validator("metrics", mode="before")
    @classmethod
    def _metrics(cls, value: Any) -> Any:
        mode = value.strip().lower() if isinstance(value, str) else value
        if mode in ("on", "off") or (isinstance(mode, str) and mode.isdigit() and 0 < int(mode) < 65536):
            return mode
        raise SettingsError(f"CDS_METRICS must be on, off or a port number (1-65535), got {value!r}")

    @property
    def metrics_port(self) -> int | None:
        return int(self.metrics) if self.metrics.isdigit() else None

    @field_validator("allow_http_loopback", "allow_clock_header", "store_override_comments", mode="before")
    @classmethod
    def _flag(cls, value: Any) -> Any:
        return value == "1" if isinstance(value, str) else value  # only "1" switches a flag on, as always

    @model_validator(mode="after")
    def _fhir_servers_allowed(self) -> Settings:
        for url in self.allowed_fhir_servers:
            problem = base_url_problem(url, self.allow_http_loopback)
            if problem:
                raise SettingsError(f"CDS_ALLOWED_FHIR_SERVERS: {url!r} {problem}")
        return self


ENV_NAMES: dict[str, str] = {name: f"CDS_{name.upper()}" for name in Settings.model_fields if name != "guide_id"}
ENV_NAMES["trusted_issuers_file"] = "CDS_TRUSTED_ISSUERS"


def _split(value: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in value.split(",") if part.strip())


def _env_name(info: ValidationInfo) -> str:
    return ENV_NAMES.get(info.field_name or "", info.field_name or "?")


def _redacted(url: object) -> object:
    """A database URL without its password, for an error message."""
    try:
        return make_url(str(url)).render_as_string(hide_password=True)
    except Exception:  # unparseable: no password to find in it
        return url


def _database_problem(url: str) -> str | None:
    try:
        parsed = make_url(url)
    except Exception:  # sqlalchemy's ArgumentError; ValueError for a bad port
        return "is not a database URL"
    if parsed.drivername not in DATABASE_DRIVERS:
        return f"must use one of the schemes {', '.join(DATABASE_DRIVERS)}"
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None  # PostgreSQL: reaching it is the store's business at start-up
    if parsed.query.get("uri") == "true":
        return None  # a file: URI, which SQLite resolves itself
    return _sqlite_file_problem(Path(parsed.database or ""))


def _sqlite_file_problem(path: Path) -> str | None:
    """What stops the store creating (store.make_engine makes the folders) and writing this SQLite file."""
    if path.exists():
        return None if path.is_file() and os.access(path, os.W_OK) else f"names {str(path)!r}, not a writable file"
    folder = path.absolute().parent
    while not folder.exists():
        folder = folder.parent
    # os.access says yes to root everywhere but a read-only mount; a file system without blocks is /proc, /sys...
    if not folder.is_dir() or not os.access(folder, os.W_OK | os.X_OK) or os.statvfs(folder).f_blocks == 0:
        return f"needs a writable folder for {str(path)!r}, but {str(folder)!r} is not one"
    return None


class _EnvironmentSource(PydanticBaseSettingsSource):
    """The CDS_* variables of a mapping as field values; an empty variable means the default (CDS_PUBLIC_URL aside)."""

    def __init__(self, settings_cls: type[BaseSettings], env: Mapping[str, str], fields: tuple[str, ...]) -> None:
        super().__init__(settings_cls)
        self.env, self.fields = env, fields

    @override
    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return self.env.get(ENV_NAMES[field_name]), field_name, False

    @override
    def __call__(self) -> dict[str, Any]:
        values = {name: self.get_field_value(self.settings_cls.model_fields[name], name)[0] for name in self.fields}
        return {name: raw for name, raw in values.items() if raw is not None and (raw != "" or name == "public_url")}


def _validated(env: Mapping[str, str], fields: tuple[str, ...]) -> Settings:
    try:
        return Settings(**_EnvironmentSource(Settings, env, fields)())
    except ValidationError as exc:
        error = exc.errors()[0]
        cause = error.get("ctx", {}).get("error")
        if isinstance(cause, SettingsError):
            raise cause from None
        name = ENV_NAMES.get(str(error["loc"][0]), str(error["loc"][0])) if error["loc"] else "settings"
        raise SettingsError(f"{name}: {error['msg']}") from None


def load_settings(env: Mapping[str, str] | None = None, *, for_server: bool = True) -> Settings:
    """Read the CDS_* variables (see the README's configuration table).

    for_server=False (commands that only read content) skips the checks of what serving with CDS_AUTH=jwt needs.
    """
    env = os.environ if env is None else env
    for name in sorted(set(env) - set(ENV_NAMES.values())):
        if name.startswith("CDS_"):
            log.warning("unknown_setting", extra={"variable": name})  # the name only: a value may be a secret
    settings = _validated(env, tuple(ENV_NAMES))
    if not _split(env.get("CDS_CORS_ORIGINS", "")):
        settings = settings.model_copy(update={"cors_origins": ("*",) if settings.auth == "off" else ()})
    if for_server and settings.auth == "jwt":
        if "*" in settings.cors_origins:
            raise SettingsError("CDS_CORS_ORIGINS must list the EHR origins explicitly when CDS_AUTH=jwt (no '*')")
        if settings.trusted_issuers_file is None:
            raise SettingsError(
                "CDS_AUTH=jwt needs CDS_TRUSTED_ISSUERS=<YAML file of trusted EHR issuers> "
                "(see docs/security.md); CDS_AUTH=off is for local demos only"
            )
    return settings


def server_counts(env: Mapping[str, str] | None = None) -> tuple[int, int]:
    """CDS_WORKERS and CDS_THREADS (0: the default), without the checks the rest of the settings need."""
    settings = _validated(os.environ if env is None else env, ("workers", "threads"))
    return settings.workers, settings.threads
