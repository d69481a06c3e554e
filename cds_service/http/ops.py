"""Operations routes: liveness, readiness (content loaded, database reachable) and the OpenAPI document."""

from __future__ import annotations

import functools
import logging

from flask import Blueprint, Response

from cds_service.hooks.openapi import openapi_yaml
from cds_service.http.body import json_response
from cds_service.http.context import current_runtime

log = logging.getLogger("cds_service.http")
blueprint = Blueprint("ops", __name__)


@blueprint.get("/healthz")
def healthz() -> Response:
    return json_response({"status": "ok"})


@blueprint.get("/readyz")
def readyz() -> Response:
    runtime = current_runtime()
    try:
        runtime.store.ping()
    except Exception:
        log.exception("readiness_database_failed")
        return json_response({"status": "unavailable", "database": "unreachable"}, status=503)
    return json_response(
        {
            "status": "ready",
            "auth": runtime.settings.auth,
            **({"warning": "authentication is OFF: local demo only"} if runtime.settings.auth == "off" else {}),
            "guide": runtime.knowledge.guide.id,
            "rules": len(runtime.knowledge.rules),
        }
    )


@functools.cache
def _openapi_document() -> str:
    return openapi_yaml()  # built from the schemas once per worker


@blueprint.get("/openapi.yaml")
def openapi() -> Response:
    return Response(_openapi_document(), mimetype="application/yaml")
