"""CDS Hooks 2.0.1 protocol over real HTTP against the deployed server (gunicorn on a loopback port)."""

from __future__ import annotations

import json
import re
import uuid
from pathlib import Path
from typing import Any

import requests

from cds_service.store import Store
from tests.support.card_checks import empty_values
from tests.support.requests_factory import ENCOUNTER_START, PATIENT_VIEW, hook_request, observation
from tests.support.service_server import ServiceServer

EXAMPLES = Path(__file__).resolve().parent / "fixtures" / "cds-hooks-examples"
FACIAL_PALSY = "280816001"
NOW = "2026-11-25T12:00:00Z"


def example(name: str) -> Any:
    return json.loads((EXAMPLES / name).read_text())


def post(service: ServiceServer, path: str, body: Any, **kwargs: Any) -> requests.Response:
    headers = {"X-CDS-Evaluation-Time": NOW, **kwargs.pop("headers", {})}
    return requests.post(f"{service.base_url}{path}", json=body, headers=headers, timeout=10, **kwargs)


def droop(present: bool = True, **fields: Any) -> dict[str, Any]:
    return observation(FACIAL_PALSY, valueBoolean=present, effectiveDateTime="2026-11-25T10:00:00Z", **fields)


def assert_operation_outcome(response: requests.Response, status: int, where: str | None = None) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["resourceType"] == "OperationOutcome"
    issue = body["issue"][0]
    assert issue["severity"] in ("error", "fatal") and issue["diagnostics"]
    if where:
        assert issue["expression"] == [where], issue
    return body


# ---- discovery ------------------------------------------------------------------------------------------


def test_discovery_lists_one_service_per_hook_with_spec_safe_prefetch(service: ServiceServer) -> None:
    response = requests.get(f"{service.base_url}/cds-services", timeout=5)
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("application/json")
    body = response.json()
    assert {s["hook"] for s in body["services"]} == {"patient-view", "encounter-start"}
    assert empty_values(body) == []
    for entry in body["services"]:
        assert entry["id"] and entry["description"] and entry["title"] and entry["usageRequirements"]
        for template in entry["prefetch"].values():
            tokens = re.findall(r"\{\{(.*?)\}\}", template)
            assert tokens and all(t.strip() == "context.patientId" for t in tokens), template
            # 2.0.1 "prefetch query restrictions": instance read, or type search on reference/token/date params,
            # _count and _sort only; no today() (3.0 only) and no non-FHIR `sort:desc`.
            path, _, query = template.partition("?")
            assert re.fullmatch(r"[A-Z][A-Za-z]+(/\{\{context\.patientId\}\})?", path), template
            for parameter in filter(None, query.split("&")):
                name, _, value = parameter.partition("=")
                assert name in {"patient", "subject", "code", "category", "date", "_count", "_sort"}, template
                if name == "date":
                    assert re.fullmatch(r"(eq|lt|gt|ge|le)?[0-9T:\-]+", value), template


def test_every_advertised_service_answers_a_valid_call(service: ServiceServer) -> None:
    services = requests.get(f"{service.base_url}/cds-services", timeout=5).json()["services"]
    for entry in services:
        response = post(service, f"/cds-services/{entry['id']}", hook_request(observations=[], hook=entry["hook"]))
        assert response.status_code == 200, response.text
        assert response.json() == {"cards": []}


# ---- the call: cards ------------------------------------------------------------------------------------


def test_facial_droop_gets_a_critical_card_linking_to_the_guide_page(service: ServiceServer) -> None:
    response = post(service, f"/cds-services/{PATIENT_VIEW}", hook_request(observations=[droop()]))
    assert response.status_code == 200
    cards = response.json()["cards"]
    assert [c["indicator"] for c in cards] == ["critical"]
    card = cards[0]
    assert len(card["summary"]) < 140 and "Facial droop" in card["summary"]
    assert uuid.UUID(card["uuid"])
    assert empty_values(card) == []
    link = card["links"][0]
    assert link["type"] == "absolute" and link["url"] == f"{service.base_url}/guides/weakness#emergency"
    page = requests.get(link["url"].split("#")[0], timeout=5)
    assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/html")
    assert 'id="emergency"' in page.text
    assert card["source"]["url"] == f"{service.base_url}/guides/weakness"
    assert card["overrideReasons"] and all(r["display"] for r in card["overrideReasons"])


