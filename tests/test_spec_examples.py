"""The CDS Hooks spec's own example payloads (tests/fixtures/cds-hooks-examples), exercised where they apply.

Requests and feedback examples go through the real server in test_protocol_http.py; here the response, discovery
and action examples check that our schemas (the contract openapi.yaml is built from) accept what the spec writes,
and the hook-context examples are sent to our services.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest
import requests
from flask.testing import FlaskClient

from cds_service.hooks.schemas import (
    ActionSchema,
    CardsResponseSchema,
    DiscoveryResponseSchema,
    FeedbackRequestSchema,
    HookRequestSchema,
)
from tests.support.requests_factory import ENCOUNTER_START, PATIENT_VIEW, bundle
from tests.support.service_server import ServiceServer

EXAMPLES = Path(__file__).resolve().parent / "fixtures" / "cds-hooks-examples"


def example(name: str) -> Any:
    return json.loads((EXAMPLES / name).read_text())


@pytest.mark.parametrize(
    "name", ["spec-response-cards.json", "spec-response-empty.json", "spec-response-system-actions.json"]
)
def test_spec_card_responses_fit_our_response_schema(name: str) -> None:
    assert CardsResponseSchema().validate(example(name)) == {}


def test_the_spec_autolaunchable_example_lacks_the_required_indicator_and_only_that() -> None:
    # A defect of the spec's example itself: `indicator` is REQUIRED on every card (2.0.1 and 3.0).
    errors = CardsResponseSchema().validate(example("spec-response-autolaunchable.json"))
    assert errors == {"cards": {0: {"indicator": ["Missing data for required field."]}}}


def test_spec_action_examples_fit_our_action_schema() -> None:
    for action in example("spec-actions-create-update-delete.json"):
        assert ActionSchema().validate(action) == {}


@pytest.mark.parametrize("name", ["spec-discovery-response.json", "sandbox-cds-services-discovery.json"])
def test_spec_discovery_examples_fit_our_discovery_schema(name: str) -> None:
    assert DiscoveryResponseSchema().validate(example(name)) == {}


@pytest.mark.parametrize(
    "name",
    ["spec-feedback-accepted.json", "spec-feedback-overridden.json", "spec-feedback-overridden-with-reason.json"],
)
def test_spec_feedback_examples_fit_our_feedback_schema(name: str) -> None:
    assert FeedbackRequestSchema().validate(example(name)) == {}


def test_spec_request_examples_fit_our_request_schema() -> None:
    assert HookRequestSchema().validate(example("spec-request-patient-view.json")) == {}
    assert HookRequestSchema().validate(example("inferno-crd-encounter-start-request.json")) == {}


def test_a_card_without_selection_behavior_but_with_suggestions_is_refused_by_our_schema() -> None:
    card = example("spec-response-cards.json")["cards"][1]
    card["suggestions"] = [{"label": "Do something"}]
    assert "selectionBehavior" in CardsResponseSchema().validate({"cards": [card]})["cards"][0]


@pytest.mark.parametrize(
    ("name", "service_id"),
    [
        ("hook-patient-view-context-1.json", PATIENT_VIEW),
        ("hook-patient-view-context-2.json", PATIENT_VIEW),
        ("hook-encounter-start-context.json", ENCOUNTER_START),
    ],
)
def test_hook_library_contexts_are_accepted(name: str, service_id: str, service: ServiceServer) -> None:
    context = example(name)["context"]
    hook = "encounter-start" if service_id == ENCOUNTER_START else "patient-view"
    body = {
        "hook": hook,
        "hookInstance": str(uuid.uuid4()),
        "context": context,
        "prefetch": {"patient": None, "observations": bundle([])},
    }
    response = requests.post(f"{service.base_url}/cds-services/{service_id}", json=body, timeout=5)
    assert response.status_code == 200, response.text
    assert response.json() == {"cards": []}


def test_spec_prefetch_example_with_snipped_placeholders_is_handled(client: FlaskClient) -> None:
    prefetch = example("spec-request-prefetch-data.json")["prefetch"]
    body = {
        "hook": "patient-view",
        "hookInstance": str(uuid.uuid4()),
        "context": {"userId": "Practitioner/example", "patientId": "1288992"},
        "prefetch": {"patient": None, "observations": prefetch["hemoglobin-a1c"]},
    }
    response = client.post(f"/cds-services/{PATIENT_VIEW}", json=body)
    assert response.status_code == 200 and response.get_json() == {"cards": []}
