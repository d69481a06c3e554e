"""Loading content/ and cards/ at start-up into the frozen, pre-indexed knowledge of knowledge/model.py.

Each file is read by one function: its shape checked by its schema (knowledge/files.py), its cross-references
checked here, and its value sets compiled into dicts and sets, so the hot path never walks a list. Any problem
raises ContentError naming the file, the line and what is wrong.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from marshmallow import Schema, ValidationError

from cds_service.knowledge import files
from cds_service.knowledge.model import (
    CardTemplate,
    CardWording,
    Code,
    Comparison,
    EmergencyPolicy,
    Finding,
    Guide,
    Key,
    Knowledge,
    Recognition,
    Rule,
    ScoreItem,
    Suggestion,
    Tier,
)
from cds_service.validation import ErrorPath, first_error
from cds_service.yaml_source import ContentError, YamlDocument, load_yaml

_WINDOW_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def validated(doc: YamlDocument, schema: Schema) -> dict[str, Any]:
    """The document loaded through its schema; the first problem is raised with its file and line."""
    try:
        return schema.load(doc.data if doc.data is not None else {})
    except ValidationError as exc:
        path, message = first_error(exc.messages)
        raise doc.error(path, message) from exc


@dataclass(frozen=True)
class CodeReader:
    """Turns a code entry into a Code, resolving the system aliases of content/recognition.yaml."""

    systems: dict[str, str]

    def code(self, doc: YamlDocument, path: ErrorPath, entry: dict[str, Any]) -> Code:
        system = self.systems.get(entry["system"], entry["system"])
        if not system.startswith(("http://", "https://", "urn:")):
            raise doc.error((*path, "system"), f"unknown code system alias {entry['system']!r}")
        return Code(system, str(entry["code"]), entry["display"], entry["source"])

    def keys(self, doc: YamlDocument, path: ErrorPath, entries: Iterable[dict[str, Any]]) -> frozenset[Key]:
        return frozenset(self.code(doc, (*path, i), e).key for i, e in enumerate(entries))


# ---- content/recognition.yaml --------------------------------------------------------------------------------


def load_recognition(doc: YamlDocument) -> tuple[Recognition, CodeReader]:
    data = validated(doc, files.RecognitionFile())
    reader = CodeReader(dict(data["systems"]))
    presence, interp, symptom = data["presence"], data["interpretation"], data["symptom_observation"]
    qualifiers: dict[Key, tuple[str, frozenset[Key]]] = {}
    for name, spec in data["qualifier_components"].items():
        path = ("qualifier_components", name)
        component = reader.code(doc, (*path, "component"), spec["component"]).key
        qualifiers[component] = (name, reader.keys(doc, (*path, "values"), spec["values"]))
    recognition = Recognition(
        present_values=reader.keys(doc, ("presence", "present"), presence["present"]),
        absent_values=reader.keys(doc, ("presence", "absent"), presence["absent"]),
        unknown_values=reader.keys(doc, ("presence", "unknown"), presence["unknown_values"]),
        interpretation_system=reader.systems.get(interp["system"], interp["system"]),
        interpretation_present=frozenset(interp["present"]),
        interpretation_absent=frozenset(interp["absent"]),
        interpretation_worsening=frozenset(interp["worsening"]),
        symptom_present=reader.code(doc, ("symptom_observation", "present"), symptom["present"]).key,
        symptom_absent=reader.code(doc, ("symptom_observation", "absent"), symptom["absent"]).key,
        qualifier_components=qualifiers,
        ignored_statuses=frozenset(data["ignored_statuses"]),
        flagged_statuses=dict(data["flagged_statuses"]),
    )
    return recognition, reader


# ---- content/<guide>/guide.yaml ------------------------------------------------------------------------------


def load_guide(doc: YamlDocument, guide_id: str) -> Guide:
    data = validated(doc, files.GuideFile())
    if data["id"] != guide_id:
        raise doc.error(("id",), f"guide id {data['id']!r} does not match its folder {guide_id!r}")
    return Guide(data["id"], data["title"], data["summary"], data["source"], data["reviewed"], tuple(data["sections"]))


# ---- content/<guide>/findings.yaml ---------------------------------------------------------------------------


@dataclass(frozen=True)
class FindingsContent:
    findings: dict[str, Finding]
    finding_by_code: dict[Key, str]
    scores: dict[Key, ScoreItem]
    body_site_groups: dict[Key, str]
    focal_site_groups: frozenset[str]
    fast_panel: Key | None
    fast_components: dict[Key, str]


def _patterns(doc: YamlDocument, path: ErrorPath, texts: list[str]) -> tuple[re.Pattern[str], ...]:
    patterns = []
    for j, text in enumerate(texts):
        try:
            patterns.append(re.compile(text, re.IGNORECASE))
        except re.error as exc:
            raise doc.error((*path, "text_patterns", j), f"not a valid regular expression: {exc}") from exc
    return tuple(patterns)


def _findings(
    doc: YamlDocument, reader: CodeReader, entries: list[dict[str, Any]], section_ids: set[str]
) -> tuple[dict[str, Finding], dict[Key, str]]:
    findings: dict[str, Finding] = {}
    finding_by_code: dict[Key, str] = {}
    for i, entry in enumerate(entries):
        path = ("findings", i)
        if entry["id"] in findings:
            raise doc.error((*path, "id"), f"duplicate finding id {entry['id']!r}")
        if entry["guide_section"] not in section_ids:
            raise doc.error((*path, "guide_section"), f"no guide section {entry['guide_section']!r}")
        codes = tuple(reader.code(doc, (*path, "codes", j), c) for j, c in enumerate(entry["codes"]))
        for j, code in enumerate(codes):
            if code.key in finding_by_code:
                raise doc.error((*path, "codes", j), f"code {code.code} already means {finding_by_code[code.key]!r}")
            finding_by_code[code.key] = entry["id"]
        patterns = _patterns(doc, path, entry["text_patterns"])
        if not codes and not patterns:
            raise doc.error(path, "a finding needs codes or text_patterns")
        findings[entry["id"]] = Finding(
            entry["id"], entry["label"], entry["guide_section"], entry["focal"], codes, patterns
        )
    return findings, finding_by_code


def _scores(
    doc: YamlDocument,
    reader: CodeReader,
    entries: list[dict[str, Any]],
    findings: dict[str, Finding],
    finding_by_code: dict[Key, str],
    group_ids: set[str],
) -> dict[Key, ScoreItem]:
    scores: dict[Key, ScoreItem] = {}
    for i, entry in enumerate(entries):
        path = ("scores", i)
        code = reader.code(doc, (*path, "code"), entry["code"])
        if entry["finding"] not in findings:
            raise doc.error((*path, "finding"), f"unknown finding {entry['finding']!r}")
        for j, site in enumerate(entry["body_sites"]):
            if site not in group_ids:
                raise doc.error((*path, "body_sites", j), f"unknown body site group {site!r}")
        if code.key in scores or code.key in finding_by_code:
            raise doc.error((*path, "code"), f"code {code.code} is listed twice")
        severe = entry.get("severe_when")
        scores[code.key] = ScoreItem(
            entry["id"],
            code,
            entry["finding"],
            Comparison(**entry["present_when"]),
            Comparison(**severe) if severe else None,
            tuple(entry["body_sites"]),
        )
    return scores


def _fast(
    doc: YamlDocument, reader: CodeReader, fast: dict[str, Any] | None, findings: dict[str, Finding]
) -> tuple[Key | None, dict[Key, str]]:
    if fast is None:
        return None, {}
    components: dict[Key, str] = {}
    for name, component in fast["components"].items():
        path = ("fast", "components", name)
        if component["finding"] not in findings:
            raise doc.error((*path, "finding"), f"unknown finding {component['finding']!r}")
        components[reader.code(doc, (*path, "code"), component["code"]).key] = component["finding"]
    return reader.code(doc, ("fast", "panel"), fast["panel"]).key, components


def load_findings(doc: YamlDocument, reader: CodeReader, section_ids: set[str]) -> FindingsContent:
    data = validated(doc, files.FindingsFile())
    groups: dict[Key, str] = {}
    for i, group in enumerate(data["body_sites"]):
        for j, entry in enumerate(group["codes"]):
            groups[reader.code(doc, ("body_sites", i, "codes", j), entry).key] = group["id"]
    focal = frozenset(group["id"] for group in data["body_sites"] if group["focal"])
    findings, finding_by_code = _findings(doc, reader, data["findings"], section_ids)
    scores = _scores(doc, reader, data["scores"], findings, finding_by_code, set(groups.values()))
    fast_panel, fast_components = _fast(doc, reader, data.get("fast"), findings)
    return FindingsContent(findings, finding_by_code, scores, groups, focal, fast_panel, fast_components)


# ---- content/<guide>/rules.yaml ------------------------------------------------------------------------------


def _window(text: str) -> timedelta:
    amount, unit = files.WINDOW.match(text).groups()  # type: ignore[union-attr]  # the schema checked the shape
    return timedelta(**{_WINDOW_UNITS[unit]: int(amount)})


def _tiers(doc: YamlDocument, entries: list[dict[str, Any]]) -> tuple[Tier, ...]:
    tiers = tuple(
        Tier(
            e["id"],
            e["indicator"],
            _window(e["window"]),
            e["card"],
            tuple(e["suppressed_by"]),
            _window(e["repeat_quiet"]) if "repeat_quiet" in e else None,
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
    policy = EmergencyPolicy(emergency["tier"], emergency["recheck_card"], frozenset(emergency["acute_qualifiers"]))
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
    doc: YamlDocument, reader: CodeReader, indicator: str | None, section_ids: set[str]
) -> CardTemplate:
    data = validated(doc, files.CardFile())
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
        tuple((o["code"], o["display"]) for o in data["override_reasons"]),
        suggestions,
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
    templates = {
        name: load_card_template(load_yaml(cards_dir / f"{name}.yaml"), reader, indicator, section_ids)
        for name, indicator in indicators.items()
    }
    why = common["why"]
    wording = CardWording(dict(common["flags"]), why["lead"], why["rule"], why["guide_section"], why["beyond_guide"])
    return CardsContent(templates, wording, source["label"], topic, common["override_reason_system"])


# ---- everything ----------------------------------------------------------------------------------------------


def _relevant_codes(recognition: Recognition, content: FindingsContent) -> frozenset[Key]:
    relevant = {
        *content.finding_by_code,
        *content.scores,
        *content.fast_components,
        recognition.symptom_present,
        recognition.symptom_absent,
    }
    if content.fast_panel:
        relevant.add(content.fast_panel)
    return frozenset(relevant)


def load_knowledge(content_dir: Path, cards_dir: Path, guide_id: str = "weakness") -> Knowledge:
    """Load and cross-check all content; raises ContentError naming file, line and problem."""
    recognition, reader = load_recognition(load_yaml(content_dir / "recognition.yaml"))
    guide_dir = content_dir / guide_id
    guide = load_guide(load_yaml(guide_dir / "guide.yaml"), guide_id)
    section_ids = {s["id"] for s in guide.sections}
    content = load_findings(load_yaml(guide_dir / "findings.yaml"), reader, section_ids)
    tiers, emergency, rules = load_rules(load_yaml(guide_dir / "rules.yaml"), content.findings, section_ids)
    cards = load_cards(cards_dir, reader, tiers, emergency, section_ids)
    all_patterns = [p.pattern for f in content.findings.values() for p in f.text_patterns]
    return Knowledge(
        recognition=recognition,
        guide=guide,
        findings=content.findings,
        scores=content.scores,
        body_site_groups=content.body_site_groups,
        focal_site_groups=content.focal_site_groups,
        fast_panel=content.fast_panel,
        fast_components=content.fast_components,
        tiers=tiers,
        emergency=emergency,
        rules=rules,
        cards=cards.templates,
        wording=cards.wording,
        source_label=cards.source_label,
        source_topic=cards.source_topic,
        override_reason_system=cards.override_reason_system,
        finding_by_code=content.finding_by_code,
        text_pattern=re.compile("|".join(f"(?:{p})" for p in all_patterns), re.IGNORECASE) if all_patterns else None,
        relevant_codes=_relevant_codes(recognition, content),
    )


__all__ = ["ContentError", "load_knowledge"]
