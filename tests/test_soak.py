"""Soak: mixed valid, invalid and fetch-path calls at concurrency 32 against the deployed server, loopback only, for
SOAK_SECONDS (default 25; stops by itself): no 5xx, no error in the logs that is not the client's, and the memory
of every worker stable (under 10% growth after the warm-up)."""

from __future__ import annotations

import json
import os
import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.support.fhir_server import FhirServer
from tests.support.requests_factory import ENCOUNTER_START, PATIENT_VIEW, fhir_authorization, hook_request, observation
from tests.support.service_server import ServiceServer

SECONDS = float(os.environ.get("SOAK_SECONDS", "25"))
WARMUP = min(8.0, SECONDS / 4)
CONCURRENCY = 32
PATIENT = "soak-pat"
NOW = {"X-CDS-Evaluation-Time": "2026-11-25T12:00:00Z"}
CHART = [
    observation("280816001", patient_id=PATIENT, valueBoolean=True, effectiveDateTime="2026-11-25T10:00:00Z"),
    *(
        observation(
            "8867-4",
            system="http://loinc.org",
            patient_id=PATIENT,
            effectiveDateTime=f"2026-11-25T11:{i:02d}:00Z",
            valueQuantity={"value": 70 + i, "unit": "/min"},
        )
        for i in range(30)
    ),
]


@pytest.fixture(scope="module")
def fhir() -> Iterator[FhirServer]:
    with FhirServer() as server:  # its own process, as an EHR's FHIR server is
        server.load([{"resourceType": "Patient", "id": PATIENT}, *CHART])
        yield server


@pytest.fixture(scope="module")
def service(fhir: FhirServer) -> Iterator[ServiceServer]:
    env = {"CDS_ALLOWED_FHIR_SERVERS": fhir.base_url, "CDS_ALLOW_HTTP_LOOPBACK": "1"}
    with ServiceServer(env=env) as server:
        yield server


def _calls(service: ServiceServer, fhir: FhirServer) -> list[tuple[str, Callable[[requests.Session], Any]]]:
    hook = f"{service.base_url}/cds-services/{PATIENT_VIEW}"
    token = fhir_authorization("t", "patient/*.read")

    def post(url: str, **kwargs: Any) -> Callable[[requests.Session], Any]:
        return lambda session: session.post(url, headers={**NOW, **kwargs.pop("headers", {})}, timeout=10, **kwargs)

    return [
        ("prefetched", post(hook, json=hook_request(PATIENT, CHART))),
        (
            "prefetched",
            post(
                f"{service.base_url}/cds-services/{ENCOUNTER_START}",
                json=hook_request(PATIENT, CHART[:5], hook="encounter-start"),
            ),
        ),
        ("fetched", post(hook, json=hook_request(PATIENT, fhirServer=fhir.base_url, fhirAuthorization=token))),
        ("invalid", post(hook, data=b'{"hook": "patient-view", ', headers={"Content-Type": "application/json"})),
        ("invalid", post(hook, json={**hook_request(PATIENT, CHART), "hookInstance": "not-a-uuid"})),
        ("invalid", post(hook, json=hook_request(PATIENT, CHART, hook="encounter-start"))),
        ("invalid", post(f"{service.base_url}/cds-services/{PATIENT_VIEW}/feedback", json={"feedback": []})),
        ("discovery", lambda session: session.get(f"{service.base_url}/cds-services", timeout=10)),
    ]


def _worker_rss_mb(master: int) -> dict[int, float]:
    found = {}
    for pid in Path(f"/proc/{master}/task/{master}/children").read_text().split():
        status = Path(f"/proc/{pid}/status").read_text()
        found[int(pid)] = int(next(ln for ln in status.splitlines() if ln.startswith("VmRSS:")).split()[1]) / 1024
    return found


def test_soak_mixed_calls_at_concurrency_32(service: ServiceServer, fhir: FhirServer) -> None:
    calls = _calls(service, fhir)
    tally: Counter[str] = Counter()
    lock = threading.Lock()
    stop_at = time.monotonic() + SECONDS

    def client(seed: int) -> None:
        chooser, session = random.Random(seed), requests.Session()
        while time.monotonic() < stop_at:
            kind, call = chooser.choice(calls)
            status = call(session).status_code
            with lock:
                tally[f"{kind} {status}"] += 1

    threads = [threading.Thread(target=client, args=(seed,)) for seed in range(CONCURRENCY)]
    for thread in threads:
        thread.start()
    time.sleep(WARMUP)
    assert service.server.process is not None
    after_warmup = _worker_rss_mb(service.server.process.pid)
    for thread in threads:
        thread.join()
    at_end = _worker_rss_mb(service.server.process.pid)
    reasons = Counter(json.loads(ln)["reason"] for ln in service.logs().splitlines() if "fhir_fetch_failed" in ln)
    growth = {pid: round(at_end[pid] / mb - 1, 3) for pid, mb in after_warmup.items() if pid in at_end}
    print(
        f"soak {SECONDS:g} s at c{CONCURRENCY}: {sum(tally.values())} requests {dict(sorted(tally.items()))}; "
        f"worker RSS MB after warm-up {after_warmup}, at end {at_end}; fetches refused: {reasons}"
    )
    assert not any(key.endswith(tuple(f" {code}" for code in range(500, 600))) for key in tally), tally
    assert all(key.split()[1] == "200" for key in tally if key.split()[0] in ("prefetched", "discovery")), tally
    # A fetch may be refused under this overload (2 cores, 32 clients, the FHIR server on the same cores): 412 when
    # the FHIR server misses the deadline or the bulkhead sheds it, never anything else.
    assert {key for key in tally if key.startswith("fetched")} <= {"fetched 200", "fetched 412"}, tally
    assert all("too slow" in reason or "already waiting" in reason for reason in reasons), reasons
    assert tally["fetched 200"] > tally["fetched 412"], (tally, reasons)
    assert all(key.split()[1].startswith("4") for key in tally if key.startswith("invalid")), tally
    assert set(growth) == set(at_end) and all(g < 0.10 for g in growth.values()), growth  # no worker was replaced
    errors = [
        line
        for line in service.logs().splitlines()
        if line.startswith("{") and json.loads(line).get("level") in ("ERROR", "CRITICAL")
    ]
    assert not errors and "Traceback" not in service.logs(), errors[:5]
