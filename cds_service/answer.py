"""One hook call's work, outside Flask: patient data resolved, triaged, cards checked, what to store and log.

The HTTP route authenticates, reads the body, calls answer() and stores what it returns; the CLI's `triage` calls
the same function with a request built from a file.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cds_service.caller import Caller
from cds_service.domain.cards import shown_findings
from cds_service.domain.coverage import ChartReadInPart
from cds_service.domain.pipeline import evaluate
from cds_service.domain.triage import Decision
from cds_service.hooks.services import ServiceDefinition
from cds_service.runtime import Engine
from cds_service.store import IssuedCardRow

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class HookAnswer:
    body: dict[str, Any]  # {"cards": [...]}, checked against the CDS Hooks schema
    decisions: list[Decision]
    card_rows: list[IssuedCardRow]  # one per card, for the card log
    log_fields: dict[str, Any]  # counts and codes for the access log; never patient data


class InvalidResponse(RuntimeError):
    """The service built an answer that breaks the CDS Hooks schema: our bug, never the client's."""


def answer(
    engine: Engine, service: ServiceDefinition, hook_request: dict[str, Any], caller: Caller, now: datetime
) -> HookAnswer:
    """The answer to a validated hook request; raises ClientError for what the client must fix (400/403/412)."""
    since = now - max(tier.window for tier in engine.knowledge.tiers)  # the fetch's date floor
    data = engine.resolver.resolve(service, hook_request, caller, since)
    patient_id = hook_request["context"]["patientId"]
    part = data.read_in_part
    read_in_part = (
        ChartReadInPart(part.reason, part.pages_read, part.observations_read, part.oldest_read)
        if part is not None
        else None
    )
    result = evaluate(
        data.observations, patient_id, engine.knowledge, now, engine.settings.base_url, read_in_part=read_in_part
    )
    body: dict[str, Any] = {"cards": result.cards}
    if problems := engine.response_check.problems(body):
        log.error("invalid_response", extra={"problems": [problem[:300] for problem in problems[:10]]})
        raise InvalidResponse("the service built an invalid CDS Hooks response")
    rows = [
        IssuedCardRow(
            uuid=card["uuid"],
            service_id=service.id,
            hook_instance=hook_request["hookInstance"],
            indicator=decision.indicator,
            tier=decision.tier.id,
            rules=[rule.id for rule in decision.rules],
            findings=[item.finding for item in shown_findings(decision)],
            issued_at=now,
            content_version=engine.knowledge.release.content_version,
        )
        for card, decision in zip(result.cards, result.decisions, strict=True)
    ]
    stats = result.stats
    # The access-log line carries the counts, including Observations of other patients that were ignored.
    fields = {
        "service": service.id,
        "cards": [c["indicator"] for c in result.cards],
        "observations": stats.received,
        "other_patient": stats.other_patient,
        "other_focus": stats.other_focus,
        "ignored_status": stats.ignored_status,
        "not_relevant": stats.not_relevant,
        "evaluated": stats.kept,
        "did_not_validate": stats.did_not_validate,
        "fetched": data.fetched,
        "pages_followed": data.pages_followed,
        "fhir_ms": round(data.fhir_ms, 2),
        "read_in_part": data.read_in_part.log_fields() if data.read_in_part else None,
    }
    return HookAnswer(body, result.decisions, rows, fields)
