"""Cards: decisions rendered through the templates in cards/ into CDS Hooks card dicts.

The mapping from knowledge to card fields lives here and only here: tier -> indicator, template -> summary and
detail, guide section -> link, override reasons, suggestions -> ServiceRequest create actions.
"""

from __future__ import annotations

import re
import uuid
from datetime import datetime, timedelta
from typing import Any

from cds_service.domain.coverage import ChartReadInPart
from cds_service.domain.evidence import Evidence, Statement
from cds_service.domain.fhir_time import describe_age
from cds_service.domain.observations import Value
from cds_service.domain.triage import Decision, FiredFinding
from cds_service.knowledge.model import CardTemplate, CardWording, Knowledge, Rule, Suggestion

EXTENSION_KEY = "org.weakness-triage"
SUMMARY_LIMIT = 139
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]<>()#+!|~])")


def escape_markdown(text: str) -> str:
    """EHR-supplied text shown in `detail`: no markdown or HTML it could smuggle in."""
    return _MARKDOWN_SPECIAL.sub(r"\\\1", text.replace("&", "&amp;")).replace("\n", " ")


def describe_window(window: timedelta) -> str:
    hours = window.total_seconds() / 3600
    if hours % 24 == 0 and hours >= 48:
        return f"{int(hours // 24)} days"
    return f"{hours:g} hours"


def _summary(template: str, labels: list[str]) -> str:
    """Fill {findings}; drop trailing labels ("and N more") until the summary is under 140 characters."""
    for shown in range(len(labels), 0, -1):
        rest = len(labels) - shown
        text = ", ".join(labels[:shown]) + (f" and {rest} more" if rest else "")
        summary = template.format(findings=text, count=len(labels))
        if len(summary) <= SUMMARY_LIMIT:
            return summary
    summary = template.format(findings=f"{len(labels)} findings", count=len(labels))
    return summary if len(summary) <= SUMMARY_LIMIT else summary[: SUMMARY_LIMIT - 1] + "…"


def describe_value(value: Value) -> str:
    if value.kind == "boolean":
        return f"value {str(value.boolean).lower()}"
    if value.kind == "number":
        return f"value {value.number:g}"
    if value.kind == "concept":
        concept = value.concept
        shown = concept.texts[0] if concept.texts else (concept.keys[0][1] if concept.keys else "coded")
        return f"value {shown}"
    if value.kind == "text":
        return "text value"
    return "no value"


def describe_statement(said: Statement) -> str:
    """What the record says, in the words of a card line."""
    value = said.value
    if said.kind == "symptom":
        return f"Symptom: {describe_value(value)}"
    if said.kind == "symptom-absent":
        return f"Symptom absent: {describe_value(value)}"
    if said.kind in ("score", "answer"):
        rose = f" (up from {said.previous:g})" if said.previous is not None else ""
        if said.score is None:
            return f"{said.item}: {describe_value(value)}"
        answer = f"{said.answer} ({said.score:g})" if said.answer else f"{said.score:g}"
        return f"{said.item} = {answer}{rose}"
    if said.kind == "interpretation":
        return "interpretation " + ", ".join(said.interpretation)
    if value.kind == "boolean":
        text = f"valueBoolean {str(value.boolean).lower()}"
    else:
        text = "recorded without a value" if value.kind == "none" else describe_value(value)
    return f"FAST item: {text}" if said.kind == "fast-item" else text


def _line(item: Evidence, knowledge: Knowledge, now: datetime) -> str:
    label = knowledge.findings[item.finding].label
    age = describe_age(item.when, now) if item.when else "time not recorded"
    flag_text = knowledge.wording.flags
    notes = [flag_text[f] for f in sorted(item.flags) if f in flag_text]
    qualifiers = [q for q in ("sudden", "worsening", "severe") if q in item.qualifiers]
    said = describe_statement(item.statement)
    parts = [f"- **{label}**: {escape_markdown(item.reference)}, {escape_markdown(said)}"]
    if qualifiers:
        parts.append(", ".join(qualifiers))
    parts.append(age)
    text = "; ".join(parts)
    return text + (f" (_{'; '.join(notes)}_)" if notes else "")


def shown_findings(decision: Decision) -> list[Evidence]:
    """Every record a decision's card lists: the fired findings, then the ones to re-check."""
    return [item.evidence for item in decision.fired] + decision.earlier


def _finding_entry(item: Evidence) -> dict[str, Any]:
    entry: dict[str, Any] = {"id": item.finding, "observation": item.reference}
    if item.flags:
        entry["flags"] = sorted(item.flags)
    return entry


TEMPLATE_FIELDS = ("indicator", "source", "links", "overrideReasons")  # fixed by template, guide and public URL


