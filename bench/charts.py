"""Benchmark charts: realistic patient-view requests (vitals, labs, social history and a few guide findings).

Every chart is deterministic for a given seed and `now`; times are relative to `now` so the cards do not depend on
the day the benchmark runs. Each workload also says which card indicators the answer must have, so the benchmark
measures a correct answer, not an error page.
"""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

PATIENT_ID = "bench-patient"
SNOMED = "http://snomed.info/sct"
LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"
CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
INTERPRETATION = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation"

# (LOINC code, display, UCUM unit, low, high, decimals)
VITALS: list[tuple[str, str, str, float, float, int]] = [
    ("8867-4", "Heart rate", "/min", 55, 110, 0),
    ("9279-1", "Respiratory rate", "/min", 10, 24, 0),
    ("2708-6", "Oxygen saturation in Arterial blood", "%", 91, 100, 0),
    ("8310-5", "Body temperature", "Cel", 36.0, 38.4, 1),
    ("29463-7", "Body weight", "kg", 60, 95, 1),
    ("8302-2", "Body height", "cm", 155, 190, 0),
    ("39156-5", "Body mass index (BMI) [Ratio]", "kg/m2", 19, 34, 1),
]
# (LOINC code, display, UCUM unit, low, high, decimals, reference low, reference high)
LABS: list[tuple[str, str, str, float, float, int, float, float]] = [
    ("2345-7", "Glucose [Mass/volume] in Serum or Plasma", "mg/dL", 70, 190, 0, 70, 99),
    ("4548-4", "Hemoglobin A1c/Hemoglobin.total in Blood", "%", 4.8, 8.2, 1, 4.0, 5.6),
    ("2951-2", "Sodium [Moles/volume] in Serum or Plasma", "mmol/L", 131, 146, 0, 136, 145),
    ("2823-3", "Potassium [Moles/volume] in Serum or Plasma", "mmol/L", 3.2, 5.4, 1, 3.5, 5.1),
    ("2160-0", "Creatinine [Mass/volume] in Serum or Plasma", "mg/dL", 0.6, 1.6, 2, 0.7, 1.3),
    ("718-7", "Hemoglobin [Mass/volume] in Blood", "g/dL", 10.5, 17.0, 1, 12.0, 17.5),
    ("6690-2", "Leukocytes [#/volume] in Blood by Automated count", "10*3/uL", 3.5, 12.5, 1, 4.5, 11.0),
    ("777-3", "Platelets [#/volume] in Blood by Automated count", "10*3/uL", 140, 420, 0, 150, 400),
    ("1742-6", "Alanine aminotransferase [Enzymatic activity/volume] in Serum or Plasma", "U/L", 8, 70, 0, 7, 56),
    ("3016-3", "Thyrotropin [Units/volume] in Serum or Plasma", "m[IU]/L", 0.3, 5.5, 2, 0.4, 4.0),
    ("1988-5", "C reactive protein [Mass/volume] in Serum or Plasma", "mg/L", 0.2, 25, 1, 0.0, 10.0),
]


@dataclass(frozen=True)
class Workload:
    """One benchmark workload: its request body, what its answer must contain, and how to describe it."""

    id: str
    title: str
    body: dict[str, Any]
    expect_indicators: list[str]  # the indicators of the answer's cards, in order
    observations: int
    relevant: int  # Observations the guide's codes or text can recognise (the rest are vitals and labs)


