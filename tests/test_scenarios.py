"""Every clinical scenario, through the HTTP API (real server) and through the CLI: same answer both ways."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import requests

from cds_service.cli import main as cli_main
from cds_service.knowledge.model import Knowledge
from tests.support.card_checks import assert_spec_cards
from tests.support.requests_factory import PATIENT_VIEW
from tests.support.scenarios import Scenario, check, load_scenarios
from tests.support.service_server import ServiceServer

SCENARIOS = load_scenarios()


def test_there_are_at_least_sixty_scenarios() -> None:
    assert len(SCENARIOS) >= 60


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.name for s in SCENARIOS])
def test_scenario_over_http(scenario: Scenario, service: ServiceServer) -> None:
    response = requests.post(
        f"{service.base_url}/cds-services/{PATIENT_VIEW}",
        json=scenario.request(),
        headers={"X-CDS-Evaluation-Time": scenario.now},
        timeout=30,
    )
    assert response.status_code == 200, response.text
    assert_spec_cards(response.json())
    cards = response.json()["cards"]
    assert check(scenario, cards) == [], scenario.data["title"]


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.name for s in SCENARIOS])
def test_scenario_through_cli(scenario: Scenario, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    request_file = tmp_path / "request.json"
    request_file.write_text(json.dumps(scenario.request()))
    assert cli_main(["triage", str(request_file), "--now", scenario.now, "--format", "json"]) == 0
    cards = json.loads(capsys.readouterr().out)["cards"]
    assert check(scenario, cards) == [], scenario.data["title"]


def test_every_finding_and_every_card_indicator_is_exercised_by_some_scenario(knowledge: Knowledge) -> None:
    expected = {f for s in SCENARIOS for ids in (s.data.get("expect") or {}).values() for f in ids or []}
    assert set(knowledge.findings) - expected == set()
    tiers_seen = {indicator for s in SCENARIOS for indicator in (s.data.get("expect") or {})}
    assert tiers_seen == {"critical", "warning", "info"}
