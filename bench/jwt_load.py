"""JWT on, as deployed: a trusted issuer with an ES384 key, and a file of pre-signed tokens, each with its own jti,
that wrk sends one per request (bench/wrk.py's Lua), so that every call is verified and recorded in the replay
cache. The baselines get the same headers."""

from __future__ import annotations

import uuid
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import jwt
import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm

ISSUER = "https://ehr.bench.example"
KID = "bench-es384"
LIFETIME_S = 3000  # under the service's one-hour maximum
MAX_RPS = 2500  # tokens signed per second of W1-jwt runs: more than the service answers on this kind of machine


@dataclass
class TokenSupply:
    """Tokens in a file, one a line; `offset` is where the next run starts (a token is never sent twice)."""

    path: Path
    count: int
    offset: int = 0

    def next_token(self) -> str:
        with self.path.open(encoding="ascii") as lines:
            for index, line in enumerate(lines):
                if index == self.offset:
                    self.offset += 1
                    return line.strip()
        raise RuntimeError("bench: out of pre-signed tokens")

    def take(self, used: int) -> None:
        self.offset += used
        if self.offset >= self.count:
            raise RuntimeError(f"bench: {self.count} pre-signed tokens were not enough; lower --duration")


def _sign(job: tuple[bytes, str, int, int]) -> list[str]:
    pem, audience, now, count = job
    key = serialization.load_pem_private_key(pem, password=None)
    return [
        jwt.encode(
            {"iss": ISSUER, "aud": audience, "iat": now, "exp": now + LIFETIME_S, "jti": str(uuid.uuid4())},
            key,  # type: ignore[arg-type]
            algorithm="ES384",
            headers={"kid": KID, "typ": "JWT"},
        )
        for _ in range(count)
    ]


def prepare(
    tmp: Path, audience: str, count: int, now: int, fhir_servers: list[str]
) -> tuple[dict[str, str], TokenSupply]:
    """The service's environment for JWT on (its trusted issuers file) and `count` tokens for `audience`."""
    private = ec.generate_private_key(ec.SECP384R1())
    jwk = {**ECAlgorithm.to_jwk(private.public_key(), as_dict=True), "kid": KID, "use": "sig", "alg": "ES384"}
    issuers = tmp / "trusted-issuers.yaml"
    issuer = {"iss": ISSUER, "algorithms": ["ES384"], "jwks": {"keys": [jwk]}, "fhir_servers": fhir_servers}
    issuers.write_text(yaml.safe_dump({"issuers": [issuer]}), encoding="utf-8")
    pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    parts = 8
    with ProcessPoolExecutor(2) as pool:
        batches = list(pool.map(_sign, [(pem, audience, now, count // parts + 1)] * parts))
    tokens = [token for batch in batches for token in batch]
    path = tmp / "tokens.txt"
    path.write_text("\n".join(tokens) + "\n", encoding="ascii")
    env = {"CDS_AUTH": "jwt", "CDS_TRUSTED_ISSUERS": str(issuers)}
    return env, TokenSupply(path, len(tokens))
