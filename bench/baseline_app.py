"""The baselines: bare Flask apps whose one POST route reads the hook request's JSON body and returns a fixed JSON.

- `flask_app` reads the body the framework's own way, `request.get_json()`: the bare-framework baseline of issue 5
  ("a bare Flask app ... whose one route reads the same JSON body"), against which the targets are judged.
- `orjson_app` reads it with orjson, the parser the service uses: a stricter reference, reported next to it, that
  leaves out what choosing a faster JSON library wins.

A request without prefetch (W3) makes either app do what any app must do to answer it: GET the Observations the
service's prefetch template asks for from `fhirServer` (keep-alive `requests` session per thread, as the service)
and parse them the same way it parses the body. So W3 has a baseline too: the framework and the HTTP client with
no triage, against which the service's added time can be read.
"""

from __future__ import annotations

import threading
from typing import Any

import orjson
import requests
from flask import Flask, Response, abort, request

from cds_service.hooks.services import observation_search

FIXED = b'{"cards":[]}'
# The search the service sends itself for the Observations (with its date floor), {patient} for context.patientId.
OBSERVATIONS_QUERY = observation_search("2000-01-01T00:00:00Z").replace("{{context.patientId}}", "{patient}")
_local = threading.local()


def observations_url(fhir_server: str, patient_id: str) -> str:
    return f"{fhir_server.rstrip('/')}/{OBSERVATIONS_QUERY.format(patient=patient_id)}"


def _session() -> requests.Session:
    session = getattr(_local, "session", None)
    if session is None:
        session = _local.session = requests.Session()
        session.trust_env = False
    return session


def _fetch(body: dict[str, Any], parse: str) -> Any:
    response = _session().get(
        observations_url(body["fhirServer"], body["context"]["patientId"]),
        headers={"Accept": "application/fhir+json"},
        timeout=10,
    )
    if response.status_code != 200:
        abort(502)
    return response.json() if parse == "flask" else orjson.loads(response.content)


def _app(parse: str) -> Flask:
    app = Flask(f"baseline_{parse}")

    @app.post("/cds-services/<service_id>")
    def hook(service_id: str) -> Response:  # noqa: ARG001 - Flask passes the URL variable by name
        body = request.get_json() if parse == "flask" else orjson.loads(request.get_data(cache=False))
        if not isinstance(body, dict):
            abort(400)
        if "prefetch" not in body and "fhirServer" in body:
            bundle = _fetch(body, parse)
            if not isinstance(bundle, dict) or bundle.get("resourceType") != "Bundle":
                abort(502)
        return Response(FIXED, mimetype="application/json")

    @app.get("/healthz")
    def healthz() -> Response:
        return Response(b'{"status":"ok"}', mimetype="application/json")

    return app


flask_app = _app("flask")
orjson_app = _app("orjson")
APPS = {"flask": flask_app, "orjson": orjson_app}
