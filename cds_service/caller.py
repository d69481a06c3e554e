"""Who is calling, once verified: the issuer (None with authentication off) and the FHIR servers it may send."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Caller:
    issuer: str | None
    fhir_server_prefixes: tuple[str, ...]