def _ts(when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def _category(code: str, display: str) -> list[dict[str, Any]]:
    return [{"coding": [{"system": CATEGORY, "code": code, "display": display}]}]


def _base(
    obs_id: str,
    category: tuple[str, str],
    coding: list[dict[str, str]],
    text: str | None,
    when: datetime,
    patient_id: str,
) -> dict[str, Any]:
    code: dict[str, Any] = {"coding": coding}
    if text:
        code["text"] = text
    return {
        "resourceType": "Observation",
        "id": obs_id,
        "meta": {"lastUpdated": _ts(when + timedelta(minutes=7))},
        "status": "final",
        "category": _category(*category),
        "code": code,
        "subject": {"reference": f"Patient/{patient_id}"},
        "encounter": {"reference": f"Encounter/enc-{when:%Y%m%d}"},
        "effectiveDateTime": _ts(when),
        "issued": _ts(when + timedelta(minutes=5)),
        "performer": [{"reference": "Practitioner/bench-nurse-1", "display": "Pat Nurse, RN"}],
    }


def _quantity(value: float, unit: str, decimals: int) -> dict[str, Any]:
    return {"value": round(value, decimals) if decimals else round(value), "unit": unit, "system": UCUM, "code": unit}


def vital(rng: random.Random, obs_id: str, when: datetime, patient_id: str) -> dict[str, Any]:
    if rng.random() < 0.15:  # blood pressure panel: two components, no value of its own
        obs = _base(
            obs_id,
            ("vital-signs", "Vital Signs"),
            [{"system": LOINC, "code": "85354-9", "display": "Blood pressure panel with all children optional"}],
            "Blood pressure",
            when,
            patient_id,
        )
        obs["component"] = [
            {
                "code": {"coding": [{"system": LOINC, "code": "8480-6", "display": "Systolic blood pressure"}]},
                "valueQuantity": _quantity(rng.uniform(100, 170), "mm[Hg]", 0),
            },
            {
                "code": {"coding": [{"system": LOINC, "code": "8462-4", "display": "Diastolic blood pressure"}]},
                "valueQuantity": _quantity(rng.uniform(60, 100), "mm[Hg]", 0),
            },
        ]
        return obs
    code, display, unit, low, high, decimals = rng.choice(VITALS)
    obs = _base(
        obs_id,
        ("vital-signs", "Vital Signs"),
        [{"system": LOINC, "code": code, "display": display}],
        None,
        when,
        patient_id,
    )
    obs["valueQuantity"] = _quantity(rng.uniform(low, high), unit, decimals)
    return obs


def lab(rng: random.Random, obs_id: str, when: datetime, patient_id: str) -> dict[str, Any]:
    code, display, unit, low, high, decimals, ref_low, ref_high = rng.choice(LABS)
    obs = _base(
        obs_id,
        ("laboratory", "Laboratory"),
        [{"system": LOINC, "code": code, "display": display}],
        display.split(" [")[0],
        when,
        patient_id,
    )
    value = rng.uniform(low, high)
    obs["valueQuantity"] = _quantity(value, unit, decimals)
    flag = "L" if value < ref_low else "H" if value > ref_high else "N"
    obs["interpretation"] = [
        {
            "coding": [
                {"system": INTERPRETATION, "code": flag, "display": {"L": "Low", "H": "High", "N": "Normal"}[flag]}
            ]
        }
    ]
    obs["referenceRange"] = [{"low": _quantity(ref_low, unit, decimals), "high": _quantity(ref_high, unit, decimals)}]
    return obs


def smoking(obs_id: str, when: datetime, patient_id: str) -> dict[str, Any]:
    obs = _base(
        obs_id,
        ("social-history", "Social History"),
        [{"system": LOINC, "code": "72166-2", "display": "Tobacco smoking status"}],
        None,
        when,
        patient_id,
    )
    obs["valueCodeableConcept"] = {"coding": [{"system": SNOMED, "code": "8517006", "display": "Ex-smoker"}]}
    return obs


def _finding(
    obs_id: str,
    category: tuple[str, str],
    system: str,
    code: str,
    display: str,
    when: datetime,
    patient_id: str,
    **value: Any,
) -> dict[str, Any]:
    obs = _base(obs_id, category, [{"system": system, "code": code, "display": display}], None, when, patient_id)
    obs.update(value)
    return obs


EXAM = ("exam", "Exam")
SURVEY = ("survey", "Survey")


def _yes_no(answer: bool) -> dict[str, Any]:
    code, display = ("373066001", "Yes") if answer else ("373067005", "No")
    return {"coding": [{"system": SNOMED, "code": code, "display": display}]}


def mixed_findings(now: datetime, patient_id: str, prefix: str) -> list[dict[str, Any]]:
    """A few findings as a neurology clinic records them: one new facial droop (critical) and negative screens."""
    back = {"coding": [{"system": SNOMED, "code": "52612000", "display": "Lumbar region structure"}]}
    return [
        _finding(
            f"{prefix}-droop",
            EXAM,
            SNOMED,
            "280816001",
            "Facial palsy",
            now - timedelta(hours=3),
            patient_id,
            valueBoolean=True,
        ),
        _finding(
            f"{prefix}-gcs",
            EXAM,
            LOINC,
            "9269-2",
            "Glasgow coma score total",
            now - timedelta(hours=3),
            patient_id,
            valueInteger=15,
        ),
        _finding(
            f"{prefix}-phq9",
            SURVEY,
            LOINC,
            "44261-6",
            "Patient Health Questionnaire 9 item (PHQ-9) total score [Reported]",
            now - timedelta(days=20),
            patient_id,
            valueInteger=6,
        ),
        _finding(
            f"{prefix}-pain",
            SURVEY,
            LOINC,
            "72514-3",
            "Pain severity - 0-10 verbal numeric rating [Score] - Reported",
            now - timedelta(days=30),
            patient_id,
            valueInteger=3,
            bodySite=back,
        ),
        _finding(
            f"{prefix}-dizzy",
            EXAM,
            LOINC,
            "111551-8",
            "Symptom absent",
            now - timedelta(hours=3),
            patient_id,
            valueCodeableConcept={"coding": [{"system": SNOMED, "code": "404640003", "display": "Dizziness"}]},
        ),
    ]


def info_findings(now: datetime, patient_id: str, prefix: str) -> list[dict[str, Any]]:
    """Only info-tier findings: a positive GAD-7 (contact) and asthenia (self-management)."""
    return [
        _finding(
            f"{prefix}-gad7",
            SURVEY,
            LOINC,
            "70274-6",
            "Generalized anxiety disorder 7 item (GAD-7) total score [Reported.PHQ]",
            now - timedelta(days=5),
            patient_id,
            valueInteger=12,
        ),
        _finding(
            f"{prefix}-asthenia",
            EXAM,
            SNOMED,
            "13791008",
            "Asthenia",
            now - timedelta(days=2),
            patient_id,
            valueBoolean=True,
        ),
        _finding(
            f"{prefix}-phq2",
            SURVEY,
            LOINC,
            "55758-7",
            "Patient Health Questionnaire 2 item (PHQ-2) total score [Reported]",
            now - timedelta(days=5),
            patient_id,
            valueInteger=1,
        ),
        _finding(
            f"{prefix}-gcs",
            EXAM,
            LOINC,
            "9269-2",
            "Glasgow coma score total",
            now - timedelta(days=2),
            patient_id,
            valueInteger=15,
        ),
        _finding(
            f"{prefix}-droop",
            EXAM,
            SNOMED,
            "280816001",
            "Facial palsy",
            now - timedelta(days=2),
            patient_id,
            valueBoolean=False,
        ),
    ]


def negative_findings(now: datetime, patient_id: str, prefix: str) -> list[dict[str, Any]]:
    """A full stroke screen and mood screens, negative everywhere: no card."""
    when = now - timedelta(hours=2)
    return [
        _finding(f"{prefix}-droop", EXAM, SNOMED, "280816001", "Facial palsy", when, patient_id, valueBoolean=False),
        _finding(
            f"{prefix}-numb",
            EXAM,
            SNOMED,
            "309557009",
            "Numbness of face",
            when,
            patient_id,
            valueCodeableConcept={"coding": [{"system": SNOMED, "code": "2667000", "display": "Absent"}]},
        ),
        _finding(
            f"{prefix}-hemi",
            EXAM,
            SNOMED,
            "20022000",
            "Hemiparesis",
            when,
            patient_id,
            valueCodeableConcept=_yes_no(False),
        ),
        _finding(
            f"{prefix}-speech",
            EXAM,
            SNOMED,
            "29164008",
            "Disturbance in speech",
            when,
            patient_id,
            interpretation=[{"coding": [{"system": INTERPRETATION, "code": "NEG", "display": "Negative"}]}],
        ),
        _finding(f"{prefix}-gcs", EXAM, LOINC, "9269-2", "Glasgow coma score total", when, patient_id, valueInteger=15),
        _finding(
            f"{prefix}-nihss-sens",
            EXAM,
            LOINC,
            "70193-8",
            "Sensory [NIH Stroke Scale]",
            when,
            patient_id,
            valueInteger=0,
        ),
        _finding(
            f"{prefix}-fast",
            EXAM,
            SNOMED,
            "716800008",
            "Face Arm Speech Test score",
            when,
            patient_id,
            component=[
                {
                    "code": {"coding": [{"system": SNOMED, "code": "89545001", "display": "Face structure"}]},
                    "valueCodeableConcept": _yes_no(False),
                },
                {
                    "code": {"coding": [{"system": SNOMED, "code": "53120007", "display": "Upper limb structure"}]},
                    "valueCodeableConcept": _yes_no(False),
                },
                {
                    "code": {"coding": [{"system": SNOMED, "code": "87335007", "display": "Speaking"}]},
                    "valueCodeableConcept": _yes_no(False),
                },
            ],
        ),
        _finding(
            f"{prefix}-phq9",
            SURVEY,
            LOINC,
            "44261-6",
            "Patient Health Questionnaire 9 item (PHQ-9) total score [Reported]",
            now - timedelta(days=3),
            patient_id,
            valueInteger=4,
        ),
        _finding(
            f"{prefix}-gad7",
            SURVEY,
            LOINC,
            "70274-6",
            "Generalized anxiety disorder 7 item (GAD-7) total score [Reported.PHQ]",
            now - timedelta(days=3),
            patient_id,
            valueInteger=3,
        ),
        _finding(
            f"{prefix}-item9",
            SURVEY,
            LOINC,
            "44260-8",
            "Thoughts that you would be better off dead, or of hurting yourself in some way in last 2 weeks "
            "[Reported.PHQ]",
            now - timedelta(days=3),
            patient_id,
            valueInteger=0,
        ),
    ]


def chart(
    now: datetime, count: int, findings: list[dict[str, Any]], seed: int, patient_id: str = PATIENT_ID
) -> list[dict[str, Any]]:
    """`count` Observations over the last year: the given findings, the rest vitals (70%), labs and social history,
    newest first (as `_sort=-date` returns them)."""
    rng = random.Random(seed)
    observations = list(findings)
    for index in range(count - len(findings)):
        when = now - timedelta(minutes=rng.randint(60, 365 * 24 * 60))
        obs_id = f"bench-{seed}-{index}"
        draw = rng.random()
        if draw < 0.70:
            observations.append(vital(rng, obs_id, when, patient_id))
        elif draw < 0.98:
            observations.append(lab(rng, obs_id, when, patient_id))
        else:
            observations.append(smoking(obs_id, when, patient_id))
    observations.sort(key=lambda o: o["effectiveDateTime"], reverse=True)
    return observations


def searchset(resources: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "resourceType": "Bundle",
        "type": "searchset",
        "total": len(resources),
        "entry": [
            {
                "fullUrl": f"urn:uuid:{uuid.UUID(int=random.Random(r['id']).getrandbits(128))}",
                "resource": r,
                "search": {"mode": "match"},
            }
            for r in resources
        ],
    }


def patient(patient_id: str = PATIENT_ID) -> dict[str, Any]:
    return {
        "resourceType": "Patient",
        "id": patient_id,
        "name": [{"family": "Bench", "given": ["Alex"]}],
        "gender": "female",
        "birthDate": "1961-04-12",
    }


def hook_request(
    observations: list[dict[str, Any]] | None, patient_id: str = PATIENT_ID, fhir_server: str | None = None
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "hook": "patient-view",
        "hookInstance": "d1577c69-dfbe-44ad-ba6d-3e05e953b2ea",
        "context": {"userId": "Practitioner/bench-doctor", "patientId": patient_id},
    }
    if fhir_server is not None:
        body["fhirServer"] = fhir_server
    if observations is not None:
        body["prefetch"] = {"patient": patient(patient_id), "observations": searchset(observations)}
    return body


def workloads(now: datetime, fhir_server: str | None) -> list[Workload]:
    """W1-W4 as the issue defines them. W3 needs the FHIR server holding `w3_resources(now)`."""
    w1 = chart(now, 100, mixed_findings(now, PATIENT_ID, "w1"), seed=1)
    w2 = chart(
        now,
        1000,
        [f for k in range(10) for f in mixed_findings(now - timedelta(days=40 * k), PATIENT_ID, f"w2-{k}")],
        seed=2,
    )
    w4a = chart(now, 100, info_findings(now, PATIENT_ID, "w4a"), seed=4)
    w4b = chart(now, 100, negative_findings(now, PATIENT_ID, "w4b"), seed=5)
    result = [
        Workload("W1", "patient-view, 100 prefetched Observations", hook_request(w1), ["critical"], 100, 5),
        Workload("W2", "patient-view, 1,000 prefetched Observations", hook_request(w2), ["critical"], 1000, 50),
    ]
    if fhir_server is not None:
        result.append(
            Workload(
                "W3",
                "no prefetch: fetch 100 Observations from the FHIR server",
                hook_request(None, fhir_server=fhir_server),
                ["critical"],
                100,
                5,
            )
        )
    result += [
        Workload("W4a", "info-only chart, 100 Observations", hook_request(w4a), ["info", "info"], 100, 5),
        Workload("W4b", "all-negative chart, 100 Observations", hook_request(w4b), [], 100, 10),
    ]
    return result


def w3_resources(now: datetime) -> list[dict[str, Any]]:
    """What the FHIR server holds for W3: the patient and W1's 100 Observations."""
    return [patient(), *chart(now, 100, mixed_findings(now, PATIENT_ID, "w1"), seed=1)]
