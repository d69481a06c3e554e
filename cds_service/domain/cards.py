"""Cards: decisions rendered through the templates in cards/ into CDS Hooks card dicts.

The mapping from knowledge to card fields lives here and only here: tier -> indicator, template -> summary and
detail, guide section -> link, override reasons, suggestions -> ServiceRequest create actions.
"""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta
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


def describe_value(value: Value, words: CardWording | None = None) -> str:
    """A record's value in words: "Yes", "No", a coded value's display, a number (EHR text escaped)."""
    phrases = words.values if words else {}
    if value.kind == "boolean":
        return phrases.get("yes" if value.boolean else "no", "Yes" if value.boolean else "No")
    if value.kind == "number":
        return f"{value.number:g}"
    if value.kind == "concept":
        concept = value.concept
        shown = concept.texts[0] if concept.texts else None
        return escape_markdown(shown) if shown else phrases.get("coded", "coded entry")
    if value.kind == "text":
        return phrases.get("text", "free-text entry")
    return phrases.get("none", "no value")


def describe_statement(said: Statement, words: CardWording | None = None) -> str:
    """What the record says, in the words of a card line (cards/common.yaml `statements`)."""
    templates = words.statements if words else {}
    kind = said.kind
    fields: dict[str, Any] = {"value": describe_value(said.value, words), "item": escape_markdown(said.item or "")}
    score = said.score if said.score is not None else (said.value.number if said.value.kind == "number" else None)
    if score is not None:
        fields["score"] = f"{score:g}"
    if said.max_score is not None:
        fields["max"] = f"{said.max_score:g}"
    if said.answer:
        fields["value"] = escape_markdown(said.answer)
    if kind == "score" and said.previous is not None:
        kind, fields["previous"] = "score-rose" + ("-scored" if "max" in fields else ""), f"{said.previous:g}"
    elif kind in ("score", "answer") and "score" in fields and "max" in fields:
        kind = f"{kind}-scored"
    if kind == "interpretation" and words:
        fields["value"] = ", ".join(words.interpretations.get(code, code) for code in said.interpretation)
    template = templates.get(kind) or templates.get(said.kind) or templates.get("default") or "{value}"
    try:
        return template.format(**fields)
    except (KeyError, IndexError):
        return str(fields["value"])


def _recorded(item: Evidence, words: CardWording, now: datetime) -> str:
    if item.when is None:
        return words.recorded.get("unknown", "time not recorded")
    date = item.when.astimezone(UTC).strftime("%-d %b %Y %H:%M UTC")
    return words.recorded.get("when", "{age}").format(age=describe_age(item.when, now), date=date)


def _line(item: Evidence, knowledge: Knowledge, now: datetime) -> str:
    """One finding: the sign in bold, what the record says, how (sudden, severe...), when; flag notes after."""
    words = knowledge.wording
    label = knowledge.findings[item.finding].label
    said = describe_statement(item.statement, words)
    parts = [f"- **{label}**: {said}" if said.lower() != label.lower() else f"- **{label}**"]
    qualifiers = [words.qualifiers.get(q, q) for q in ("sudden", "worsening", "severe") if q in item.qualifiers]
    if qualifiers:
        parts.append(", ".join(qualifiers))
    parts.append(_recorded(item, words, now))
    if where := _where(item, words):
        parts.append(where)
    notes = [words.flags[f] for f in sorted(item.flags) if f in words.flags]
    text = "; ".join(parts)
    return text + (f" (_{'; '.join(notes)}_)" if notes else "")


def _where(item: Evidence, words: CardWording) -> str:
    """Where and by whom it was recorded ("on examination, by Dr A. Jones"), in the words of cards/common.yaml."""
    where = next((words.recorded[f"category:{c}"] for c in item.categories if f"category:{c}" in words.recorded), "")
    by = words.recorded.get("by", "by {performer}").format(performer=escape_markdown(item.performer or ""))
    return ", ".join(part for part in (where, by if item.performer else "") if part)


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
                "content_version": knowledge.release.content_version,
                "read_in_part": {
                    "reason": read.reason,
                    "pages_read": read.pages_read,
                    "observations_read": read.observations_read,
                },
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

    lines = _detail_lines(decision, template, knowledge, now, window, shown)
    rules = decision.rules
    extension: dict[str, Any] = {
        "rules": [rule.id for rule in rules],
        "content_version": knowledge.release.content_version,
        "findings": [_finding_entry(item) for item in shown_findings(decision)],
    }
    if not extension["rules"]:
        del extension["rules"]
    card: dict[str, Any] = {
        "uuid": str(uuid.uuid4()),
        "summary": _summary(template.summary, labels),
        "detail": "\n".join(lines).strip(),
        **template_fields(template, knowledge, base_url),
        "extension": {EXTENSION_KEY: extension},
    }
    if template.suggestions:
        card["suggestions"] = [_suggestion(s, patient_id) for s in template.suggestions]
        card["selectionBehavior"] = "any"
    return card


def _detail_lines(
    decision: Decision,
    template: CardTemplate,
    knowledge: Knowledge,
    now: datetime,
    window: str,
    shown: list[FiredFinding],
) -> list[str]:
    """Intro, the findings under their own lead-in, the actions under theirs, per-finding notes, where it comes from."""
    words = knowledge.wording
    sections = words.sections
    lines = [template.detail.format(window=window).strip(), "", sections.get("findings", ""), ""]
    lines += [_line(item.evidence, knowledge, now) for item in shown]
    if decision.fired and decision.earlier and template.earlier_heading:
        lines += ["", f"**{template.earlier_heading.format(window=window)}**", ""]
        lines += [_line(item, knowledge, now) for item in decision.earlier]
    if template.actions:
        lines += ["", sections.get("actions", ""), "", template.actions.format(window=window).strip()]
    finding_ids = dict.fromkeys(item.finding for item in shown_findings(decision))
    notes = [words.finding_notes[f] for f in finding_ids if f in words.finding_notes]
    if notes:
        lines += ["", sections.get("notes", ""), "", *(f"- {note.strip()}" for note in dict.fromkeys(notes))]
    if decision.rules:
        origins = dict.fromkeys(_rule_origin(rule, knowledge) for rule in decision.rules)
        lines += ["", words.why_lead + "; ".join(words.why_rule.format(origin=o, rule="") for o in origins) + "."]
    return lines


def _rule_origin(rule: Rule, knowledge: Knowledge) -> str:
    """Where a rule comes from, in words: the guide section by its title, or the team's safety rule."""
    wording, provenance = knowledge.wording, rule.provenance
    if provenance.get("beyond_guide"):
        return wording.why_beyond_guide.format(source="")
    section_id = provenance["guide_section"]
    title = next((s["title"] for s in knowledge.guide.sections if s["id"] == section_id), section_id)
    return wording.why_guide_section.format(section=title)


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
