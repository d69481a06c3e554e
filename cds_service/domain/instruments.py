"""Scored instrument items and totals (content/<guide>/instruments.yaml): a score, given as a number or as an
answer code of the item's LOINC answer list, against the item's cut-off; a site when the item needs one."""

from __future__ import annotations

import re
from dataclasses import dataclass

from cds_service.domain.evidence import Statement
from cds_service.domain.observations import Value
from cds_service.domain.presence import Verdict, concept_presence
from cds_service.domain.sites import Site
from cds_service.knowledge.model import ABSENT, PRESENT, UNCERTAIN, Knowledge, ScoreItem

_NUMBER = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(?:/\s*\d+)?\s*$")  # "3", "7/10"
ItemEvidence = tuple[Verdict, Statement, tuple[str, str, float] | None, frozenset[str]]


@dataclass(frozen=True)
class _Scored:
    score: float
    answer: str | None = None  # the answer's display, when answered with a code


def _read(item: ScoreItem, value: Value, knowledge: Knowledge) -> _Scored | Verdict | None:
    """The item's score; a verdict when the value is not a score (unknown, an answer of another list); None when
    the item was not assessed (an "UN" answer, no value)."""
    if value.kind == "number" and value.number is not None:
        return _Scored(value.number)
    if value.kind == "text" and value.text is not None and (number := _NUMBER.match(value.text)):
        return _Scored(float(number.group(1)))
    if value.kind == "concept":
        for key in value.concept.keys:
            if (answer := item.score_of(key)) is not None:
                return _Scored(answer.score, answer.code.display) if answer.score is not None else None
        said = concept_presence(value, knowledge.recognition)  # "Unknown"; "No" on an item scored by answers
        if said.presence == ABSENT and not item.answers:
            return said
        if said.presence == UNCERTAIN and said.flag == "uncertain":
            return said
        return Verdict(UNCERTAIN, "answer-not-in-list" if item.answers else "value-not-recognised")
    if value.kind == "none":
        return None
    return Verdict(UNCERTAIN, "value-not-recognised")


def evidence_from_item(item: ScoreItem, value: Value, site: Site, knowledge: Knowledge) -> ItemEvidence | None:
    """What a scored item says, or None when it says nothing (not assessed, or at a site the item does not cover)."""
    if item.body_sites and site.group is not None and site.group.id not in item.body_sites:
        return None  # pain elsewhere (chest, abdomen) is not the guide's sign
    read = _read(item, value, knowledge)
    if read is None:
        return None
    if isinstance(read, Verdict):
        return read, Statement("score", value, item=item.name, max_score=item.max_score), None, frozenset()
    said = Statement(
        "answer" if read.answer else "score",
        value,
        item=item.name,
        score=read.score,
        max_score=item.max_score,
        answer=read.answer,
    )
    extra: frozenset[str] = frozenset()
    if item.severe_when is not None:
        extra = frozenset({"severe" if item.severe_when.holds(read.score) else "not-severe"})
    verdict = Verdict(PRESENT if item.present_when.holds(read.score) else ABSENT)
    if verdict.presence == PRESENT and item.body_sites and site.group is None:
        verdict = Verdict(UNCERTAIN, "site-not-recorded")  # e.g. a pain score whose location is its own row
    return verdict, said, (item.id, site.key, read.score), extra
