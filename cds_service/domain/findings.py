"""Findings: which guide findings each Observation fact asserts, present or absent, with what qualifiers.

Recognised patterns (content/recognition.yaml and content/<guide>/findings.yaml say which codes):
finding as Observation.code with a boolean / present-absent / yes-no value or an interpretation (no value = present);
Symptoms-IG "Symptom" / "Symptom absent" with the finding as value; numeric scores with cut-offs (NIHSS, GCS, PHQ,
GAD-7, pain at a body site); FAST and other panels whose items come as components; local/text codings.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from cds_service.domain.observations import Concept, ObservationFact, Value
from cds_service.knowledge.model import Key, Knowledge, ScoreItem


@dataclass(frozen=True)
class Statement:
    """What a record says about a finding, kept as data: domain/cards.py puts it in words."""

    kind: str  # value | interpretation | symptom | symptom-absent | score | fast-item
    value: Value
    interpretation: tuple[str, ...] = ()
    item: str | None = None  # the score item's display
    previous: float | None = None  # the score's previous value, when it rose


@dataclass(frozen=True)
class Evidence:
    """One Observation's statement about one finding."""

    finding: str
    present: bool
    when: datetime | None
    issued: datetime | None
    reference: str
    statement: Statement
    qualifiers: frozenset[str] = frozenset()
    flags: frozenset[str] = frozenset()
    score: tuple[str, str, float] | None = None  # (score id, body-site group, value) for "higher than before"
    severity_recorded: bool = False  # whether the record says anything about severity at all


@dataclass(frozen=True)
class _Context:
    """What a component inherits from its Observation."""

    fact: ObservationFact
    qualifiers: frozenset[str]
    flags: frozenset[str]
    severity_recorded: bool


def _flags(fact: ObservationFact, knowledge: Knowledge) -> frozenset[str]:
    flags = set()
    if flag := knowledge.recognition.flagged_statuses.get(fact.status):
        flags.add(flag)
    if fact.validation_error:
        flags.add("did-not-validate")
    if fact.when is None:
        flags.add("time-not-recorded")
    return frozenset(flags)


def _qualifiers(fact: ObservationFact, knowledge: Knowledge) -> frozenset[str]:
    recognition = knowledge.recognition
    found: set[str] = set()
    for component in fact.components:
        for key in component.code.keys:
            if key in recognition.qualifier_components and component.value.kind == "concept":
                name, values = recognition.qualifier_components[key]
                if values.intersection(component.value.concept.keys):
                    found.add(name)
    if fact.interpretation & recognition.interpretation_worsening:
        found.add("worsening")
    if any(knowledge.body_site_groups.get(site) in knowledge.focal_site_groups for site in fact.body_sites):
        found.add("focal")
    return frozenset(found)


def _presence(
    value: Value, interpretation: frozenset[str], knowledge: Knowledge
) -> tuple[bool | None, Statement, set[str]]:
    """Presence asserted by a finding-coded Observation's value: (present?, what it says, extra qualifiers)."""
    recognition = knowledge.recognition
    said = Statement("value", value)
    if value.kind == "boolean":
        return value.boolean, said, set()
    if value.kind == "concept":
        keys = set(value.concept.keys)
        if keys & recognition.present_values:
            return True, said, set()
        if keys & recognition.absent_values:
            return False, said, set()
        if keys & recognition.unknown_values:
            return None, said, set()
        extra = {name for name, values in recognition.qualifier_components.values() if keys & values}
        return True, said, extra
    by_interpretation = Statement("interpretation", value, tuple(sorted(interpretation)))
    if interpretation & recognition.interpretation_absent:
        return False, by_interpretation, set()
    if interpretation & recognition.interpretation_present:
        return True, by_interpretation, set()
    return True, said, set()


def _finding_for(code: Concept, knowledge: Knowledge) -> str | None:
    for key in code.keys:
        if finding := knowledge.finding_by_code.get(key):
            return finding
    for text in code.texts:
        if finding := knowledge.match_text(text):
            return finding
    return None


def _score_item(code: Concept, knowledge: Knowledge) -> ScoreItem | None:
    for key in code.keys:
        if item := knowledge.scores.get(key):
            return item
    return None


def _site_group(sites: Iterable[Key], knowledge: Knowledge) -> str | None:
    for site in sites:
        if group := knowledge.body_site_groups.get(site):
            return group
    return None


