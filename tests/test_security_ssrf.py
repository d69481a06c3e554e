"""The service is no open proxy: it calls only the FHIR servers allowed for the caller, stays on their origin, follows
no redirects, and hands the EHR's bearer token to nobody else. A loopback listener proves targets are never hit."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import requests

from cds_service.fhir.url_policy import base_url_problem, is_allowed
from tests.support import jwt_kit
from tests.support.jwt_kit import SigningKey, claims, sign
from tests.support.requests_factory import PATIENT_VIEW, bundle, fhir_authorization, hook_request, observation
from tests.support.service_server import ServiceServer
from tests.support.stub_fhir import Reply, StubFhirServer

EHR = "https://ehr-a.example.org"
PATIENT = "ssrf-pat"
TOKEN = "ehr-access-token-only-for-its-fhir-server"
NOW = "2026-11-25T12:00:00Z"
DROOP = observation("280816001", patient_id=PATIENT, valueBoolean=True, effectiveDateTime="2026-11-25T10:00:00Z")


class Behaviour:
    def __init__(self) -> None:
        self.reply = Reply(body=bundle([]))

    def __call__(self, _path: str) -> Reply:
        return self.reply


@dataclass
class Rig:
    jwt_service: ServiceServer
    open_service: ServiceServer
    ehr: StubFhirServer
    behaviour: Behaviour
    target: StubFhirServer
    key: SigningKey

    def call(self, service: ServiceServer, fhir_server: str, patient: str = PATIENT, **extra: Any) -> requests.Response:
        path = f"/cds-services/{PATIENT_VIEW}"
        headers = {"X-CDS-Evaluation-Time": NOW}
        if service is self.jwt_service:
            headers["Authorization"] = f"Bearer {sign(self.key, claims(EHR, service.base_url + path))}"
        body = hook_request(
            patient,
            fhirServer=fhir_server,
            fhirAuthorization=fhir_authorization(TOKEN, "patient/Observation.read patient/Patient.read"),
            **extra,
        )
        self.ehr.hits.clear()
        self.target.hits.clear()
        return requests.post(service.base_url + path, json=body, headers=headers, timeout=10)


@pytest.fixture(scope="module")
def rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rig]:
    key = jwt_kit.ec_key("ehr-es384")
    behaviour = Behaviour()
    with StubFhirServer(behaviour) as ehr, StubFhirServer(lambda _path: Reply(body=bundle([DROOP]))) as target:
        issuers = jwt_kit.write_issuers(
            tmp_path_factory.mktemp("ssrf") / "issuers.yaml",
            [{"iss": EHR, "jwks": jwt_kit.jwks(key), "fhir_servers": [ehr.base_url]}],
        )
        common = {"CDS_ALLOW_HTTP_LOOPBACK": "1", "CDS_FHIR_MAX_RESPONSE_BYTES": "100000"}
        with (
            ServiceServer(env={**common, "CDS_AUTH": "jwt", "CDS_TRUSTED_ISSUERS": str(issuers)}) as jwt_service,
            ServiceServer(env={**common, "CDS_ALLOWED_FHIR_SERVERS": ehr.base_url}) as open_service,
        ):
            yield Rig(jwt_service, open_service, ehr, behaviour, target, key)


def test_the_allowed_fhir_server_is_called_with_the_token(rig: Rig) -> None:
    rig.behaviour.reply = Reply(body=bundle([DROOP]))
    for service in (rig.jwt_service, rig.open_service):
        response = rig.call(service, rig.ehr.base_url, prefetch={"patient": None})
        assert response.status_code == 200, response.text
        assert [c["indicator"] for c in response.json()["cards"]] == ["critical"]
        assert [hit.authorization for hit in rig.ehr.hits] == [f"Bearer {TOKEN}"]


def test_a_fhir_server_not_allowed_for_the_issuer_is_403_and_never_called(rig: Rig) -> None:
    response = rig.call(rig.jwt_service, rig.target.base_url)
    assert response.status_code == 403
    assert rig.target.hits == []


def test_a_fhir_server_not_allowed_with_auth_off_is_412_and_never_called(rig: Rig) -> None:
    response = rig.call(rig.open_service, rig.target.base_url)
    assert response.status_code == 412
    assert rig.target.hits == []


@pytest.mark.parametrize(
    "where", ["other-port", "other-host-name", "outside-the-prefix", "userinfo-trick", "dot-segments"]
)
def test_a_next_link_off_the_fhir_server_is_never_fetched(rig: Rig, where: str) -> None:
    ehr_port = rig.ehr.base_url.split(":")[2].split("/")[0]
    target_port = rig.target.base_url.split(":")[2].split("/")[0]
    link = {
        "other-port": f"{rig.target.base_url}/Observation?page=2",
        "other-host-name": f"http://localhost:{ehr_port}/fhir/Observation?page=2",
        "outside-the-prefix": f"http://127.0.0.1:{ehr_port}/admin/Observation?page=2",
        "userinfo-trick": f"http://127.0.0.1:{ehr_port}@127.0.0.1:{target_port}/fhir/Observation",
        "dot-segments": f"{rig.ehr.base_url}/../admin?page=2",
    }[where]
    page = bundle([])
    page["link"] = [{"relation": "next", "url": link}]
    rig.behaviour.reply = Reply(body=page)
    response = rig.call(rig.jwt_service, rig.ehr.base_url, prefetch={"patient": None})
    assert response.status_code == 412
    assert rig.target.hits == []
    assert [hit.path.split("?")[0] for hit in rig.ehr.hits] == ["/fhir/Observation"]  # the first page only


def test_a_prefetched_bundle_cannot_point_the_service_elsewhere(rig: Rig) -> None:
    page = bundle([])
    page["link"] = [{"relation": "next", "url": f"{rig.target.base_url}/Observation?page=2"}]
    response = rig.call(rig.jwt_service, rig.ehr.base_url, prefetch={"patient": None, "observations": page})
    assert response.status_code == 412
    assert rig.target.hits == [] and rig.ehr.hits == []


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_a_redirect_to_another_port_is_never_followed(rig: Rig, status: int) -> None:
    rig.behaviour.reply = Reply(status=status, headers={"Location": f"{rig.target.base_url}/Observation"})
    response = rig.call(rig.jwt_service, rig.ehr.base_url, prefetch={"patient": None})
    assert response.status_code == 412
    assert len(rig.ehr.hits) == 1
    assert rig.target.hits == []


def test_a_patient_id_of_dots_does_not_climb_out_of_the_fhir_base(rig: Rig) -> None:
    rig.behaviour.reply = Reply(body=bundle([]))
    response = rig.call(rig.jwt_service, rig.ehr.base_url, patient="..")
    assert response.status_code == 200, response.text
    assert rig.ehr.hits and all(hit.path.startswith("/fhir/Observation?patient=..&") for hit in rig.ehr.hits)


def test_a_fhir_response_over_the_size_cap_is_412(rig: Rig) -> None:
    rig.behaviour.reply = Reply(body=bundle([DROOP] * 1000))  # ~ 350 kB, cap 100 kB
    response = rig.call(rig.open_service, rig.ehr.base_url, prefetch={"patient": None})
    assert response.status_code == 412


# ---- the URL policy itself --------------------------------------------------------------------------------------

PREFIX = "https://fhir.example.org/r4"


@pytest.mark.parametrize(
    ("url", "allowed"),
    [
        ("https://fhir.example.org/r4", True),
        ("https://fhir.example.org/r4/", True),
        ("https://fhir.example.org:443/r4/Observation?patient=1", True),
        ("https://FHIR.example.org/r4/Patient/1", True),
        ("https://fhir.example.org/r4-other/Patient/1", False),
        ("https://fhir.example.org/r", False),
        ("https://fhir.example.org.evil.example/r4", False),
        ("https://fhir.example.org@evil.example/r4", False),
        ("https://user:pw@fhir.example.org/r4", False),
        ("http://fhir.example.org/r4", False),
        ("https://fhir.example.org:8443/r4", False),
        ("https://fhir.example.org/r4/../admin", False),
        ("https://fhir.example.org/r4/%2e%2e/admin", False),
        ("https://fhir.example.org/r4\\..\\admin", False),
        ("https://evil.example/r4", False),
    ],
)
def test_url_prefix_matching(url: str, allowed: bool) -> None:
    assert is_allowed(url, (PREFIX,)) is allowed


@pytest.mark.parametrize(
    ("url", "loopback_ok", "problem"),
    [
        ("https://fhir.example.org/r4", False, None),
        ("http://fhir.example.org/r4", True, "must use https"),
        ("http://127.0.0.1:8080/fhir", False, "plain http"),
        ("http://127.0.0.1:8080/fhir", True, None),
        ("http://localhost/fhir", True, None),
        ("http://[::1]:8080/fhir", True, None),
        ("http://127.0.0.2/fhir", True, "must use https"),
        ("ftp://fhir.example.org/r4", True, "must use https"),
        ("file:///etc/passwd", True, "host"),
        ("https://fhir.example.org/r4?x=1", False, "query"),
        ("https://user@fhir.example.org/r4", False, "user info"),
    ],
)
def test_base_url_policy(url: str, loopback_ok: bool, problem: str | None) -> None:
    found = base_url_problem(url, loopback_ok)
    assert (found is None) if problem is None else (found is not None and problem in found), found
