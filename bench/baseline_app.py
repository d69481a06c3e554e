"""The baseline: a bare Flask app whose one POST route reads the hook request's JSON body and returns a fixed JSON.

It parses the body with orjson (what the service uses), so "ratio to baseline" compares the service with the cheapest
honest way to receive the same JSON under the same server settings.
"""

from __future__ import annotations

import orjson
from flask import Flask, Response, abort, request

FIXED = b'{"cards":[]}'

app = Flask(__name__)


@app.post("/cds-services/<service_id>")
def hook(service_id: str) -> Response:
    body = orjson.loads(request.get_data(cache=False))
    if not isinstance(body, dict):
        abort(400)
    return Response(FIXED, mimetype="application/json")


@app.get("/healthz")
def healthz() -> Response:
    return Response(b'{"status":"ok"}', mimetype="application/json")