def template_fields(template: CardTemplate, knowledge: Knowledge, base_url: str) -> dict[str, Any]:
    """The fields of a card that its template, the guide and the public URL fix: the same on every call, so
    response_check.py checks them against the schema once per worker."""
    guide_url = f"{base_url}/guides/{knowledge.guide.id}"
    source: dict[str, Any] = {"label": knowledge.source_label, "url": guide_url}
    if knowledge.source_topic:
        topic = knowledge.source_topic
        source["topic"] = {"system": topic.system, "code": topic.code, "display": topic.display}
    fields: dict[str, Any] = {
        "indicator": template.indicator,
        "source": source,
        "links": [{"label": template.link_label, "url": f"{guide_url}#{template.link_section}", "type": "absolute"}],
    }
    if template.override_reasons:
        fields["overrideReasons"] = [
            {"system": knowledge.override_reason_system, "code": code, "display": display}
            for code, display in template.override_reasons
        ]
    return fields


def _read_in_part_card(
    read: ChartReadInPart, template: CardTemplate, knowledge: Knowledge, base_url: str
) -> dict[str, Any]:
    wording = knowledge.wording
    oldest = read.oldest_read.strftime("%Y-%m-%d %H:%M UTC") if read.oldest_read else wording.read_in_part_no_date
    extent = wording.read_in_part_extent.format(
        observations=read.observations_read, pages=read.pages_read, oldest=oldest
    )
    reason = wording.read_in_part_reasons.get(read.reason, read.reason)
    return {
        "uuid": str(uuid.uuid4()),
        "summary": _summary(template.summary.replace("{read}", extent), []),
        "detail": template.detail.format(reason=reason).strip(),
        **template_fields(template, knowledge, base_url),
        "extension": {
            EXTENSION_KEY: {
                "read_in_part": {
                    "reason": read.reason,
                    "pages_read": read.pages_read,
                    "observations_read": read.observations_read,
                }
            }
        },
    }


def render_card(
    decision: Decision, knowledge: Knowledge, base_url: str, patient_id: str, now: datetime
) -> dict[str, Any]:
    template: CardTemplate = knowledge.cards[decision.card]
    if decision.read_in_part is not None:
        return _read_in_part_card(decision.read_in_part, template, knowledge, base_url)
    window = describe_window(decision.tier.window)
    shown = decision.fired or [_as_fired(e) for e in decision.earlier]
    labels = [knowledge.findings[item.evidence.finding].label for item in shown]

    lines = [template.detail.format(window=window).strip(), ""]
    lines += [_line(item.evidence, knowledge, now) for item in shown]
    if decision.fired and decision.earlier and template.earlier_heading:
        lines += ["", f"**{template.earlier_heading.format(window=window)}**", ""]
        lines += [_line(item, knowledge, now) for item in decision.earlier]
    rules = decision.rules
    if rules:
        wording = knowledge.wording
        lines += ["", wording.why_lead + "; ".join(_rule_reason(rule, wording) for rule in rules) + "."]

    extension: dict[str, Any] = {
        "rules": [rule.id for rule in rules],
        "findings": [_finding_entry(item) for item in shown_findings(decision)],
    }
    if not extension["rules"]:
        del extension["rules"]
    card: dict[str, Any] = {
        "uuid": str(uuid.uuid4()),
        "summary": _summary(template.summary, labels),
        "detail": "\n".join(lines),
        **template_fields(template, knowledge, base_url),
        "extension": {EXTENSION_KEY: extension},
    }
    if template.suggestions:
        card["suggestions"] = [_suggestion(s, patient_id) for s in template.suggestions]
        card["selectionBehavior"] = "any"
    return card


def _rule_reason(rule: Rule, wording: CardWording) -> str:
    provenance = rule.provenance
    origin = (
        wording.why_beyond_guide.format(source=provenance["source"])
        if provenance.get("beyond_guide")
        else wording.why_guide_section.format(section=provenance["guide_section"])
    )
    return wording.why_rule.format(rule=rule.id, origin=origin)


def _as_fired(item: Evidence) -> FiredFinding:
    return FiredFinding(item, ())


def _suggestion(suggestion: Suggestion, patient_id: str) -> dict[str, Any]:
    code = suggestion.code
    return {
        "label": suggestion.label,
        "uuid": str(uuid.uuid4()),
        "actions": [
            {
                "type": "create",
                "description": suggestion.description,
                "resource": {
                    "resourceType": "ServiceRequest",
                    "status": "draft",
                    "intent": "proposal",
                    "subject": {"reference": f"Patient/{patient_id}"},
                    "code": {"coding": [{"system": code.system, "code": code.code, "display": code.display}]},
                },
            }
        ],
    }


def render_cards(
    decisions: list[Decision], knowledge: Knowledge, base_url: str, patient_id: str, now: datetime
) -> list[dict[str, Any]]:
    return [render_card(d, knowledge, base_url, patient_id, now) for d in decisions]
