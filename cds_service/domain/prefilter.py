"""The pre-filter: could this Observation change the result? Decided from its raw JSON, before any validation.

It looks at every place the recognition in domain/findings.py reads a code or a text from (Observation.code and
component.code: codings and CodeableConcept.text / coding.display), so a skipped Observation can never yield
evidence (tests/test_prefilter_equivalence.py). It runs for every Observation received, so it is written as plain
loops and its text matching is cached per worker.
"""

from __future__ import annotations

import re
from typing import Any

from cds_service.knowledge.model import CodeLookup, Key, Knowledge

Lookups = dict[str, CodeLookup]  # by code system

TEXT_CACHE_SIZE = 16384  # distinct texts whose result is kept per worker and pattern; starts over when full
TEXT_CACHE_MAX_LENGTH = 200  # longer texts (free text, rare) are searched every time and never kept
_text_caches: dict[tuple[str, int], dict[str, bool]] = {}


class TextMatcher:
    """pattern.search(text) is not None, remembered per worker: code displays repeat across charts (a few hundred
    distinct LOINC/SNOMED displays make up most charts) and a search of the combined text pattern is costly.

    The cache is keyed by the pattern's source and flags (a compiled pattern's hash walks its whole program).
    """

    __slots__ = ("pattern", "results")

    def __init__(self, pattern: re.Pattern[str]) -> None:
        self.pattern = pattern
        self.results = _text_caches.setdefault((pattern.pattern, pattern.flags), {})

    def matches(self, text: str) -> bool:
        found = self.results.get(text)
        if found is None:
            found = self.pattern.search(text) is not None
            if len(text) <= TEXT_CACHE_MAX_LENGTH:
                if len(self.results) >= TEXT_CACHE_SIZE:
                    self.results.clear()
                self.results[text] = found
        return found


def _coding_is_relevant(coding: dict[str, Any], relevant: frozenset[Key], lookups: Lookups) -> bool:
    system, code = coding.get("system"), coding.get("code")
    if not (isinstance(system, str) and isinstance(code, str)):
        return False
    if (system, code) in relevant:
        return True
    lookup = lookups.get(system)
    return lookup is not None and lookup.lookup(code) is not None


def _concept_is_relevant(raw: Any, relevant: frozenset[Key], lookups: Lookups, texts: TextMatcher | None) -> bool:
    """Could findings.py recognise this CodeableConcept, by a coding or by its text or a display?

    Written out as plain loops: it runs for every Observation received.
    """
    if not isinstance(raw, dict):
        return False
    codings = raw.get("coding")
    if not isinstance(codings, list):
        codings = ()
    for coding in codings:
        if isinstance(coding, dict) and _coding_is_relevant(coding, relevant, lookups):
            return True
    if texts is None:
        return False
    text = raw.get("text")
    if isinstance(text, str) and text and texts.matches(text):
        return True
    for coding in codings:
        if isinstance(coding, dict):
            display = coding.get("display")
            if isinstance(display, str) and display and texts.matches(display):
                return True
    return False


def observation_is_relevant(
    raw: dict[str, Any], relevant: frozenset[Key], lookups: Lookups, texts: TextMatcher | None
) -> bool:
    if _concept_is_relevant(raw.get("code"), relevant, lookups, texts):
        return True
    components = raw.get("component")
    if isinstance(components, list):
        for component in components:
            if isinstance(component, dict) and _concept_is_relevant(component.get("code"), relevant, lookups, texts):
                return True
    return False


def text_matcher(knowledge: Knowledge) -> TextMatcher | None:
    return TextMatcher(knowledge.text_pattern) if knowledge.text_pattern is not None else None


def is_relevant(raw: dict[str, Any], knowledge: Knowledge) -> bool:
    """Could this Observation change the result? Decided from raw JSON, before any validation.

    findings.py reads findings from Observation.code and from each component.code (a Symptoms-IG "Symptom"
    Observation's value only counts when its code is one of the relevant Symptom codes), by coding and by text.
    """
    return observation_is_relevant(raw, knowledge.relevant_codes, knowledge.code_lookups, text_matcher(knowledge))
