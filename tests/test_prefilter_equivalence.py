"""The fast paths of a hook call agree with their reference implementations.

1. The pre-filter (observations.is_relevant) and lazy validation (pipeline.evaluate validates only the Observations a
   card shows): for random charts mixing guide codes (knowledge.finding_by_code, knowledge.scores, Symptoms-IG, FAST,
   qualifier components, matching free text) with unrelated LOINC codes and texts, evaluate(prefilter=True) gives the
   same cards as the reference path evaluate(prefilter=False), which validates and evaluates every Observation; and
   every Observation the pre-filter skips yields no evidence at all, so it could not have changed the result.
2. json_depth.nesting_depth (a byte-level count) equals the depth of the parsed JSON.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cds_service.domain.findings import evidence_from
from cds_service.domain.json_depth import deeper_than, nesting_depth
from cds_service.domain.observations import to_fact
from cds_service.domain.pipeline import evaluate
from cds_service.domain.prefilter import is_relevant
from cds_service.knowledge.load import load_knowledge
from cds_service.knowledge.model import Key, Knowledge
from cds_service.settings import REPO_ROOT

NOW = datetime(2026, 11, 25, 12, tzinfo=UTC)
PATIENT = "pat-1"
LOINC = "http://loinc.org"
SNOMED = "http://snomed.info/sct"
KNOWLEDGE: Knowledge = load_knowledge(REPO_ROOT / "content", REPO_ROOT / "cards")  # strategies need it at import

GUIDE_CODES: list[Key] = sorted(
    {
        *KNOWLEDGE.finding_by_code,
        *KNOWLEDGE.old_deficit_by_code,
        *[("http://hl7.org/fhir/sid/icd-10-cm", code) for code in ("I69.351", "G81.91", "R47.01", "H53.131", "Z86.73")],
        *KNOWLEDGE.scores,
        *KNOWLEDGE.fast_components,
        KNOWLEDGE.recognition.symptom_present,
        KNOWLEDGE.recognition.symptom_absent,
        *([KNOWLEDGE.fast_panel] if KNOWLEDGE.fast_panel else []),
    }
)
QUALIFIER_CODES: list[Key] = sorted(KNOWLEDGE.recognition.qualifier_components)
QUALIFIER_VALUES: list[Key] = sorted(KNOWLEDGE.recognition.qualifier_values)
ANSWER_CODES: list[Key] = sorted(
    {*KNOWLEDGE.recognition.presence_by_code, *(k for item in KNOWLEDGE.scores.values() for k in item.answers)}
)
BODY_SITES: list[Key] = sorted(key for group in KNOWLEDGE.body_sites for key in group.codes)
MATCHING_TEXTS = [
    "Facial droop",
    "left arm weakness",
    "Confusion",
    "dizzy spells",
    "Low back pain",
    "feels weak",
    "Slurred speech",
    "urinary incontinence",
    "sudden severe headache",
    "No facial droop",
    "possible aphasia",
    "history of hemiparesis",
    "Delirium screen",
]
OTHER_TEXTS = [
    "Heart rate",
    "Glucose [Mass/volume] in Serum or Plasma",
    "Body weight",
    "Blood pressure panel",
    "Hemoglobin A1c",
    "Smoking status",
    "Pain",
    "weak signal",
]
INTERPRETATIONS = ["POS", "NEG", "N", "ND", "DET", "A", "W", "H", "L"]

unrelated_loinc = st.builds(lambda n, d: (LOINC, f"{n}-{d}"), st.integers(1000, 99999), st.integers(0, 9)).filter(
    lambda key: key not in KNOWLEDGE.relevant_codes
)
code_key = st.one_of(
    st.sampled_from(GUIDE_CODES), unrelated_loinc, st.sampled_from(QUALIFIER_CODES), st.sampled_from(BODY_SITES)
)


@st.composite
def codeable_concept(draw: st.DrawFn, keys: st.SearchStrategy[Key]) -> dict[str, Any]:
    texts = st.sampled_from(MATCHING_TEXTS + OTHER_TEXTS)
    codings = []
    for system, code in draw(st.lists(keys, max_size=2)):
        coding: dict[str, Any] = {"system": system, "code": code}
        if draw(st.booleans()):
            coding["display"] = draw(texts)
        codings.append(coding)
    concept: dict[str, Any] = {"coding": codings} if codings else {}
    if not codings or draw(st.integers(0, 4)) == 0:
        concept["text"] = draw(texts)
    return concept


def value_element(draw: st.DrawFn) -> dict[str, Any]:
    kind = draw(
        st.sampled_from(
            ["boolean", "answer", "finding", "qualifier", "integer", "quantity", "string", "none", "absent"]
        )
    )
    if kind == "boolean":
        return {"valueBoolean": draw(st.booleans())}
    if kind in ("answer", "finding", "qualifier"):
        pool = {"answer": ANSWER_CODES, "finding": GUIDE_CODES, "qualifier": QUALIFIER_VALUES}[kind]
        return {"valueCodeableConcept": draw(codeable_concept(st.sampled_from(pool)))}
    if kind == "integer":
        return {"valueInteger": draw(st.integers(0, 27))}
    if kind == "quantity":
        return {"valueQuantity": {"value": draw(st.integers(0, 15)), "unit": "{score}"}}
    if kind == "string":
        return {"valueString": draw(st.sampled_from(MATCHING_TEXTS + OTHER_TEXTS))}
    if kind == "absent":
        return {
            "dataAbsentReason": {
                "coding": [{"system": "http://terminology.hl7.org/CodeSystem/data-absent-reason", "code": "unknown"}]
            }
        }
    return {}


@st.composite
def observation(draw: st.DrawFn, index: int) -> dict[str, Any]:
    obs: dict[str, Any] = {
        "resourceType": "Observation",
        "id": f"obs-{index}",
        "status": draw(st.sampled_from(["final", "final", "amended", "preliminary", "unknown", "entered-in-error"])),
        "code": draw(codeable_concept(code_key)),
        "subject": {"reference": f"Patient/{PATIENT if draw(st.integers(0, 9)) else 'someone-else'}"},
    }
    if draw(st.integers(0, 5)):
        hours = draw(st.integers(0, 24 * 30))
        obs["effectiveDateTime"] = (NOW - timedelta(hours=hours)).isoformat().replace("+00:00", "Z")
    obs.update(value_element(draw))
    if draw(st.integers(0, 3)) == 0:
        obs["interpretation"] = [
            {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation",
                        "code": draw(st.sampled_from(INTERPRETATIONS)),
                    }
                ]
            }
        ]
    if draw(st.integers(0, 3)) == 0:
        obs["bodySite"] = draw(codeable_concept(st.sampled_from(BODY_SITES)))
    components = []
    for _ in range(draw(st.integers(0, 3))):
        component: dict[str, Any] = {"code": draw(codeable_concept(code_key))}
        component.update(value_element(draw))
        components.append(component)
    if components:
        obs["component"] = components
    if draw(st.integers(0, 7)) == 0:
        obs["note"] = "not a list of Annotations"  # does not validate as R4: the card must say so either way
    return obs


@st.composite
def chart(draw: st.DrawFn) -> list[dict[str, Any]]:
    return [draw(observation(index)) for index in range(draw(st.integers(0, 12)))]


def comparable(cards: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Cards without their random uuids (the card's and its suggestions')."""
    out = []
    for card in cards:
        card = {k: v for k, v in card.items() if k != "uuid"}
        if "suggestions" in card:
            card["suggestions"] = [{k: v for k, v in s.items() if k != "uuid"} for s in card["suggestions"]]
        out.append(card)
    return out


