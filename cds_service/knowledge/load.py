"""Loading content/ and cards/ at start-up into the frozen, pre-indexed knowledge of knowledge/model.py.

Each file is read by one function: its shape checked by its schema (knowledge/files.py), its cross-references
checked here, and its value sets compiled into dicts and sets, so the hot path never walks a list. Any problem
raises ContentError naming the file, the line and what is wrong.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cds_service.knowledge import files
from cds_service.knowledge.load_findings import FindingsContent, InstrumentsContent, load_findings, load_instruments
from cds_service.knowledge.load_recognition import load_recognition
from cds_service.knowledge.model import (
    CardTemplate,
    CardWording,
    Code,
    CodeLookup,
    EmergencyPolicy,
    Finding,
    Guide,
    Key,
    Knowledge,
    Recognition,
    Release,
    Rule,
    Suggestion,
    Tier,
)
from cds_service.knowledge.reading import CodeReader, duration, validated
from cds_service.validation import ErrorPath
from cds_service.yaml_source import ContentError, YamlDocument, load_yaml

# ---- content/<guide>/guide.yaml ------------------------------------------------------------------------------


def load_guide(doc: YamlDocument, guide_id: str) -> Guide:
    data = validated(doc, files.GuideFile())
    if data["id"] != guide_id:
        raise doc.error(("id",), f"guide id {data['id']!r} does not match its folder {guide_id!r}")
    return Guide(data["id"], data["title"], data["summary"], data["source"], data["reviewed"], tuple(data["sections"]))


def load_release(doc: YamlDocument) -> Release:
    data = validated(doc, files.ReleaseFile())
    return Release(data["content_version"], data["reviewed_by"], data["reviewed_on"], data["content_digest"])


# ---- content/<guide>/rules.yaml ------------------------------------------------------------------------------


def _tiers(doc: YamlDocument, entries: list[dict[str, Any]]) -> tuple[Tier, ...]:
    tiers = tuple(
        Tier(
            e["id"],
            e["indicator"],
            duration(e["window"]),
            e["card"],
            tuple(e["suppressed_by"]),
            e["recheck"],
            frozenset(e["kept_out_by"]),
            duration(e["repeat_quiet"]) if "repeat_quiet" in e else None,
        )
        for e in entries
    )
    tier_ids = {t.id for t in tiers}
    for i, tier in enumerate(tiers):
        for other in tier.suppressed_by:
            if other not in tier_ids:
                raise doc.error(("tiers", i, "suppressed_by"), f"unknown tier {other!r}")
    return tiers


def _rule(
    doc: YamlDocument,
    path: ErrorPath,
    entry: dict[str, Any],
    tier_ids: set[str],
    findings: dict[str, Finding],
    section_ids: set[str],
) -> Rule:
    if entry["tier"] not in tier_ids:
        raise doc.error((*path, "tier"), f"unknown tier {entry['tier']!r}")
    for j, finding in enumerate(entry["findings"]):
        if finding not in findings:
            raise doc.error((*path, "findings", j), f"unknown finding {finding!r}")
    provenance = entry["provenance"]
    if provenance["guide_section"] not in section_ids:
        raise doc.error((*path, "provenance", "guide_section"), f"no guide section {provenance['guide_section']!r}")
    if provenance["beyond_guide"] and not provenance.get("source"):
        raise doc.error((*path, "provenance"), "a rule beyond the guide must name its source")
    return Rule(
        entry["id"],
        entry["tier"],
        tuple(entry["findings"]),
        tuple(entry["requires_all"]),
        tuple(entry["requires_any"]),
        provenance,
    )


def load_rules(
    doc: YamlDocument, findings: dict[str, Finding], section_ids: set[str]
) -> tuple[tuple[Tier, ...], EmergencyPolicy, tuple[Rule, ...]]:
    data = validated(doc, files.RulesFile())
    tiers = _tiers(doc, data["tiers"])
    tier_ids = {t.id for t in tiers}
    emergency = data["emergency"]
    if emergency["tier"] not in tier_ids:
        raise doc.error(("emergency", "tier"), f"unknown tier {emergency['tier']!r}")
    policy = EmergencyPolicy(
        emergency["tier"],
        emergency["recheck_card"],
        frozenset(emergency["acute_qualifiers"]),
        duration(emergency["acute_window"]),
        emergency["read_in_part_card"],
    )
    rules: list[Rule] = []
    for i, entry in enumerate(data["rules"]):
        if any(rule.id == entry["id"] for rule in rules):
            raise doc.error(("rules", i, "id"), f"duplicate rule id {entry['id']!r}")
        rules.append(_rule(doc, ("rules", i), entry, tier_ids, findings, section_ids))
    return tiers, policy, tuple(rules)


# ---- cards/ --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CardsContent:
    templates: dict[str, CardTemplate]
    wording: CardWording
    source_label: str
    source_topic: Code | None
    override_reason_system: str


def load_card_template(
    doc: YamlDocument,
    reader: CodeReader,
    indicator: str | None,
    section_ids: set[str],
    reasons: dict[str, str] | None = None,  # override reason code -> display, as declared in cards/common.yaml
) -> CardTemplate:
    data = validated(doc, files.CardFile())
    reasons = reasons or {}
    if unknown := [i for i, code in enumerate(data["override_reasons"]) if code not in reasons]:
        raise doc.error(("override_reasons", unknown[0]), "override reason code not declared in common.yaml")
    if indicator is not None and data["indicator"] != indicator:
        raise doc.error(("indicator",), f"its tier has indicator {indicator!r}")
    if data["link"]["section"] not in section_ids:
        raise doc.error(("link", "section"), f"no guide section {data['link']['section']!r}")
    if data["indicator"] in ("critical", "warning") and not data["override_reasons"]:
        raise doc.error(("override_reasons",), "critical and warning cards need override reasons")
    suggestions = tuple(
        Suggestion(s["label"], s["description"], reader.code(doc, ("suggestions", i, "code"), s["code"]))
        for i, s in enumerate(data["suggestions"])
    )
    return CardTemplate(
        data["id"],
        data["indicator"],
        data["summary"],
        data["detail"],
        data.get("earlier_heading"),
        data["link"]["label"],
        data["link"]["section"],
        tuple((code, reasons[code]) for code in data["override_reasons"]),
        suggestions,
        data.get("actions"),
    )


def load_cards(
    cards_dir: Path, reader: CodeReader, tiers: tuple[Tier, ...], emergency: EmergencyPolicy, section_ids: set[str]
) -> CardsContent:
    common_doc = load_yaml(cards_dir / "common.yaml")
    common = validated(common_doc, files.CommonCardFile())
    source = common["source"]
    topic = reader.code(common_doc, ("source", "topic"), source["topic"]) if "topic" in source else None
    indicators: dict[str, str | None] = {t.card: t.indicator for t in tiers}
    indicators.setdefault(emergency.recheck_card, None)
    indicators.setdefault(emergency.read_in_part_card, None)
    reasons = {entry["code"]: entry["display"] for entry in common["override_reasons"]}
    templates = {
        name: load_card_template(load_yaml(cards_dir / f"{name}.yaml"), reader, indicator, section_ids, reasons)
        for name, indicator in indicators.items()
    }
    why = common["why"]
    part = common["read_in_part"]
    phrases = ("values", "statements", "interpretations", "sections", "recorded", "qualifiers", "finding_notes")
    wording = CardWording(
        dict(common["flags"]), why["lead"], why["rule"], why["guide_section"], why["beyond_guide"],
        part["extent"], part["no_date"], dict(part["reasons"]),
        **{name: dict(common[name]) for name in phrases},
    )  # fmt: skip
    return CardsContent(templates, wording, source["label"], topic, common["override_reason_system"])


# ---- everything ----------------------------------------------------------------------------------------------


def _relevant_codes(
    recognition: Recognition, findings: FindingsContent, instruments: InstrumentsContent
) -> frozenset[Key]:
    """Codes that make an Observation worth reading (the pre-filter): findings, sequelae, items, panels."""
    relevant = {
        *findings.finding_by_code,
        *findings.old_deficit_by_code,
        *instruments.scores,
        *instruments.fast_components,
        *recognition.finding_questions,
        recognition.symptom_absent,
    }
    if instruments.fast_panel:
        relevant.add(instruments.fast_panel)
    return frozenset(relevant)


def load_knowledge(content_dir: Path, cards_dir: Path, guide_id: str = "weakness") -> Knowledge:
    """Load and cross-check all content; raises ContentError naming file, line and problem."""
    recognition, reader = load_recognition(load_yaml(content_dir / "recognition.yaml"))
    guide_dir = content_dir / guide_id
    guide = load_guide(load_yaml(guide_dir / "guide.yaml"), guide_id)
    section_ids = {s["id"] for s in guide.sections}
    found = load_findings(load_yaml(guide_dir / "findings.yaml"), reader, section_ids)
    instruments = load_instruments(load_yaml(guide_dir / "instruments.yaml"), reader, found)
    lookups = load_code_lookups(guide_dir, found)
    tiers, emergency, rules = load_rules(load_yaml(guide_dir / "rules.yaml"), found.findings, section_ids)
    cards = load_cards(cards_dir, reader, tiers, emergency, section_ids)
    all_patterns = [p.pattern for f in found.findings.values() for p in f.text_patterns]
    return Knowledge(
        recognition=recognition,
        guide=guide,
        findings=found.findings,
        scores=instruments.scores,
        body_sites=found.body_sites,
        fast_panel=instruments.fast_panel,
        fast_components=instruments.fast_components,
        tiers=tiers,
        emergency=emergency,
        rules=rules,
        cards=cards.templates,
        wording=cards.wording,
        source_label=cards.source_label,
        source_topic=cards.source_topic,
        override_reason_system=cards.override_reason_system,
        finding_by_code=found.finding_by_code,
        old_deficit_by_code=found.old_deficit_by_code,
        code_lookups=lookups,
        text_pattern=re.compile("|".join(f"(?:{p})" for p in all_patterns), re.IGNORECASE) if all_patterns else None,
        relevant_codes=_relevant_codes(recognition, found, instruments),
        release=load_release(load_yaml(guide_dir / "release.yaml")),
    )


def load_code_lookups(guide_dir: Path, found: FindingsContent) -> dict[str, CodeLookup]:
    """Terminologies looked up by hierarchy, when the guide has them (content/<guide>/icd10cm-expanded.yaml)."""
    expanded = guide_dir / "icd10cm-expanded.yaml"
    if not expanded.exists():
        return {}
    from cds_service.knowledge.icd10cm import load_icd10cm

    index = load_icd10cm(load_yaml(expanded), set(found.findings))
    return {index.system: index}


__all__ = ["ContentError", "load_knowledge"]
