"""The knowledge the service runs on, as frozen, pre-indexed types: what content/ and cards/ say once loaded.

Pure data: no file formats, no I/O (tests/test_layers.py enforces it). knowledge/load.py builds these.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Protocol

Key = tuple[str, str]  # (system URI, code)
QUALIFIERS = ("focal", "sudden", "worsening", "severe", "not-severe", "gradual", "chronic")
PRESENT, ABSENT, UNCERTAIN = "present", "absent", "uncertain"
PRESENCES = (PRESENT, ABSENT, UNCERTAIN)
INDICATORS = ("critical", "warning", "info")
OPERATORS: dict[str, Callable[[float, float], bool]] = {
    ">": operator.gt,
    ">=": operator.ge,
    "<": operator.lt,
    "<=": operator.le,
}


def normalise_answer(text: str) -> str:
    """A valueString as the value_strings lists are written: lower case, single spaces, no final punctuation."""
    return " ".join(text.lower().split()).rstrip(".!;:")


@dataclass(frozen=True)
class Code:
    system: str
    code: str
    display: str
    source: str

    @property
    def key(self) -> Key:
        return (self.system, self.code)


@dataclass(frozen=True)
class Comparison:
    op: str
    value: float

    def holds(self, number: float) -> bool:
        return OPERATORS[self.op](number, self.value)

    def __str__(self) -> str:
        return f"{self.op} {self.value:g}"


@dataclass(frozen=True)
class Finding:
    id: str
    label: str
    guide_section: str
    focal: bool
    codes: tuple[Code, ...]
    text_patterns: tuple[re.Pattern[str], ...]
    old_deficit_codes: tuple[Code, ...] = ()  # codes that mean an old, known deficit of this finding (sequelae)


@dataclass(frozen=True)
class Answer:
    """One answer of an instrument item's answer list: its score, or None when the item could not be assessed."""

    code: Code
    score: float | None


@dataclass(frozen=True)
class ScoreItem:
    """An instrument item or total whose value is a score (a number, or an answer code from its answer list)."""

    id: str
    code: Code
    finding: str
    present_when: Comparison
    severe_when: Comparison | None
    body_sites: tuple[str, ...]  # empty: any site; else the record must be at one of these body-site groups
    answers: dict[Key, Answer] = field(default_factory=dict)
    answer_list: str | None = None  # the LOINC answer list id, as the source of the answers
    max_score: float | None = None
    measures: str = ""  # the body part the item examines ("upper-limb:left"); "" when the record's site decides
    label: str = ""  # how a card names the item; "" means the code's display

    @property
    def name(self) -> str:
        return self.label or self.code.display

    def score_of(self, key: Key) -> Answer | None:
        return self.answers.get(key)


@dataclass(frozen=True)
class BodySiteGroup:
    id: str
    focal: bool
    codes: frozenset[Key]
    text_pattern: re.Pattern[str] | None  # bodySite.text / display, when no code is known


@dataclass(frozen=True)
class Tier:
    id: str
    indicator: str
    window: timedelta
    card: str
    suppressed_by: tuple[str, ...]
    recheck: bool = False  # uncertain, old or chronic records of its signs go on the re-check card
    kept_out_by: frozenset[str] = frozenset()  # qualifiers that keep a record out of this tier (chronic, gradual)
    repeat_quiet: timedelta | None = None  # repeat_alerts.py: an overridden card comes back as an info line


@dataclass(frozen=True)
class EmergencyPolicy:
    """Which tier is the emergency tier, and how its signs that cannot be confirmed as new are shown."""

    tier: str
    recheck_card: str  # a sign that cannot be confirmed (uncertain, old, chronic, severity unknown) goes here
    acute_qualifiers: frozenset[str]  # an emergency sign older than the window with one of these still fires...
    acute_window: timedelta  # ...as long as it is not older than this (an onset mark ages too)
    read_in_part_card: str  # the card that says the chart was read only in part


@dataclass(frozen=True)
class Rule:
    id: str
    tier: str
    findings: tuple[str, ...]
    requires_all: tuple[str, ...]
    requires_any: tuple[str, ...]
    provenance: dict[str, Any]


@dataclass(frozen=True)
class Suggestion:
    label: str
    description: str
    code: Code


@dataclass(frozen=True)
class CardTemplate:
    id: str
    indicator: str
    summary: str
    detail: str
    earlier_heading: str | None
    link_label: str
    link_section: str
    override_reasons: tuple[tuple[str, str], ...]  # (code, display)
    suggestions: tuple[Suggestion, ...]
    actions: str | None = None  # markdown list shown after the findings, under the "what to do" lead-in