def assert_equivalent(observations: list[dict[str, Any]]) -> None:
    fast = evaluate(observations, PATIENT, KNOWLEDGE, NOW, "http://cds.test", prefilter=True)
    reference = evaluate(observations, PATIENT, KNOWLEDGE, NOW, "http://cds.test", prefilter=False)
    assert comparable(fast.cards) == comparable(reference.cards)
    assert [(c["indicator"], c["extension"]) for c in fast.cards] == [
        (c["indicator"], c["extension"]) for c in reference.cards
    ]
    for raw in observations:
        if not is_relevant(raw, KNOWLEDGE):
            assert evidence_from(to_fact(raw, "Observation/skipped"), KNOWLEDGE) == [], raw


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(chart())
def test_prefiltered_and_unfiltered_evaluation_give_the_same_cards(observations: list[dict[str, Any]]) -> None:
    assert_equivalent(observations)


def test_a_finding_named_only_in_a_component_text_is_not_skipped() -> None:
    """Found by the property test: the pre-filter used to read texts of Observation.code only."""
    obs = {
        "resourceType": "Observation",
        "id": "x",
        "status": "final",
        "subject": {"reference": f"Patient/{PATIENT}"},
        "effectiveDateTime": "2026-11-25T11:00:00Z",
        "code": {"coding": [{"system": LOINC, "code": "8867-4"}]},
        "component": [{"code": {"text": "facial droop"}, "valueBoolean": True}],
    }
    assert is_relevant(obs, KNOWLEDGE)
    assert [c["indicator"] for c in evaluate([obs], PATIENT, KNOWLEDGE, NOW, "http://cds.test").cards] == ["critical"]
    assert_equivalent([obs])


