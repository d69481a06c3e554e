"""An EHR's malformed Observation is that Observation's problem: any JSON in any element never gives a 500 (or a 400).

Property test through the Flask app: well-formed requests whose Observations carry arbitrary JSON where FHIR
expects structure.
"""

from __future__ import annotations

from typing import Any

from flask.testing import FlaskClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.requests_factory import PATIENT_VIEW, hook_request

SCALAR = (
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=8)
)
JSON = st.recursive(
    SCALAR,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=8,
)
ELEMENTS = [
    "code",
    "status",
    "subject",
    "valueBoolean",
    "valueCodeableConcept",
    "valueInteger",
    "valueQuantity",
    "effectiveDateTime",
    "effectivePeriod",
    "issued",
    "component",
    "bodySite",
    "interpretation",
    "dataAbsentReason",
    "id",
]
FACIAL_PALSY = {"coding": [{"system": "http://snomed.info/sct", "code": "280816001"}]}
# FHIR-shaped containers with arbitrary leaves, so the generator reaches the nested elements the service reads.
CODING = st.fixed_dictionaries(
    {},
    optional={"system": JSON | st.just("http://snomed.info/sct"), "code": JSON | st.just("280816001"), "display": JSON},
)
CONCEPT = st.fixed_dictionaries({}, optional={"coding": st.lists(CODING | JSON, max_size=2) | JSON, "text": JSON})
SHAPED = {
    "code": CONCEPT,
    "valueCodeableConcept": CONCEPT,
    "bodySite": CONCEPT,
    "interpretation": st.lists(CONCEPT | JSON, max_size=2),
    "component": st.lists(
        st.fixed_dictionaries(
            {},
            optional={
                "code": CONCEPT | JSON,
                "valueInteger": JSON,
                "valueCodeableConcept": CONCEPT | JSON,
                "dataAbsentReason": JSON,
            },
        )
        | JSON,
        max_size=3,
    ),
    "effectivePeriod": st.fixed_dictionaries({}, optional={"start": JSON, "end": JSON}),
    "valueQuantity": st.fixed_dictionaries({}, optional={"value": JSON, "unit": JSON}),
    "subject": st.fixed_dictionaries({}, optional={"reference": JSON | st.just("Patient/pat-1")}),
}


@st.composite
def hostile_observation(draw: st.DrawFn) -> dict[str, Any]:
    observation: dict[str, Any] = {
        "resourceType": "Observation",
        "status": "final",
        "code": FACIAL_PALSY,
        "subject": {"reference": "Patient/pat-1"},
        "valueBoolean": True,
    }
    for element in draw(st.lists(st.sampled_from(ELEMENTS), min_size=1, max_size=4, unique=True)):
        observation[element] = draw(SHAPED.get(element, JSON) | JSON)
    return observation


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(observations=st.lists(hostile_observation(), min_size=1, max_size=4))
def test_arbitrary_json_in_observation_elements_never_fails_the_call(
    client: FlaskClient, observations: list[dict[str, Any]]
) -> None:
    response = client.post(f"/cds-services/{PATIENT_VIEW}", json=hook_request(observations=observations))
    assert response.status_code == 200, response.get_data(as_text=True)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    replacements=st.dictionaries(
        st.sampled_from(
            ["hook", "hookInstance", "context", "prefetch", "fhirServer", "fhirAuthorization", "extension"]
        ),
        JSON,
        min_size=1,
        max_size=3,
    )
)
def test_arbitrary_json_in_request_fields_is_a_clear_4xx_never_a_500(
    client: FlaskClient, replacements: dict[str, Any]
) -> None:
    body = {**hook_request(observations=[]), **replacements}
    response = client.post(f"/cds-services/{PATIENT_VIEW}", json=body)
    assert response.status_code in (200, 400, 412), response.get_data(as_text=True)
    if response.status_code != 200:
        assert response.get_json()["issue"][0]["diagnostics"]
