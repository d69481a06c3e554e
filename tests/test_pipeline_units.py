"""Unit tests of the pure pipeline steps (no server): observations, findings, triage, cards."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fhir.resources.R4B.servicerequest import ServiceRequest

from cds_service.cli import main as cli_main
from cds_service.domain.cards import escape_markdown
from cds_service.domain.fhir_time import describe_age, parse_fhir_datetime
from cds_service.domain.findings import recognise
from cds_service.domain.observations import select_observations, to_fact
from cds_service.domain.pipeline import evaluate
from cds_service.domain.prefilter import is_relevant
from cds_service.domain.triage import current_statements
from cds_service.hooks.openapi import openapi_yaml
from cds_service.knowledge.model import Knowledge
from cds_service.settings import REPO_ROOT
from tests.support.requests_factory import bundle, hook_request, observation

NOW = datetime(2026, 11, 25, 12, tzinfo=UTC)
SNOMED = "http://snomed.info/sct"


def at(hours_ago: float) -> str:
    return (NOW - timedelta(hours=hours_ago)).isoformat().replace("+00:00", "Z")


def cards_for(knowledge: Knowledge, *observations: dict[str, Any]) -> list[dict[str, Any]]:
    return evaluate(list(observations), "pat-1", knowledge, NOW, "http://cds.test").cards


def test_unrelated_observations_are_skipped_before_validation(knowledge: Knowledge) -> None:
    heart_rate = observation("8867-4", system="http://loinc.org", valueQuantity={"value": 80})
    droop = observation("280816001", valueBoolean=True)
    assert not is_relevant(heart_rate, knowledge) and is_relevant(droop, knowledge)
    facts, stats = select_observations([heart_rate, droop], "pat-1", knowledge)
    assert [f.reference for f in facts] == [f"Observation/{droop['id']}"]
    assert (stats.received, stats.not_relevant, stats.kept) == (2, 1, 1)


def test_a_validation_problem_names_the_element_but_never_its_value() -> None:
    fact = to_fact(observation("280816001", valueBoolean=True, note="PATIENT-SECRET-TEXT"), "Observation/x")
    assert fact.validation_error and fact.validation_error.startswith("note")
    assert "PATIENT-SECRET-TEXT" not in fact.validation_error


def test_entered_in_error_never_counts(knowledge: Knowledge) -> None:
    obs = observation("280816001", valueBoolean=True, status="entered-in-error", effectiveDateTime=at(1))
    assert cards_for(knowledge, obs) == []


def test_latest_record_wins_and_an_exact_tie_keeps_the_possible_sign(knowledge: Knowledge) -> None:
    present = observation("280816001", valueBoolean=True, effectiveDateTime=at(2))
    absent = observation("280816001", valueBoolean=False, effectiveDateTime=at(2))
    facts, _ = select_observations([absent, present], "pat-1", knowledge)
    current = current_statements(recognise(facts, knowledge), NOW, knowledge)
    assert next(item.present for item in current if item.finding == "facial-droop") is True
    newer_absent = observation("280816001", valueBoolean=False, effectiveDateTime=at(1))
    assert cards_for(knowledge, present, newer_absent) == []


def test_summary_stays_under_140_characters_with_every_emergency_sign(knowledge: Knowledge) -> None:
    codes = [f.codes[0] for f in knowledge.findings.values() if f.guide_section == "emergency" and f.codes]
    observations = [
        observation(
            c.code,
            system=c.system,
            valueBoolean=True,
            effectiveDateTime=at(1),
            component=[
                {
                    "code": {"coding": [{"system": "http://loinc.org", "code": "64750-3"}]},
                    "valueCodeableConcept": {"coding": [{"system": SNOMED, "code": "24484000"}]},
                }
            ],
        )
        for c in codes
    ]
    card = cards_for(knowledge, *observations)[0]
    assert card["indicator"] == "critical" and len(card["summary"]) < 140
    assert "more" in card["summary"]


def test_ehr_text_cannot_inject_markdown_or_html() -> None:
    assert escape_markdown("<img src=x onerror=alert(1)> *bold* [link](http://x)") == (
        "\\<img src=x onerror=alert\\(1\\)\\> \\*bold\\* \\[link\\]\\(http://x\\)"
    )


def test_self_management_card_offers_valid_draft_referrals(knowledge: Knowledge) -> None:
    asthenia = observation("13791008", valueBoolean=True, effectiveDateTime=at(5))
    card = cards_for(knowledge, asthenia)[0]
    assert card["indicator"] == "info" and card["selectionBehavior"] == "any"
    for suggestion in card["suggestions"]:
        resource = suggestion["actions"][0]["resource"]
        ServiceRequest.model_validate(resource)
        assert resource["subject"] == {"reference": "Patient/pat-1"} and resource["status"] == "draft"


def test_fhir_times_parse_partial_dates_and_offsets() -> None:
    assert parse_fhir_datetime("2026-11") == datetime(2026, 11, 1, tzinfo=UTC)
    assert parse_fhir_datetime("2026-11-25T07:00:00-05:00") == NOW
    assert parse_fhir_datetime("not a date") is None
    assert describe_age(NOW - timedelta(hours=2), NOW) == "recorded 2 h ago"


def test_openapi_yaml_is_generated_from_the_schemas_and_has_not_drifted() -> None:
    committed = (REPO_ROOT / "openapi.yaml").read_text()
    assert committed == openapi_yaml(), "openapi.yaml drifted: run `make openapi`"


def test_triage_cli_reads_a_bundle_and_prints_text(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "bundle.json"
    path.write_text(
        json.dumps(
            bundle(
                [
                    {"resourceType": "Patient", "id": "pat-1"},
                    observation("280816001", valueBoolean=True, effectiveDateTime=at(1)),
                ]
            )
        )
    )
    assert cli_main(["triage", str(path), "--now", NOW.isoformat()]) == 0
    assert capsys.readouterr().out.startswith("[CRITICAL] Emergency warning sign: Facial droop")


def test_triage_command_runs_as_a_real_process(tmp_path: Path) -> None:
    path = tmp_path / "request.json"
    path.write_text(
        json.dumps(hook_request(observations=[observation("165232002", valueBoolean=True, effectiveDateTime=at(3))]))
    )
    done = subprocess.run(
        [sys.executable, "-m", "cds_service", "triage", str(path), "--now", NOW.isoformat(), "--format", "json"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO_ROOT,
    )
    assert done.returncode == 0, done.stderr
    assert [c["indicator"] for c in json.loads(done.stdout)["cards"]] == ["warning"]


def test_triage_cli_refuses_unreadable_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "x.json"
    path.write_text('{"resourceType": "Patient"}')
    assert cli_main(["triage", str(path)]) == 2
    assert "must be a FHIR Bundle or a CDS Hooks request" in capsys.readouterr().err


def test_a_card_line_says_where_and_by_whom_the_sign_was_recorded(knowledge: Knowledge) -> None:
    exam = [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "exam"}]}]
    droop = observation(
        "280816001",
        valueBoolean=True,
        effectiveDateTime=at(2),
        category=exam,
        performer=[{"reference": "Practitioner/p1", "display": "Dr Ada Lovelace"}],
    )
    [card] = cards_for(knowledge, droop)
    assert "**Facial droop**: Yes; recorded 2 h ago" in card["detail"]
    assert "on examination, by Dr Ada Lovelace" in card["detail"]
    [bare] = cards_for(knowledge, observation("280816001", valueBoolean=True, effectiveDateTime=at(2)))
    assert "on examination" not in bare["detail"] and ", by " not in bare["detail"]
