"""How deeply JSON nests, counted on its bytes at C speed: the guard in front of recursive readers.

fhir.resources (pydantic) validation recurses through an Observation's elements and raises RecursionError a few
hundred levels down; no FHIR resource nests anywhere near MAX_DEPTH levels.
"""

from __future__ import annotations

from typing import Any

import orjson

MAX_DEPTH = 64  # levels of objects/arrays
_ONLY_STRUCTURE = bytes(range(256)).translate(None, b'[]{}"')  # delete every byte but brackets and quotes
_OBJECTS_AS_ARRAYS = bytes.maketrans(b"{}", b"[]")


def nesting_depth(raw: bytes, limit: int = MAX_DEPTH) -> int:
    """How many levels of objects/arrays the valid JSON `raw` nests (counting stops at limit + 1), at C speed.

    A recursive walk would meet the very recursion limit it guards against (and costs far more). Escaped
    backslashes and quotes are dropped (left to right, as JSON reads them), then every byte but brackets and quotes.
    Strings without brackets are then `""` and go in one pass (removing adjacent quotes keeps the parity of the
    others); what still remains between two quotes was inside a string. Objects count as arrays (valid JSON closes
    what it opens in order), and each pass removes the innermost "[]" pairs, so the number of passes is the depth.
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


def deeper_than(value: Any, limit: int = MAX_DEPTH) -> bool:
    """Does parsed JSON `value` nest more than `limit` levels? (orjson.dumps itself stops at 254 levels.)"""
    try:
        return nesting_depth(orjson.dumps(value), limit) > limit
    except orjson.JSONEncodeError:
        return True
