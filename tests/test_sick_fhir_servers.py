"""The fetch path against sick FHIR servers (CDS_FHIR_TIMEOUT=2): every fault is answered within the deadline plus
a small margin, with 412 naming the fault (or cards from what could be read), never 5xx, and the service is free
for the next call at once. All faults run at the same time, one FHIR server each (the bulkhead counts per server).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from tests.support.fhir_server import free_port
from tests.support.requests_factory import PATIENT_VIEW, bundle, fhir_authorization, hook_request, observation
from tests.support.service_server import ServiceServer
from tests.support.sick_fhir import SickFhirServers

PATIENT = "sick-pat"
NOW = "2026-11-25T12:00:00Z"
DEADLINE = 2.0
MARGIN = 1.0  # two shared cores under a parallel test run
DROOP = observation(
    "280816001", patient_id=PATIENT, id="droop-1", valueBoolean=True, effectiveDateTime="2026-11-25T10:00:00Z"
)
# What the 412's OperationOutcome must say for each fault (a 200 is accepted only where data could be read).
EXPECTED = {
    "status-line-dripped": "too slow",
    "headers-dripped": "too slow",
    "body-dripped": "too slow",
    "silent-after-headers": "too slow",
    "good-answer-too-late": "too slow",
    "html-500": "HTTP 500",
    "401-www-authenticate": "HTTP 401",
    "invalid-json": "not JSON",
    "body-100mb": "larger than",
    "reset-mid-body": "unreachable",
    "redirect-loop": "HTTP 302",
    "next-link-to-itself": None,  # the first page is good: its cards, or 412 naming the paging problem
    "connection-refused": "unreachable",
}


@pytest.fixture(scope="module")
def sick() -> Iterator[SickFhirServers]:
    with SickFhirServers(bundle([DROOP])) as servers:
        yield servers


@pytest.fixture(scope="module")
def refused_url() -> str:
    return f"http://127.0.0.1:{free_port()}/fhir"  # nothing listens there


@pytest.fixture(scope="module")
def service(sick: SickFhirServers, refused_url: str) -> Iterator[ServiceServer]:
    allowed = [sick.url(name) for name in sick.behaviours] + [refused_url]
    env = {
        "CDS_ALLOWED_FHIR_SERVERS": ",".join(allowed),
        "CDS_ALLOW_HTTP_LOOPBACK": "1",
        "CDS_FHIR_TIMEOUT": str(DEADLINE),
    }
    with ServiceServer(env=env) as server:
        yield server


def _call(service: ServiceServer, fhir_server: str | None) -> tuple[requests.Response, float]:
    if fhir_server is None:
        body = hook_request(PATIENT, [DROOP])
    else:
        body = hook_request(
            PATIENT, fhirServer=fhir_server, fhirAuthorization=fhir_authorization("t0k3n", "patient/*.read")
        )
    started = time.monotonic()
    response = requests.post(
        f"{service.base_url}/cds-services/{PATIENT_VIEW}", json=body, headers={"X-CDS-Evaluation-Time": NOW}, timeout=30
    )
    return response, time.monotonic() - started


def test_every_fault_is_answered_within_the_deadline_and_the_service_stays_free(
    service: ServiceServer, sick: SickFhirServers, refused_url: str
) -> None:
    urls = {name: sick.url(name) for name in sick.behaviours} | {"connection-refused": refused_url}
    assert set(urls) == set(EXPECTED)
    with ThreadPoolExecutor(len(urls)) as pool:
        futures = {name: pool.submit(_call, service, url) for name, url in urls.items()}
        answers = {name: future.result() for name, future in futures.items()}
    next_call, next_elapsed = _call(service, None)  # prefetched: needs no FHIR server
    report = {name: (r.status_code, round(elapsed, 2)) for name, (r, elapsed) in answers.items()}
    print("sick FHIR servers (status, seconds):", report)
    for name, (response, elapsed) in answers.items():
        assert elapsed < DEADLINE + MARGIN, (name, report)
        assert response.status_code in (200, 412), (name, response.status_code, response.text)
        if response.status_code == 412:
            outcome = response.json()
            assert response.headers["Content-Type"] == "application/fhir+json"
            diagnostics = outcome["issue"][0]["diagnostics"]
            assert EXPECTED[name] is None or EXPECTED[name] in diagnostics, (name, diagnostics)
        else:
            assert EXPECTED[name] is None, (name, response.text)
            assert [c["indicator"] for c in response.json()["cards"]] == ["critical"], name
    assert next_call.status_code == 200 and next_elapsed < 1.0, next_elapsed
    assert "unhandled_error" not in service.logs()
