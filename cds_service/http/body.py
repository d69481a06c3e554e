"""Reading a client's JSON body: size-limited, strict, and a clear 4xx for anything wrong.

orjson refuses JSON nested deeper than 1,024 levels (400). Nothing in the service walks request data recursively
except fhir.resources validation, which json_depth.py guards where it is called (observations.py).
"""

from __future__ import annotations

from typing import Any

import orjson
from flask import Response, request

from cds_service.errors import ClientError


def read_json_object() -> dict[str, Any]:
    mimetype = request.mimetype or ""
    if mimetype and not (mimetype == "application/json" or mimetype.endswith("+json")):
        raise ClientError(
            415, f"Content-Type must be application/json, got {mimetype}", where="Content-Type", code="not-supported"
        )
    raw = request.get_data(cache=False)
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ClientError(400, f"body is not valid JSON: {exc.msg} at position {exc.pos}", code="structure") from exc
    if not isinstance(body, dict):
        raise ClientError(400, "body must be a JSON object", code="structure")
    return body


def json_response(
    body: Any, status: int = 200, headers: dict[str, str] | None = None, mimetype: str = "application/json"
) -> Response:
    return Response(orjson.dumps(body), status=status, headers=headers, mimetype=mimetype)
