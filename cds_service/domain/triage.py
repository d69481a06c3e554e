"""Triage: from evidence to decisions, one per tier, by the rules in content/<guide>/rules.yaml.

Latest record wins per finding (effective time, then issued; a record with no time counts as current). A finding
fires a rule when its latest record says present, carries the qualifiers the rule asks for, and is within the
tier's window. An emergency sign outside its window fires only when marked sudden or worsening; otherwise it is
reported as an earlier finding (likely a known deficit), never as an emergency. An emergency sign whose rule needs
"severe" but whose record says nothing about severity is not dropped either: it is listed for re-checking.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import datetime

from cds_service.domain.findings import Evidence
from cds_service.knowledge.model import Knowledge, Rule, Tier


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
    earlier: list[Evidence] = field(default_factory=list)  # to re-check; flagged "earlier" or "severity-not-recorded"

    @property
    def rules(self) -> list[Rule]:
        seen: dict[str, Rule] = {}
        for item in self.fired:
            for rule in item.rules:
                seen.setdefault(rule.id, rule)
        return list(seen.values())


def _order_key(item: Evidence, now: datetime) -> tuple[datetime, datetime, bool]:
    when = item.when or now
    return (when, item.issued or when, item.present)


def _flagged(item: Evidence, flag: str) -> Evidence:
    return dataclasses.replace(item, flags=item.flags | {flag})


def latest_per_finding(evidence: list[Evidence], now: datetime) -> dict[str, Evidence]:
    """The newest statement about each finding; on an exact tie, "present" wins (never hide a possible sign)."""
    latest: dict[str, Evidence] = {}
    for item in evidence:
        current = latest.get(item.finding)
        if current is None or _order_key(item, now) > _order_key(current, now):
            latest[item.finding] = item
    return latest


def _qualifies(rule: Rule, item: Evidence, knowledge: Knowledge) -> bool:
    qualifiers = set(item.qualifiers)
    if knowledge.findings[item.finding].focal:
        qualifiers.add("focal")
    if not all(q in qualifiers for q in rule.requires_all):
        return False
    return not rule.requires_any or any(q in qualifiers for q in rule.requires_any)


def _severity_unknown(rule: Rule, item: Evidence, knowledge: Knowledge) -> bool:
    """The rule fails only for want of "severe", and the record does not say how severe it was."""
    if "severe" not in rule.requires_all or item.severity_recorded:
        return False
    relaxed = dataclasses.replace(rule, requires_all=tuple(q for q in rule.requires_all if q != "severe"))
    return _qualifies(relaxed, item, knowledge)


FIRE = "fire"


def _verdict(rule: Rule, item: Evidence, tier: Tier, knowledge: Knowledge, now: datetime) -> str | None:
    """FIRE, a re-check flag ("earlier", "severity-not-recorded"), or None when the rule does not apply."""
    is_emergency = tier.id == knowledge.emergency.tier
    recent = now - (item.when or now) <= tier.window
    if not _qualifies(rule, item, knowledge):
        unknown = is_emergency and recent and _severity_unknown(rule, item, knowledge)
        return "severity-not-recorded" if unknown else None
    if recent or (is_emergency and item.qualifiers & knowledge.emergency.acute_qualifiers):
        return FIRE
    return "earlier" if is_emergency else None


def _fire(
    tier: Tier,
    latest: dict[str, Evidence],
    used: set[str],
    earlier: dict[str, Evidence],
    knowledge: Knowledge,
    now: datetime,
) -> dict[str, list[Rule]]:
    """The findings this tier's rules fire, with the rules; emergency signs to re-check go into `earlier`."""
    fired: dict[str, list[Rule]] = {}
    for rule in (r for r in knowledge.rules if r.tier == tier.id):
        for finding in rule.findings:
            item = latest.get(finding)
            if item is None or not item.present or finding in used:
                continue
            verdict = _verdict(rule, item, tier, knowledge, now)
            if verdict == FIRE:
                fired.setdefault(finding, []).append(rule)
            elif verdict:
                earlier.setdefault(finding, _flagged(item, verdict))
    return fired


def triage(evidence: list[Evidence], knowledge: Knowledge, now: datetime) -> list[Decision]:
    """Decisions ordered as the tiers are (highest first); at most one per tier, plus earlier emergency signs."""
    latest = latest_per_finding(evidence, now)
    decisions: dict[str, Decision] = {}
    earlier: dict[str, Evidence] = {}
    used: set[str] = set()  # a finding is shown once, on the highest tier it fires
    for tier in knowledge.tiers:
        if fired := _fire(tier, latest, used, earlier, knowledge, now):
            used.update(fired)
            decisions[tier.id] = Decision(
                tier, tier.card, tier.indicator, [FiredFinding(latest[f], tuple(rules)) for f, rules in fired.items()]
            )
    for tier_id, decision in list(decisions.items()):
        if any(other in decisions for other in decision.tier.suppressed_by):
            del decisions[tier_id]
    ordered = [decisions[t.id] for t in knowledge.tiers if t.id in decisions]
    if earlier_items := [item for finding, item in earlier.items() if finding not in used]:
        emergency_tier = knowledge.emergency.tier
        if (emergency := decisions.get(emergency_tier)) is not None:
            emergency.earlier = earlier_items
        else:
            recheck = knowledge.emergency.recheck_card
            ordered.append(
                Decision(
                    knowledge.tier(emergency_tier), recheck, knowledge.cards[recheck].indicator, earlier=earlier_items
                )
            )
    return ordered