@dataclass(frozen=True)
class CardWording:
    """Sentences shared by every card (cards/common.yaml): flag notes and the "why" line."""

    flags: dict[str, str]  # flag -> the note shown on a card line
    why_lead: str
    why_rule: str  # {rule}, {origin}
    why_guide_section: str  # {section}
    why_beyond_guide: str  # {source}
    read_in_part_extent: str  # {observations}, {pages}, {oldest}
    read_in_part_no_date: str
    read_in_part_reasons: dict[str, str]  # reason -> words
    values: dict[str, str] = field(default_factory=dict)  # yes, no, none, text, coded: a value in words
    statements: dict[str, str] = field(default_factory=dict)  # Statement kind -> line text ({value}, {item}, ...)
    interpretations: dict[str, str] = field(default_factory=dict)  # interpretation code -> word
    sections: dict[str, str] = field(default_factory=dict)  # findings, actions, earlier: lead-in lines
    recorded: dict[str, str] = field(default_factory=dict)  # when: "{age}" line parts and "time not recorded"
    qualifiers: dict[str, str] = field(default_factory=dict)  # qualifier -> word shown on the line
    finding_notes: dict[str, str] = field(default_factory=dict)  # finding id -> a sentence under the finding list


@dataclass(frozen=True)
class TextCues:
    """Cue words that change what a text naming a finding says (content/recognition.yaml `text_cues`)."""

    negation_before: re.Pattern[str]  # matched at the end of the text before the finding's words
    negation_after: re.Pattern[str]  # matched at the start of the text after them
    negation: re.Pattern[str]  # anywhere: a text that does not name the finding itself ("denies")
    uncertainty: re.Pattern[str]
    historical: re.Pattern[str]
    other_person: re.Pattern[str]
    instrument: re.Pattern[str]


@dataclass(frozen=True)
class Recognition:
    """How EHRs say present / absent / uncertain and qualify a finding (content/recognition.yaml)."""

    presence_by_code: dict[Key, str]  # answer code -> PRESENT | ABSENT | UNCERTAIN
    presence_by_string: dict[str, str]  # normalised valueString -> presence
    interpretation: dict[str, str]  # v3 interpretation code -> presence
    interpretation_worsening: frozenset[str]
    cues: TextCues
    symptom_present: Key
    symptom_absent: Key
    finding_questions: frozenset[Key]  # "Symptom", "Chief complaint": the value (a code or words) is the finding
    qualifier_components: dict[Key, frozenset[str]]  # component code -> the qualifiers its value may carry
    qualifier_values: dict[Key, frozenset[str]]  # value code -> the qualifiers it means
    ignored_statuses: frozenset[str]
    flagged_statuses: dict[str, str]  # status -> flag
    future_tolerance: timedelta


@dataclass(frozen=True)
class Guide:
    id: str
    title: str
    summary: str
    source: str
    reviewed: str
    sections: tuple[dict[str, str], ...]


@dataclass(frozen=True)
class Release:
    """The content release a card was made with (content/<guide>/release.yaml): its version and who reviewed it."""

    content_version: str
    reviewed_by: str
    reviewed_on: str
    content_digest: str  # sha256 of the clinical content it was reviewed as (safety/release_check.py)


UNRELEASED = Release("unreleased", "", "", "")


class CodeLookup(Protocol):
    """A terminology looked up by hierarchy (knowledge/icd10cm.py): what a code of its system means, if anything."""

    @property
    def system(self) -> str: ...

    def lookup(self, code: str) -> tuple[str | None, str] | None:
        """(finding id, kind) with kind "present" | "old-deficit" | "chronic" | "never"; None when unknown."""
        ...


@dataclass(frozen=True)
class Knowledge:
    recognition: Recognition
    guide: Guide
    findings: dict[str, Finding]
    scores: dict[Key, ScoreItem]
    body_sites: tuple[BodySiteGroup, ...]
    fast_panel: Key | None
    fast_components: dict[Key, str]  # FAST component code -> finding id
    tiers: tuple[Tier, ...]
    emergency: EmergencyPolicy
    rules: tuple[Rule, ...]
    cards: dict[str, CardTemplate]
    wording: CardWording
    source_label: str
    source_topic: Code | None
    override_reason_system: str
    finding_by_code: dict[Key, str] = field(default_factory=dict)
    old_deficit_by_code: dict[Key, str] = field(default_factory=dict)  # sequela code -> the finding it is old for
    code_lookups: dict[str, CodeLookup] = field(default_factory=dict)  # by system: terminologies by hierarchy
    text_pattern: re.Pattern[str] | None = None
    relevant_codes: frozenset[Key] = frozenset()
    release: Release = UNRELEASED

    def tier(self, tier_id: str) -> Tier:
        return next(t for t in self.tiers if t.id == tier_id)

    def match_text(self, text: str) -> str | None:
        """The finding whose local/text rule matches `text`, if any."""
        if self.text_pattern is None or not self.text_pattern.search(text):
            return None
        for finding in self.findings.values():
            if any(p.search(text) for p in finding.text_patterns):
                return finding.id
        return None
