"""Heavy charts (issue 15): the service reads a monitored bed's whole chart, dated back to its longest tier window,
and when a cap or the deadline stops the paging it answers with what it read and says so (read_in_part).

A stub FHIR server serves the chart newest first, 50 Observations a page whatever `_count` asks, with absolute `next`
links on its own origin, and records each query.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from tests.support.requests_factory import PATIENT_VIEW, bundle, fhir_authorization, hook_request, observation
from tests.support.service_server import ServiceServer
from tests.support.stub_fhir import Reply, StubFhirServer

PATIENT = "heavy-pat"
NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
PAGE_SIZE = 50
TIMEOUT = 1.5  # CDS_FHIR_TIMEOUT of the services under test: one deadline for the whole resolution
SIZE_CAP = 100_000  # the capped service's CDS_FHIR_MAX_RESPONSE_BYTES; a page of 50 vitals is ~15 kB


def _stamp(when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def chart(count: int, droop_at: int) -> list[dict[str, Any]]:
    """`count` Observations newest first: heart rates every 7 s back from now, the facial droop (2 h before now)
    at index `droop_at`, and heart rates older than the droop after it."""
    droop = observation(
        "280816001",
        patient_id=PATIENT,
        id="droop",
        valueBoolean=True,
        effectiveDateTime=_stamp(NOW - timedelta(hours=2)),
    )
    rates = [
        observation(
            "8867-4",
            system="http://loinc.org",
            patient_id=PATIENT,
            id=f"hr-{i}",
            effectiveDateTime=_stamp(NOW - timedelta(seconds=7 * i if i < droop_at else 7200 + 7 * i)),
            valueQuantity={"value": 70 + i % 20, "unit": "/min"},
        )
        for i in range(count - 1)
    ]
    return [*rates[:droop_at], droop, *rates[droop_at:]]


@dataclass
class Chart:
    """What the stub serves: the chart in pages, and the page (if any) that is slow, fails or is too big."""

    base_url: str = ""
    observations: list[dict[str, Any]] = field(default_factory=list)
    slow_page: int | None = None
    failing_page: int | None = None
    huge_page: int | None = None

    def page(self, number: int) -> dict[str, Any]:
        start = (number - 1) * PAGE_SIZE
        page = bundle(self.observations[start : start + PAGE_SIZE])
        page["total"] = len(self.observations)
        if start + PAGE_SIZE < len(self.observations):
            page["link"] = [
                {"relation": "next", "url": f"{self.base_url}/Observation?patient={PATIENT}&_page={number + 1}"}
            ]
        if number == self.huge_page:
            page["entry"][0]["resource"]["note"] = [{"text": "x" * SIZE_CAP}]
        return page

    def __call__(self, path: str) -> Reply:
        number = int(parse_qs(urlsplit(path).query).get("_page", ["1"])[0])
        if number == self.failing_page:
            return Reply(status=503, body={"resourceType": "OperationOutcome"})
        return Reply(body=self.page(number), delay=TIMEOUT + 1.0 if number == self.slow_page else 0.0)


@pytest.fixture(scope="module")
def stub() -> Iterator[tuple[StubFhirServer, Chart]]:
    state = Chart()
    with StubFhirServer(lambda path: state(path)) as server:
        state.base_url = server.base_url
        yield server, state


@pytest.fixture
def fhir(stub: tuple[StubFhirServer, Chart]) -> Iterator[tuple[StubFhirServer, Chart]]:
    """The stub with a fresh 1,000-Observation chart (the droop on page 20) and no hits recorded."""
    server, state = stub
    state.observations, state.slow_page, state.failing_page, state.huge_page = chart(1000, 999), None, None, None
    server.hits.clear()
    yield stub


def _service(stub: tuple[StubFhirServer, Chart], **env: str) -> ServiceServer:
    common = {
        "CDS_ALLOWED_FHIR_SERVERS": stub[0].base_url,
        "CDS_ALLOW_HTTP_LOOPBACK": "1",
        "CDS_FHIR_TIMEOUT": str(TIMEOUT),
    }
    return ServiceServer(env={**common, **env}, workers=1)


@pytest.fixture(scope="module")
def service(stub: tuple[StubFhirServer, Chart]) -> Iterator[ServiceServer]:
    """CDS_FHIR_MAX_PAGES and CDS_FHIR_MAX_RESPONSE_BYTES at their defaults."""
    with _service(stub) as server:
        yield server


@pytest.fixture(scope="module")
def capped(stub: tuple[StubFhirServer, Chart]) -> Iterator[ServiceServer]:
    with _service(stub, CDS_FHIR_MAX_PAGES="3", CDS_FHIR_MAX_RESPONSE_BYTES=str(SIZE_CAP)) as server:
        yield server


def call(service: ServiceServer, fhir_server: str | None, **extra: Any) -> requests.Response:
    if fhir_server is not None:
        extra["fhirServer"] = fhir_server
        extra["fhirAuthorization"] = fhir_authorization("heavy-token")
    return requests.post(
        f"{service.base_url}/cds-services/{PATIENT_VIEW}",
        json=hook_request(PATIENT, **extra),
        headers={"X-CDS-Evaluation-Time": _stamp(NOW)},
        timeout=10,
    )


def access_log(service: ServiceServer, response: requests.Response) -> dict[str, Any]:
    request_id = response.headers["X-Request-Id"]
    deadline = time.monotonic() + 3
    while True:
        lines = [json.loads(text) for text in service.logs().splitlines() if request_id in text and '"route"' in text]
        if lines or time.monotonic() > deadline:
            assert lines, f"no access-log line for {request_id}"
            return lines[0]
        time.sleep(0.05)


def indicators(response: requests.Response) -> list[str]:
    assert response.status_code == 200, response.text
    return [card["indicator"] for card in response.json()["cards"]]


def test_a_stroke_sign_on_page_20_of_a_monitored_chart_gives_a_critical_card(
    service: ServiceServer, fhir: tuple[StubFhirServer, Chart]
) -> None:
    response = call(service, fhir[0].base_url, prefetch={"patient": None})
    assert indicators(response) == ["critical"]
    assert "droop" in response.json()["cards"][0]["detail"]
    assert len(fhir[0].hits) == 20
    line = access_log(service, response)
    assert (line["pages_followed"], line["observations"], line["read_in_part"]) == (19, 1000, None)


def test_the_service_asks_for_the_longest_tier_window_newest_first(
    service: ServiceServer, fhir: tuple[StubFhirServer, Chart]
) -> None:
    fhir[1].observations = chart(10, 3)
    assert indicators(call(service, fhir[0].base_url)) == ["critical"]
    [hit] = fhir[0].hits
    parts = urlsplit(hit.path)
    query = parse_qs(parts.query)
    assert parts.path == "/fhir/Observation"
    assert query["patient"] == [PATIENT] and query["_sort"] == ["-date"] and query["_count"] == ["100"]
    assert query["date"] == [f"ge{_stamp(NOW - timedelta(days=14))}"]
    assert "+" not in hit.path


def test_the_page_cap_answers_with_what_was_read_and_logs_read_in_part(
    capped: ServiceServer, fhir: tuple[StubFhirServer, Chart]
) -> None:
    response = call(capped, fhir[0].base_url)
    assert response.status_code == 200, response.text
    assert len(fhir[0].hits) == 4  # the first page and CDS_FHIR_MAX_PAGES=3 next pages
    line = access_log(capped, response)
    assert line["read_in_part"] == {"reason": "page-cap", "pages_read": 4, "observations_read": 200}
    assert line["observations"] == 200
    [card] = [c for c in response.json()["cards"] if "read_in_part" in c["extension"]["org.weakness-triage"]]
    assert card["indicator"] == "info" and card["summary"].startswith("Chart read only in part: 200 records in 4 pages")
    assert "more pages than the service reads" in card["detail"]  # the stroke sign on page 20 was never read


def test_a_next_page_past_the_deadline_answers_within_it_with_what_was_read(
    service: ServiceServer, fhir: tuple[StubFhirServer, Chart]
) -> None:
    fhir[1].slow_page = 3
    started = time.monotonic()
    response = call(service, fhir[0].base_url)
    elapsed = time.monotonic() - started
    assert response.status_code == 200, response.text
    assert elapsed < TIMEOUT + 1.0, elapsed
    assert access_log(service, response)["read_in_part"] == {
        "reason": "deadline",
        "pages_read": 2,
        "observations_read": 100,
    }
    parts = [c["extension"]["org.weakness-triage"].get("read_in_part") for c in response.json()["cards"]]
    assert {"reason": "deadline", "pages_read": 2, "observations_read": 100} in parts


@pytest.mark.parametrize(("page", "reason"), [("failing_page", "next-page-failed"), ("huge_page", "size-cap")])
def test_a_next_page_that_fails_or_is_too_big_answers_with_what_was_read(
    capped: ServiceServer, fhir: tuple[StubFhirServer, Chart], page: str, reason: str
) -> None:
    setattr(fhir[1], page, 2)
    response = call(capped, fhir[0].base_url)
    assert response.status_code == 200, response.text
    assert access_log(capped, response)["read_in_part"] == {"reason": reason, "pages_read": 1, "observations_read": 50}


def test_a_first_page_that_fails_is_412_naming_the_cause(
    service: ServiceServer, fhir: tuple[StubFhirServer, Chart]
) -> None:
    fhir[1].failing_page = 1
    response = call(service, fhir[0].base_url)
    assert response.status_code == 412
    issue = response.json()["issue"][0]
    assert issue["expression"] == ["prefetch.observations"]
    assert issue["diagnostics"].endswith("could not be fetched: FHIR server answered HTTP 503"), issue


def test_a_prefetched_bundle_whose_next_page_holds_the_sign_gives_a_critical_card(
    service: ServiceServer, fhir: tuple[StubFhirServer, Chart]
) -> None:
    fhir[1].observations = chart(100, 60)
    first_page = fhir[1].page(1)
    response = call(service, fhir[0].base_url, prefetch={"patient": None, "observations": first_page})
    assert indicators(response) == ["critical"]
    assert [parse_qs(urlsplit(hit.path).query)["_page"] for hit in fhir[0].hits] == [["2"]]


def test_a_paged_prefetch_without_a_fhir_server_is_412_saying_so(
    service: ServiceServer, fhir: tuple[StubFhirServer, Chart]
) -> None:
    response = call(service, None, prefetch={"patient": None, "observations": fhir[1].page(1)})
    assert response.status_code == 412
    assert response.json()["issue"][0]["diagnostics"] == (
        "prefetch 'observations' has more pages (next link), and they cannot be read: "
        "the request has no fhirServer to read them from"
    )
    assert fhir[0].hits == []