def _evidence(
    ctx: _Context,
    finding: str,
    present: bool,
    said: Statement,
    extra: Iterable[str] = (),
    score: tuple[str, str, float] | None = None,
) -> Evidence:
    fact = ctx.fact
    qualifiers = ctx.qualifiers | frozenset(extra)
    return Evidence(
        finding,
        present,
        fact.when,
        fact.issued,
        fact.reference,
        said,
        qualifiers,
        ctx.flags,
        score,
        severity_recorded=ctx.severity_recorded or score is not None or "severe" in qualifiers,
    )


def _from_item(
    ctx: _Context, code: Concept, value: Value, interpretation: frozenset[str], data_absent: bool, knowledge: Knowledge
) -> list[Evidence]:
    """Evidence from one coded item: the Observation itself or one of its components."""
    if data_absent:
        return []
    recognition = knowledge.recognition
    keys = set(code.keys)
    if recognition.symptom_present in keys or recognition.symptom_absent in keys:
        finding = _finding_for(value.concept, knowledge) if value.kind == "concept" else None
        if finding is None:
            return []
        present = recognition.symptom_present in keys
        return [_evidence(ctx, finding, present, Statement("symptom" if present else "symptom-absent", value))]
    if item := _score_item(code, knowledge):
        if value.kind != "number" or value.number is None:
            return []
        site = _site_group(ctx.fact.body_sites, knowledge)
        if item.body_sites and site not in item.body_sites:
            return []
        extra = {"severe"} if item.severe_when and item.severe_when.holds(value.number) else set()
        return [
            _evidence(
                ctx,
                item.finding,
                item.present_when.holds(value.number),
                Statement("score", value, item=item.code.display),
                extra,
                (item.id, site or "", value.number),
            )
        ]
    if finding := _finding_for(code, knowledge):
        stated, said, extra = _presence(value, interpretation, knowledge)
        if stated is None:
            return []
        return [_evidence(ctx, finding, stated, said, extra)]
    return []


def evidence_from(fact: ObservationFact, knowledge: Knowledge) -> list[Evidence]:
    """Everything one Observation says about the guide's findings."""
    qualifier_components = knowledge.recognition.qualifier_components
    severity_recorded = any(
        qualifier_components.get(key, ("",))[0] == "severe"
        for component in fact.components
        for key in component.code.keys
    )
    ctx = _Context(fact, _qualifiers(fact, knowledge), _flags(fact, knowledge), severity_recorded)
    found = _from_item(ctx, fact.code, fact.value, fact.interpretation, fact.data_absent, knowledge)
    is_fast = knowledge.fast_panel is not None and knowledge.fast_panel in fact.code.keys
    for component in fact.components:
        if is_fast:
            finding = next(
                (knowledge.fast_components[k] for k in component.code.keys if k in knowledge.fast_components), None
            )
            if finding and not component.data_absent:
                present, said, _ = _presence(component.value, frozenset(), knowledge)
                if present is not None:
                    found.append(_evidence(ctx, finding, present, dataclasses.replace(said, kind="fast-item")))
            continue
        found += _from_item(ctx, component.code, component.value, frozenset(), component.data_absent, knowledge)
    return found


def mark_rising_scores(evidence: list[Evidence]) -> list[Evidence]:
    """A score higher than the previous one of the same item at the same site means "worsening"."""
    series: dict[tuple[str, str], list[int]] = defaultdict(list)
    for index, item in enumerate(evidence):
        if item.score is not None and item.when is not None:
            series[item.score[:2]].append(index)
    result = list(evidence)
    for indices in series.values():
        indices.sort(key=lambda i: (evidence[i].when, evidence[i].issued or evidence[i].when))
        for previous, current in itertools.pairwise(indices):
            rose_from = evidence[previous].score[2]  # type: ignore[index]
            if evidence[current].score[2] > rose_from:  # type: ignore[index]
                said = dataclasses.replace(result[current].statement, previous=rose_from)
                result[current] = dataclasses.replace(
                    result[current], qualifiers=result[current].qualifiers | {"worsening"}, statement=said
                )
    return result


def recognise(facts: Iterable[ObservationFact], knowledge: Knowledge) -> list[Evidence]:
    evidence: list[Evidence] = []
    for fact in facts:
        evidence += evidence_from(fact, knowledge)
    return mark_rising_scores(evidence)
