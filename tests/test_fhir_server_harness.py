"""Quick checks of the loopback FHIR server harness (tests/support/fhir_server.py)."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
import requests

from tests.support.fhir_server import FhirServer, FhirServerError

PATIENT = {
    "resourceType": "Patient",
    "id": "pat-1",
    "name": [{"family": "Doe", "given": ["Ann"]}],
    "birthDate": "1970-01-01",
}


def observation(n: int) -> dict:
    """A final Observation of pat-1, effective 2026-11-0n (offset kept as written)."""
    return {
        "resourceType": "Observation",
        "id": f"obs-{n}",
        "status": "final",
        "code": {"coding": [{"system": "http://snomed.info/sct", "code": "280816001", "display": "Facial palsy"}]},
        "subject": {"reference": "Patient/pat-1"},
        "effectiveDateTime": f"2026-11-0{n}T10:00:00+01:00",
        "valueBoolean": True,
    }


def alive(pid: int) -> bool:
    """Is there still a (non-zombie) process with this pid?"""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


@pytest.fixture(scope="module")
def fhir() -> Iterator[FhirServer]:
    with FhirServer() as server:
        server.load([PATIENT, *(observation(n) for n in (1, 2, 3))])
        yield server


def test_read_and_paged_search(fhir: FhirServer) -> None:
    assert fhir.base_url == f"http://127.0.0.1:{fhir.port}/fhir"
    patient = requests.get(f"{fhir.base_url}/Patient/pat-1", timeout=5).json()
    assert patient["name"] == PATIENT["name"]

    page = requests.get(
        f"{fhir.base_url}/Observation",
        timeout=5,
        params={"patient": "pat-1", "_sort": "-date", "_count": "2"},
        headers={"Authorization": "Bearer not-checked"},
    ).json()
    assert page["type"] == "searchset" and page["total"] == 3
    assert [e["resource"]["id"] for e in page["entry"]] == ["obs-3", "obs-2"]
    assert page["entry"][0]["resource"]["effectiveDateTime"] == "2026-11-03T10:00:00+01:00"
    links = {link["relation"]: link["url"] for link in page["link"]}
    assert links["next"].startswith(f"{fhir.base_url}/Observation?")

    last = requests.get(links["next"], timeout=5).json()
    assert [e["resource"]["id"] for e in last["entry"]] == ["obs-1"]
    assert "next" not in {link["relation"] for link in last["link"]}
    assert fhir.request_log()[-1]["url"].startswith("/fhir/Observation?")


def test_search_filters(fhir: FhirServer) -> None:
    def ids(**params: str) -> list[str]:
        bundle = requests.get(f"{fhir.base_url}/Observation", params=params, timeout=5).json()
        return [e["resource"]["id"] for e in bundle.get("entry", []) if e["search"]["mode"] == "match"]

    assert ids(patient="Patient/pat-1") == ids(patient="pat-1") == ["obs-1", "obs-2", "obs-3"]
    assert ids(patient="pat-1", code="http://snomed.info/sct|280816001") == ["obs-1", "obs-2", "obs-3"]
    assert ids(patient="pat-1", code="http://loinc.org|4548-4") == []
    assert ids(patient="pat-1", date="ge2026-11-02") == ["obs-2", "obs-3"]


def test_invalid_load_and_stop_leaves_nothing() -> None:
    server = FhirServer().start()
    pid = server.process.pid if server.process else -1
    workdir = server.workdir
    with pytest.raises(FhirServerError, match="status"):
        server.load([{"resourceType": "Observation", "id": "bad", "code": {"text": "no status"}}])
    assert server.read("Observation", "bad") is None
    server.stop()
    deadline = time.monotonic() + 5
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not alive(pid)
    assert workdir is not None and not workdir.exists()
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{server.base_url}/metadata", timeout=2)
