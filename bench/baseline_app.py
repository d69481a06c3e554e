"""The baselines: bare Flask apps whose one POST route reads the hook request's JSON body and returns a fixed JSON.

- `flask_app` reads the body the framework's own way, `request.get_json()`: the bare-framework baseline of issue 5
  ("a bare Flask app ... whose one route reads the same JSON body"), against which the targets are judged.
- `orjson_app` reads it with orjson, the parser the service uses: a stricter reference, reported next to it, that
  leaves out what choosing a faster JSON library wins.
"""

from __future__ import annotations

import orjson
from flask import Flask, Response, abort, request

FIXED = b'{"cards":[]}'


def _app(parse: str) -> Flask:
    app = Flask(f"baseline_{parse}")

    @app.post("/cds-services/<service_id>")
    def hook(service_id: str) -> Response:
        body = request.get_json() if parse == "flask" else orjson.loads(request.get_data(cache=False))
        if not isinstance(body, dict):
            abort(400)
        return Response(FIXED, mimetype="application/json")

    @app.get("/healthz")
    def healthz() -> Response:
        return Response(b'{"status":"ok"}', mimetype="application/json")

    return app


flask_app = _app("flask")
orjson_app = _app("orjson")
APPS = {"flask": flask_app, "orjson": orjson_app}
