"""The CDS Hooks routes: discovery, one generic service endpoint, feedback. HTTP only: authenticate, read the
body, hand it to answer() or the store, respond."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from flask import Blueprint, Response, g, request
from marshmallow import Schema, ValidationError

from cds_service.answer import answer
from cds_service.caller import Caller
from cds_service.domain.fhir_time import parse_fhir_datetime
from cds_service.errors import ClientError
from cds_service.hooks.schemas import FeedbackRequestSchema, HookRequestSchema
from cds_service.hooks.services import SERVICES, SERVICES_BY_ID, ServiceDefinition
from cds_service.http import metrics
from cds_service.http.body import json_response, read_json_object
from cds_service.http.context import current_repeat_alerts, current_runtime
from cds_service.http.large_bodies import large_body_turn
from cds_service.runtime import Runtime
from cds_service.validation import dotted, first_error

blueprint = Blueprint("cds_hooks", __name__)
_hook_request = HookRequestSchema()
_feedback_request = FeedbackRequestSchema()
CLOCK_HEADER = "X-CDS-Evaluation-Time"


def _authenticate(runtime: Runtime) -> Caller:
    audience = runtime.settings.base_url + request.environ.get("cds.called_path", request.path)
    return runtime.authenticator.authenticate(request.headers.get("Authorization"), audience)


def _service(service_id: str) -> ServiceDefinition:
    service = SERVICES_BY_ID.get(service_id)
    if service is None:
        raise ClientError(404, f"no CDS service with id '{service_id}'", where="id", code="not-found")
    return service


def _load(schema: Schema, body: dict[str, Any]) -> dict[str, Any]:
    try:
        loaded: dict[str, Any] = schema.load(body)
    except ValidationError as exc:
        path, message = first_error(exc.messages)
        where = dotted(path) or "(body)"
        raise ClientError(400, f"{where}: {message}", where=where) from exc
    return loaded


def _now(runtime: Runtime) -> datetime:
    if runtime.settings.allow_clock_header and CLOCK_HEADER in request.headers:
        fixed = parse_fhir_datetime(request.headers[CLOCK_HEADER])
        if fixed is None:
            raise ClientError(400, f"{CLOCK_HEADER} must be an ISO 8601 date-time", where=CLOCK_HEADER)
        return fixed
    return datetime.now(UTC)


@blueprint.get("/cds-services")
def discovery() -> Response:
    _authenticate(current_runtime())
    return json_response({"services": [service.discovery_entry() for service in SERVICES]})


@blueprint.post("/cds-services/<service_id>")
def call_service(service_id: str) -> Response:
    runtime = current_runtime()
    caller = _authenticate(runtime)
    service = _service(service_id)
    with large_body_turn(request.content_length):
        return _answer(runtime, service, caller)


def _answer(runtime: Runtime, service: ServiceDefinition, caller: Caller) -> Response:
    hook_request = _load(_hook_request, read_json_object())
    if hook_request["hook"] != service.hook:
        raise ClientError(
            400,
            f"hook '{hook_request['hook']}' does not match service '{service.id}' (expects '{service.hook}')",
            where="hook",
        )
    now, patient_id = _now(runtime), hook_request["context"]["patientId"]
    result = answer(runtime.engine, service, hook_request, caller, now)
    result = current_repeat_alerts().apply(result, runtime.store, patient_id, now)
    runtime.store.record_cards(patient_id, result.card_rows)
    metrics.count_answer(result.body["cards"], result.log_fields)
    g.log_fields = result.log_fields
    return json_response(result.body)


@blueprint.post("/cds-services/<service_id>/feedback")
def feedback(service_id: str) -> Response:
    runtime = current_runtime()
    _authenticate(runtime)
    service = _service(service_id)
    items = _load(_feedback_request, read_json_object())["feedback"]
    stored = runtime.store.record_feedback(service.id, items)
    metrics.count_feedback(items, stored.fresh)
    g.log_fields = {
        "service": service.id,
        "feedback_items": len(items),
        "known_cards": stored.known,
        "unknown_cards": stored.unknown,
        "duplicates": stored.duplicate,
    }
    acknowledged = Response(status=200)  # stored durably before this answer; the spec defines no body
    del acknowledged.headers["Content-Type"]  # nothing to type (Flask would say text/html)
    return acknowledged
