"""Reading a client's JSON body: size-limited, strict, and a clear 4xx for anything wrong."""

from __future__ import annotations

from typing import Any

import orjson
from flask import Response, request

from cds_service.errors import ClientError

MAX_DEPTH = 64  # levels of objects/arrays
_ONLY_STRUCTURE = bytes(range(256)).translate(None, b'[]{}"')  # delete every byte but brackets and quotes
_OBJECTS_AS_ARRAYS = bytes.maketrans(b"{}", b"[]")


def nesting_depth(raw: bytes, limit: int = MAX_DEPTH) -> int:
    """How many levels of objects/arrays the valid JSON `raw` nests (counting stops at limit + 1), at C speed.

    A walk over the parsed body costs ~15 ms for a 1 MB body; this costs ~1 ms. Escaped backslashes and quotes are
    dropped (left to right, as JSON reads them), then every byte but brackets and quotes. Strings without brackets
    are then `""` and go in one pass (removing adjacent quotes keeps the parity of the others); what still remains
    between two quotes was inside a string. Objects count as arrays (valid JSON closes what it opens in order), and
    each pass removes the innermost "[]" pairs, so the number of passes is the depth.
    """
    if b"\\" in raw:
        raw = raw.replace(b"\\\\", b"").replace(b'\\"', b"")
    skeleton = raw.translate(_OBJECTS_AS_ARRAYS, _ONLY_STRUCTURE).replace(b'""', b"")  # strings without brackets
    if b'"' in skeleton:
        skeleton = b"".join(skeleton.split(b'"')[::2])  # the odd pieces were inside strings
    depth = 0
    while skeleton and depth <= limit:
        depth += 1
        skeleton = skeleton.replace(b"[]", b"")
    return depth


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
    if nesting_depth(raw) > MAX_DEPTH:
        raise ClientError(400, f"body is nested deeper than {MAX_DEPTH} levels", code="too-costly")
    return body


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None,
                  mimetype: str = "application/json") -> Response:
    return Response(orjson.dumps(body), status=status, headers=headers, mimetype=mimetype)
