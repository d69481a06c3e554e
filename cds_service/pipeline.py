"""The pure triage pipeline, shared by the HTTP service and the CLI: FHIR JSON in, cards out."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cds_service.cards import render_cards
from cds_service.findings import recognise
from cds_service.knowledge import Knowledge
from cds_service.observations import SelectionStats, select_observations
from cds_service.triage import Decision, triage


@dataclass(frozen=True)
class Evaluation:
    cards: list[dict[str, Any]]
    decisions: list[Decision]
    stats: SelectionStats


def evaluate(resources: Iterable[Any], patient_id: str, knowledge: Knowledge, now: datetime, base_url: str,
             *, prefilter: bool = True) -> Evaluation:
    facts, stats = select_observations(resources, patient_id, knowledge, prefilter=prefilter)
    decisions = triage(recognise(facts, knowledge), knowledge, now)
    return Evaluation(render_cards(decisions, knowledge, base_url, patient_id, now), decisions, stats)
