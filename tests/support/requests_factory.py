"""Building CDS Hooks requests for tests."""

from __future__ import annotations

import uuid
from typing import Any

PATIENT_VIEW = "weakness-triage-patient-view"
ENCOUNTER_START = "weakness-triage-encounter-start"


def bundle(resources: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "resourceType": "Bundle",
        "type": "searchset",
        "total": len(resources),
        "entry": [
            {"fullUrl": f"urn:uuid:{uuid.uuid4()}", "resource": r, "search": {"mode": "match"}} for r in resources
        ],
    }


def fhir_authorization(token: str, scope: str = "patient/Observation.read") -> dict[str, Any]:
    """A request's fhirAuthorization (CDS Hooks 2.0.1): the bearer token the service may call the FHIR server with."""
    return {
        "access_token": token,
        "token_type": "Bearer",
        "expires_in": 300,
        "scope": scope,
        "subject": "weakness-triage",
    }


def hook_request(
    patient_id: str = "pat-1",
    observations: list[dict[str, Any]] | None = None,
    hook: str = "patient-view",
    **extra: Any,
) -> dict[str, Any]:
    context = {"userId": "Practitioner/example", "patientId": patient_id}
    if hook == "encounter-start":
        context["encounterId"] = "enc-1"
    body: dict[str, Any] = {"hook": hook, "hookInstance": str(uuid.uuid4()), "context": context}
    if observations is not None:
        body["prefetch"] = {
            "patient": {"resourceType": "Patient", "id": patient_id},
            "observations": bundle(observations),
        }
    body.update(extra)
    return body


def observation(
    code: str, system: str = "http://snomed.info/sct", patient_id: str = "pat-1", **fields: Any
) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "id": fields.pop("id", f"obs-{uuid.uuid4().hex[:12]}"),
        "status": fields.pop("status", "final"),
        "subject": {"reference": f"Patient/{patient_id}"},
        "code": {"coding": [{"system": system, "code": code}]},
        **fields,
    }
