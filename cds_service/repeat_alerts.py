"""Fewer repeated alerts: a card a clinician overrode for this patient, on the same evidence, comes back within its
tier's `repeat_quiet` window as a short info line instead of at full urgency.

The evidence key of a card is a hash of its tier, its template and what each Observation it shows said (reference,
finding, statement, qualifiers, time), so another Observation or a changed value makes a new key and the full card
fires at once. Overrides are kept in the database (store.Acknowledgement), so every server process sees them.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any

from cds_service.answer import HookAnswer, InvalidResponse
from cds_service.domain.cards import EXTENSION_KEY, SUMMARY_LIMIT, describe_statement, describe_window, shown_findings
from cds_service.domain.fhir_time import describe_age
from cds_service.domain.triage import Decision
from cds_service.hooks.schemas import CardSchema
from cds_service.knowledge.model import Knowledge
from cds_service.store import AcknowledgementRow, Store, aware
from cds_service.yaml_source import load_yaml

TEMPLATE_FILE = "acknowledged.yaml"
ACKNOWLEDGED_TIER = "acknowledged"  # the card log's tier for the info line: the report shows how often it stood in
PLACEHOLDERS = {"age", "reason", "findings", "tier", "window"}


@dataclass(frozen=True)
class AcknowledgedTemplate:
    summary: str
    detail: str

    @classmethod
    def load(cls, cards_dir: Path) -> AcknowledgedTemplate:
        doc = load_yaml(cards_dir / TEMPLATE_FILE)
        data = doc.data if isinstance(doc.data, dict) else {}
        for key in ("summary", "detail"):
            value = data.get(key)
            if not isinstance(value, str) or not value.strip():
                raise doc.error((key,), "must be a non-empty string")
            try:
                value.format(**{name: "" for name in PLACEHOLDERS})
            except (KeyError, IndexError, ValueError) as exc:
                raise doc.error((key,), f"unknown or broken placeholder ({exc}); use {sorted(PLACEHOLDERS)}") from exc
        return cls(data["summary"], data["detail"])


def evidence_key(decision: Decision) -> str:
    said = sorted(
        [
            item.reference,
            item.finding,
            describe_statement(item.statement),
            sorted(item.qualifiers),
            item.when.isoformat() if item.when else None,
        ]
        for item in shown_findings(decision)
    )
    return hashlib.sha256(json.dumps([decision.tier.id, decision.card, said]).encode()).hexdigest()


class RepeatAlerts:
    def __init__(self, knowledge: Knowledge, template: AcknowledgedTemplate) -> None:
        self.knowledge = knowledge
        self.template = template
        self.windows = {tier.id: tier.repeat_quiet for tier in knowledge.tiers if tier.repeat_quiet}
        self._card_schema = CardSchema()

    def apply(self, result: HookAnswer, store: Store, patient_id: str, now: datetime) -> HookAnswer:
        """The answer with evidence keys on its card rows and overridden repeats replaced by info lines."""
        keys = [evidence_key(decision) for decision in result.decisions]
        rows = [replace(row, evidence_key=key) for row, key in zip(result.card_rows, keys, strict=True)]
        if not any(decision.tier.id in self.windows for decision in result.decisions):
            return replace(result, card_rows=rows)
        since = now - max(self.windows.values())
        acknowledged = {(a.tier, a.evidence_key): a for a in reversed(store.acknowledgements(patient_id, since))}
        cards = list(result.body["cards"])
        quieted: list[str] = []
        for index, (decision, key) in enumerate(zip(result.decisions, keys, strict=True)):
            window = self.windows.get(decision.tier.id)
            ack = acknowledged.get((decision.tier.id, key))
            if window is None or ack is None or now - aware(ack.overridden_at) > window:
                continue
            cards[index] = self._info_line(cards[index], decision, ack, now)
            # the info line's own row: overriding it acknowledges nothing new (no evidence key)
            row = replace(rows[index], uuid=cards[index]["uuid"], indicator="info", tier=ACKNOWLEDGED_TIER)
            rows[index] = replace(row, evidence_key=None)
            quieted.append(decision.tier.id)
        if not quieted:
            return replace(result, card_rows=rows)
        fields = {**result.log_fields, "cards": [c["indicator"] for c in cards], "quieted": quieted}
        return HookAnswer({"cards": cards}, result.decisions, rows, fields)

    def _info_line(
        self, card: dict[str, Any], decision: Decision, ack: AcknowledgementRow, now: datetime
    ) -> dict[str, Any]:
        template = self.knowledge.cards[decision.card]
        reasons = dict(template.override_reasons)
        age = describe_age(aware(ack.overridden_at), now).removeprefix("recorded ").removesuffix(" ago")
        labels = [self.knowledge.findings[item.finding].label for item in shown_findings(decision)]
        values = {
            "age": age,
            "reason": reasons.get(ack.reason_code or "", ack.reason_code or "no reason given"),
            "findings": ", ".join(labels),
            "tier": decision.indicator,
            "window": describe_window(self.windows[decision.tier.id]),
        }
        summary = self.template.summary.format(**values)
        evidence_lines = [line for line in card["detail"].splitlines() if line.startswith("- ")]
        extension = {
            **card["extension"][EXTENSION_KEY],
            "acknowledged": {
                "card": ack.card_uuid,
                "overriddenAt": aware(ack.overridden_at).isoformat(),
                "reason": ack.reason_code,
            },
        }
        line = {
            "uuid": str(uuid.uuid4()),
            "summary": summary if len(summary) <= SUMMARY_LIMIT else summary[: SUMMARY_LIMIT - 1] + "…",
            "detail": "\n".join([self.template.detail.format(**values).strip(), "", *evidence_lines]),
            "indicator": "info",
            "source": card["source"],
            "links": card["links"],
            "extension": {EXTENSION_KEY: extension},
        }
        if errors := self._card_schema.validate(line):
            raise InvalidResponse(f"the acknowledged card breaks the CDS Hooks card schema: {errors}")
        return line