def test_the_same_call_with_the_finding_marked_absent_gets_no_critical_card(service: ServiceServer) -> None:
    response = post(service, f"/cds-services/{PATIENT_VIEW}", hook_request(observations=[droop(present=False)]))
    assert response.status_code == 200
    assert response.json() == {"cards": []}


def test_encounter_start_gets_the_same_triage(service: ServiceServer) -> None:
    body = hook_request(observations=[droop()], hook="encounter-start")
    response = post(service, f"/cds-services/{ENCOUNTER_START}", body)
    assert response.status_code == 200
    assert [c["indicator"] for c in response.json()["cards"]] == ["critical"]


def test_other_patients_observations_are_ignored(service: ServiceServer) -> None:
    body = hook_request(observations=[droop(patient_id="someone-else")])
    response = post(service, f"/cds-services/{PATIENT_VIEW}", body)
    assert response.json() == {"cards": []}
    request_id = response.headers["X-Request-Id"]
    line = next(json.loads(text) for text in service.logs().splitlines() if request_id in text and '"route"' in text)
    assert line["other_patient"] == 1 and "someone-else" not in service.logs()


def test_a_request_with_an_extension_is_served(service: ServiceServer) -> None:
    body = hook_request(observations=[droop()], extension=example("spec-request-with-extension.json")["extension"])
    response = post(service, f"/cds-services/{PATIENT_VIEW}", body)
    assert response.status_code == 200 and response.json()["cards"]


def test_a_malformed_observation_still_raises_its_card_and_says_it_did_not_validate(service: ServiceServer) -> None:
    body = hook_request(observations=[droop(note="free text where a list belongs")])
    card = post(service, f"/cds-services/{PATIENT_VIEW}", body).json()["cards"][0]
    assert card["indicator"] == "critical"
    assert "did not validate" in card["detail"]


# ---- prefetch semantics ---------------------------------------------------------------------------------


def test_null_prefetch_means_no_data_and_no_cards(service: ServiceServer) -> None:
    body = hook_request(prefetch={"patient": None, "observations": None})
    response = post(service, f"/cds-services/{PATIENT_VIEW}", body)
    assert response.status_code == 200 and response.json() == {"cards": []}


def test_missing_prefetch_without_fhir_server_is_412(service: ServiceServer) -> None:
    response = post(service, f"/cds-services/{PATIENT_VIEW}", hook_request())
    body = assert_operation_outcome(response, 412, "prefetch.observations")
    assert "no fhirServer" in body["issue"][0]["diagnostics"]


def test_operation_outcome_prefetch_without_fhir_server_is_412(service: ServiceServer) -> None:
    outcome = example("spec-response-412-operationoutcome.json")
    response = post(service, f"/cds-services/{PATIENT_VIEW}", hook_request(prefetch={"observations": outcome}))
    assert_operation_outcome(response, 412, "prefetch.observations")


def test_spec_example_request_with_a_fhir_server_not_allowed_is_412_and_nothing_is_fetched(
    service: ServiceServer,
) -> None:
    response = post(service, f"/cds-services/{PATIENT_VIEW}", example("spec-request-patient-view.json"))
    body = assert_operation_outcome(response, 412, "prefetch.observations")
    assert "allowed" in body["issue"][0]["diagnostics"]


def test_inferno_encounter_start_fixture_without_prefetch_is_412(service: ServiceServer) -> None:
    response = post(service, f"/cds-services/{ENCOUNTER_START}", example("inferno-crd-encounter-start-request.json"))
    assert_operation_outcome(response, 412)


def test_patient_prefetch_for_another_patient_is_refused(service: ServiceServer) -> None:
    body = hook_request(observations=[])
    body["prefetch"]["patient"]["id"] = "not-the-context-patient"
    assert_operation_outcome(post(service, f"/cds-services/{PATIENT_VIEW}", body), 400, "prefetch.patient")


# ---- errors -----------------------------------------------------------------------------------------------


def test_malformed_json_is_400(service: ServiceServer) -> None:
    response = requests.post(
        f"{service.base_url}/cds-services/{PATIENT_VIEW}",
        data=b'{"hook": ',
        headers={"Content-Type": "application/json"},
        timeout=5,
    )
    body = assert_operation_outcome(response, 400)
    assert "not valid JSON" in body["issue"][0]["diagnostics"]


def test_missing_hook_instance_is_400_naming_the_field(service: ServiceServer) -> None:
    body = hook_request(observations=[])
    del body["hookInstance"]
    assert_operation_outcome(post(service, f"/cds-services/{PATIENT_VIEW}", body), 400, "hookInstance")


