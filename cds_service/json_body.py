"""Reading a client's JSON body: size-limited, strict, and a clear 4xx for anything wrong."""

from __future__ import annotations

from typing import Any

import orjson
from flask import Response, request

from cds_service.errors import ClientError

MAX_DEPTH = 64


def _depth(value: Any, limit: int) -> int:
    """Nesting depth, iteratively (a hostile body must not exhaust the stack)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        deepest = max(deepest, depth)
        if depth > limit:
            return depth
        if isinstance(item, dict):
            stack.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, depth + 1) for v in item)
    return deepest


def read_json_object() -> dict[str, Any]:
    mimetype = request.mimetype or ""
    if mimetype and not (mimetype == "application/json" or mimetype.endswith("+json")):
        raise ClientError(415, f"Content-Type must be application/json, got {mimetype}", where="Content-Type",
                          code="not-supported")
    raw = request.get_data(cache=False)
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ClientError(400, f"body is not valid JSON: {exc.msg} at position {exc.pos}", code="structure") from exc
    if not isinstance(body, dict):
        raise ClientError(400, "body must be a JSON object", code="structure")
    if _depth(body, MAX_DEPTH) > MAX_DEPTH:
        raise ClientError(400, f"body is nested deeper than {MAX_DEPTH} levels", code="too-costly")
    return body


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None,
                  mimetype: str = "application/json") -> Response:
    return Response(orjson.dumps(body), status=status, headers=headers, mimetype=mimetype)
