"""Our own answer must be spec-true before it leaves; a failure here is our bug, never the client's.

A card's template fields (cards.TEMPLATE_FIELDS: indicator, source, links, override reasons) depend only on its
template, the guide and the public URL. They are checked against the schema once, when the worker starts (a
template that breaks the spec stops the start), and on each call a card's template fields must equal one of the
sets checked. The fields filled per call (uuid, summary, detail, extension, suggestions) are checked against the
schema on every call (the whole card on every call was measurably slower: docs/performance.md).
"""

from __future__ import annotations

from typing import Any

from cds_service.domain.cards import TEMPLATE_FIELDS, template_fields
from cds_service.hooks.schemas import CardSchema, empty_values
from cds_service.knowledge.model import Knowledge

PER_CALL_FIELDS = ("uuid", "summary", "detail", "extension", "suggestions", "selectionBehavior")
_ALL_FIELDS = frozenset(TEMPLATE_FIELDS + PER_CALL_FIELDS)


class InvalidTemplate(ValueError):
    """A card template whose fixed fields break the CDS Hooks card schema."""


class ResponseCheck:
    def __init__(self, knowledge: Knowledge, base_url: str) -> None:
        template_schema = CardSchema(only=TEMPLATE_FIELDS)
        self._per_call_schema = CardSchema(only=PER_CALL_FIELDS)
        self._checked: list[dict[str, Any]] = []
        for template in knowledge.cards.values():
            fields = template_fields(template, knowledge, base_url)
            errors, empties = template_schema.validate(fields), empty_values(fields)
            if errors or empties:
                raise InvalidTemplate(
                    f"card template '{template.id}' breaks the CDS Hooks card schema: "
                    f"{errors or ''}{' empty: ' + ', '.join(empties) if empties else ''}"
                )
            self._checked.append(fields)

    def problems(self, body: dict[str, Any]) -> list[str]:
        """What is wrong with a cards response (empty when it may be sent)."""
        cards = body.get("cards")
        if set(body) != {"cards"} or not isinstance(cards, list):
            return ['a response is exactly {"cards": [...]}']
        found: list[str] = []
        for index, card in enumerate(cards):
            if not isinstance(card, dict):
                found.append(f"cards[{index}] is not an object")
                continue
            if unknown := sorted(set(card) - _ALL_FIELDS):
                found.append(f"cards[{index}] has unknown fields {unknown}")
            if {k: card[k] for k in TEMPLATE_FIELDS if k in card} not in self._checked:
                found.append(f"cards[{index}]: template fields differ from every checked template")
            per_call = {k: card[k] for k in PER_CALL_FIELDS if k in card}
            if errors := self._per_call_schema.validate(per_call):
                found.append(f"cards[{index}]: {errors}")
            found += [f"cards[{index}].{path} is empty" for path in empty_values(per_call)]
        return found
