"""Two `cds-service serve` processes on one database (a SQLite file; a fresh PostgreSQL database), as behind a load
balancer with one public URL: nothing one process keeps is needed by the other.

Feedback for a card issued by A, posted to B, is counted by the report; a jti used on A is refused on B; an
override on A quiets the repeat on B (new evidence fires in full at once); /metrics adds up A's two workers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

from cds_service.migrations import upgrade
from cds_service.store import make_engine
from tests.support import jwt_kit
from tests.support.gunicorn_process import REPO
from tests.support.postgres import fresh_database
from tests.support.requests_factory import PATIENT_VIEW, hook_request, observation
from tests.support.service_server import ServiceServer

PUBLIC_URL = "https://cds.hospital.example"  # the load balancer's: the JWT aud of both processes
EHR = "https://ehr.example"
PATH = f"/cds-services/{PATIENT_VIEW}"
NOW = "2026-11-25T12:00:00Z"
TWO_HOURS_LATER = "2026-11-25T14:00:00Z"
REASON_SYSTEM = "urn:weakness-triage:CodeSystem:override-reason"  # cards/common.yaml


@dataclass
class Pair:
    a: ServiceServer
    b: ServiceServer
    key: jwt_kit.SigningKey
    database_url: str

    def post(self, server: ServiceServer, path: str, body: dict[str, Any], now: str = NOW) -> requests.Response:
        token = jwt_kit.sign(self.key, jwt_kit.claims(EHR, PUBLIC_URL + path))
        return self.post_with(server, path, body, token, now)

    @staticmethod
    def post_with(server: ServiceServer, path: str, body: Any, token: str, now: str = NOW) -> requests.Response:
        headers = {"Authorization": f"Bearer {token}", "X-CDS-Evaluation-Time": now}
        return requests.post(server.base_url + path, json=body, headers=headers, timeout=15)


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_two_server_processes_share_one_database(kind: str, tmp_path: Path) -> None:
    """One test per database (server starts are the cost); each step is a claim of the module docstring."""
    with _pair(kind, tmp_path) as pair:
        a_jti_used_on_a_is_refused_on_b(pair)
        an_override_on_a_quiets_the_repeat_on_b_until_new_evidence(pair)
        feedback_for_a_card_of_a_posted_to_b_is_counted_by_the_report(pair)
        metrics_add_up_every_worker_of_a(pair)


@contextmanager
def _pair(kind: str, folder: Path) -> Iterator[Pair]:
    key = jwt_kit.ec_key("ehr-es384")
    issuer = {"iss": EHR, "jwks": jwt_kit.jwks(key), "fhir_servers": ["https://fhir.hospital.example/r4"]}
    issuers = jwt_kit.write_issuers(folder / "issuers.yaml", [issuer])
    with _database(kind, folder) as url:
        env = {"CDS_AUTH": "jwt", "CDS_TRUSTED_ISSUERS": str(issuers), "CDS_PUBLIC_URL": PUBLIC_URL}
        env["CDS_DATABASE_URL"] = url
        with ServiceServer(env=env, workers=2) as a, ServiceServer(env=env, workers=1) as b:  # one after the other
            yield Pair(a, b, key, url)


@contextmanager
def _database(kind: str, folder: Path) -> Iterator[str]:
    if kind == "sqlite":
        yield f"sqlite:///{folder}/shared.db"  # created and upgraded by A, found at head by B
        return
    with fresh_database() as url:
        engine = make_engine(url)
        upgrade(engine)  # the migration step (compose `migrate`, the Kubernetes Job)
        engine.dispose()
        yield url


def _facial_droop(patient: str, obs_id: str) -> dict[str, Any]:
    return observation(
        "280816001", patient_id=patient, id=obs_id, effectiveDateTime="2026-11-25T10:00:00Z", valueBoolean=True
    )


def _limb_weakness(patient: str) -> dict[str, Any]:
    return observation(
        "20022000", patient_id=patient, id=f"obs-{uuid.uuid4().hex[:8]}", effectiveDateTime="2026-11-25T11:00:00Z"
    )


def _cards(response: requests.Response) -> list[dict[str, Any]]:
    assert response.status_code == 200, response.text
    cards: list[dict[str, Any]] = response.json()["cards"]
    return cards


def a_jti_used_on_a_is_refused_on_b(pair: Pair) -> None:
    token = jwt_kit.sign(pair.key, jwt_kit.claims(EHR, PUBLIC_URL + "/cds-services"))
    assert requests.get(pair.a.base_url + "/cds-services", headers={"Authorization": f"Bearer {token}"}, timeout=5).ok
    replay = requests.get(pair.b.base_url + "/cds-services", headers={"Authorization": f"Bearer {token}"}, timeout=5)
    assert replay.status_code == 401 and "token already used" in replay.text
    assert 'cds_jwt_refusals_total{failure="token_already_used"} 1.0' in _metrics(pair.b)


def an_override_on_a_quiets_the_repeat_on_b_until_new_evidence(pair: Pair) -> None:
    patient = f"pat-{uuid.uuid4().hex[:8]}"
    droop = _facial_droop(patient, f"obs-{uuid.uuid4().hex[:8]}")
    [card] = _cards(pair.post(pair.a, PATH, hook_request(patient, [droop])))
    assert card["indicator"] == "critical"
    feedback = {
        "card": card["uuid"],
        "outcome": "overridden",
        "outcomeTimestamp": "2026-11-25T12:01:00Z",
        "overrideReason": {"reason": {"system": REASON_SYSTEM, "code": "already-acting"}},
    }
    assert pair.post(pair.a, PATH + "/feedback", {"feedback": [feedback]}).status_code == 200

    [quiet] = _cards(pair.post(pair.b, PATH, hook_request(patient, [droop]), now=TWO_HOURS_LATER))
    assert quiet["indicator"] == "info"
    assert quiet["summary"].startswith("Acknowledged 1 h ago by override: Already assessed; care is under way")
    assert quiet["extension"]["org.weakness-triage"]["acknowledged"]["card"] == card["uuid"]
    quieted = quiet["extension"]["org.weakness-triage"]["findings"]
    assert [f["observation"] for f in quieted] == [f"Observation/{droop['id']}"]  # machine references: extension

    [worse] = _cards(pair.post(pair.b, PATH, hook_request(patient, [droop, _limb_weakness(patient)]), TWO_HOURS_LATER))
    assert worse["indicator"] == "critical"  # another Observation: in full at once
    [other] = _cards(pair.post(pair.b, PATH, hook_request("pat-other", [_facial_droop("pat-other", droop["id"])])))
    assert other["indicator"] == "critical"  # another patient's same-looking record: not acknowledged
    [later] = _cards(pair.post(pair.a, PATH, hook_request(patient, [droop]), now="2026-11-26T00:02:00Z"))
    assert later["indicator"] == "critical"  # 12 h after the override the quiet window is over
    assert 'cds_repeat_alerts_quieted_total{tier="emergency"} 1.0' in _metrics(pair.b)


def feedback_for_a_card_of_a_posted_to_b_is_counted_by_the_report(pair: Pair) -> None:
    patient = f"pat-{uuid.uuid4().hex[:8]}"
    [card] = _cards(pair.post(pair.a, PATH, hook_request(patient, [_limb_weakness(patient)])))
    feedback = {
        "card": card["uuid"],
        "outcome": "overridden",
        "outcomeTimestamp": "2026-11-25T12:09:00Z",
        "overrideReason": {"reason": {"system": REASON_SYSTEM, "code": "patient-declines"}},
    }
    for _ in range(2):  # posted twice (an EHR retrying): stored once
        assert pair.post(pair.b, PATH + "/feedback", {"feedback": [feedback]}).status_code == 200
    report = _report(pair.database_url)
    [line] = [line for line in report["lines"] if line["override_reasons"].get("patient-declines")]
    assert (line["rule"], line["tier"], line["feedback"], line["overridden"]) == (
        "stroke-sign-limb-weakness",
        "emergency",
        1,
        1,
    )
    assert line["override_reasons"] == {"patient-declines": 1} and line["acceptance_rate"] == 0.0
    assert line["median_minutes_to_feedback"] == 9.0
    assert 'cds_feedback_total{outcome="overridden",stored="duplicate"} 1.0' in _metrics(pair.b)


def metrics_add_up_every_worker_of_a(pair: Pair) -> None:
    before = _hook_calls(_metrics(pair.a))
    calls = 8
    for _ in range(calls):
        patient = f"pat-{uuid.uuid4().hex[:8]}"
        _cards(pair.post(pair.a, PATH, hook_request(patient, [_limb_weakness(patient)])))
    scrapes = [_hook_calls(_metrics(pair.a)) for _ in range(4)]  # whichever worker answers the scrape
    assert scrapes == [before + calls] * 4
    text = _metrics(pair.a)
    assert 'cds_cards_total{indicator="critical",rule="stroke-sign-limb-weakness"}' in text
    assert "pat-" not in text


def _metrics(server: ServiceServer) -> str:
    response = requests.get(server.base_url + "/metrics", timeout=5)  # no JWT: ops scrape it
    assert response.status_code == 200 and response.headers["Content-Type"].startswith("text/plain")
    return response.text


def _hook_calls(text: str) -> float:
    prefix = 'cds_http_request_duration_seconds_count{method="POST",route="/cds-services/<service_id>",status="200"}'
    return sum(float(line.split()[-1]) for line in text.splitlines() if line.startswith(prefix))


def _report(database_url: str) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CDS_")} | {"CDS_DATABASE_URL": database_url}
    command = [sys.executable, "-m", "cds_service", "report", "--format", "json"]
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=60, check=True)
    report: dict[str, Any] = json.loads(done.stdout)
    return report