def test_a_coding_with_a_non_string_system_or_code_is_skipped_not_an_error() -> None:
    obs = {
        "resourceType": "Observation",
        "id": "x",
        "status": ["final"],
        "subject": {"reference": f"Patient/{PATIENT}"},
        "code": {"coding": [{"system": [LOINC], "code": {"c": 1}}, "not a coding"]},
    }
    assert not is_relevant(obs, KNOWLEDGE)
    assert evaluate([obs], PATIENT, KNOWLEDGE, NOW, "http://cds.test").cards == []
    assert_equivalent([obs])


def test_a_card_line_still_says_its_observation_did_not_validate() -> None:
    droop = {
        "resourceType": "Observation",
        "id": "d",
        "status": "final",
        "subject": {"reference": f"Patient/{PATIENT}"},
        "effectiveDateTime": "2026-11-25T11:00:00Z",
        "valueBoolean": True,
        "note": "not a list",
        "code": {"coding": [{"system": SNOMED, "code": "280816001"}]},
    }
    result = evaluate([droop], PATIENT, KNOWLEDGE, NOW, "http://cds.test")
    assert result.cards[0]["extension"]["org.weakness-triage"]["findings"][0]["flags"] == ["did-not-validate"]
    assert result.stats.did_not_validate == 1


# ---- nesting_depth ---------------------------------------------------------------------------------------------


def reference_depth(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max((reference_depth(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((reference_depth(v) for v in value), default=0)
    return 0


tricky_text = st.text(alphabet=st.sampled_from(list('ab[]{}"\\/\n\u00e9\u2028')), max_size=8)
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(10**6), 10**6)
    | st.floats(allow_nan=False, allow_infinity=False)
    | tricky_text,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(tricky_text, children, max_size=4),
    max_leaves=40,
)


@settings(max_examples=400, deadline=None)
@given(json_values, st.booleans())
def test_nesting_depth_counts_levels_of_the_parsed_json(value: Any, ascii_only: bool) -> None:
    raw = json.dumps(value).encode() if ascii_only else orjson.dumps(value)
    assert nesting_depth(raw, 64) == reference_depth(value)


def test_nesting_depth_stops_counting_past_the_limit() -> None:
    deep: dict[str, Any] = {}
    node = deep
    for _ in range(200):
        node["a"] = {}
        node = node["a"]
    assert nesting_depth(orjson.dumps(deep), 64) == 65
    assert nesting_depth(b'["[[[[", "\\"]]]", {"k": [[]]}]', 64) == 4


def test_deeper_than_guards_fhir_resources_validation_at_64_levels_and_beyond_orjsons_own_limit() -> None:
    def nested(levels: int) -> dict[str, Any]:
        value: dict[str, Any] = {}
        for _ in range(levels - 1):
            value = {"a": value}
        return value

    assert deeper_than(nested(64)) is False and deeper_than(nested(65)) is True
    assert deeper_than(nested(400)) is True  # orjson.dumps refuses past 254 levels: still "too deep"
