"""The card viewer at /viewer: a page that acts like an EHR for testers.

The page (templates/viewer.html, static/viewer.js) builds a CDS Hooks request from an example patient, a pasted
Bundle or request, or a FHIR server URL, posts it to the public hook endpoint exactly as an EHR does, renders the
cards and posts feedback. This module only serves the page and the example patients, shifted to the current time.
"""

from __future__ import annotations

from datetime import UTC, datetime
from functools import cache
from pathlib import Path

from flask import Blueprint, Response, render_template

from cds_service.errors import ClientError
from cds_service.hooks.services import SERVICES
from cds_service.http.body import json_response
from cds_service.http.context import current_runtime
from cds_service.knowledge.examples import Examples, load_examples

blueprint = Blueprint("viewer", __name__, template_folder="templates")
# Script only from this origin (no inline script), calls only to this origin, no frames, no forms posted anywhere.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


@cache
def _examples(examples_dir: Path) -> Examples:
    return load_examples(examples_dir)


def examples() -> Examples:
    return _examples(current_runtime().settings.content_dir / "examples")


@blueprint.get("/viewer")
def page() -> Response:
    listed = examples().by_id.values()
    html = render_template("viewer.html", examples=listed, services=SERVICES)
    return Response(html, mimetype="text/html", headers=SECURITY_HEADERS)


@blueprint.get("/viewer/examples")
def example_list() -> Response:
    listed = [
        {"id": e.id, "title": e.title, "description": e.description, "expect": list(e.expect)}
        | {"patientId": e.patient_id}
        for e in examples().by_id.values()
    ]
    return json_response({"examples": listed})


@blueprint.get("/viewer/examples/<example_id>")
def example_bundle(example_id: str) -> Response:
    loaded = examples()
    if example_id not in loaded.by_id:
        raise ClientError(404, f"no example patient '{example_id}'", where="example_id", code="not-found")
    return json_response(loaded.shifted(example_id, datetime.now(UTC)), mimetype="application/fhir+json")
