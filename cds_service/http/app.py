"""App factory: settings in, blueprints, CORS and error handlers registered. No global state besides the app."""

from __future__ import annotations

import logging
import re
import time
import traceback
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from flask import Flask, Response, g, request
from flask_cors import CORS
from werkzeug.exceptions import HTTPException

from cds_service.errors import ClientError, operation_outcome
from cds_service.http import endpoints, guide_page, metrics, ops, viewer
from cds_service.http.body import json_response
from cds_service.http.context import attach_runtime
from cds_service.http.logging_setup import assign_request_id, request_log_fields
from cds_service.runtime import Runtime
from cds_service.settings import Settings, load_settings

log = logging.getLogger("cds_service.http")


def _client_error(error: ClientError) -> Response:
    metrics.count_client_error(error)
    return json_response(
        operation_outcome(error.message, where=error.where, code=error.code),
        status=error.status,
        headers=error.headers,
        mimetype="application/fhir+json",
    )


def _http_error(error: HTTPException) -> Response:
    code = {404: "not-found", 405: "not-supported", 413: "too-long"}.get(error.code or 500, "invalid")
    message = {
        404: "no such endpoint",
        405: f"method {request.method} is not allowed here",
        413: "request body is too large",
    }.get(error.code or 500, error.description or "request refused")
    response = json_response(
        operation_outcome(message, code=code), status=error.code or 500, mimetype="application/fhir+json"
    )
    if error.code == 405 and hasattr(error, "valid_methods") and error.valid_methods:
        response.headers["Allow"] = ", ".join(error.valid_methods)
    return response


def _unexpected_error(error: Exception) -> Response:
    # Type and code locations only: an exception's message or repr may carry request data (a patient id, a value).
    trace = " <- ".join(
        f"{Path(f.filename).name}:{f.lineno} {f.name}" for f in reversed(traceback.extract_tb(error.__traceback__))
    )
    log.error("unhandled_error", extra={"error_type": type(error).__name__, "trace": trace})
    return json_response(
        operation_outcome(
            "internal error; the request id is in the X-Request-Id header", code="exception", severity="fatal"
        ),
        status=500,
        mimetype="application/fhir+json",
    )


def _before() -> None:
    g.started = time.perf_counter()
    assign_request_id()


def _after(response: Response) -> Response:
    response.headers["X-Request-Id"] = g.get("request_id", "")
    elapsed = time.perf_counter() - g.get("started", time.perf_counter())
    metrics.observe_request(response.status_code, elapsed)
    elapsed_ms = round(elapsed * 1000, 2)
    log.info(
        "request", extra=request_log_fields(response.status_code, elapsed_ms=elapsed_ms, **g.get("log_fields", {}))
    )
    return response


CALLED_PATH = "cds.called_path"  # the path as the client sent it: the JWT aud is built from it
_SLASHES = re.compile("/{2,}")


class SlashTolerantHookPaths:
    """`/cds-services/` and `/cds-services//<id>` reach the same routes as without the extra slashes.

    A tester may give the CDS Hooks sandbox a discovery URL with a trailing slash; the sandbox then calls
    `<discovery URL>/<id>` and signs a token whose `aud` is that exact URL, so the path is cleaned for routing only.
    """

    def __init__(self, app: Callable[..., Iterable[bytes]]) -> None:
        self.app = app

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path.startswith("/cds-services") and ("//" in path or path.endswith("/")):
            environ[CALLED_PATH] = path
            environ["PATH_INFO"] = _SLASHES.sub("/", path).rstrip("/")
        return self.app(environ, start_response)


def create_app(settings: Settings | None = None, runtime: Runtime | None = None) -> Flask:
    settings = settings or load_settings()
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = settings.max_request_bytes
    attach_runtime(app, runtime or Runtime.build(settings))
    if settings.cors_origins:
        CORS(
            app,
            origins=list(settings.cors_origins),
            allow_headers=["Authorization", "Content-Type"],
            methods=["GET", "POST", "OPTIONS"],
            expose_headers=["X-Request-Id"],
            max_age=600,
        )
    app.register_blueprint(endpoints.blueprint)
    app.register_blueprint(guide_page.blueprint)
    app.register_blueprint(ops.blueprint)
    app.register_blueprint(viewer.blueprint)
    if settings.metrics == "on":  # off, or a port of its own (served by the gunicorn master: metrics_setup.py)
        app.register_blueprint(metrics.blueprint)
    app.before_request(_before)
    app.after_request(_after)
    app.register_error_handler(ClientError, _client_error)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(Exception, _unexpected_error)
    app.wsgi_app = SlashTolerantHookPaths(app.wsgi_app)  # type: ignore[method-assign]
    return app
