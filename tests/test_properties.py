"""Properties of the triage that no list of examples can show (hypothesis):

1. The cards do not depend on the order of the Observations.
2. Adding an Observation unrelated to the guide never changes the cards.
3. No value outside the present value sets raises a critical card at full urgency: an emergency sign's record whose
   value is anything else (another code, free text, a number, an absent or uncertain answer) is at most shown to
   re-check.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cds_service.domain.pipeline import evaluate
from cds_service.knowledge.load import load_knowledge
from cds_service.knowledge.model import PRESENT, Knowledge, normalise_answer
from cds_service.settings import REPO_ROOT
from tests.support.scenarios import load_scenarios

KNOWLEDGE: Knowledge = load_knowledge(REPO_ROOT / "content", REPO_ROOT / "cards")
SCENARIOS = [s for s in load_scenarios() if len(s.observations()) >= 2]
NOW = datetime(2026, 11, 25, 12, tzinfo=UTC)
PATIENT = "pat-1"
EMERGENCY_CODES = sorted(
    key
    for key, finding in KNOWLEDGE.finding_by_code.items()
    if any(r.tier == KNOWLEDGE.emergency.tier and finding in r.findings and not r.requires_all for r in KNOWLEDGE.rules)
)
PRESENT_CODES = {key for key, presence in KNOWLEDGE.recognition.presence_by_code.items() if presence == PRESENT}
QUALIFIER_VALUES = set(KNOWLEDGE.recognition.qualifier_values)
UNRELATED_LOINC = [
    ("8867-4", "Heart rate", "/min"),
    ("8310-5", "Body temperature", "Cel"),
    ("2345-7", "Glucose [Mass/volume] in Serum or Plasma", "mg/dL"),
    ("29463-7", "Body weight", "kg"),
    ("8480-6", "Systolic blood pressure", "mm[Hg]"),
]


def signature(observations: list[dict[str, Any]], patient: str, now: datetime) -> list[tuple[str, tuple[str, ...]]]:
    """What the cards say, without the per-call uuids: indicator and the findings each lists, with their flags."""
    cards = evaluate(observations, patient, KNOWLEDGE, now, "http://cds.test").cards
    return [
        (
            card["indicator"],
            tuple(
                sorted(
                    f"{f['id']}:{','.join(f.get('flags', []))}"
                    for f in card["extension"]["org.weakness-triage"].get("findings", [])
                )
            ),
        )
        for card in cards
    ]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(SCENARIOS), st.randoms(use_true_random=False))
def test_the_cards_do_not_depend_on_the_order_of_the_observations(scenario: Any, rng: random.Random) -> None:
    observations = scenario.observations()
    shuffled = list(observations)
    rng.shuffle(shuffled)
    now = datetime.fromisoformat(scenario.now.replace("Z", "+00:00"))
    assert signature(shuffled, scenario.patient, now) == signature(observations, scenario.patient, now)


@st.composite
def unrelated_observation(draw: st.DrawFn, patient: str) -> dict[str, Any]:
    code, display, unit = draw(st.sampled_from(UNRELATED_LOINC))
    return {
        "resourceType": "Observation",
        "id": f"unrelated-{draw(st.integers(0, 10**6))}",
        "status": "final",
        "category": [
            {
                "coding": [
                    {"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "vital-signs"}
                ]
            }
        ],
        "code": {"coding": [{"system": "http://loinc.org", "code": code, "display": display}]},
        "subject": {"reference": f"Patient/{patient}"},
        "effectiveDateTime": f"2026-11-{draw(st.integers(10, 25)):02d}T{draw(st.integers(0, 11)):02d}:00:00Z",
        "valueQuantity": {"value": draw(st.floats(0, 300, allow_nan=False)), "unit": unit},
    }


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(SCENARIOS), st.data())
def test_an_unrelated_observation_never_changes_the_cards(scenario: Any, data: st.DataObject) -> None:
    observations = scenario.observations()
    extra = data.draw(unrelated_observation(scenario.patient))
    position = data.draw(st.integers(0, len(observations)))
    now = datetime.fromisoformat(scenario.now.replace("Z", "+00:00"))
    with_extra = [*observations[:position], extra, *observations[position:]]
    assert signature(with_extra, scenario.patient, now) == signature(observations, scenario.patient, now)


def _is_present_word(text: str) -> bool:
    answer = normalise_answer(text)
    words = answer.replace(",", " ").replace("-", " ").split()
    present = {k for k, v in KNOWLEDGE.recognition.presence_by_string.items() if v == PRESENT}
    return answer in present or bool(words and words[0] in present)


other_code = st.tuples(
    st.sampled_from(["http://snomed.info/sct", "http://loinc.org", "urn:local"]),
    st.from_regex(r"[0-9A-Z]{2,9}(-[0-9])?", fullmatch=True),
).filter(lambda key: key not in PRESENT_CODES and key not in QUALIFIER_VALUES)
value = st.one_of(
    other_code.map(lambda key: {"valueCodeableConcept": {"coding": [{"system": key[0], "code": key[1]}]}}),
    st.sampled_from(sorted(k for k, v in KNOWLEDGE.recognition.presence_by_code.items() if v != PRESENT)).map(
        lambda key: {"valueCodeableConcept": {"coding": [{"system": key[0], "code": key[1]}]}}
    ),
    st.text(min_size=1, max_size=30)
    .filter(lambda text: not _is_present_word(text))
    .map(lambda text: {"valueString": text}),
    st.integers(-5, 50).map(lambda number: {"valueInteger": number}),
    st.just({"valueBoolean": False}),
)


def sign(code: tuple[str, str], when: str, value_element: dict[str, Any]) -> dict[str, Any]:
    """An emergency sign's record with the given value element."""
    return {
        "resourceType": "Observation",
        "id": "sign",
        "status": "final",
        "code": {"coding": [{"system": code[0], "code": code[1]}]},
        "subject": {"reference": f"Patient/{PATIENT}"},
        "effectiveDateTime": when,
        **value_element,
    }


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(EMERGENCY_CODES), value, st.integers(0, 23))
def test_no_value_outside_the_present_set_raises_a_critical_card(
    code: tuple[str, str], element: dict[str, Any], hours_ago: int
) -> None:
    observation = sign(code, f"2026-11-25T{11 - hours_ago % 12:02d}:00:00Z", element)
    indicators = [indicator for indicator, _ in signature([observation], PATIENT, NOW)]
    assert "critical" not in indicators and "warning" not in indicators, (code, element)


def test_the_property_is_not_vacuous() -> None:
    """The same records with a present value do raise a critical card."""
    yes = {"valueCodeableConcept": {"coding": [{"system": "http://snomed.info/sct", "code": "373066001"}]}}
    for key in EMERGENCY_CODES[:5]:
        observation = sign(key, "2026-11-25T11:00:00Z", yes)
        assert next(indicator for indicator, _ in signature([observation], PATIENT, NOW)) == "critical", key
