"""An EHR (and an attacker) for tests: signing keys made with `cryptography`, JWTs as CDS clients send them, forged
tokens, JWK Sets and the trusted-issuers file the service reads."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

CURVES = {"ES256": ec.SECP256R1(), "ES384": ec.SECP384R1()}


@dataclass(frozen=True)
class SigningKey:
    kid: str
    alg: str
    private: Any

    def public_jwk(self, with_alg: bool = True) -> dict[str, Any]:
        public = self.private.public_key()
        algorithm = RSAAlgorithm if self.alg.startswith("RS") else ECAlgorithm
        jwk: dict[str, Any] = {**algorithm.to_jwk(public, as_dict=True), "kid": self.kid, "use": "sig"}
        if with_alg:
            jwk["alg"] = self.alg
        return jwk

    def public_pem(self) -> bytes:
        return self.private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )


def ec_key(kid: str, alg: str = "ES384") -> SigningKey:
    return SigningKey(kid, alg, ec.generate_private_key(CURVES[alg]))


def rsa_key(kid: str, alg: str = "RS384") -> SigningKey:
    return SigningKey(kid, alg, rsa.generate_private_key(public_exponent=65537, key_size=2048))


def jwks(*keys: SigningKey) -> dict[str, Any]:
    return {"keys": [key.public_jwk() for key in keys]}


def claims(iss: str, aud: str | list[str], lifetime: int = 300, **extra: Any) -> dict[str, Any]:
    """The claims a CDS client sends (CDS Hooks 2.0.1); pass `name=None` to leave a claim out."""
    now = int(time.time())
    body: dict[str, Any] = {"iss": iss, "aud": aud, "exp": now + lifetime, "iat": now, "jti": str(uuid.uuid4())}
    body.update(extra)
    return {name: value for name, value in body.items() if value is not None}


def sign(key: SigningKey, payload: dict[str, Any], alg: str | None = None, **header: Any) -> str:
    """A JWT signed with `key`; header entries given as None are left out (e.g. kid=None)."""
    headers = {name: value for name, value in {"kid": key.kid, "typ": "JWT", **header}.items() if value is not None}
    return jwt.encode(payload, key.private, algorithm=alg or key.alg, headers=headers)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _segments(header: dict[str, Any], payload: dict[str, Any]) -> str:
    return f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(payload).encode())}"


def forge_unsigned(kid: str, payload: dict[str, Any]) -> str:
    """alg "none": no signature at all."""
    return _segments({"alg": "none", "typ": "JWT", "kid": kid}, payload) + "."


def forge_hmac(secret: bytes, kid: str, payload: dict[str, Any], alg: str = "HS384") -> str:
    """An HMAC token keyed with something public (the classic algorithm-confusion attack), signed by hand because
    PyJWT itself refuses to use a PEM key as an HMAC secret."""
    digest = {"HS256": hashlib.sha256, "HS384": hashlib.sha384}[alg]
    signing_input = _segments({"alg": alg, "typ": "JWT", "kid": kid}, payload)
    return f"{signing_input}.{_b64(hmac.new(secret, signing_input.encode(), digest).digest())}"


def write_issuers(path: Path, issuers: list[dict[str, Any]]) -> Path:
    path.write_text(yaml.safe_dump({"issuers": issuers}, sort_keys=False), encoding="utf-8")
    return path
