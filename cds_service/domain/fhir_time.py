"""FHIR date/dateTime/instant parsing (partial dates allowed, as FHIR allows)."""

from __future__ import annotations

import re
from datetime import UTC, datetime

_PARTIAL_DATE = re.compile(r"^(\d{4})(?:-(\d{2})(?:-(\d{2}))?)?$")


def parse_fhir_datetime(value: object) -> datetime | None:
    """An aware UTC datetime for a FHIR date/dateTime/instant; None when absent or not parseable.

    A partial date (`2026`, `2026-11`, `2026-11-25`) means its first instant, in UTC. A dateTime with a time but no
    zone is invalid FHIR; it is read as UTC rather than dropped.
    """
    if not isinstance(value, str) or not value:
        return None
    match = _PARTIAL_DATE.match(value)
    if match:
        year, month, day = match.groups()
        try:
            return datetime(int(year), int(month or 1), int(day or 1), tzinfo=UTC)
        except ValueError:
            return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def describe_age(then: datetime, now: datetime) -> str:
    """A clinician-friendly age: `recorded 2 h ago`, `recorded 3 d ago`, `recorded in the future`."""
    seconds = (now - then).total_seconds()
    if seconds < -300:
        return "dated in the future"
    seconds = max(seconds, 0)
    if seconds < 3600:
        return f"recorded {int(seconds // 60)} min ago"
    if seconds < 48 * 3600:
        return f"recorded {int(seconds // 3600)} h ago"
    return f"recorded {int(seconds // 86400)} d ago"
