"""Logs are structured JSON with a request id, and hold no patient ids, names, tokens or Observation values.

Every clinical scenario is sent to the deployed server (jwt mode) with distinctive identifiers, names, notes, bearer
JWTs and FHIR access tokens, plus calls down the fetch, failure, feedback and refusal paths; then the server's whole
log is searched for each of those values.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import requests
from flask.testing import FlaskClient

from tests.support import jwt_kit
from tests.support.jwt_kit import SigningKey, claims, sign
from tests.support.requests_factory import PATIENT_VIEW, bundle, fhir_authorization, hook_request, observation
from tests.support.scenarios import Scenario, load_scenarios
from tests.support.service_server import ServiceServer
from tests.support.stub_fhir import Reply, StubFhirServer

EHR = "https://ehr-a.example.org"
PATH = f"/cds-services/{PATIENT_VIEW}"


def distinctive(kind: str) -> str:
    return f"{kind}{uuid.uuid4().hex[:12]}"


@dataclass
class Run:
    server: ServiceServer
    secrets: dict[str, str] = field(default_factory=dict)  # value -> what it is
    request_ids: list[str] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)

    def keep(self, what: str, value: str) -> str:
        self.secrets[value] = what
        return value


class EhrFhir:
    """The EHR's FHIR server for the fetch path: answers with the current patient's distinctive data."""

    def __init__(self) -> None:
        self.reply = Reply(body=bundle([]))

    def __call__(self, _path: str) -> Reply:
        return self.reply


def _personalise(run: Run, scenario: Scenario, index: int, fhir_base: str) -> tuple[dict[str, Any], str]:
    patient = run.keep("patient id", f"pv{index:03d}{uuid.uuid4().hex[:10]}")
    text = json.dumps(scenario.request())
    text = text.replace(f'"{scenario.patient}"', f'"{patient}"').replace(
        f'"Patient/{scenario.patient}"', f'"Patient/{patient}"'
    )
    body = json.loads(text)
    prefetch_patient = body["prefetch"]["patient"]
    prefetch_patient["name"] = [
        {"family": run.keep("family name", distinctive("Fam")), "given": [run.keep("given name", distinctive("Giv"))]}
    ]
    for entry in body["prefetch"]["observations"]["entry"]:
        resource = entry["resource"]
        resource["note"] = [{"text": run.keep("observation note", distinctive("note-"))}]
        for value in _strings(resource):
            run.keep("observation value", value)
    body["fhirServer"] = fhir_base
    body["fhirAuthorization"] = fhir_authorization(run.keep("FHIR access token", distinctive("at-")))
    return body, patient


def _strings(resource: dict[str, Any]) -> list[str]:
    """valueString of an Observation and of its components (free text a patient may have said)."""
    found = [resource.get("valueString")] + [c.get("valueString") for c in resource.get("component") or []]
    return [value for value in found if isinstance(value, str) and len(value) >= 6]


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    key = jwt_kit.ec_key("ehr-es384")
    ehr_behaviour = EhrFhir()
    with StubFhirServer(ehr_behaviour) as ehr:
        issuers = jwt_kit.write_issuers(
            tmp_path_factory.mktemp("privacy") / "issuers.yaml",
            [{"iss": EHR, "jwks": jwt_kit.jwks(key), "fhir_servers": [ehr.base_url]}],
        )
        env = {"CDS_AUTH": "jwt", "CDS_TRUSTED_ISSUERS": str(issuers), "CDS_ALLOW_HTTP_LOOPBACK": "1"}
        with ServiceServer(env=env) as server:
            result = Run(server)
            _scenarios(result, key, ehr.base_url)
            _fetch_paths(result, key, ehr, ehr_behaviour)
            _refusals(result, key)
            yield result


def _post(
    run: Run,
    key: SigningKey,
    body: dict[str, Any],
    now: str = "2026-11-25T12:00:00Z",
    path: str = PATH,
    token: str | None = None,
) -> requests.Response:
    token = token or sign(key, claims(EHR, run.server.base_url + path))
    run.keep("bearer JWT", token)
    run.keep("bearer JWT signature", token.rsplit(".", 1)[1])
    request_id = uuid.uuid4().hex
    response = requests.post(
        run.server.base_url + path,
        json=body,
        timeout=15,
        headers={"Authorization": f"Bearer {token}", "X-CDS-Evaluation-Time": now, "X-Request-Id": request_id},
    )
    assert response.headers["X-Request-Id"] == request_id
    run.request_ids.append(request_id)
    run.statuses.append(response.status_code)
    return response


def _scenarios(run: Run, key: SigningKey, fhir_base: str) -> None:
    for index, scenario in enumerate(load_scenarios()):
        body, _patient = _personalise(run, scenario, index, fhir_base)
        response = _post(run, key, body, scenario.now)
        assert response.status_code == 200, (scenario.name, response.text)
        if index % 20 == 0:  # feedback with a free-text override comment
            card = response.json()["cards"][0]["uuid"] if response.json()["cards"] else str(uuid.uuid4())
            feedback = {
                "feedback": [
                    {
                        "card": card,
                        "outcome": "overridden",
                        "outcomeTimestamp": scenario.now,
                        "overrideReason": {"userComment": run.keep("override comment", distinctive("comment-"))},
                    }
                ]
            }
            assert _post(run, key, feedback, path=f"{PATH}/feedback").status_code == 200


def _fetch_paths(run: Run, key: SigningKey, ehr: StubFhirServer, behaviour: EhrFhir) -> None:
    token = run.keep("FHIR access token", distinctive("at-"))
    authorization = fhir_authorization(token)
    for reply_kind in ("data", "server-error", "foreign-next-link", "not-json"):
        patient = run.keep("patient id", distinctive("pf"))
        droop = observation(
            "280816001",
            patient_id=patient,
            valueBoolean=True,
            effectiveDateTime="2026-11-25T10:00:00Z",
            note=[{"text": run.keep("observation note", distinctive("note-"))}],
        )
        pain = observation(
            "22253000",
            patient_id=patient,
            effectiveDateTime="2026-11-25T10:00:00Z",
            valueQuantity={"value": 98765.4321, "unit": "mm"},
        )
        run.keep("observation value", "98765.4321")
        page = bundle([droop, pain])
        if reply_kind == "foreign-next-link":
            page["link"] = [{"relation": "next", "url": f"http://localhost:9/fhir/Observation?patient={patient}"}]
        behaviour.reply = {
            "data": Reply(body=page),
            "server-error": Reply(status=500, body=page),
            "foreign-next-link": Reply(body=page),
            "not-json": Reply(body=None),
        }[reply_kind]
        body = hook_request(patient, fhirServer=ehr.base_url, fhirAuthorization=authorization)
        _post(run, key, body)
    assert any(hit.authorization == f"Bearer {token}" for hit in ehr.hits)
    assert 412 in run.statuses


def _refusals(run: Run, key: SigningKey) -> None:
    patient = run.keep("patient id", distinctive("pr"))
    expired = sign(key, claims(EHR, run.server.base_url + PATH, exp=1_000_000, sub=patient))
    assert _post(run, key, hook_request(patient, observations=[]), token=expired).status_code == 401
    forged = sign(jwt_kit.ec_key("ehr-es384"), claims(EHR, run.server.base_url + PATH))
    assert _post(run, key, hook_request(patient, observations=[]), token=forged).status_code == 401
    bad = hook_request(patient, observations=[])
    bad["context"]["encounterId"] = run.keep("encounter id", distinctive("enc"))
    bad["hook"] = "encounter-start"
    assert _post(run, key, bad).status_code == 400
    wrong_patient = hook_request(patient, observations=[])
    wrong_patient["prefetch"]["patient"]["id"] = run.keep("patient id", distinctive("px"))
    assert _post(run, key, wrong_patient).status_code == 400


def test_no_identifier_token_name_or_value_appears_in_the_logs(run: Run) -> None:
    logs = run.server.logs()
    leaked = sorted({what for value, what in run.secrets.items() if value in logs})
    assert leaked == [], f"found in the service log: {leaked}"
    assert len(run.secrets) > 500  # ids, names, notes, tokens of every scenario


def test_every_request_is_one_structured_json_line_with_its_request_id(run: Run) -> None:
    records = [json.loads(line) for line in run.server.logs().splitlines() if line.startswith("{")]
    requests_logged = {r["request_id"]: r for r in records if r.get("message") == "request"}
    assert set(run.request_ids) <= set(requests_logged)
    for request_id in run.request_ids:
        record = requests_logged[request_id]
        assert record["route"].startswith("/cds-services/") and record["status"] in (200, 400, 401, 412)
        assert {"time", "level", "method", "elapsed_ms"} <= set(record)
    refused = [r for r in records if r.get("message") == "authentication_failed"]
    assert {r["failure"] for r in refused} == {"token expired", "invalid signature"}
    assert all(r["request_id"] in run.request_ids for r in refused)


def test_an_unexpected_error_is_logged_without_its_message(
    client: FlaskClient, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """An exception message may carry data (a patient id in a KeyError...): the log keeps type and place only."""
    patient = distinctive("pe")
    runtime = client.application.extensions["cds_runtime"]

    def broken(*_: object, **__: object) -> None:
        raise KeyError(f"Patient/{patient}")

    monkeypatch.setattr(runtime.store, "record_cards", broken)
    droop = observation("280816001", patient_id=patient, valueBoolean=True)
    with caplog.at_level(logging.INFO):
        response = client.post(PATH, json=hook_request(patient, observations=[droop]))
    assert response.status_code == 500
    record = next(r for r in caplog.records if r.getMessage() == "unhandled_error")
    assert record.error_type == "KeyError" and "broken" in record.trace  # type: ignore[attr-defined]
    assert record.exc_info is None
    assert all(patient not in str(value) for value in vars(record).values())
