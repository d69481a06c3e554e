"""Marshmallow helpers shared by every schema of the service: the strict and tolerant bases and the one walker
that turns marshmallow's nested error messages into (path, message)."""

from __future__ import annotations

from typing import Any

from marshmallow import EXCLUDE, RAISE, Schema

ErrorPath = tuple[str | int, ...]


class Strict(Schema):
    """Objects the service itself writes or an author edits: anything unknown is an error."""

    class Meta:
        unknown = RAISE


class Tolerant(Schema):
    """Request objects: unknown members (e.g. CDS Hooks 3.0 additions) are tolerated and dropped."""

    class Meta:
        unknown = EXCLUDE


def first_error(messages: Any, path: ErrorPath = ()) -> tuple[ErrorPath, str]:
    """The first (path, message) of a marshmallow error tree; `_schema` errors belong to their parent."""
    if isinstance(messages, dict) and messages:
        key = next(iter(messages))
        return first_error(messages[key], path if key == "_schema" else (*path, key))
    if isinstance(messages, list) and messages:
        return first_error(messages[0], path)
    return path, str(messages)


def dotted(path: ErrorPath) -> str:
    return ".".join(str(part) for part in path)
