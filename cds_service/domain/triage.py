"""Triage: from evidence to decisions, one per tier, by the rules in content/<guide>/rules.yaml.

The latest record of each measured thing wins (see supersedes(): the same body part, and not another code of
the same terminology; by effective time, then issued; a record with no time counts as current; a record dated in
the future cancels nothing and is only shown to re-check). A finding fires a rule when a current record says
present, carries the qualifiers the rule asks for, and is within the tier's window (or, for an emergency sign,
is marked sudden or worsening and not older than the acute window). A sign that cannot be confirmed is never
dropped when its tier has `recheck`: uncertain, older than the window, chronic or of gradual onset, beside an old
deficit of the same kind, or needing "severe" with no severity recorded: it goes on the re-check card.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import datetime

from cds_service.domain.coverage import ChartReadInPart
from cds_service.domain.evidence import Evidence
from cds_service.knowledge.model import ABSENT, UNCERTAIN, Knowledge, Rule, Tier

FIRE = "fire"
_UNCERTAIN_FLAGS = frozenset(
    {
        "uncertain",
        "value-not-recognised",
        "answer-not-in-list",
        "text-uncertain",
        "dated-in-future",
        "site-not-recorded",
        "instrument-result",
    }
)
_RANK = {ABSENT: 0, UNCERTAIN: 1}  # on an exact tie of times, the more alarming statement wins


@dataclass(frozen=True)
class FiredFinding:
    evidence: Evidence
    rules: tuple[Rule, ...]


@dataclass
class Decision:
    tier: Tier
    card: str
    indicator: str
    fired: list[FiredFinding] = field(default_factory=list)
    earlier: list[Evidence] = field(default_factory=list)  # to re-check; each flagged with the reason
    read_in_part: ChartReadInPart | None = None  # the card that says the chart was read only in part

    @property
    def rules(self) -> list[Rule]:
        seen: dict[str, Rule] = {}
        for item in self.fired:
            for rule in item.rules:
                seen.setdefault(rule.id, rule)
        return list(seen.values())


@dataclass(frozen=True)
class _Chart:
    """Per finding: the latest record of each of its measures that is not absent, newest first."""

    candidates: dict[str, list[Evidence]]
    known_deficits: frozenset[str]  # findings with an old deficit on record


def _order_key(item: Evidence, now: datetime) -> tuple[datetime, datetime, int]:
    when = item.when or now
    return (when, item.issued or when, _RANK.get(item.presence, 2))


def _flagged(item: Evidence, flag: str) -> Evidence:
    return dataclasses.replace(item, flags=item.flags | {flag})


def supersedes(newer: Evidence, older: Evidence) -> bool:
    """Does the newer record answer for what the older one measured? Yes for the same body part (or a statement
    about the finding as a whole), unless both name different codes of one terminology (a later "no dysarthria"
    says nothing of an aphasia; a later SNOMED "no anxiety" does answer an ICD-10-CM anxiety)."""
    if newer.site not in ("", older.site):
        return False
    if newer.concept and older.concept and newer.concept[0] == older.concept[0]:
        return newer.concept == older.concept
    return True


def current_statements(evidence: list[Evidence], now: datetime, knowledge: Knowledge) -> list[Evidence]:
    """The statements no newer record supersedes, newest first; records dated in the future cancel nothing and
    are kept as uncertain."""
    limit = now + knowledge.recognition.future_tolerance
    dated = sorted(
        (item for item in evidence if item.when is None or item.when <= limit),
        key=lambda item: _order_key(item, now),
        reverse=True,
    )
    current: list[Evidence] = []
    for item in dated:
        if not any(newer.finding == item.finding and supersedes(newer, item) for newer in current):
            current.append(item)
    future = [
        dataclasses.replace(_flagged(item, "dated-in-future"), presence=UNCERTAIN)
        for item in evidence
        if item.when is not None and item.when > limit and item.presence != ABSENT
    ]
    return current + future


def _chart(evidence: list[Evidence], now: datetime, knowledge: Knowledge) -> _Chart:
    candidates: dict[str, list[Evidence]] = {}
    deficits: set[str] = set()
    for item in current_statements(evidence, now, knowledge):
        if item.presence == ABSENT:
            continue
        if "old-deficit" in item.flags:
            deficits.add(item.finding)  # a sequela record marks the deficit as known; it never fires itself
            continue
        candidates.setdefault(item.finding, []).append(item)
    return _Chart(candidates, frozenset(deficits))


def _qualifies(rule: Rule, item: Evidence, knowledge: Knowledge, *, severity_known: bool = True) -> bool:
    qualifiers = set(item.qualifiers)
    if knowledge.findings[item.finding].focal:
        qualifiers.add("focal")
    required = [q for q in rule.requires_all if severity_known or q != "severe"]
    if not all(q in qualifiers for q in required):
        return False
    return not rule.requires_any or any(q in qualifiers for q in rule.requires_any)


def _recent(item: Evidence, tier: Tier, knowledge: Knowledge, now: datetime) -> tuple[bool, bool]:
    """(within the tier's window, fires late as acute): an old emergency sign marked sudden or worsening still
    fires, unless the mark itself is older than the acute window."""
    age = now - (item.when or now)
    policy = knowledge.emergency
    acute = tier.id == policy.tier and bool(item.qualifiers & policy.acute_qualifiers) and age <= policy.acute_window
    return age <= tier.window, acute


def _verdict(rule: Rule, item: Evidence, tier: Tier, chart: _Chart, knowledge: Knowledge, now: datetime) -> str | None:
    """FIRE, a re-check flag, or None when the rule does not apply to this record."""
    is_emergency = tier.id == knowledge.emergency.tier
    severity_unknown = "severe" in rule.requires_all and not item.severity_recorded
    if not _qualifies(rule, item, knowledge, severity_known=not severity_unknown):
        return None
    recent, acute = _recent(item, tier, knowledge, now)
    if not (recent or acute):
        stale_sign = is_emergency and item.presence != UNCERTAIN and not severity_unknown
        return "earlier" if stale_sign else None
    if item.presence == UNCERTAIN:
        return next((f for f in sorted(item.flags) if f in _UNCERTAIN_FLAGS), "uncertain")
    if item.qualifiers & tier.kept_out_by:
        return "chronic"
    if item.finding in chart.known_deficits and not item.qualifiers & knowledge.emergency.acute_qualifiers:
        return "known-deficit"
    if severity_unknown:
        return "severity-not-recorded"
    return FIRE


def _fire(
    tier: Tier, chart: _Chart, used: set[str], recheck: dict[str, Evidence], knowledge: Knowledge, now: datetime
) -> dict[str, tuple[Evidence, list[Rule]]]:
    """The findings this tier's rules fire, with the record and the rules; signs to re-check go into `recheck`."""
    fired: dict[str, tuple[Evidence, list[Rule]]] = {}
    for rule in (r for r in knowledge.rules if r.tier == tier.id):
        for finding in rule.findings:
            if finding in used:
                continue
            for item in chart.candidates.get(finding, ()):
                verdict = _verdict(rule, item, tier, chart, knowledge, now)
                if verdict == FIRE:
                    fired.setdefault(finding, (item, []))[1].append(rule)
                    break
                if verdict and tier.recheck:
                    recheck.setdefault(finding, _flagged(item, verdict))
    return fired


def triage(evidence: list[Evidence], knowledge: Knowledge, now: datetime) -> list[Decision]:
    """Decisions ordered as the tiers are (highest first); at most one per tier, plus signs to re-check."""
    chart = _chart(evidence, now, knowledge)
    decisions: dict[str, Decision] = {}
    recheck: dict[str, Evidence] = {}
    used: set[str] = set()  # a finding is shown once, on the highest tier it fires
    for tier in knowledge.tiers:
        if fired := _fire(tier, chart, used, recheck, knowledge, now):
            used.update(fired)
            decisions[tier.id] = Decision(
                tier, tier.card, tier.indicator, [FiredFinding(item, tuple(rules)) for item, rules in fired.values()]
            )
    for tier_id, decision in list(decisions.items()):
        if any(other in decisions for other in decision.tier.suppressed_by):
            del decisions[tier_id]
    ordered = [decisions[t.id] for t in knowledge.tiers if t.id in decisions]
    if to_recheck := [item for finding, item in recheck.items() if finding not in used]:
        emergency_tier = knowledge.emergency.tier
        if (emergency := decisions.get(emergency_tier)) is not None:
            emergency.earlier = to_recheck
        else:
            card = knowledge.emergency.recheck_card
            ordered.append(
                Decision(knowledge.tier(emergency_tier), card, knowledge.cards[card].indicator, earlier=to_recheck)
            )
    return ordered
