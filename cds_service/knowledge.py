"""Loading and validating `content/` and `cards/` at start-up into frozen, pre-indexed knowledge.

Everything clinical lives in those YAML files; this module only checks their shape and cross-references and
compiles value sets into dicts and sets, so the hot path never walks a list.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from marshmallow import EXCLUDE, RAISE, Schema, ValidationError, fields, validate

from cds_service.yaml_source import ContentError, YamlDocument, load_yaml

Key = tuple[str, str]  # (system URI, code)
QUALIFIERS = ("focal", "sudden", "worsening", "severe")
INDICATORS = ("critical", "warning", "info")
_OPERATORS: dict[str, Callable[[float, float], bool]] = {
    ">": operator.gt, ">=": operator.ge, "<": operator.lt, "<=": operator.le}
_WINDOW = re.compile(r"^(\d+)\s*([smhd])$")
_WINDOW_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


# ---- domain types ------------------------------------------------------------------------------------------

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
        return _OPERATORS[self.op](number, self.value)

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

    def section(self, section_id: str) -> dict[str, str]:
        return next(s for s in self.sections if s["id"] == section_id)


@dataclass(frozen=True)
class Knowledge:
    recognition: Recognition
    guide: Guide
    findings: dict[str, Finding]
    scores: dict[Key, ScoreItem]
    body_site_groups: dict[Key, str]  # bodySite code -> group id
    fast_panel: Key | None
    fast_components: dict[Key, str]  # FAST component code -> finding id
    tiers: tuple[Tier, ...]
    rules: tuple[Rule, ...]
    cards: dict[str, CardTemplate]
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


# ---- file schemas ------------------------------------------------------------------------------------------

# Cards and the guide page are GitHub markdown read by EHRs that may render raw HTML: allow none.
NO_HTML = validate.Regexp(r"^(?![\s\S]*<[A-Za-z/!?])", error="raw HTML is not allowed here (markdown only)")

class _Strict(Schema):
    class Meta:
        unknown = RAISE


class CodeEntry(_Strict):
    system = fields.String(required=True)
    code = fields.String(required=True, validate=validate.Length(min=1))
    display = fields.String(required=True)
    source = fields.String(required=True, validate=validate.Length(min=1))


class ComparisonEntry(_Strict):
    op = fields.String(required=True, validate=validate.OneOf(list(_OPERATORS)))
    value = fields.Float(required=True)


class FindingEntry(_Strict):
    id = fields.String(required=True, validate=validate.Regexp(r"^[a-z0-9-]+$"))
    label = fields.String(required=True)
    guide_section = fields.String(required=True)
    focal = fields.Boolean(load_default=False)
    codes = fields.List(fields.Nested(CodeEntry), load_default=list)
    text_patterns = fields.List(fields.String(), load_default=list)
    notes = fields.String()


class ScoreEntry(_Strict):
    id = fields.String(required=True)
    code = fields.Nested(CodeEntry, required=True)
    finding = fields.String(required=True)
    present_when = fields.Nested(ComparisonEntry, required=True)
    severe_when = fields.Nested(ComparisonEntry)
    body_sites = fields.List(fields.String(), load_default=list)
    notes = fields.String()


class BodySiteEntry(_Strict):
    id = fields.String(required=True)
    codes = fields.List(fields.Nested(CodeEntry), required=True, validate=validate.Length(min=1))


class FastEntry(_Strict):
    panel = fields.Nested(CodeEntry, required=True)
    components = fields.Dict(keys=fields.String(), values=fields.Nested(
        type("FastComponent", (_Strict,), {"code": fields.Nested(CodeEntry, required=True),
                                            "finding": fields.String(required=True)})), required=True)


class FindingsFile(_Strict):
    body_sites = fields.List(fields.Nested(BodySiteEntry), load_default=list)
    findings = fields.List(fields.Nested(FindingEntry), required=True, validate=validate.Length(min=1))
    scores = fields.List(fields.Nested(ScoreEntry), load_default=list)
    fast = fields.Nested(FastEntry)


class TierEntry(_Strict):
    id = fields.String(required=True)
    indicator = fields.String(required=True, validate=validate.OneOf(INDICATORS))
    window = fields.String(required=True, validate=validate.Regexp(_WINDOW.pattern, error="must be like 24h, 14d"))
    card = fields.String(required=True)
    suppressed_by = fields.List(fields.String(), load_default=list)
    notes = fields.String()


class ProvenanceEntry(_Strict):
    guide_section = fields.String(required=True)
    statement = fields.String(required=True)
    beyond_guide = fields.Boolean(load_default=False)
    source = fields.String()


class RuleEntry(_Strict):
    id = fields.String(required=True, validate=validate.Regexp(r"^[a-z0-9-]+$"))
    tier = fields.String(required=True)
    findings = fields.List(fields.String(), required=True, validate=validate.Length(min=1))
    requires_all = fields.List(fields.String(validate=validate.OneOf(QUALIFIERS)), load_default=list)
    requires_any = fields.List(fields.String(validate=validate.OneOf(QUALIFIERS)), load_default=list)
    provenance = fields.Nested(ProvenanceEntry, required=True)


class RulesFile(_Strict):
    tiers = fields.List(fields.Nested(TierEntry), required=True, validate=validate.Length(min=1))
    rules = fields.List(fields.Nested(RuleEntry), required=True, validate=validate.Length(min=1))


class SectionEntry(_Strict):
    id = fields.String(required=True, validate=validate.Regexp(r"^[a-z0-9-]+$"))
    title = fields.String(required=True)
    body = fields.String(required=True, validate=NO_HTML)


class GuideFile(_Strict):
    id = fields.String(required=True)
    title = fields.String(required=True)
    summary = fields.String(required=True)
    source = fields.String(required=True)
    reviewed = fields.String(required=True)
    sections = fields.List(fields.Nested(SectionEntry), required=True, validate=validate.Length(min=1))


class SuggestionEntry(_Strict):
    label = fields.String(required=True)
    description = fields.String(required=True)
    code = fields.Nested(CodeEntry, required=True)


class OverrideEntry(_Strict):
    code = fields.String(required=True)
    display = fields.String(required=True, validate=validate.Length(min=1))


class LinkEntry(_Strict):
    label = fields.String(required=True)
    section = fields.String(required=True)


class CardFile(_Strict):
    id = fields.String(required=True)
    indicator = fields.String(required=True, validate=validate.OneOf(INDICATORS))
    summary = fields.String(required=True, validate=NO_HTML)
    detail = fields.String(required=True, validate=NO_HTML)
    earlier_heading = fields.String(validate=NO_HTML)
    link = fields.Nested(LinkEntry, required=True)
    override_reasons = fields.List(fields.Nested(OverrideEntry), load_default=list)
    suggestions = fields.List(fields.Nested(SuggestionEntry), load_default=list)


class CommonCardFile(_Strict):
    source = fields.Dict(required=True)
    override_reason_system = fields.String(required=True)


class RecognitionFile(Schema):
    class Meta:
        unknown = EXCLUDE

    systems = fields.Dict(keys=fields.String(), values=fields.String(), required=True)
    presence = fields.Dict(keys=fields.String(validate=validate.OneOf(["present", "absent", "unknown"])),
                           values=fields.List(fields.Nested(CodeEntry)), required=True)
    interpretation = fields.Dict(required=True)
    symptom_observation = fields.Dict(keys=fields.String(validate=validate.OneOf(["present", "absent"])),
                                      values=fields.Nested(CodeEntry), required=True)
    qualifier_components = fields.Dict(required=True)
    ignored_statuses = fields.List(fields.String(), required=True)
    flagged_statuses = fields.Dict(keys=fields.String(), values=fields.String(), required=True)


# ---- loading -----------------------------------------------------------------------------------------------

def _validated(doc: YamlDocument, schema: Schema) -> dict[str, Any]:
    try:
        return schema.load(doc.data if doc.data is not None else {})
    except ValidationError as exc:
        path, message = _first_path(exc.messages)
        raise doc.error(path, message) from exc


def _first_path(messages: Any, path: tuple[str | int, ...] = ()) -> tuple[tuple[str | int, ...], str]:
    if isinstance(messages, dict):
        key = next(iter(messages))
        sub = path if key == "_schema" else (*path, key)
        return _first_path(messages[key], sub)
    if isinstance(messages, list) and messages:
        return _first_path(messages[0], path)
    return path, str(messages)


class _Loader:
    def __init__(self, content_dir: Path, cards_dir: Path, guide_id: str) -> None:
        self.content_dir, self.cards_dir, self.guide_id = content_dir, cards_dir, guide_id
        self.systems: dict[str, str] = {}

    def code(self, doc: YamlDocument, path: tuple[str | int, ...], entry: dict[str, Any]) -> Code:
        system = self.systems.get(entry["system"], entry["system"])
        if not system.startswith(("http://", "https://", "urn:")):
            raise doc.error((*path, "system"), f"unknown code system alias {entry['system']!r}")
        return Code(system, str(entry["code"]), entry["display"], entry["source"])

    def load(self) -> Knowledge:
        recognition = self.recognition(load_yaml(self.content_dir / "recognition.yaml"))
        guide_dir = self.content_dir / self.guide_id
        guide = self.guide(load_yaml(guide_dir / "guide.yaml"))
        findings_doc = load_yaml(guide_dir / "findings.yaml")
        findings_data = _validated(findings_doc, FindingsFile())
        section_ids = {s["id"] for s in guide.sections}

        body_site_groups: dict[Key, str] = {}
        for i, group in enumerate(findings_data["body_sites"]):
            for j, entry in enumerate(group["codes"]):
                body_site_groups[self.code(findings_doc, ("body_sites", i, "codes", j), entry).key] = group["id"]
        group_ids = set(body_site_groups.values())

        findings: dict[str, Finding] = {}
        finding_by_code: dict[Key, str] = {}
        for i, entry in enumerate(findings_data["findings"]):
            path = ("findings", i)
            if entry["id"] in findings:
                raise findings_doc.error((*path, "id"), f"duplicate finding id {entry['id']!r}")
            if entry["guide_section"] not in section_ids:
                raise findings_doc.error((*path, "guide_section"), f"no guide section {entry['guide_section']!r}")
            codes = tuple(self.code(findings_doc, (*path, "codes", j), c) for j, c in enumerate(entry["codes"]))
            for j, code in enumerate(codes):
                if code.key in finding_by_code:
                    raise findings_doc.error((*path, "codes", j), f"code {code.code} already means "
                                             f"{finding_by_code[code.key]!r}")
                finding_by_code[code.key] = entry["id"]
            patterns = []
            for j, text in enumerate(entry["text_patterns"]):
                try:
                    patterns.append(re.compile(text, re.IGNORECASE))
                except re.error as exc:
                    raise findings_doc.error((*path, "text_patterns", j),
                                             f"not a valid regular expression: {exc}") from exc
            if not codes and not patterns:
                raise findings_doc.error(path, "a finding needs codes or text_patterns")
            findings[entry["id"]] = Finding(entry["id"], entry["label"], entry["guide_section"], entry["focal"],
                                            codes, tuple(patterns))

        scores: dict[Key, ScoreItem] = {}
        for i, entry in enumerate(findings_data["scores"]):
            path = ("scores", i)
            code = self.code(findings_doc, (*path, "code"), entry["code"])
            if entry["finding"] not in findings:
                raise findings_doc.error((*path, "finding"), f"unknown finding {entry['finding']!r}")
            for j, site in enumerate(entry["body_sites"]):
                if site not in group_ids:
                    raise findings_doc.error((*path, "body_sites", j), f"unknown body site group {site!r}")
            if code.key in scores or code.key in finding_by_code:
                raise findings_doc.error((*path, "code"), f"code {code.code} is listed twice")
            severe = entry.get("severe_when")
            scores[code.key] = ScoreItem(
                entry["id"], code, entry["finding"], Comparison(**entry["present_when"]),
                Comparison(**severe) if severe else None, tuple(entry["body_sites"]))

        fast_panel: Key | None = None
        fast_components: dict[Key, str] = {}
        if "fast" in findings_data:
            fast = findings_data["fast"]
            fast_panel = self.code(findings_doc, ("fast", "panel"), fast["panel"]).key
            for name, component in fast["components"].items():
                if component["finding"] not in findings:
                    raise findings_doc.error(("fast", "components", name, "finding"),
                                             f"unknown finding {component['finding']!r}")
                key = self.code(findings_doc, ("fast", "components", name, "code"), component["code"]).key
                fast_components[key] = component["finding"]

        rules_doc = load_yaml(guide_dir / "rules.yaml")
        tiers, rules = self.rules(rules_doc, findings, section_ids)
        cards, source_label, topic, override_system = self.cards(tiers, section_ids)

        all_patterns = [p.pattern for f in findings.values() for p in f.text_patterns]
        relevant = {*finding_by_code, *scores, *fast_components, recognition.symptom_present,
                    recognition.symptom_absent}
        if fast_panel:
            relevant.add(fast_panel)
        return Knowledge(
            recognition=recognition, guide=guide, findings=findings, scores=scores,
            body_site_groups=body_site_groups, fast_panel=fast_panel, fast_components=fast_components,
            tiers=tiers, rules=rules, cards=cards, source_label=source_label, source_topic=topic,
            override_reason_system=override_system, finding_by_code=finding_by_code,
            text_pattern=re.compile("|".join(f"(?:{p})" for p in all_patterns), re.IGNORECASE) if all_patterns
            else None,
            relevant_codes=frozenset(relevant))

    def recognition(self, doc: YamlDocument) -> Recognition:
        data = _validated(doc, RecognitionFile())
        self.systems = dict(data["systems"])

        def keys(entries: Iterable[dict[str, Any]], path: tuple[str | int, ...]) -> frozenset[Key]:
            return frozenset(self.code(doc, (*path, i), e).key for i, e in enumerate(entries))

        presence = data["presence"]
        interp = data["interpretation"]
        qualifiers: dict[Key, tuple[str, frozenset[Key]]] = {}
        for name, spec in data["qualifier_components"].items():
            path = ("qualifier_components", name)
            if name not in QUALIFIERS:
                raise doc.error(path, f"unknown qualifier {name!r}; known: {', '.join(QUALIFIERS)}")
            try:
                component = CodeEntry().load(spec["component"])
                values = [CodeEntry().load(v) for v in spec["values"]]
            except (KeyError, TypeError, ValidationError) as exc:
                raise doc.error(path, f"needs component (a code) and values (codes): {exc}") from exc
            qualifiers[self.code(doc, (*path, "component"), component).key] = (name, keys(values, (*path, "values")))
        return Recognition(
            present_values=keys(presence.get("present", []), ("presence", "present")),
            absent_values=keys(presence.get("absent", []), ("presence", "absent")),
            unknown_values=keys(presence.get("unknown", []), ("presence", "unknown")),
            interpretation_system=self.systems.get(interp.get("system", ""), interp.get("system", "")),
            interpretation_present=frozenset(interp.get("present", [])),
            interpretation_absent=frozenset(interp.get("absent", [])),
            interpretation_worsening=frozenset(interp.get("worsening", [])),
            symptom_present=self.code(doc, ("symptom_observation", "present"),
                                      data["symptom_observation"]["present"]).key,
            symptom_absent=self.code(doc, ("symptom_observation", "absent"),
                                     data["symptom_observation"]["absent"]).key,
            qualifier_components=qualifiers,
            ignored_statuses=frozenset(data["ignored_statuses"]),
            flagged_statuses=dict(data["flagged_statuses"]))

    def guide(self, doc: YamlDocument) -> Guide:
        data = _validated(doc, GuideFile())
        if data["id"] != self.guide_id:
            raise doc.error(("id",), f"guide id {data['id']!r} does not match its folder {self.guide_id!r}")
        return Guide(data["id"], data["title"], data["summary"], data["source"], data["reviewed"],
                     tuple(data["sections"]))

    def rules(self, doc: YamlDocument, findings: dict[str, Finding],
              section_ids: set[str]) -> tuple[tuple[Tier, ...], tuple[Rule, ...]]:
        data = _validated(doc, RulesFile())
        tiers: list[Tier] = []
        for entry in data["tiers"]:
            amount, unit = _WINDOW.match(entry["window"]).groups()  # type: ignore[union-attr]
            tiers.append(Tier(entry["id"], entry["indicator"], timedelta(**{_WINDOW_UNITS[unit]: int(amount)}),
                              entry["card"], tuple(entry["suppressed_by"])))
        tier_ids = {t.id for t in tiers}
        for i, tier in enumerate(tiers):
            for other in tier.suppressed_by:
                if other not in tier_ids:
                    raise doc.error(("tiers", i, "suppressed_by"), f"unknown tier {other!r}")
        rules: list[Rule] = []
        seen: set[str] = set()
        for i, entry in enumerate(data["rules"]):
            path = ("rules", i)
            if entry["id"] in seen:
                raise doc.error((*path, "id"), f"duplicate rule id {entry['id']!r}")
            seen.add(entry["id"])
            if entry["tier"] not in tier_ids:
                raise doc.error((*path, "tier"), f"unknown tier {entry['tier']!r}")
            for j, finding in enumerate(entry["findings"]):
                if finding not in findings:
                    raise doc.error((*path, "findings", j), f"unknown finding {finding!r}")
            provenance = entry["provenance"]
            if provenance["guide_section"] not in section_ids:
                raise doc.error((*path, "provenance", "guide_section"),
                                f"no guide section {provenance['guide_section']!r}")
            if provenance["beyond_guide"] and not provenance.get("source"):
                raise doc.error((*path, "provenance"), "a rule beyond the guide must name its source")
            rules.append(Rule(entry["id"], entry["tier"], tuple(entry["findings"]), tuple(entry["requires_all"]),
                              tuple(entry["requires_any"]), provenance))
        return tuple(tiers), tuple(rules)

    def cards(self, tiers: tuple[Tier, ...],
              section_ids: set[str]) -> tuple[dict[str, CardTemplate], str, Code | None, str]:
        common_doc = load_yaml(self.cards_dir / "common.yaml")
        common = _validated(common_doc, CommonCardFile())
        if not isinstance(common["source"].get("label"), str):
            raise common_doc.error(("source", "label"), "source.label is required")
        topic = None
        if "topic" in common["source"]:
            try:
                topic = self.code(common_doc, ("source", "topic"),
                                  {"source": "cards/common.yaml", **CodeEntry(partial=("source",)).load(
                                      common["source"]["topic"])})
            except ValidationError as exc:
                raise common_doc.error(("source", "topic"), str(exc.messages)) from exc
        names = {t.card: t for t in tiers}
        if any(t.id == "emergency" for t in tiers):
            names.setdefault("emergency-earlier", None)  # type: ignore[arg-type]
        templates: dict[str, CardTemplate] = {}
        for name, tier in names.items():
            doc = load_yaml(self.cards_dir / f"{name}.yaml")
            data = _validated(doc, CardFile())
            if tier is not None and data["indicator"] != tier.indicator:
                raise doc.error(("indicator",), f"tier {tier.id!r} has indicator {tier.indicator!r}")
            if data["link"]["section"] not in section_ids:
                raise doc.error(("link", "section"), f"no guide section {data['link']['section']!r}")
            if data["indicator"] in ("critical", "warning") and not data["override_reasons"]:
                raise doc.error(("override_reasons",), "critical and warning cards need override reasons")
            suggestions = tuple(
                Suggestion(s["label"], s["description"], self.code(doc, ("suggestions", i, "code"), s["code"]))
                for i, s in enumerate(data["suggestions"]))
            templates[name] = CardTemplate(
                data["id"], data["indicator"], data["summary"], data["detail"], data.get("earlier_heading"),
                data["link"]["label"], data["link"]["section"],
                tuple((o["code"], o["display"]) for o in data["override_reasons"]), suggestions)
        return templates, common["source"]["label"], topic, common["override_reason_system"]


def load_knowledge(content_dir: Path, cards_dir: Path, guide_id: str = "weakness") -> Knowledge:
    """Load and cross-check all content; raises ContentError naming file, line and problem."""
    return _Loader(content_dir, cards_dir, guide_id).load()


__all__ = ["ContentError", "Knowledge", "load_knowledge"]
