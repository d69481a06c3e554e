"""Start-up refuses an unsafe configuration: jwt mode without a valid trusted-issuers file, plain-http FHIR servers,
CORS '*' with auth on. Plus the JWKS cache: refetch on an unknown kid at most once per cooldown."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from cds_service.security.jwks import JwksCache, KeysUnavailable
from cds_service.security.trusted_issuers import load_trusted_issuers
from cds_service.settings import REPO_ROOT, SettingsError, load_settings
from cds_service.store import Store
from cds_service.yaml_source import ContentError
from tests.support import jwt_kit
from tests.support.fhir_server import free_port
from tests.support.service_server import ServiceServer
from tests.support.stub_fhir import Reply, StubFhirServer

KEY = jwt_kit.ec_key("k1")
GOOD = {"iss": "https://ehr.example.org", "jwks": jwt_kit.jwks(KEY), "fhir_servers": ["https://fhir.example.org/r4"]}


def write(tmp_path: Path, issuers: list[dict[str, Any]]) -> Path:
    return jwt_kit.write_issuers(tmp_path / "issuers.yaml", issuers)


# ---- settings -----------------------------------------------------------------------------------------------------


def test_jwt_mode_needs_a_trusted_issuers_file() -> None:
    with pytest.raises(SettingsError, match="CDS_TRUSTED_ISSUERS"):
        load_settings({"CDS_AUTH": "jwt"})
    assert load_settings({"CDS_AUTH": "off"}).trusted_issuers_file is None


def test_cors_wildcard_only_with_auth_off() -> None:
    assert load_settings({"CDS_AUTH": "off"}).cors_origins == ("*",)
    assert load_settings({"CDS_AUTH": "jwt", "CDS_TRUSTED_ISSUERS": "x.yaml"}).cors_origins == ()
    with pytest.raises(SettingsError, match="CDS_CORS_ORIGINS"):
        load_settings({"CDS_AUTH": "jwt", "CDS_TRUSTED_ISSUERS": "x.yaml", "CDS_CORS_ORIGINS": "*"})


@pytest.mark.parametrize(
    ("servers", "loopback", "problem"),
    [
        ("http://fhir.example.org/r4", "1", "https"),
        ("http://127.0.0.1:8080/fhir", "", "plain http"),
        ("https://user:pw@fhir.example.org/r4", "", "user info"),
    ],
)
def test_allowed_fhir_servers_must_be_https_or_explicit_loopback(servers: str, loopback: str, problem: str) -> None:
    with pytest.raises(SettingsError, match=problem):
        load_settings({"CDS_AUTH": "off", "CDS_ALLOWED_FHIR_SERVERS": servers, "CDS_ALLOW_HTTP_LOOPBACK": loopback})
    ok = load_settings(
        {
            "CDS_AUTH": "off",
            "CDS_ALLOWED_FHIR_SERVERS": "https://fhir.example.org/r4,http://127.0.0.1:9/fhir",
            "CDS_ALLOW_HTTP_LOOPBACK": "1",
        }
    )
    assert ok.allowed_fhir_servers == ("https://fhir.example.org/r4", "http://127.0.0.1:9/fhir")


# ---- the trusted issuers file ------------------------------------------------------------------------------------


def test_a_valid_file_loads_with_default_algorithms(tmp_path: Path) -> None:
    sandbox = {
        "iss": "https://sandbox.cds-hooks.org",
        "fhir_servers": [],
        "algorithms": ["ES384", "ES256"],
        "jku_allowlist": ["https://sandbox.cds-hooks.org/.well-known/jwks.json"],
    }
    issuers = load_trusted_issuers(write(tmp_path, [GOOD, sandbox]), allow_http_loopback=False)
    assert issuers["https://ehr.example.org"].algorithms == ("ES384", "RS384")
    assert issuers["https://ehr.example.org"].jwks["k1"]["kty"] == "EC"
    assert issuers["https://sandbox.cds-hooks.org"].algorithms == ("ES384", "ES256")


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"algorithms": ["HS256"]}, "algorithms"),
        ({"algorithms": ["none"]}, "algorithms"),
        ({"jwks": {"keys": [{"kty": "oct", "kid": "s", "k": "c2VjcmV0"}]}}, "kty"),
        ({"jwks": {"keys": [{**KEY.public_jwk(), "kid": ""}]}}, "kid"),
        ({"jwks": {"keys": [KEY.public_jwk(), KEY.public_jwk()]}}, "twice"),
        ({"jwks": {"keys": [{"kty": "EC", "kid": "bad", "crv": "P-384", "x": "AA", "y": "AA"}]}}, "not a valid key"),
        ({"jwks_url": "https://ehr.example.org/jwks"}, "not both"),
        ({"jwks": None}, "Field may not be null"),
        ({"fhir_servers": ["http://fhir.example.org/r4"]}, "https"),
        ({"fhir_servers": ["http://127.0.0.1:9/fhir"]}, "plain http"),
        ({"jku_allowlist": ["http://keys.example.org/jwks"]}, "https"),
        ({"fhir_servers": None}, "Field may not be null"),
        ({"tenants": ["a"]}, "Unknown field"),
    ],
)
def test_an_invalid_issuer_is_refused_with_file_and_line(tmp_path: Path, change: dict[str, Any], problem: str) -> None:
    file = write(tmp_path, [GOOD, {**GOOD, "iss": "https://second.example.org", **change}])
    with pytest.raises(ContentError, match=problem) as error:
        load_trusted_issuers(file, allow_http_loopback=False)
    assert error.value.file == file and error.value.line and error.value.line > 1


def test_a_missing_key_source_duplicate_issuer_or_missing_file_is_refused(tmp_path: Path) -> None:
    no_keys = {k: v for k, v in GOOD.items() if k != "jwks"}
    with pytest.raises(ContentError, match="key source"):
        load_trusted_issuers(write(tmp_path, [no_keys]), allow_http_loopback=False)
    with pytest.raises(ContentError, match="listed twice"):
        load_trusted_issuers(write(tmp_path, [GOOD, GOOD]), allow_http_loopback=False)
    with pytest.raises(ContentError, match="no readable file"):
        load_trusted_issuers(tmp_path / "absent.yaml", allow_http_loopback=False)
    (tmp_path / "empty.yaml").write_text("")
    with pytest.raises(ContentError, match="issuers"):
        load_trusted_issuers(tmp_path / "empty.yaml", allow_http_loopback=False)


def test_a_private_key_in_the_file_is_refused(tmp_path: Path) -> None:
    from jwt.algorithms import ECAlgorithm

    private = {**ECAlgorithm.to_jwk(KEY.private, as_dict=True), "kid": "k1"}
    with pytest.raises(ContentError, match="private key"):
        load_trusted_issuers(write(tmp_path, [{**GOOD, "jwks": {"keys": [private]}}]), allow_http_loopback=False)


# ---- the deployed command refuses to start ----------------------------------------------------------------------


def _serve(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("CDS_")}
    return subprocess.run(
        [sys.executable, "-m", "cds_service", "serve", "--port", str(free_port())],
        cwd=REPO_ROOT,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_serve_refuses_to_start_in_jwt_mode_without_a_valid_issuers_file(tmp_path: Path) -> None:
    missing = _serve({"CDS_AUTH": "jwt", "CDS_DATABASE_URL": f"sqlite:///{tmp_path}/a.db"})
    assert missing.returncode == 2 and "CDS_TRUSTED_ISSUERS" in missing.stderr
    bad = write(tmp_path, [{**GOOD, "algorithms": ["HS256"]}])
    invalid = _serve(
        {"CDS_AUTH": "jwt", "CDS_TRUSTED_ISSUERS": str(bad), "CDS_DATABASE_URL": f"sqlite:///{tmp_path}/a.db"}
    )
    assert invalid.returncode == 2 and f"{bad}:" in invalid.stderr and "algorithms" in invalid.stderr


# ---- JWKS cache ---------------------------------------------------------------------------------------------------


@pytest.fixture
def jwks_server() -> Iterator[tuple[StubFhirServer, dict[str, Any]]]:
    state: dict[str, Any] = {"reply": Reply(body=jwt_kit.jwks(KEY))}
    with StubFhirServer(lambda _path: state["reply"]) as server:
        yield server, state


def test_an_unknown_kid_refetches_at_most_once_per_cooldown(jwks_server: tuple[StubFhirServer, dict[str, Any]]) -> None:
    server, state = jwks_server
    url = f"{server.base_url}/jwks.json"
    cache = JwksCache(allow_http_loopback=True, cooldown=60)
    assert cache.find(url, "k1") is not None
    for _ in range(5):
        assert cache.find(url, "rotated-away") is None
    assert len(server.hits) == 1  # the first fetch started the cooldown
    fast = JwksCache(allow_http_loopback=True, cooldown=0.01)
    fast.find(url, "k1")
    new_key = jwt_kit.ec_key("k2")
    state["reply"] = Reply(body=jwt_kit.jwks(KEY, new_key))
    time.sleep(0.02)
    assert fast.find(url, "k2") == new_key.public_jwk()


def test_an_unreachable_jwks_is_unavailable_and_a_stale_copy_is_kept(
    jwks_server: tuple[StubFhirServer, dict[str, Any]],
) -> None:
    server, state = jwks_server
    url = f"{server.base_url}/jwks.json"
    cache = JwksCache(allow_http_loopback=True, cooldown=0.01)
    assert cache.find(url, "k1") is not None
    state["reply"] = Reply(status=500)
    time.sleep(0.02)
    assert cache.find(url, "k1") is not None and cache.find(url, "unknown") is None
    with pytest.raises(KeysUnavailable):
        JwksCache(allow_http_loopback=True, cooldown=60).find(url, "k1")
    with pytest.raises(KeysUnavailable):
        JwksCache(allow_http_loopback=False, cooldown=60).find(url, "k1")  # plain http refused


# ---- auth off is loud ---------------------------------------------------------------------------------------------


def test_auth_off_is_logged_as_a_warning_at_start_and_shown_on_readyz(service: ServiceServer) -> None:
    records = [json.loads(line) for line in service.logs().splitlines() if line.startswith("{")]
    assert any(r["message"] == "authentication_off" and r["level"] == "WARNING" for r in records)
    assert "AUTHENTICATION OFF" in service.logs()
    assert "OFF" in requests.get(f"{service.base_url}/readyz", timeout=5).json()["warning"]


# ---- the replay cache -----------------------------------------------------------------------------------------------


def test_a_token_id_is_accepted_once_until_it_expires(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path}/r.db")
    now = int(time.time())
    assert store.claim_token_id("iss", "j1", now + 300)
    assert not store.claim_token_id("iss", "j1", now + 300)
    assert store.claim_token_id("other-iss", "j1", now + 300)  # ids are per issuer
    assert store.claim_token_id("iss", "old", now - 5)  # recorded, already expired (not yet pruned)
    assert store.claim_token_id("iss", "old", now + 300)  # an expired record may be taken over once
    assert not store.claim_token_id("iss", "old", now + 300)


def test_concurrent_claims_of_one_token_id_have_exactly_one_winner(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/race.db"
    stores = [Store(url) for _ in range(8)]  # one engine each, like separate processes
    results: list[bool] = []
    barrier = threading.Barrier(len(stores))

    def claim(store: Store) -> None:
        barrier.wait()
        results.append(store.claim_token_id("iss", "contested", int(time.time()) + 300))

    threads = [threading.Thread(target=claim, args=(store,)) for store in stores]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == [False] * 7 + [True]
