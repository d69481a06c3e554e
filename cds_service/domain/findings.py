"""Findings: what each Observation fact says about the guide's findings: present, absent or uncertain, with what
qualifiers, measured on what (for latest-wins).

Recognised shapes (content/recognition.yaml, findings.yaml, instruments.yaml, icd10cm-expanded.yaml say which
codes): a finding as Observation.code, its value saying present / absent / uncertain (domain/presence.py); the
Symptoms-IG "Symptom" / "Symptom absent" Observation with the finding as value; a scored instrument item or total,
as a number or an answer code of its list (domain/instruments.py); the FAST panel's components; local codes and
text, read with their negation, doubt and history cues. A text that names a screen or test is never the finding.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from cds_service.domain.evidence import Evidence, Statement
from cds_service.domain.instruments import evidence_from_item
from cds_service.domain.observations import Concept, ObservationFact, Value
from cds_service.domain.presence import Verdict, names_an_instrument, text_verdict, value_presence
from cds_service.domain.sites import Site, site_of
from cds_service.knowledge.model import ABSENT, PRESENT, UNCERTAIN, Key, Knowledge

__all__ = ["Evidence", "Statement", "evidence_from", "mark_rising_scores", "recognise"]


@dataclass(frozen=True)
class _Context:
    """What an item (the Observation itself or a component) inherits from its Observation."""

    fact: ObservationFact
    qualifiers: frozenset[str]
    flags: frozenset[str]
    severity_recorded: bool
    site: Site  # where the record was measured


@dataclass(frozen=True)
class _Match:
    """A concept read as a finding: which one, how (code kind), and the text it was found in, if by text."""

    finding: str
    kind: str  # present | old-deficit | chronic
    text: str | None = None
    span: tuple[int, int] | None = None
    concept: Key | None = None


def _flags(fact: ObservationFact, knowledge: Knowledge) -> frozenset[str]:
    flags = set()
    if flag := knowledge.recognition.flagged_statuses.get(fact.status):
        flags.add(flag)
    if fact.validation_error:
        flags.add("did-not-validate")
    if fact.when is None:
        flags.add("time-not-recorded")
    return frozenset(flags)


def _qualifiers(fact: ObservationFact, site: Site, knowledge: Knowledge) -> tuple[frozenset[str], bool]:
    """Qualifiers from components (onset, trend, course, severity) and interpretation; and whether severity is
    recorded at all."""
    recognition = knowledge.recognition
    found: set[str] = set()
    severity_recorded = False
    for component in fact.components:
        allowed = frozenset().union(*(recognition.qualifier_components.get(k, ()) for k in component.code.keys))
        if not allowed:
            continue
        severity_recorded |= bool(allowed & {"severe", "not-severe"}) and not component.data_absent
        for key in component.value.concept.keys:
            found |= recognition.qualifier_values.get(key, frozenset()) & allowed
    if fact.interpretation & recognition.interpretation_worsening:
        found.add("worsening")
    if site.focal:
        found.add("focal")
    return frozenset(found), severity_recorded or bool(found & {"severe", "not-severe"})


def _context(fact: ObservationFact, knowledge: Knowledge) -> _Context:
    site = site_of(fact, knowledge)
    qualifiers, severity_recorded = _qualifiers(fact, site, knowledge)
    return _Context(fact, qualifiers, _flags(fact, knowledge), severity_recorded, site)


def match_concept(code: Concept, knowledge: Knowledge) -> _Match | None:
    """The finding a concept names: by a listed code, by terminology hierarchy, else by the words of its text."""
    for key in code.keys:
        if finding := knowledge.finding_by_code.get(key):
            return _Match(finding, "present", concept=key)
        if finding := knowledge.old_deficit_by_code.get(key):
            return _Match(finding, "old-deficit", concept=key)
        lookup = knowledge.code_lookups.get(key[0])
        if lookup is not None and (found := lookup.lookup(key[1])) is not None:
            finding, kind = found
            return _Match(finding, kind, concept=key) if finding and kind != "never" else None
    for text in code.texts:
        if matched := _match_text(text, knowledge):
            return matched
    return None


def _match_text(text: str, knowledge: Knowledge) -> _Match | None:
    if knowledge.text_pattern is None or not knowledge.text_pattern.search(text):
        return None
    for finding in knowledge.findings.values():
        for pattern in finding.text_patterns:
            if found := pattern.search(text):
                return _Match(finding.id, "present", text, found.span())
    return None


def _combine(value: Verdict, words: Verdict | None) -> Verdict:
    """The value's verdict, overruled by the record's own words when they deny or doubt it."""
    if words is None or value.presence == ABSENT:
        return value
    if words.presence == ABSENT:
        return words
    if words.presence == UNCERTAIN or value.presence == UNCERTAIN:
        return Verdict(UNCERTAIN, value.flag if value.presence == UNCERTAIN else words.flag, value.qualifiers)
    return Verdict(PRESENT, words.flag or value.flag, value.qualifiers)


def _evidence(
    ctx: _Context,
    finding: str,
    verdict: Verdict,
    said: Statement,
    concept: Key | None,
    site: str | None = None,
    extra: Iterable[str] = (),
    score: tuple[str, str, float] | None = None,
) -> Evidence:
    fact = ctx.fact
    qualifiers = ctx.qualifiers | verdict.qualifiers | frozenset(extra)
    flags = ctx.flags | ({verdict.flag} if verdict.flag else set())
    return Evidence(
        finding,
        verdict.presence,
        ctx.site.key if site is None else site,
        fact.when,
        fact.issued,
        fact.reference,
        said,
        qualifiers,
        flags,
        score,
        severity_recorded=ctx.severity_recorded or bool(qualifiers & {"severe", "not-severe"}),
        concept=concept,
        categories=fact.categories,
        performer=fact.performer,
    )


def _from_symptom(
    ctx: _Context, value: Value, interpretation: frozenset[str], present: bool, knowledge: Knowledge
) -> list[Evidence]:
    """A question answered by the finding: the Symptoms IG "Symptom" (75325-1; 111551-8 "Symptom absent") or a
    chief complaint, with the symptom as a code or, for a complaint, in words."""
    if value.kind == "text" and value.text:
        match = _match_text(value.text, knowledge)
    elif value.kind == "concept":
        match = match_concept(value.concept, knowledge)
    else:
        match = None
    if match is None:
        return []
    said = Statement("symptom" if present else "symptom-absent", value)
    if not present:
        return [_evidence(ctx, match.finding, Verdict(ABSENT), said, match.concept)]
    words = text_verdict(match.text, match.span, knowledge.recognition) if match.text else None
    verdict = _combine(_kind_verdict(match), words)
    if (by_interpretation := value_presence(Value("none"), interpretation, knowledge.recognition)).presence != PRESENT:
        verdict = by_interpretation  # "Symptom" + NEG: the interpretation overrules
    return [_evidence(ctx, match.finding, verdict, said, match.concept)]


def _kind_verdict(match: _Match) -> Verdict:
    if match.kind == "old-deficit":
        return Verdict(PRESENT, "old-deficit")
    return Verdict(PRESENT, None, frozenset({"chronic"}) if match.kind == "chronic" else frozenset())


def _from_finding_code(
    ctx: _Context, code: Concept, value: Value, interpretation: frozenset[str], knowledge: Knowledge
) -> list[Evidence]:
    match = match_concept(code, knowledge)
    if match is None:
        return []
    recognition = knowledge.recognition
    by_code, by_value = _kind_verdict(match), value_presence(value, interpretation, recognition)
    verdict = Verdict(by_value.presence, by_value.flag or by_code.flag, by_value.qualifiers | by_code.qualifiers)
    if match.text is not None and names_an_instrument(match.text, recognition):
        # "Delirium screen: negative": a test's name is not the finding; a positive result is only a lead.
        if verdict.presence == ABSENT:
            return []
        verdict = Verdict(UNCERTAIN, "instrument-result", verdict.qualifiers)
    else:
        for text in code.texts:
            span = match.span if text == match.text else None
            verdict = _combine(verdict, text_verdict(text, span, recognition))
    kind = "interpretation" if value.kind == "none" and interpretation else "value"
    said = Statement(kind, value, tuple(sorted(interpretation)))
    return [_evidence(ctx, match.finding, verdict, said, match.concept)]


def _from_item(
    ctx: _Context, code: Concept, value: Value, interpretation: frozenset[str], data_absent: bool, knowledge: Knowledge
) -> list[Evidence]:
    """Evidence from one coded item: the Observation itself or one of its components."""
    if data_absent:
        return []
    recognition = knowledge.recognition
    keys = set(code.keys)
    if keys & recognition.finding_questions or recognition.symptom_absent in keys:
        return _from_symptom(ctx, value, interpretation, recognition.symptom_absent not in keys, knowledge)
    for key in code.keys:
        if item := knowledge.scores.get(key):
            found = evidence_from_item(item, value, ctx.site, knowledge)
            if found is None:
                return []
            verdict, said, score, extra = found
            return [_evidence(ctx, item.finding, verdict, said, key, item.measures or None, extra, score)]
    return _from_finding_code(ctx, code, value, interpretation, knowledge)


def _from_fast(ctx: _Context, fact: ObservationFact, knowledge: Knowledge) -> list[Evidence]:
    found = []
    for component in fact.components:
        key = next((k for k in component.code.keys if k in knowledge.fast_components), None)
        if key is not None and not component.data_absent:
            verdict = value_presence(component.value, frozenset(), knowledge.recognition)
            said = Statement("fast-item", component.value)
            found.append(_evidence(ctx, knowledge.fast_components[key], verdict, said, key))
    return found


def evidence_from(fact: ObservationFact, knowledge: Knowledge) -> list[Evidence]:
    """Everything one Observation says about the guide's findings."""
    ctx = _context(fact, knowledge)
    found = _from_item(ctx, fact.code, fact.value, fact.interpretation, fact.data_absent, knowledge)
    if knowledge.fast_panel is not None and knowledge.fast_panel in fact.code.keys:
        return found + _from_fast(ctx, fact, knowledge)
    for component in fact.components:
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
