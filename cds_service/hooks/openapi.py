"""openapi.yaml, generated from the marshmallow schemas (apispec); a test fails when the committed file drifts."""

from __future__ import annotations

from typing import Any

import yaml
from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin

from cds_service import __version__
from cds_service.hooks import schemas
from cds_service.hooks.services import SERVICES


def _json(schema: str, description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _outcome(description: str) -> dict[str, Any]:
    """Every 4xx/5xx answer: a FHIR OperationOutcome, served as application/fhir+json."""
    return {"description": description, "content": {"application/fhir+json": {"schema": "OperationOutcome"}}}


def build_spec() -> APISpec:
    spec = APISpec(
        title="Weakness triage CDS Hooks service",
        version=__version__,
        openapi_version="3.0.3",
        plugins=[MarshmallowPlugin()],
        info={"description": "CDS Hooks 2.0.1 service for the Weakness care guide."},
    )
    spec.components.security_scheme("ehrJwt", {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"})
    for name, schema in [
        ("HookRequest", schemas.HookRequestSchema),
        ("CardsResponse", schemas.CardsResponseSchema),
        ("DiscoveryResponse", schemas.DiscoveryResponseSchema),
        ("FeedbackRequest", schemas.FeedbackRequestSchema),
        ("PatientViewContext", schemas.PatientViewContextSchema),
        ("EncounterStartContext", schemas.EncounterStartContextSchema),
        ("OperationOutcome", schemas.OperationOutcomeSchema),
    ]:
        spec.components.schema(name, schema=schema)
    _declare_cross_field_rules(spec.components.schemas)
    _cds_hooks_paths(spec)
    _page_and_ops_paths(spec)
    return spec


def _declare_cross_field_rules(components: dict[str, Any]) -> None:
    """What the schemas check in code (validators, @validates_schema), stated in the document too: a client that
    follows the document is never refused (schemathesis checks this, tests/test_fuzz_openapi.py)."""
    components["HookRequest"]["properties"]["hookInstance"]["format"] = "uuid"
    components["FeedbackItem"]["oneOf"] = [
        {
            "description": "accepted: at least one accepted suggestion, no override reason",
            "properties": {"outcome": {"enum": ["accepted"]}, "acceptedSuggestions": {"minItems": 1}},
            "required": ["acceptedSuggestions"],
            "not": {"required": ["overrideReason"]},
        },
        {
            "description": "overridden: no accepted suggestions",
            "properties": {"outcome": {"enum": ["overridden"]}},
            "not": {"required": ["acceptedSuggestions"]},
        },
    ]


def _cds_hooks_paths(spec: APISpec) -> None:
    unauthorized = _outcome("No or invalid JWT")
    service_id = {
        "name": "service_id",
        "in": "path",
        "required": True,
        "schema": {"type": "string", "enum": [service.id for service in SERVICES]},
    }
    spec.path(
        "/cds-services",
        operations={
            "get": {
                "summary": "Discovery",
                "security": [{"ehrJwt": []}],
                "responses": {"200": _json("DiscoveryResponse", "The services offered"), "401": unauthorized},
            }
        },
    )
    spec.path(
        "/cds-services/{service_id}",
        parameters=[service_id],
        operations={
            "post": {
                "summary": "Call a CDS service",
                "security": [{"ehrJwt": []}],
                "requestBody": {"required": True, "content": {"application/json": {"schema": "HookRequest"}}},
                "responses": {
                    "200": _json("CardsResponse", "Cards (possibly none)"),
                    "400": _outcome("The request is malformed; the issue names the field"),
                    "401": unauthorized,
                    "403": _outcome("The issuer may not send this fhirServer"),
                    "404": _outcome("No such service"),
                    "413": _outcome("Body too large"),
                    "415": _outcome("Not JSON"),
                    "412": _outcome("Required FHIR data was neither prefetched nor obtainable from fhirServer"),
                },
            }
        },
    )
    spec.path(
        "/cds-services/{service_id}/feedback",
        parameters=[service_id],
        operations={
            "post": {
                "summary": "Feedback on cards",
                "security": [{"ehrJwt": []}],
                "requestBody": {"required": True, "content": {"application/json": {"schema": "FeedbackRequest"}}},
                "responses": {
                    "200": {"description": "Stored"},
                    "400": _outcome("Invalid feedback"),
                    "401": unauthorized,
                    "404": _outcome("No such service"),
                },
            }
        },
    )


def _page_and_ops_paths(spec: APISpec) -> None:
    spec.path(
        "/guides/{guide_id}",
        parameters=[
            {"name": "guide_id", "in": "path", "required": True, "schema": {"type": "string", "enum": ["weakness"]}}
        ],
        operations={
            "get": {
                "summary": "The care guide page the cards link to",
                "responses": {
                    "200": {"description": "HTML page", "content": {"text/html": {"schema": {"type": "string"}}}},
                    "404": _outcome("No such guide"),
                },
            }
        },
    )
    _viewer_paths(spec)
    for path, summary in [("/healthz", "Liveness"), ("/readyz", "Readiness (content loaded, database reachable)")]:
        spec.path(
            path,
            operations={
                "get": {
                    "summary": summary,
                    "responses": {
                        "200": {"description": "OK", "content": {"application/json": {"schema": {"type": "object"}}}},
                        "503": {"description": "Not ready"},
                    },
                }
            },
        )
    spec.path(
        "/openapi.yaml",
        operations={
            "get": {
                "summary": "This document",
                "responses": {
                    "200": {
                        "description": "OpenAPI 3 document",
                        "content": {"application/yaml": {"schema": {"type": "object"}}},
                    }
                },
            }
        },
    )


def _viewer_paths(spec: APISpec) -> None:
    html = {"description": "HTML page", "content": {"text/html": {"schema": {"type": "string"}}}}
    page = {"summary": "Card viewer: a page that calls the hooks as an EHR does", "responses": {"200": html}}
    spec.path(
        "/viewer",
        operations={"get": page},
    )
    spec.path(
        "/viewer/examples",
        operations={
            "get": {
                "summary": "The example patients (content/examples/index.yaml)",
                "responses": {
                    "200": {"description": "OK", "content": {"application/json": {"schema": {"type": "object"}}}}
                },
            }
        },
    )
    spec.path(
        "/viewer/examples/{example_id}",
        parameters=[{"name": "example_id", "in": "path", "required": True, "schema": {"type": "string"}}],
        operations={
            "get": {
                "summary": "One example patient: a FHIR transaction Bundle, its times shifted to now",
                "responses": {
                    "200": {
                        "description": "FHIR R4 transaction Bundle",
                        "content": {"application/fhir+json": {"schema": {"type": "object"}}},
                    },
                    "404": _outcome("No such example patient"),
                },
            }
        },
    )


def openapi_yaml() -> str:
    return yaml.safe_dump(build_spec().to_dict(), sort_keys=False, allow_unicode=True, width=120)
