"""Marshmallow schemas of the CDS Hooks 2.0.1 JSON: the one contract, also the source of openapi.yaml."""

from __future__ import annotations

import uuid
from typing import Any

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from cds_service.validation import Strict, Tolerant

FHIR_ID = validate.Regexp(r"^[A-Za-z0-9\-.]{1,64}$", error="must be a FHIR id ([A-Za-z0-9-.], 1 to 64 characters)")
# Hook library invariant ord-1: "ResourceType/id".
TYPED_REFERENCE = validate.Regexp(
    r"^[A-Za-z]+/[A-Za-z0-9\-.]{1,64}$", error="must be a reference like Practitioner/123"
)
HTTP_URL = fields.Url(schemes={"http", "https"}, require_tld=False)


def _uuid(value: str) -> None:
    try:
        uuid.UUID(value)
    except (ValueError, AttributeError, TypeError) as exc:
        raise ValidationError("must be a UUID") from exc


# ---- hook request -------------------------------------------------------------------------------------------


class FhirAuthorizationSchema(Tolerant):
    access_token = fields.String(required=True, validate=validate.Length(min=1))
    token_type = fields.String(required=True, validate=validate.OneOf(["Bearer"]))
    expires_in = fields.Integer(required=True, strict=True, validate=validate.Range(min=0))
    scope = fields.String(required=True, validate=validate.Length(min=1))
    subject = fields.String(required=True, validate=validate.Length(min=1))
    patient = fields.String(validate=FHIR_ID)


class PatientViewContextSchema(Tolerant):
    userId = fields.String(required=True, validate=TYPED_REFERENCE)
    patientId = fields.String(required=True, validate=FHIR_ID)
    encounterId = fields.String(validate=FHIR_ID)


class EncounterStartContextSchema(Tolerant):
    userId = fields.String(required=True, validate=TYPED_REFERENCE)
    patientId = fields.String(required=True, validate=FHIR_ID)
    encounterId = fields.String(required=True, validate=FHIR_ID)


CONTEXT_SCHEMAS: dict[str, Schema] = {  # built once: a schema object is reusable
    "patient-view": PatientViewContextSchema(),
    "encounter-start": EncounterStartContextSchema(),
}


class HookRequestSchema(Tolerant):
    hook = fields.String(required=True, validate=validate.Length(min=1))
    hookInstance = fields.String(required=True, validate=_uuid)
    fhirServer = HTTP_URL
    fhirAuthorization = fields.Nested(FhirAuthorizationSchema)
    context = fields.Dict(
        required=True,
        keys=fields.String(),
        metadata={"description": "Hook-specific context (patient-view, encounter-start)"},
    )
    prefetch = fields.Dict(
        keys=fields.String(),
        values=fields.Raw(allow_none=True),
        metadata={"description": "Prefetch key -> FHIR resource/Bundle, null, or OperationOutcome"},
    )
    extension = fields.Dict(keys=fields.String())

    @validates_schema
    def _authorization_needs_server(self, data: dict[str, Any], **_: Any) -> None:
        if "fhirAuthorization" in data and "fhirServer" not in data:
            raise ValidationError("fhirServer is required when fhirAuthorization is given", "fhirServer")

    @validates_schema
    def _context_matches_hook(self, data: dict[str, Any], **_: Any) -> None:
        schema = CONTEXT_SCHEMAS.get(data.get("hook", ""))
        if schema is not None and isinstance(data.get("context"), dict):
            errors = schema.validate(data["context"])
            if errors:
                raise ValidationError({"context": errors})


# ---- response ------------------------------------------------------------------------------------------------


class CodingSchema(Strict):
    system = fields.String(required=True)
    code = fields.String(required=True)
    display = fields.String()


class OverrideReasonCodingSchema(CodingSchema):
    display = fields.String(required=True)


class SourceSchema(Strict):
    label = fields.String(required=True)
    url = HTTP_URL
    icon = HTTP_URL
    topic = fields.Nested(CodingSchema)


class ActionSchema(Strict):
    type = fields.String(required=True, validate=validate.OneOf(["create", "update", "delete"]))
    description = fields.String(required=True)
    resource = fields.Dict()
    resourceId = fields.String()


class SystemActionSchema(ActionSchema):
    """CDS Hooks 3.0 makes `description` optional for system actions (never shown to a user)."""

    description = fields.String()


class SuggestionSchema(Strict):
    label = fields.String(required=True)
    uuid = fields.String(validate=_uuid)
    isRecommended = fields.Boolean()
    actions = fields.List(fields.Nested(ActionSchema), validate=validate.Length(min=1))