def test_invalid_context_field_is_400_naming_it(service: ServiceServer) -> None:
    body = hook_request(observations=[], hook="encounter-start")
    del body["context"]["encounterId"]
    response = post(service, f"/cds-services/{ENCOUNTER_START}", body)
    assert_operation_outcome(response, 400, "context.encounterId")


def test_hook_not_matching_the_service_is_400(service: ServiceServer) -> None:
    body = hook_request(observations=[], hook="encounter-start")
    assert_operation_outcome(post(service, f"/cds-services/{PATIENT_VIEW}", body), 400, "hook")


def test_fhir_authorization_without_fhir_server_is_400(service: ServiceServer) -> None:
    body = hook_request(
        observations=[], fhirAuthorization=example("spec-request-fhirAuthorization.json")["fhirAuthorization"]
    )
    assert_operation_outcome(post(service, f"/cds-services/{PATIENT_VIEW}", body), 400, "fhirServer")


def test_prefetch_that_is_not_an_object_is_400(service: ServiceServer) -> None:
    body = hook_request(prefetch={"observations": [1, 2, 3]})
    assert_operation_outcome(post(service, f"/cds-services/{PATIENT_VIEW}", body), 400, "prefetch.observations")


def test_a_body_that_is_not_an_object_is_400(service: ServiceServer) -> None:
    assert_operation_outcome(post(service, f"/cds-services/{PATIENT_VIEW}", [1, 2]), 400)


def test_unknown_service_is_404(service: ServiceServer) -> None:
    assert_operation_outcome(post(service, "/cds-services/no-such-service", hook_request(observations=[])), 404)


def test_wrong_method_is_405(service: ServiceServer) -> None:
    response = requests.get(f"{service.base_url}/cds-services/{PATIENT_VIEW}", timeout=5)
    assert_operation_outcome(response, 405)
    assert "POST" in response.headers["Allow"]
    assert_operation_outcome(requests.delete(f"{service.base_url}/cds-services", timeout=5), 405)


def test_oversized_body_is_413(service: ServiceServer) -> None:
    response = requests.post(
        f"{service.base_url}/cds-services/{PATIENT_VIEW}",
        data=b" " * 6_000_000,
        headers={"Content-Type": "application/json"},
        timeout=10,
    )
    assert_operation_outcome(response, 413)


def test_a_body_that_is_not_json_is_415(service: ServiceServer) -> None:
    response = requests.post(
        f"{service.base_url}/cds-services/{PATIENT_VIEW}",
        data=b"hello",
        headers={"Content-Type": "text/plain"},
        timeout=5,
    )
    assert_operation_outcome(response, 415)


def test_json_nested_beyond_the_parser_limit_is_400_naming_depth(service: ServiceServer) -> None:
    body = b'{"hook": "patient-view", "extension": ' + b"[" * 1100 + b"]" * 1100 + b"}"
    response = requests.post(
        f"{service.base_url}/cds-services/{PATIENT_VIEW}",
        data=body,
        headers={"Content-Type": "application/json"},
        timeout=5,
    )
    assert_operation_outcome(response, 400)
    assert "depth" in response.json()["issue"][0]["diagnostics"]


def test_a_shown_observation_nested_too_deeply_to_validate_is_still_shown_and_flagged(service: ServiceServer) -> None:
    """fhir.resources recurses (RecursionError ~300 levels down): the depth guard in front of it turns that into the
    card's did-not-validate flag, never a 500 and never a dropped emergency sign."""
    nested: dict[str, Any] = {"url": "http://example.org/x", "valueString": "v"}
    for _ in range(300):
        nested = {"url": "http://example.org/x", "extension": [nested]}
    response = post(service, f"/cds-services/{PATIENT_VIEW}", hook_request(observations=[droop(extension=[nested])]))
    assert response.status_code == 200
    card = response.json()["cards"][0]
    assert card["indicator"] == "critical"
    assert card["extension"]["org.weakness-triage"]["findings"][0]["flags"] == ["did-not-validate"]


def test_unknown_path_is_404_operation_outcome(service: ServiceServer) -> None:
    assert_operation_outcome(requests.get(f"{service.base_url}/nowhere", timeout=5), 404)
    assert_operation_outcome(requests.get(f"{service.base_url}/guides/not-a-guide", timeout=5), 404)


