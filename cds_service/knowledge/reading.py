"""What every content loader shares: a document read through its schema, codes with their system aliases
resolved, and windows like `24h` turned into durations."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from marshmallow import Schema, ValidationError

from cds_service.knowledge import files
from cds_service.knowledge.model import Code, Key
from cds_service.validation import ErrorPath, first_error
from cds_service.yaml_source import YamlDocument

_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def validated(doc: YamlDocument, schema: Schema) -> dict[str, Any]:
    """The document loaded through its schema; the first problem is raised with its file and line."""
    try:
        loaded: dict[str, Any] = schema.load(doc.data if doc.data is not None else {})
    except ValidationError as exc:
        path, message = first_error(exc.messages)
        raise doc.error(path, message) from exc
    return loaded


def duration(text: str) -> timedelta:
    """A window like `24h` or `14d` (the schema checked the shape)."""
    amount, unit = files.WINDOW.match(text).groups()  # type: ignore[union-attr]
    return timedelta(**{_UNITS[unit]: int(amount)})


@dataclass(frozen=True)
class CodeReader:
    """Turns a code entry into a Code, resolving the system aliases of content/recognition.yaml."""

    systems: dict[str, str]

    def system(self, alias: str) -> str:
        return self.systems.get(alias, alias)

    def code(self, doc: YamlDocument, path: ErrorPath, entry: dict[str, Any]) -> Code:
        system = self.system(entry["system"])
        if not system.startswith(("http://", "https://", "urn:")):
            raise doc.error((*path, "system"), f"unknown code system alias {entry['system']!r}")
        return Code(system, str(entry["code"]), entry["display"], entry["source"])

    def keys(self, doc: YamlDocument, path: ErrorPath, entries: list[dict[str, Any]]) -> frozenset[Key]:
        return frozenset(self.code(doc, (*path, i), e).key for i, e in enumerate(entries))