class LinkSchema(Strict):
    label = fields.String(required=True)
    url = fields.Url(required=True, schemes={"http", "https"}, require_tld=False)
    type = fields.String(required=True, validate=validate.OneOf(["absolute", "smart"]))
    appContext = fields.String()
    autolaunchable = fields.Boolean()

    @validates_schema
    def _app_context_only_for_smart_links(self, data: dict[str, Any], **_: Any) -> None:
        if "appContext" in data and data.get("type") != "smart":
            raise ValidationError("appContext is only valid on smart links", "appContext")


class CardSchema(Strict):
    uuid = fields.String(validate=_uuid)
    summary = fields.String(required=True, validate=validate.Length(min=1, max=139))
    detail = fields.String()
    indicator = fields.String(required=True, validate=validate.OneOf(["info", "warning", "critical"]))
    source = fields.Nested(SourceSchema, required=True)
    suggestions = fields.List(fields.Nested(SuggestionSchema), validate=validate.Length(min=1))
    selectionBehavior = fields.String(validate=validate.OneOf(["at-most-one", "any"]))
    overrideReasons = fields.List(fields.Nested(OverrideReasonCodingSchema), validate=validate.Length(min=1))
    links = fields.List(fields.Nested(LinkSchema), validate=validate.Length(min=1))
    extension = fields.Dict(keys=fields.String())

    @validates_schema
    def _selection_behavior_with_suggestions(self, data: dict[str, Any], **_: Any) -> None:
        if data.get("suggestions") and "selectionBehavior" not in data:
            raise ValidationError("selectionBehavior is required when suggestions are present", "selectionBehavior")


class CardsResponseSchema(Strict):
    cards = fields.List(fields.Nested(CardSchema), required=True)
    systemActions = fields.List(fields.Nested(SystemActionSchema), validate=validate.Length(min=1))


# ---- discovery -----------------------------------------------------------------------------------------------


class ServiceSchema(Strict):
    hook = fields.String(required=True)
    title = fields.String()
    description = fields.String(required=True)
    id = fields.String(required=True)
    prefetch = fields.Dict(keys=fields.String(), values=fields.String())
    usageRequirements = fields.String()


class DiscoveryResponseSchema(Strict):
    services = fields.List(fields.Nested(ServiceSchema), required=True)


# ---- feedback ------------------------------------------------------------------------------------------------


class AcceptedSuggestionSchema(Tolerant):
    id = fields.String(required=True, validate=validate.Length(min=1))


class OverrideReasonSchema(Tolerant):
    reason = fields.Nested(CodingSchema)
    userComment = fields.String()


class FeedbackItemSchema(Tolerant):
    card = fields.String(required=True, validate=validate.Length(min=1))
    outcome = fields.String(required=True, validate=validate.OneOf(["accepted", "overridden"]))
    acceptedSuggestions = fields.List(fields.Nested(AcceptedSuggestionSchema))
    overrideReason = fields.Nested(OverrideReasonSchema)
    outcomeTimestamp = fields.AwareDateTime(required=True, format="iso")

    @validates_schema
    def _outcome_consistency(self, data: dict[str, Any], **_: Any) -> None:
        if data.get("outcome") == "accepted":
            if not data.get("acceptedSuggestions"):
                raise ValidationError("acceptedSuggestions is required when outcome is accepted", "acceptedSuggestions")
            if "overrideReason" in data:
                raise ValidationError("overrideReason is only allowed when outcome is overridden", "overrideReason")
        if data.get("outcome") == "overridden" and "acceptedSuggestions" in data:
            raise ValidationError("acceptedSuggestions is only allowed when outcome is accepted", "acceptedSuggestions")


class FeedbackRequestSchema(Tolerant):
    feedback = fields.List(fields.Nested(FeedbackItemSchema), required=True, validate=validate.Length(min=1))


# ---- errors --------------------------------------------------------------------------------------------------


class OperationOutcomeIssueSchema(Strict):
    severity = fields.String(required=True)
    code = fields.String(required=True)
    diagnostics = fields.String()
    expression = fields.List(fields.String())


class OperationOutcomeSchema(Strict):
    resourceType = fields.String(required=True, validate=validate.Equal("OperationOutcome"))
    issue = fields.List(fields.Nested(OperationOutcomeIssueSchema), required=True)


def empty_values(value: Any, path: str = "") -> list[str]:
    """Paths of null, "", [] or {} in a JSON document (CDS Hooks forbids them; `cards: []` is checked by the caller)."""
    found: list[str] = []
    if value is None or value == "" or value == [] or value == {}:
        return [path or "(root)"]
    if isinstance(value, dict):
        for key, item in value.items():
            found += empty_values(item, f"{path}.{key}" if path else key)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += empty_values(item, f"{path}[{index}]")
    return found
