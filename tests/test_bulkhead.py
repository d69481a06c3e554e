"""One sick FHIR server does not take the service down: while 16 calls hang on it, calls that need no FHIR server
(full prefetch) are answered at once. The worker model (gthread, 8 threads) and the per-server cap
(CDS_FHIR_MAX_CONCURRENT, 4 per worker) together keep threads free; calls over the cap get 412 at once."""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from tests.support.requests_factory import PATIENT_VIEW, bundle, hook_request, observation
from tests.support.service_server import ServiceServer
from tests.support.sick_fhir import SickFhirServers

PATIENT = "bulkhead-pat"
NOW = "2026-11-25T12:00:00Z"
HANGING, PREFETCHED = 16, 5
DROOP = observation(
    "280816001", patient_id=PATIENT, id="droop-1", valueBoolean=True, effectiveDateTime="2026-11-25T10:00:00Z"
)


@pytest.fixture(scope="module")
def sick() -> Iterator[SickFhirServers]:
    with SickFhirServers(bundle([DROOP])) as servers:
        yield servers


@pytest.fixture(scope="module")
def service(sick: SickFhirServers) -> Iterator[ServiceServer]:
    env = {
        "CDS_ALLOWED_FHIR_SERVERS": sick.url("good-answer-too-late"),
        "CDS_ALLOW_HTTP_LOOPBACK": "1",
        "CDS_FHIR_TIMEOUT": "2",
    }
    with ServiceServer(env=env) as server:
        yield server


def _post(service: ServiceServer, body: dict[str, object]) -> tuple[int, str, float]:
    started = time.monotonic()
    response = requests.post(
        f"{service.base_url}/cds-services/{PATIENT_VIEW}", json=body, headers={"X-CDS-Evaluation-Time": NOW}, timeout=30
    )
    return response.status_code, response.text, time.monotonic() - started


def test_prefetched_calls_flow_while_sixteen_calls_hang_on_one_fhir_server(
    service: ServiceServer, sick: SickFhirServers
) -> None:
    hanging_body = hook_request(PATIENT, fhirServer=sick.url("good-answer-too-late"))
    with ThreadPoolExecutor(HANGING + PREFETCHED) as pool:
        hanging = [pool.submit(_post, service, hanging_body) for _ in range(HANGING)]
        time.sleep(0.3)  # the hanging calls are in their FHIR exchange now
        prefetched = [pool.submit(_post, service, hook_request(PATIENT, [DROOP])) for _ in range(PREFETCHED)]
        waits = [future.result() for future in prefetched]
        hung = [future.result() for future in hanging]
    print("bulkhead: prefetched waits (s):", [round(w[2], 3) for w in waits])
    print("bulkhead: hanging calls (status, s):", sorted((s, round(t, 2)) for s, _, t in hung))
    for status, text, elapsed in waits:
        assert status == 200 and '"critical"' in text
        assert elapsed < 1.5, [w[2] for w in waits]
    assert all(status == 412 for status, _, _ in hung)
    refused_at_once = [t for _, text, t in hung if "already waiting" in text]
    timed_out = [t for _, text, t in hung if "too slow" in text]
    assert refused_at_once and timed_out and len(refused_at_once) + len(timed_out) == HANGING
    assert max(refused_at_once) < 1.5 and max(timed_out) < 3.0
