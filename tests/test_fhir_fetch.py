"""The fetch path: no prefetch -> the service queries the EHR's FHIR server with the bearer token it was given.

A real FHIR server (sekmet-fhir, SQLite-backed) on loopback holds the patient's data; a small stub server covers
what a real server will not do (exact URL/token recording, slowness, failures, hostile paging).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from tests.support.fhir_server import FhirServer
from tests.support.requests_factory import PATIENT_VIEW, bundle, fhir_authorization, hook_request, observation
from tests.support.service_server import ServiceServer
from tests.support.stub_fhir import Reply, StubFhirServer

PATIENT = "fetch-pat"
NOW = "2026-11-25T12:00:00Z"
TOKEN = "opaque-access-token-7f3a"
DROOP = observation(
    "280816001", patient_id=PATIENT, id="droop-1", valueBoolean=True, effectiveDateTime="2026-11-25T10:00:00Z"
)


def _vitals(count: int) -> list[dict[str, Any]]:
    """Newer than the droop, so that with _sort=-date the droop lands on the second page."""
    return [
        observation(
            "8867-4",
            system="http://loinc.org",
            patient_id=PATIENT,
            id=f"hr-{i}",
            effectiveDateTime=f"2026-11-25T11:{i % 60:02d}:{i // 60:02d}Z",
            valueQuantity={"value": 70 + i % 20, "unit": "/min"},
        )
        for i in range(count)
    ]


class Behaviour:
    """What the stub FHIR server does for the current test."""

    def __init__(self) -> None:
        self.reply = Reply(body=bundle([]))

    def __call__(self, _path: str) -> Reply:
        return self.reply


@pytest.fixture(scope="module")
def fhir() -> Iterator[FhirServer]:
    with FhirServer() as server:
        server.load([{"resourceType": "Patient", "id": PATIENT}, DROOP, *_vitals(149)])
        yield server


@pytest.fixture(scope="module")
def stub() -> Iterator[tuple[StubFhirServer, Behaviour]]:
    behaviour = Behaviour()
    with StubFhirServer(behaviour) as server:
        yield server, behaviour


@pytest.fixture(scope="module")
def service(fhir: FhirServer, stub: tuple[StubFhirServer, Behaviour]) -> Iterator[ServiceServer]:
    env = {"CDS_ALLOWED_FHIR_SERVERS": f"{fhir.base_url},{stub[0].base_url}", "CDS_ALLOW_HTTP_LOOPBACK": "1"}
    with ServiceServer(env=env) as server:
        yield server


def call(service: ServiceServer, fhir_server: str, **extra: Any) -> requests.Response:
    body = hook_request(
        PATIENT,
        fhirServer=fhir_server,
        fhirAuthorization=fhir_authorization(TOKEN, "patient/Observation.read patient/Patient.read"),
        **extra,
    )
    return requests.post(
        f"{service.base_url}/cds-services/{PATIENT_VIEW}", json=body, headers={"X-CDS-Evaluation-Time": NOW}, timeout=10
    )


def _observation_searches(fhir: FhirServer, since: int) -> list[dict[str, Any]]:
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:  # sekmet writes its log row just after answering
        rows = [r for r in fhir.request_log()[since:] if r["url"].startswith("/fhir/Observation")]
        if len(rows) >= 2:
            return rows
        time.sleep(0.05)
    return rows


def test_without_prefetch_the_service_fetches_and_pages_through_the_fhir_server(
    service: ServiceServer, fhir: FhirServer
) -> None:
    before = len(fhir.request_log())
    response = call(service, fhir.base_url)
    assert response.status_code == 200, response.text
    cards = response.json()["cards"]
    assert [c["indicator"] for c in cards] == ["critical"]
    observations = [f["observation"] for f in cards[0]["extension"]["org.weakness-triage"]["findings"]]
    assert observations == ["Observation/droop-1"]
    searches = _observation_searches(fhir, before)
    assert len(searches) == 2, searches  # 150 Observations, 100 a page: the droop was on page two
    assert searches[0]["url"].startswith(
        f"/fhir/Observation?patient={PATIENT}&date=ge2026-11-11T12:00:00Z&_sort=-date&_count=100"
    )
    assert all(r["authorization"].startswith("Bearer") for r in searches)
    request_id = response.headers["X-Request-Id"]
    line = next(json.loads(text) for text in service.logs().splitlines() if request_id in text and '"route"' in text)
    assert line["fetched"] == ["observations"] and line["pages_followed"] == 1 and line["fhir_ms"] > 0


def test_operation_outcome_in_prefetch_means_fetch_that_key(service: ServiceServer, fhir: FhirServer) -> None:
    outcome = {"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "processing"}]}
    response = call(
        service,
        fhir.base_url,
        prefetch={"patient": {"resourceType": "Patient", "id": PATIENT}, "observations": outcome},
    )
    assert response.status_code == 200
    assert [c["indicator"] for c in response.json()["cards"]] == ["critical"]


def test_a_prefetched_bundle_with_a_next_link_is_followed(service: ServiceServer, fhir: FhirServer) -> None:
    first_page = requests.get(
        f"{fhir.base_url}/Observation", params={"patient": PATIENT, "_sort": "-date", "_count": 100}, timeout=5
    ).json()
    assert any(link["relation"] == "next" for link in first_page["link"])
    response = call(service, fhir.base_url, prefetch={"patient": None, "observations": first_page})
    assert [c["indicator"] for c in response.json()["cards"]] == ["critical"]


def test_the_exact_url_and_bearer_token_are_sent(
    service: ServiceServer, stub: tuple[StubFhirServer, Behaviour]
) -> None:
    server, behaviour = stub
    behaviour.reply = Reply(body=bundle([DROOP]))
    server.hits.clear()
    response = call(service, server.base_url, prefetch={"patient": None})
    assert response.status_code == 200
    assert [(h.path, h.authorization) for h in server.hits] == [
        (f"/fhir/Observation?patient={PATIENT}&date=ge2026-11-11T12:00:00Z&_sort=-date&_count=100", f"Bearer {TOKEN}")
    ]


def test_a_slow_fhir_server_gives_412_well_within_the_deadline(
    service: ServiceServer, stub: tuple[StubFhirServer, Behaviour]
) -> None:
    stub[1].reply = Reply(body=bundle([DROOP]), delay=2.0)
    started = time.monotonic()
    response = call(service, stub[0].base_url, prefetch={"patient": None})
    elapsed = time.monotonic() - started
    assert response.status_code == 412 and response.json()["resourceType"] == "OperationOutcome"
    assert elapsed < 1.0, elapsed


def test_a_fhir_server_that_drips_its_answer_gives_412_within_the_deadline(
    service: ServiceServer, stub: tuple[StubFhirServer, Behaviour]
) -> None:
    """Headers at once, then a byte every 50 ms: no single read waits long, but the whole answer would take ~25 s.
    The deadline (0.35 s by default) must bound the whole read, not each socket read."""
    stub[1].reply = Reply(body=bundle([DROOP]), drip=0.05)
    started = time.monotonic()
    response = call(service, stub[0].base_url, prefetch={"patient": None})
    elapsed = time.monotonic() - started
    assert response.status_code == 412
    assert "too slow" in response.json()["issue"][0]["diagnostics"]
    assert elapsed < 1.0, elapsed


@pytest.mark.parametrize(
    "reply",
    [
        Reply(status=500, body={"resourceType": "OperationOutcome"}),
        Reply(status=401),
        Reply(body="not a resource"),
        Reply(status=302, headers={"Location": "http://127.0.0.1:9/fhir"}),
    ],
    ids=["500", "401", "not-a-resource", "redirect"],
)
def test_a_failing_fhir_server_gives_412(
    service: ServiceServer, stub: tuple[StubFhirServer, Behaviour], reply: Reply
) -> None:
    stub[1].reply = reply
    response = call(service, stub[0].base_url, prefetch={"patient": None})
    assert response.status_code == 412
    assert response.json()["issue"][0]["expression"] == ["prefetch.observations"]


def test_a_next_link_to_another_origin_is_never_fetched(
    service: ServiceServer, stub: tuple[StubFhirServer, Behaviour]
) -> None:
    server, behaviour = stub
    with StubFhirServer(lambda _path: Reply(body=bundle([DROOP]))) as elsewhere:
        page = bundle([])
        page["link"] = [{"relation": "next", "url": f"{elsewhere.base_url}/Observation?page=2"}]
        behaviour.reply = Reply(body=page)
        response = call(service, server.base_url, prefetch={"patient": None})
        assert response.status_code == 412
        assert elsewhere.hits == []


def test_a_fhir_server_not_on_the_allowed_list_gives_412_and_is_not_called(service: ServiceServer) -> None:
    with StubFhirServer(lambda _path: Reply(body=bundle([DROOP]))) as unlisted:
        response = call(service, unlisted.base_url)
        assert response.status_code == 412
        assert unlisted.hits == []


def test_an_optional_key_left_out_is_not_fetched(
    service: ServiceServer, stub: tuple[StubFhirServer, Behaviour]
) -> None:
    """The Patient is only an identity check when the EHR sends it: fetching it ourselves would cost a round trip
    (~1 ms on loopback, more on a real network) to compare an id with itself."""
    stub[1].reply = Reply(status=404)
    hits_before = len(stub[0].hits)
    response = call(service, stub[0].base_url, prefetch={"observations": bundle([DROOP])})
    assert response.status_code == 200
    assert [c["indicator"] for c in response.json()["cards"]] == ["critical"]
    assert stub[0].hits[hits_before:] == []
