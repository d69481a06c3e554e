"""The JWT door (CDS_AUTH=jwt): an attack matrix of real signed or forged tokens against the deployed server.

Every refusal is a 401 whose OperationOutcome names the class of failure only; every acceptance is a real call.
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

from cds_service.security.auth import Failure
from tests.support import jwt_kit
from tests.support.jwt_kit import SigningKey, claims, sign
from tests.support.requests_factory import ENCOUNTER_START, PATIENT_VIEW, hook_request
from tests.support.service_server import ServiceServer
from tests.support.stub_fhir import Reply, StubFhirServer

EXAMPLES = Path(__file__).resolve().parent / "fixtures" / "cds-hooks-examples"
EHR = "https://ehr-a.example.org"
SANDBOX = "https://sandbox.cds-hooks.org"
ROTATING = "https://ehr-c.example.org"
ES256_ISSUER = "https://ehr-d.example.org"
SPEC_ISSUER = "https://fhir-ehr.example.com/"
SPEC_JKU = "https://fhir-ehr.example.com/jwk_uri"
EHR_FHIR = "https://fhir.ehr-a.example.org/r4"
SANDBOX_KID = "44823f3d-0b01-4a6c-a80e-b9d3e8a7226f"  # the sandbox's kid format (sandbox-jwks-public.json)
NOW = "2026-11-25T12:00:00Z"


@dataclass
class Rig:
    server: ServiceServer
    jwks_stub: StubFhirServer
    jwks_sets: dict[str, dict[str, Any]]
    keys: dict[str, SigningKey]

    def url(self, path: str) -> str:
        return f"{self.server.base_url}{path}"

    def jwks_url(self, name: str) -> str:
        return f"{self.jwks_stub.base_url}/jwks/{name}.json"

    def token(
        self,
        key: str = "es384",
        path: str = f"/cds-services/{PATIENT_VIEW}",
        iss: str = EHR,
        header: dict[str, Any] | None = None,
        **extra: Any,
    ) -> str:
        return sign(self.keys[key], claims(iss, self.url(path), **extra), **(header or {}))

    def call(
        self, token: str | None, path: str = f"/cds-services/{PATIENT_VIEW}", body: dict[str, Any] | None = None
    ) -> requests.Response:
        headers = {"X-CDS-Evaluation-Time": NOW, **({"Authorization": f"Bearer {token}"} if token else {})}
        if path == "/cds-services":
            return requests.get(self.url(path), headers=headers, timeout=10)
        if body is None:
            body = hook_request(observations=[], hook="encounter-start" if ENCOUNTER_START in path else "patient-view")
        return requests.post(self.url(path), json=body, headers=headers, timeout=10)


@pytest.fixture(scope="module")
def rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rig]:
    keys = {
        "es384": jwt_kit.ec_key("ehr-es384"),
        "rs384": jwt_kit.rsa_key("ehr-rs384"),
        "es256": jwt_kit.ec_key("ehr-es256", "ES256"),
        "rs256": jwt_kit.rsa_key("ehr-rs256", "RS256"),
        "impostor": jwt_kit.ec_key("ehr-es384"),  # same kid as the real key, another private key
        "sandbox": jwt_kit.ec_key(SANDBOX_KID),
        "attacker": jwt_kit.ec_key("attacker"),
        "c-old": jwt_kit.ec_key("c-2025"),
        "c-new": jwt_kit.ec_key("c-2026"),
    }
    sets = {
        "sandbox": jwt_kit.jwks(keys["sandbox"]),
        "attacker": jwt_kit.jwks(keys["attacker"]),
        "rotating": jwt_kit.jwks(keys["c-old"]),
    }

    def route(path: str) -> Reply:
        name = path.rsplit("/", 1)[-1].removesuffix(".json")
        return Reply(body=sets[name]) if name in sets else Reply(status=404)

    with StubFhirServer(route) as jwks_stub:
        base = jwks_stub.base_url
        issuers = [
            {
                "iss": EHR,
                "jwks": {
                    "keys": [
                        keys["es384"].public_jwk(),
                        keys["rs384"].public_jwk(),
                        keys["es256"].public_jwk(),
                        keys["rs256"].public_jwk(),
                    ]
                },
                "fhir_servers": [EHR_FHIR],
            },
            {"iss": SANDBOX, "jku_allowlist": [f"{base}/jwks/sandbox.json"], "fhir_servers": []},
            {"iss": ROTATING, "jwks_url": f"{base}/jwks/rotating.json", "fhir_servers": []},
            {"iss": ES256_ISSUER, "jwks": jwt_kit.jwks(keys["es256"]), "fhir_servers": [], "algorithms": ["ES256"]},
            {
                "iss": SPEC_ISSUER,
                "jwks": json.loads((EXAMPLES / "spec-jwks-public.json").read_text()),
                "jku_allowlist": [SPEC_JKU],
                "fhir_servers": [],
            },
        ]
        issuers_file = jwt_kit.write_issuers(tmp_path_factory.mktemp("issuers") / "issuers.yaml", issuers)
        env = {
            "CDS_AUTH": "jwt",
            "CDS_TRUSTED_ISSUERS": str(issuers_file),
            "CDS_ALLOW_HTTP_LOOPBACK": "1",
            "CDS_JWKS_REFRESH_COOLDOWN": "0.3",
            "CDS_CORS_ORIGINS": "https://ehr.example.org",
        }
        with ServiceServer(env=env) as server:
            yield Rig(server, jwks_stub, sets, keys)


def assert_refused(response: requests.Response, failure: str) -> None:
    assert response.status_code == 401, response.text
    issue = response.json()["issue"][0]
    assert issue["code"] == "login"
    assert issue["diagnostics"].startswith(f"authentication failed: {failure}"), issue["diagnostics"]
    assert response.headers["WWW-Authenticate"].startswith('Bearer realm="cds-services"')


# ---- accepted ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("key", ["es384", "rs384"])
def test_a_valid_token_is_accepted_on_discovery_service_and_feedback(rig: Rig, key: str) -> None:
    assert rig.call(rig.token(key, "/cds-services"), "/cds-services").status_code == 200
    assert rig.call(rig.token(key)).status_code == 200
    feedback = f"/cds-services/{PATIENT_VIEW}/feedback"
    body = {
        "feedback": [{"card": str(uuid.uuid4()), "outcome": "overridden", "outcomeTimestamp": "2026-11-25T12:00:00Z"}]
    }
    assert rig.call(rig.token(key, feedback), feedback, body).status_code == 200


def test_epic_style_claims_are_tolerated(rig: Rig) -> None:
    token = rig.token("rs384", sub="epic-client-id", tenant="org-1", nbf=int(time.time()) - 300)
    assert rig.call(token).status_code == 200


def test_an_audience_array_holding_the_url_is_accepted(rig: Rig) -> None:
    path = f"/cds-services/{PATIENT_VIEW}"
    token = sign(rig.keys["es384"], claims(EHR, [rig.url(path), "https://other.example.org"]))
    assert rig.call(token, path).status_code == 200


def test_es256_is_accepted_only_where_the_issuer_lists_it(rig: Rig) -> None:
    assert_refused(rig.call(rig.token("es256")), Failure.ALGORITHM)
    assert rig.call(rig.token("es256", iss=ES256_ISSUER)).status_code == 200


def test_a_sandbox_format_token_with_an_allowlisted_jku_is_accepted(rig: Rig) -> None:
    sandbox_example = json.loads((EXAMPLES / "sandbox-jwks-public.json").read_text())["keys"][0]
    ours = rig.keys["sandbox"].public_jwk()
    assert {k: ours[k] for k in ("kty", "crv", "kid", "alg", "use")} == {
        k: sandbox_example[k] for k in ("kty", "crv", "kid", "alg", "use")
    }
    before = len(rig.jwks_stub.hits)
    token = rig.token("sandbox", iss=SANDBOX, header={"jku": rig.jwks_url("sandbox")})
    assert rig.call(token).status_code == 200
    assert [hit.path for hit in rig.jwks_stub.hits[before:]] in ([], ["/fhir/jwks/sandbox.json"])


def test_a_rotated_key_is_found_by_refetching_the_jwks(rig: Rig) -> None:
    path = f"/cds-services/{PATIENT_VIEW}"
    assert rig.call(sign(rig.keys["c-old"], claims(ROTATING, rig.url(path)))).status_code == 200
    rig.jwks_sets["rotating"] = jwt_kit.jwks(rig.keys["c-new"])
    time.sleep(0.35)
    assert rig.call(sign(rig.keys["c-new"], claims(ROTATING, rig.url(path)))).status_code == 200


def test_a_valid_token_for_a_fhir_server_the_issuer_may_not_use_is_403(rig: Rig) -> None:
    allowed = hook_request(observations=[], fhirServer=f"{EHR_FHIR}/")
    assert rig.call(rig.token(), body=allowed).status_code == 200
    for server in (
        "https://evil.example.org/r4",
        "https://fhir.ehr-a.example.org/r4-other",
        "https://fhir.ehr-a.example.org.evil.example/r4",
        "http://fhir.ehr-a.example.org/r4",
    ):
        response = rig.call(rig.token(), body=hook_request(observations=[], fhirServer=server))
        assert response.status_code == 403, server
        assert response.json()["issue"][0]["code"] == "forbidden"


# ---- the attack matrix --------------------------------------------------------------------------------------------


def _hmac_with_public_pem(rig: Rig) -> str:
    return jwt_kit.forge_hmac(
        rig.keys["es384"].public_pem(), "ehr-es384", claims(EHR, rig.url(f"/cds-services/{PATIENT_VIEW}"))
    )


def _hmac_with_public_jwk(rig: Rig) -> str:
    secret = json.dumps(rig.keys["rs384"].public_jwk()).encode()
    return jwt_kit.forge_hmac(secret, "ehr-rs384", claims(EHR, rig.url(f"/cds-services/{PATIENT_VIEW}")))


def _oversized(rig: Rig) -> str:
    token = rig.token(padding="x" * 9000)
    assert 8192 < len(token) < 16000  # ours to refuse, below gunicorn's header limit
    return token


ATTACKS: dict[str, tuple[Callable[[Rig], str | None], str]] = {
    "no-token": (lambda _rig: None, Failure.MISSING),
    "not-a-jwt": (lambda _rig: "not.a.jwt", Failure.MALFORMED),
    "alg-none": (
        lambda rig: jwt_kit.forge_unsigned("ehr-es384", claims(EHR, rig.url(f"/cds-services/{PATIENT_VIEW}"))),
        Failure.ALGORITHM,
    ),
    "hs384-public-pem-as-secret": (_hmac_with_public_pem, Failure.ALGORITHM),
    "hs384-public-jwk-as-secret": (_hmac_with_public_jwk, Failure.ALGORITHM),
    "wrong-key-same-kid": (lambda rig: rig.token("impostor"), Failure.SIGNATURE),
    "unknown-kid": (lambda rig: rig.token("attacker"), Failure.UNKNOWN_KEY),
    "no-kid": (
        lambda rig: sign(rig.keys["es384"], claims(EHR, rig.url(f"/cds-services/{PATIENT_VIEW}")), kid=None),
        Failure.MALFORMED,
    ),
    "unknown-iss": (lambda rig: rig.token(iss="https://evil.example.org"), Failure.ISSUER),
    "jku-off-allowlist": (
        lambda rig: rig.token("attacker", iss=SANDBOX, header={"jku": rig.jwks_url("attacker")}),
        Failure.JKU,
    ),
    "jku-on-issuer-without-allowlist": (lambda rig: rig.token(header={"jku": rig.jwks_url("attacker")}), Failure.JKU),
    "key-published-for-another-alg": (
        lambda rig: sign(rig.keys["rs256"], claims(EHR, rig.url(f"/cds-services/{PATIENT_VIEW}")), alg="RS384"),
        Failure.ALGORITHM,
    ),
    "aud-another-service": (lambda rig: rig.token(path=f"/cds-services/{ENCOUNTER_START}"), Failure.AUDIENCE),
    "aud-base-url": (lambda rig: rig.token(path=""), Failure.AUDIENCE),
    "aud-discovery": (lambda rig: rig.token(path="/cds-services"), Failure.AUDIENCE),
    "aud-other-host": (
        lambda rig: sign(rig.keys["es384"], claims(EHR, f"https://cds.other.example/cds-services/{PATIENT_VIEW}")),
        Failure.AUDIENCE,
    ),
    "expired": (lambda rig: rig.token(exp=int(time.time()) - 120), Failure.EXPIRED),
    "not-yet-valid-nbf": (lambda rig: rig.token(nbf=int(time.time()) + 600), Failure.NOT_YET_VALID),
    "issued-in-the-future": (lambda rig: rig.token(iat=int(time.time()) + 600), Failure.NOT_YET_VALID),
    "missing-jti": (lambda rig: rig.token(jti=None), Failure.MISSING_CLAIM),
    "missing-exp": (lambda rig: rig.token(exp=None), Failure.MISSING_CLAIM),
    "missing-iat": (lambda rig: rig.token(iat=None), Failure.MISSING_CLAIM),
    "lifetime-over-an-hour": (lambda rig: rig.token(lifetime=86_400), Failure.LIFETIME),
    "oversized-token": (_oversized, Failure.TOO_LARGE),
    "spec-example-jwt-expired": (
        lambda _rig: (EXAMPLES / "spec-jwt-example-token.txt").read_text().strip(),
        Failure.EXPIRED,
    ),
}


@pytest.mark.parametrize("attack", list(ATTACKS))
def test_attack_is_refused(rig: Rig, attack: str) -> None:
    make, failure = ATTACKS[attack]
    path = "/cds-services/some-service" if attack == "spec-example-jwt-expired" else f"/cds-services/{PATIENT_VIEW}"
    response = rig.call(make(rig), path)
    assert_refused(response, failure)
    if failure == Failure.MISSING:
        assert response.headers["WWW-Authenticate"] == 'Bearer realm="cds-services"'
    else:
        assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]


def test_a_missing_claim_is_named(rig: Rig) -> None:
    response = rig.call(rig.token(jti=None))
    assert response.json()["issue"][0]["diagnostics"] == f"authentication failed: {Failure.MISSING_CLAIM}: jti"


def test_a_jku_off_the_allowlist_is_never_fetched(rig: Rig) -> None:
    before = len(rig.jwks_stub.hits)
    for iss in (SANDBOX, EHR, ROTATING):
        assert_refused(rig.call(rig.token("attacker", iss=iss, header={"jku": rig.jwks_url("attacker")})), Failure.JKU)
    assert all("attacker" not in hit.path for hit in rig.jwks_stub.hits[before:])


def test_a_replayed_jti_is_refused(rig: Rig) -> None:
    token = rig.token()
    assert rig.call(token).status_code == 200
    assert_refused(rig.call(token), Failure.REPLAY)
    same_jti = rig.token(jti=json.loads(_payload(token))["jti"])  # a new signature does not make it new
    assert_refused(rig.call(same_jti), Failure.REPLAY)


def test_a_discovery_token_cannot_be_reused_on_a_service(rig: Rig) -> None:
    token = rig.token(path="/cds-services")
    assert rig.call(token, "/cds-services").status_code == 200
    assert_refused(rig.call(token), Failure.AUDIENCE)


def test_refusals_carry_no_key_material_and_logs_no_token(rig: Rig) -> None:
    token = rig.token("impostor")
    response = rig.call(token)
    assert_refused(response, Failure.SIGNATURE)
    assert response.json()["issue"][0]["diagnostics"] == f"authentication failed: {Failure.SIGNATURE}"
    logs = rig.server.logs()
    assert '"failure": "invalid signature"' in logs
    assert token.split(".")[2] not in logs and token.split(".")[1] not in logs


def test_readyz_says_jwt_and_cors_is_limited_to_configured_origins(rig: Rig) -> None:
    ready = requests.get(rig.url("/readyz"), timeout=5).json()
    assert ready["auth"] == "jwt" and "warning" not in ready
    preflight = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "authorization"}
    listed = requests.options(
        rig.url(f"/cds-services/{PATIENT_VIEW}"), timeout=5, headers={"Origin": "https://ehr.example.org", **preflight}
    )
    assert listed.headers.get("Access-Control-Allow-Origin") == "https://ehr.example.org"
    other = requests.options(
        rig.url(f"/cds-services/{PATIENT_VIEW}"), timeout=5, headers={"Origin": "https://evil.example.org", **preflight}
    )
    assert "Access-Control-Allow-Origin" not in other.headers


def _payload(token: str) -> str:
    segment = token.split(".")[1]
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)).decode()


# ---- several processes, one database ----------------------------------------------------------------------------


def test_a_jti_is_refused_by_another_server_process_sharing_the_database(rig: Rig) -> None:
    shared = {name: value for name, value in rig.server.env.items() if name.startswith("CDS_")}
    assert shared["CDS_PUBLIC_URL"] == rig.server.base_url  # both processes behind one public URL, one database
    with ServiceServer(env=shared, workers=1) as second:
        token = rig.token(path="/cds-services")
        assert rig.call(token, "/cds-services").status_code == 200
        replay = requests.get(
            f"{second.base_url}/cds-services", headers={"Authorization": f"Bearer {token}"}, timeout=10
        )
        assert_refused(replay, Failure.REPLAY)
        fresh = rig.token(path="/cds-services")
        assert (
            requests.get(
                f"{second.base_url}/cds-services", headers={"Authorization": f"Bearer {fresh}"}, timeout=10
            ).status_code
            == 200
        )
        assert_refused(rig.call(fresh, "/cds-services"), Failure.REPLAY)
