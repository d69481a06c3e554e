"""The knowledge the service runs on, as frozen, pre-indexed types: what content/ and cards/ say once loaded.

Pure data: no file formats, no I/O (tests/test_layers.py enforces it). knowledge/load.py builds these.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

Key = tuple[str, str]  # (system URI, code)
QUALIFIERS = ("focal", "sudden", "worsening", "severe")
INDICATORS = ("critical", "warning", "info")
OPERATORS: dict[str, Callable[[float, float], bool]] = {
    ">": operator.gt,
    ">=": operator.ge,
    "<": operator.lt,
    "<=": operator.le,
}


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


@dataclass(frozen=True)
class ScoreItem:
    id: str
    code: Code
    finding: str
    present_when: Comparison
    severe_when: Comparison | None
    body_sites: tuple[str, ...]


@dataclass(frozen=True)
class Tier:
    id: str
    indicator: str
    window: timedelta
    card: str
    suppressed_by: tuple[str, ...]
    repeat_quiet: timedelta | None = None  # repeat_alerts.py: an overridden card comes back as an info line


@dataclass(frozen=True)
class EmergencyPolicy:
    """Which tier is the emergency tier, and how its signs that cannot be confirmed as new are shown."""

    tier: str
    recheck_card: str  # an emergency sign that is old and not acute, or whose severity is unknown, goes here
    acute_qualifiers: frozenset[str]  # an old emergency sign with one of these still fires


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


@dataclass(frozen=True)
class CardWording:
    """Sentences shared by every card (cards/common.yaml): flag notes and the "why" line."""

    flags: dict[str, str]  # flag -> the note shown on a card line
    why_lead: str
    why_rule: str  # {rule}, {origin}
    why_guide_section: str  # {section}
    why_beyond_guide: str  # {source}


@dataclass(frozen=True)
class Recognition:
    """How EHRs say present/absent/sudden/worsening/severe (content/recognition.yaml)."""

    present_values: frozenset[Key]
    absent_values: frozenset[Key]
    unknown_values: frozenset[Key]
    interpretation_system: str
    interpretation_present: frozenset[str]
    interpretation_absent: frozenset[str]
    interpretation_worsening: frozenset[str]
    symptom_present: Key
    symptom_absent: Key
    qualifier_components: dict[Key, tuple[str, frozenset[Key]]]  # component code -> (qualifier, values meaning it)
    ignored_statuses: frozenset[str]
    flagged_statuses: dict[str, str]  # status -> flag


@dataclass(frozen=True)
class Guide:
    id: str
    title: str
    summary: str
    source: str
    reviewed: str
    sections: tuple[dict[str, str], ...]


@dataclass(frozen=True)
class Knowledge:
    recognition: Recognition
    guide: Guide
    findings: dict[str, Finding]
    scores: dict[Key, ScoreItem]
    body_site_groups: dict[Key, str]  # bodySite code -> group id
    focal_site_groups: frozenset[str]  # groups that make a weakness record focal (one limb, the face)
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
    text_pattern: re.Pattern[str] | None = None
    relevant_codes: frozenset[Key] = frozenset()

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