# ---- feedback ---------------------------------------------------------------------------------------------


def _issued_card(service: ServiceServer) -> dict[str, Any]:
    return post(service, f"/cds-services/{PATIENT_VIEW}", hook_request(observations=[droop()])).json()["cards"][0]


def _store(service: ServiceServer) -> Store:
    return Store(service.env["CDS_DATABASE_URL"])


def test_every_card_issued_is_recorded_without_the_patient_id(service: ServiceServer) -> None:
    card = _issued_card(service)
    store = _store(service)
    issued = store.issued_card(card["uuid"])
    assert issued is not None and issued.indicator == "critical" and issued.tier == "emergency"
    assert issued.rules and issued.findings == ["facial-droop"]
    assert issued.patient_hash == store.patient_hash("pat-1") and "pat-1" not in issued.patient_hash


def test_spec_feedback_examples_are_stored_before_200(service: ServiceServer) -> None:
    card = _issued_card(service)
    overridden = example("spec-feedback-overridden-with-reason.json")
    overridden["feedback"][0]["card"] = card["uuid"]
    response = post(service, f"/cds-services/{PATIENT_VIEW}/feedback", overridden)
    assert response.status_code == 200
    stored = _store(service).feedback_for(card["uuid"])
    assert [(f.outcome, f.override_code, f.known_card) for f in stored] == [("overridden", "d7ecf885", card["uuid"])]
    for name in ("spec-feedback-accepted.json", "spec-feedback-overridden.json"):
        assert post(service, f"/cds-services/{PATIENT_VIEW}/feedback", example(name)).status_code == 200
    accepted = _store(service).feedback_for("4e0a3a1e-3283-4575-ab82-028d55fe2719")
    assert accepted[0].accepted_suggestions == ["e56e1945-20b3-4393-8503-a1a20fd73152"]


def test_invalid_feedback_is_400_naming_the_field(service: ServiceServer) -> None:
    bad = example("spec-feedback-accepted.json")
    del bad["feedback"][0]["acceptedSuggestions"]
    assert_operation_outcome(
        post(service, f"/cds-services/{PATIENT_VIEW}/feedback", bad), 400, "feedback.0.acceptedSuggestions"
    )
    bad = example("spec-feedback-overridden.json")
    bad["feedback"][0]["outcome"] = "ignored"
    assert_operation_outcome(post(service, f"/cds-services/{PATIENT_VIEW}/feedback", bad), 400, "feedback.0.outcome")
    bad["feedback"][0].pop("outcome")
    bad["feedback"][0]["outcomeTimestamp"] = "yesterday"
    response = post(service, f"/cds-services/{PATIENT_VIEW}/feedback", bad)
    assert_operation_outcome(response, 400)


# ---- CORS, ops, openapi -------------------------------------------------------------------------------------


def test_cors_preflight_allows_authorization_and_content_type(service: ServiceServer) -> None:
    response = requests.options(
        f"{service.base_url}/cds-services/{PATIENT_VIEW}",
        timeout=5,
        headers={
            "Origin": "https://sandbox.cds-hooks.org",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type",
        },
    )
    assert response.status_code == 200
    allowed = response.headers["Access-Control-Allow-Headers"].lower()
    assert "authorization" in allowed and "content-type" in allowed
    assert response.headers["Access-Control-Allow-Origin"] in ("*", "https://sandbox.cds-hooks.org")


def test_health_readiness_and_openapi(service: ServiceServer) -> None:
    assert requests.get(f"{service.base_url}/healthz", timeout=5).json() == {"status": "ok"}
    ready = requests.get(f"{service.base_url}/readyz", timeout=5).json()
    assert ready["status"] == "ready" and ready["auth"] == "off" and "OFF" in ready["warning"]
    served = requests.get(f"{service.base_url}/openapi.yaml", timeout=5).text
    assert served == (Path(__file__).resolve().parents[1] / "openapi.yaml").read_text()


def test_guide_page_is_accessible_and_locked_down(service: ServiceServer) -> None:
    page = requests.get(f"{service.base_url}/guides/weakness", timeout=5)
    assert "default-src 'none'" in page.headers["Content-Security-Policy"]
    assert '<html lang="en">' in page.text and "<script" not in page.text
    for section in ("about", "emergency", "urgent", "contact", "managing-weakness"):
        assert f'id="{section}"' in page.text
    css = requests.get(f"{service.base_url}/static/guide.css", timeout=5)
    assert css.status_code == 200
