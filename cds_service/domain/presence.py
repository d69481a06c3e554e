"""Presence, decided by the value sets of content/recognition.yaml: present, absent or uncertain, never "present"
by default.

A value says what a finding-coded record asserts; a text that names a finding can deny it ("no facial droop"),
doubt it ("possible aphasia"), date it ("history of hemiparesis") or give it to someone else ("mother had a
stroke"). Every function here is pure: knowledge in, a verdict out.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from cds_service.domain.observations import Value
from cds_service.knowledge.model import ABSENT, PRESENT, UNCERTAIN, Recognition, normalise_answer

_CLAUSE_END = re.compile(r"[.;\n]|\bbut\b|\bhowever\b", re.IGNORECASE)
_LEADING_WORD = re.compile(r"^(\w+)(?:\s*[,:-]|\s+)")


@dataclass(frozen=True)
class Verdict:
    presence: str  # PRESENT | ABSENT | UNCERTAIN
    flag: str | None = None  # why it is uncertain (a card flag), or a context flag such as "old-deficit"
    qualifiers: frozenset[str] = frozenset()


PRESENT_VERDICT = Verdict(PRESENT)


def _string_presence(text: str, recognition: Recognition) -> str | None:
    """A valueString by the value_strings lists: the whole answer, or its leading word ("No - checked")."""
    answer = normalise_answer(text)
    if found := recognition.presence_by_string.get(answer):
        return found
    leading = _LEADING_WORD.match(answer)
    return recognition.presence_by_string.get(leading.group(1)) if leading else None


def value_presence(value: Value, interpretation: frozenset[str], recognition: Recognition) -> Verdict:
    """What a finding-coded record's value (or, with none, its interpretation) says about the finding."""
    if value.kind == "boolean":
        return Verdict(PRESENT if value.boolean else ABSENT)
    if value.kind == "concept":
        return concept_presence(value, recognition)
    if value.kind == "text" and value.text is not None:
        if found := _string_presence(value.text, recognition):
            return Verdict(found, "value-not-recognised" if found == UNCERTAIN else None)
        return text_verdict(value.text, None, recognition) or Verdict(UNCERTAIN, "value-not-recognised")
    if value.kind == "number":
        return Verdict(UNCERTAIN, "value-not-recognised")  # a number on a finding, with no cut-off to read it by
    by_interpretation = {recognition.interpretation.get(code) for code in interpretation} - {None}
    if by_interpretation:
        for presence in (ABSENT, UNCERTAIN, PRESENT):  # a contradiction is not a sign: absent, then uncertain
            if presence in by_interpretation:
                return Verdict(presence, "uncertain" if presence == UNCERTAIN else None)
    return PRESENT_VERDICT  # the record names the finding and says nothing else: it asserts it


def concept_presence(value: Value, recognition: Recognition) -> Verdict:
    """A coded answer: a presence value, a qualifier value (Headache = Severe: present and severe), else uncertain."""
    found = {recognition.presence_by_code.get(key) for key in value.concept.keys} - {None}
    for presence in (ABSENT, UNCERTAIN, PRESENT):
        if presence in found:
            return Verdict(presence, "uncertain" if presence == UNCERTAIN else None)
    qualifiers = frozenset(q for key in value.concept.keys for q in recognition.qualifier_values.get(key, ()))
    if qualifiers:
        return Verdict(PRESENT, None, qualifiers)
    for text in value.concept.texts:
        if found_text := _string_presence(text, recognition):
            return Verdict(found_text, "uncertain" if found_text == UNCERTAIN else None)
    return Verdict(UNCERTAIN, "value-not-recognised")


def text_verdict(text: str, span: tuple[int, int] | None, recognition: Recognition) -> Verdict | None:
    """What the words around a finding's mention say (`span`: where the finding is named; None: anywhere).

    None when the text neither denies, doubts, dates nor reassigns it. Only the clause that names the finding
    counts: "no fever; left arm weakness" still names the weakness.
    """
    start, end = span if span is not None else (0, 0)
    clause_start = max((m.end() for m in _CLAUSE_END.finditer(text, 0, start)), default=0)
    clause_end_match = _CLAUSE_END.search(text, end)
    clause_end = clause_end_match.start() if clause_end_match else len(text)
    before, after = text[clause_start:start], text[end:clause_end]
    clause = text[clause_start:clause_end]
    cues = recognition.cues
    if cues.other_person.search(clause):
        return Verdict(ABSENT, "other-person")
    if span is None:
        if cues.negation.search(clause):
            return Verdict(ABSENT)
    elif cues.negation_before.search(before) or cues.negation_after.search(after):
        return Verdict(ABSENT)
    if cues.uncertainty.search(clause):
        return Verdict(UNCERTAIN, "text-uncertain")
    if cues.historical.search(clause):
        return Verdict(PRESENT, "old-deficit")
    return None


def names_an_instrument(text: str, recognition: Recognition) -> bool:
    """Does this text name a screen, scale or test ("Confusion Assessment Method") rather than a finding?"""
    return recognition.cues.instrument.search(text) is not None
