"""response_check.ResponseCheck is never weaker than checking the whole response against the card schema.

Template fields are checked once per worker and compared on each call; per-call fields are checked every call. For
every card the scenarios produce (all templates), and for random damage done to those cards, whatever the full
schema (CardsResponseSchema plus the no-empty-values rule) refuses, ResponseCheck refuses too.
"""

from __future__ import annotations

import copy
import dataclasses
from datetime import datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from cds_service.domain.cards import TEMPLATE_FIELDS, template_fields
from cds_service.domain.fhir_time import parse_fhir_datetime
from cds_service.domain.pipeline import evaluate
from cds_service.hooks.response_check import InvalidTemplate, ResponseCheck
from cds_service.hooks.schemas import CardsResponseSchema, empty_values
from cds_service.knowledge.load import load_knowledge
from cds_service.knowledge.model import Knowledge
from cds_service.settings import REPO_ROOT
from tests.support.scenarios import load_scenarios

BASE_URL = "http://cds.test"
KNOWLEDGE: Knowledge = load_knowledge(REPO_ROOT / "content", REPO_ROOT / "cards")
CHECK = ResponseCheck(KNOWLEDGE, BASE_URL)
FULL_SCHEMA = CardsResponseSchema()


def _scenario_cards() -> list[dict[str, Any]]:
    cards = []
    for scenario in load_scenarios():
        now = parse_fhir_datetime(scenario.now)
        assert isinstance(now, datetime)
        cards += evaluate(scenario.observations(), scenario.patient, KNOWLEDGE, now, BASE_URL).cards
    return cards


CARDS = _scenario_cards()


def full_schema_refuses(body: dict[str, Any]) -> bool:
    return bool(FULL_SCHEMA.validate(body)) or [p for p in empty_values(body) if p != "cards"] != []


def test_every_card_the_scenarios_produce_passes_both_checks() -> None:
    projections = [{k: card[k] for k in TEMPLATE_FIELDS if k in card} for card in CARDS]
    for template in KNOWLEDGE.cards.values():  # every template is exercised
        assert template_fields(template, KNOWLEDGE, BASE_URL) in projections, template.id
    for card in CARDS:
        assert not full_schema_refuses({"cards": [card]})
        assert CHECK.problems({"cards": [card]}) == []


def test_a_template_field_that_differs_from_the_checked_ones_is_refused() -> None:
    card = copy.deepcopy(CARDS[0])
    card["links"][0]["label"] = "a label no template has"  # valid by the schema, but not what was checked
    assert not full_schema_refuses({"cards": [card]})
    assert CHECK.problems({"cards": [card]}) == ["cards[0]: template fields differ from every checked template"]


def test_a_per_call_field_that_breaks_the_schema_is_refused() -> None:
    card = dict(CARDS[0], summary="x" * 140)
    assert any("summary" in problem for problem in CHECK.problems({"cards": [card]}))


def test_a_template_whose_fixed_fields_break_the_schema_stops_the_start() -> None:
    template = next(iter(KNOWLEDGE.cards.values()))
    broken = dataclasses.replace(KNOWLEDGE, cards={template.id: dataclasses.replace(template, link_label="")})
    with pytest.raises(InvalidTemplate, match=f"card template '{template.id}'"):
        ResponseCheck(broken, BASE_URL)


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=150),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=6,
)


def _paths(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [path]
    if isinstance(value, dict):
        for key, item in value.items():
            found += _paths(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += _paths(item, (*path, index))
    return found


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_whatever_the_full_schema_refuses_the_response_check_refuses(data: st.DataObject) -> None:
    card = copy.deepcopy(data.draw(st.sampled_from(CARDS)))
    path = data.draw(st.sampled_from(_paths(card)[1:]))
    parent = card
    for step in path[:-1]:
        parent = parent[step]
    if data.draw(st.booleans()) and isinstance(parent, dict):
        del parent[path[-1]]
    else:
        parent[path[-1]] = data.draw(JSON_VALUES)
    if isinstance(parent, dict) and data.draw(st.booleans()):
        parent[data.draw(st.text(min_size=1, max_size=8))] = data.draw(JSON_VALUES)
    body = {"cards": [card]}
    refused = full_schema_refuses(body)
    event("the full schema refuses" if refused else "the full schema accepts")
    if refused:
        assert CHECK.problems(body) != []
