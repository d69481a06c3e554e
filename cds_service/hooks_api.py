"""The CDS Hooks endpoints: discovery, one generic service endpoint, feedback."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from flask import Blueprint, Response, current_app, g, request
from marshmallow import ValidationError

from cds_service.errors import ClientError
from cds_service.fhir_data import FhirAccess
from cds_service.fhir_time import parse_fhir_datetime
from cds_service.json_body import json_response, read_json_object
from cds_service.pipeline import evaluate
from cds_service.response_check import ResponseCheck
from cds_service.runtime import Runtime
from cds_service.schemas import FeedbackRequestSchema, HookRequestSchema, first_error
from cds_service.service_registry import SERVICES, SERVICES_BY_ID, ServiceDefinition

log = logging.getLogger(__name__)
blueprint = Blueprint("cds_hooks", __name__)
_hook_request = HookRequestSchema()
_feedback_request = FeedbackRequestSchema()
CLOCK_HEADER = "X-CDS-Evaluation-Time"


def _runtime() -> Runtime:
    return current_app.extensions["cds_runtime"]


def _authenticate(runtime: Runtime) -> Any:
    audience = runtime.settings.base_url + request.path
    return runtime.authenticator.authenticate(request.headers.get("Authorization"), audience)


def _service(service_id: str) -> ServiceDefinition:
    service = SERVICES_BY_ID.get(service_id)
    if service is None:
        raise ClientError(404, f"no CDS service with id '{service_id}'", where="id", code="not-found")
    return service


def _load(schema: Any, body: dict[str, Any]) -> dict[str, Any]:
    try:
        return schema.load(body)
    except ValidationError as exc:
        where, message = first_error(exc.messages)
        raise ClientError(400, f"{where}: {message}", where=where) from exc


def _now(runtime: Runtime) -> datetime:
    if runtime.settings.allow_clock_header and CLOCK_HEADER in request.headers:
        fixed = parse_fhir_datetime(request.headers[CLOCK_HEADER])
        if fixed is None:
            raise ClientError(400, f"{CLOCK_HEADER} must be an ISO 8601 date-time", where=CLOCK_HEADER)
        return fixed
    return datetime.now(UTC)


@blueprint.get("/cds-services")
def discovery() -> Response:
    _authenticate(_runtime())
    return json_response({"services": [service.discovery_entry() for service in SERVICES]})


@blueprint.post("/cds-services/<service_id>")
def call_service(service_id: str) -> Response:
    runtime = _runtime()
    caller = _authenticate(runtime)
    service = _service(service_id)
    hook_request = _load(_hook_request, read_json_object())
    if hook_request["hook"] != service.hook:
        raise ClientError(400, f"hook '{hook_request['hook']}' does not match service '{service.id}' "
                               f"(expects '{service.hook}')", where="hook")
    context = hook_request["context"]
    patient_id = context["patientId"]
    auth = hook_request.get("fhirAuthorization", {})
    access = FhirAccess(server=hook_request.get("fhirServer"), token=auth.get("access_token"),
                        allowed_prefixes=caller.fhir_server_prefixes, max_pages=runtime.settings.fhir_max_pages)
    runtime.authorize_fhir_server(caller, access.server)
    data = runtime.resolver.resolve(service, context, hook_request.get("prefetch", {}), access)
    if data.patient is not None and data.patient.get("id") != patient_id:
        raise ClientError(400, "prefetch.patient is not the patient named in context.patientId",
                          where="prefetch.patient")
    now = _now(runtime)
    result = evaluate(data.observations, patient_id, runtime.knowledge, now, runtime.settings.base_url)
    body: dict[str, Any] = {"cards": result.cards}
    _check_response(runtime.response_check, body)
    runtime.store.record_cards(service.id, hook_request["hookInstance"], patient_id, result.cards,
                               [d.tier.id for d in result.decisions], now)
    stats = result.stats
    # One access-log line per call carries the counts, including Observations of other patients that were ignored.
    g.log_fields = {"service": service.id, "cards": [c["indicator"] for c in result.cards],
                    "observations": stats.received, "other_patient": stats.other_patient,
                    "ignored_status": stats.ignored_status, "not_relevant": stats.not_relevant,
                    "evaluated": stats.kept, "did_not_validate": stats.did_not_validate,
                    "fetched": data.fetched, "pages_followed": data.pages_followed, "fhir_ms": round(data.fhir_ms, 2)}
    return json_response(body)


def _check_response(check: ResponseCheck, body: dict[str, Any]) -> None:
    """Our own answer must be spec-true before it leaves; a failure here is our bug, never the client's."""
    if problems := check.problems(body):
        log.error("invalid_response", extra={"problems": [problem[:300] for problem in problems[:10]]})
        raise RuntimeError("the service built an invalid CDS Hooks response")


@blueprint.post("/cds-services/<service_id>/feedback")
def feedback(service_id: str) -> Response:
    runtime = _runtime()
    _authenticate(runtime)
    service = _service(service_id)
    items = _load(_feedback_request, read_json_object())["feedback"]
    known = runtime.store.record_feedback(service.id, items)
    g.log_fields = {"service": service.id, "feedback_items": len(items), "known_cards": known}
    return Response(status=200)  # stored durably before this answer; the spec defines no body
