"""The EHRs this deployment trusts (CDS_TRUSTED_ISSUERS): who they are, where their keys are, which FHIR servers
they may send. Loaded and checked once at start-up; any problem stops the service with file, line and reason."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jwt import PyJWK
from jwt.exceptions import PyJWTError
from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from cds_service.fhir.url_policy import base_url_problem
from cds_service.validation import Strict, first_error
from cds_service.yaml_source import ContentError, YamlDocument, load_yaml

DEFAULT_ALGORITHMS = ("ES384", "RS384")  # CDS Hooks: RECOMMENDED; never "none", never HMAC
OPTIONAL_ALGORITHMS = ("ES256", "RS256")
ASYMMETRIC_KEY_TYPES = ("EC", "RSA")


@dataclass(frozen=True)
class TrustedIssuer:
    iss: str
    algorithms: tuple[str, ...]
    fhir_servers: tuple[str, ...]
    jwks: dict[str, dict[str, Any]]  # inline public keys by kid (pinned; consulted first)
    jwks_url: str | None
    jku_allowlist: tuple[str, ...]


def usable_jwk(raw: Any) -> str | None:
    """Why a JWK cannot verify CDS Hooks tokens (None when it can): asymmetric, with a kid, for signing."""
    if not isinstance(raw, dict):
        return "must be a JSON object"
    if not isinstance(raw.get("kid"), str) or not raw["kid"]:
        return "needs a kid"
    if raw.get("kty") not in ASYMMETRIC_KEY_TYPES:
        return f"kty must be one of {', '.join(ASYMMETRIC_KEY_TYPES)}"
    if raw.get("use", "sig") != "sig":
        return "use must be sig"
    if "d" in raw:
        return "is a private key: publish only the public part"
    try:
        PyJWK(raw)
    except PyJWTError as exc:
        return f"is not a valid key ({type(exc).__name__})"
    return None


class _Url(fields.String):
    def __init__(self, allow_http_loopback: bool, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.allow_http_loopback = allow_http_loopback

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        url = super()._deserialize(value, attr, data, **kwargs)
        problem = base_url_problem(url, self.allow_http_loopback)
        if problem:
            raise ValidationError(f"{url!r} {problem}")
        return url


def _issuer_schema(allow_http_loopback: bool) -> type[Schema]:
    def url(**kwargs: Any) -> _Url:
        return _Url(allow_http_loopback, **kwargs)

    class JwksSchema(Strict):
        keys = fields.List(fields.Dict(), required=True, validate=validate.Length(min=1))

        @validates_schema
        def _keys_usable(self, data: dict[str, Any], **_: Any) -> None:
            kids = [key.get("kid") for key in data["keys"]]
            for index, key in enumerate(data["keys"]):
                problem = usable_jwk(key)
                if problem:
                    raise ValidationError({"keys": {index: [f"key {problem}"]}})
                if kids.count(key["kid"]) > 1:
                    raise ValidationError({"keys": {index: [f"kid {key['kid']!r} appears twice"]}})

    class IssuerSchema(Strict):
        iss = fields.String(required=True, validate=validate.Length(min=1))
        jwks = fields.Nested(JwksSchema)
        jwks_url = url()
        jku_allowlist = fields.List(url(), validate=validate.Length(min=1))
        fhir_servers = fields.List(url(), required=True)
        algorithms = fields.List(
            fields.String(validate=validate.OneOf(DEFAULT_ALGORITHMS + OPTIONAL_ALGORITHMS)),
            validate=validate.Length(min=1),
        )

        @validates_schema
        def _one_key_source(self, data: dict[str, Any], **_: Any) -> None:
            if "jwks" in data and "jwks_url" in data:
                raise ValidationError("give either jwks (inline keys) or jwks_url, not both")
            if not any(source in data for source in ("jwks", "jwks_url", "jku_allowlist")):
                raise ValidationError("needs a key source: jwks, jwks_url or jku_allowlist")

    class FileSchema(Strict):
        issuers = fields.List(fields.Nested(IssuerSchema), required=True, validate=validate.Length(min=1))

    return FileSchema


def _issuer(data: dict[str, Any]) -> TrustedIssuer:
    return TrustedIssuer(
        iss=data["iss"],
        algorithms=tuple(dict.fromkeys(data.get("algorithms", DEFAULT_ALGORITHMS))),
        fhir_servers=tuple(data["fhir_servers"]),
        jwks={key["kid"]: key for key in data.get("jwks", {}).get("keys", [])},
        jwks_url=data.get("jwks_url"),
        jku_allowlist=tuple(data.get("jku_allowlist", ())),
    )


def parse_trusted_issuers(doc: YamlDocument, allow_http_loopback: bool) -> dict[str, TrustedIssuer]:
    try:
        loaded = _issuer_schema(allow_http_loopback)().load(doc.data if doc.data is not None else {})
    except ValidationError as exc:
        path, message = first_error(exc.messages)
        raise doc.error(path, message) from exc
    issuers: dict[str, TrustedIssuer] = {}
    for index, data in enumerate(loaded["issuers"]):
        if data["iss"] in issuers:
            raise doc.error(("issuers", index, "iss"), f"issuer {data['iss']!r} is listed twice")
        issuers[data["iss"]] = _issuer(data)
    return issuers


def load_trusted_issuers(file: Path, allow_http_loopback: bool) -> dict[str, TrustedIssuer]:
    """Trusted issuers by `iss`; raises ContentError naming file, line and problem."""
    if not file.is_file():
        raise ContentError(file, None, "CDS_TRUSTED_ISSUERS names no readable file")
    return parse_trusted_issuers(load_yaml(file), allow_http_loopback)
