"""The pure triage pipeline, shared by the HTTP service and the CLI: FHIR JSON in, cards out."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cds_service.domain.cards import render_cards, shown_findings
from cds_service.domain.coverage import ChartReadInPart
from cds_service.domain.findings import recognise
from cds_service.domain.observations import ObservationFact, SelectionStats, select_observations, validated
from cds_service.domain.triage import Decision, triage
from cds_service.knowledge.model import Knowledge


@dataclass(frozen=True)
class Evaluation:
    cards: list[dict[str, Any]]
    decisions: list[Decision]
    stats: SelectionStats


def shown_references(decisions: list[Decision]) -> set[str]:
    """The Observations a card will list (fired findings and earlier emergency signs)."""
    return {item.reference for decision in decisions for item in shown_findings(decision)}


def evaluate(
    resources: Iterable[Any],
    patient_id: str,
    knowledge: Knowledge,
    now: datetime,
    base_url: str,
    *,
    prefilter: bool = True,
    read_in_part: ChartReadInPart | None = None,
) -> Evaluation:
    """Cards for this patient's Observations at `now`.

    prefilter=True (the service): Observations that cannot match any finding are skipped before any work, and the
    fhir.resources validation runs only for the Observations a card shows. Validation only adds the
    "did-not-validate" flag to a card line and never decides anything, so the cards are those of prefilter=False:
    the reference path that validates and evaluates every Observation (tests/test_prefilter_equivalence.py).
    """
    facts, stats = select_observations(resources, patient_id, knowledge, prefilter=prefilter, validate=not prefilter)
    decisions = triage(recognise(facts, knowledge), knowledge, now)
    if prefilter:
        facts, decisions = _validate_shown(facts, decisions, knowledge, now, stats)
    if read_in_part is not None:
        card = knowledge.emergency.read_in_part_card
        decisions.append(
            Decision(
                knowledge.tier(knowledge.emergency.tier),
                card,
                knowledge.cards[card].indicator,
                read_in_part=read_in_part,
            )
        )
    return Evaluation(render_cards(decisions, knowledge, base_url, patient_id, now), decisions, stats)


def _validate_shown(
    facts: list[ObservationFact], decisions: list[Decision], knowledge: Knowledge, now: datetime, stats: SelectionStats
) -> tuple[list[ObservationFact], list[Decision]]:
    """Validate the facts the cards show; when one did not validate, triage again so its line carries the flag."""
    shown = shown_references(decisions)
    if not shown:
        return facts, decisions
    checked = [validated(fact) if fact.reference in shown else fact for fact in facts]
    stats.did_not_validate = sum(1 for fact in checked if fact.validation_error)
    if not stats.did_not_validate:
        return checked, decisions
    return checked, triage(recognise(checked, knowledge), knowledge, now)
