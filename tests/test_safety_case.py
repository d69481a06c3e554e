"""The clinical safety case kept true: the hazard log cites only evidence that exists, the rendered documents are
current, every rule is traced to scenarios, content changes need a reviewed release, and every card carries the
knowledge version in its extension and in the card log."""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
import yaml

from cds_service.cli import main as cli_main
from cds_service.knowledge.model import Knowledge
from cds_service.safety.case import HAZARDS, SafetyDocs
from cds_service.safety.hazards import HazardLog, evidence_problems
from cds_service.safety.traceability import read_scenarios, run
from cds_service.settings import REPO_ROOT
from cds_service.store import Store
from tests.support.requests_factory import PATIENT_VIEW, bundle, fhir_authorization, hook_request, observation
from tests.support.service_server import ServiceServer
from tests.support.stub_fhir import Reply, StubFhirServer

SCENARIOS = REPO_ROOT / "tests" / "scenarios"
NOW = "2026-11-25T12:00:00Z"
PATIENT = "safety-pat"
GROUPS = {
    "Emergency sign missed": 7,  # coding, answer code, specific concept, malformed, paging, read in part, FHIR server
    "False emergency alarm": 6,  # absent/negated, retracted, stale, chronic/sequela, someone else's, instrument names
    "Alert fatigue": 1,
    "Wrong patient": 1,
    "Knowledge changed without review": 1,
    "Service unavailable or slow": 1,
    "A card misread": 2,  # summary and indicator; value without scale or time
    "Security failure": 2,  # data exposed; untrusted caller
}


def _released() -> str:
    """The content version of the committed release (content/weakness/release.yaml)."""
    text = (REPO_ROOT / "content" / "weakness" / "release.yaml").read_text()
    found = re.search(r'content_version: "([^"]+)"', text)
    assert found is not None
    return found.group(1)


RELEASED = _released()


def _droop(patient: str, **fields: object) -> dict[str, object]:
    return observation(
        "280816001", patient_id=patient, valueBoolean=True, effectiveDateTime="2026-11-25T10:00:00Z", **fields
    )


# ---- the hazard log and the rendered documents ---------------------------------------------------------------


def test_the_hazard_log_has_every_hazard_of_the_issue() -> None:
    log = HazardLog.load(REPO_ROOT / HAZARDS)
    groups: dict[str, int] = {}
    for hazard in log.hazards:
        groups[hazard["group"]] = groups.get(hazard["group"], 0) + 1
        assert all(m["evidence"] for m in hazard["mitigations"]), hazard["id"]
    assert groups == GROUPS


def test_the_hazard_log_cites_only_tests_and_scenarios_that_exist() -> None:
    log = HazardLog.load(REPO_ROOT / HAZARDS)
    assert evidence_problems(log, REPO_ROOT) == []
    assert any("::" in ref for ref in log.evidence()) and any(ref.endswith(".yaml") for ref in log.evidence())


def test_a_cited_test_or_scenario_that_does_not_exist_is_named(tmp_path: Path) -> None:
    data = yaml.safe_load((REPO_ROOT / HAZARDS).read_text(encoding="utf-8"))
    mitigation = data["hazards"][0]["mitigations"][0]
    mitigation["evidence"] = [
        "tests/test_scenarios.py::test_scenario_over_http[001-facial-droop-boolean-true]",  # a parametrized id
        "tests/test_scenarios.py::test_that_was_renamed",
        "tests/test_nowhere.py::test_anything",
        "tests/scenarios/999-never-written.yaml",
        "a sentence, not a test",
    ]
    mitigation["see"] = ["docs/safety/missing.md"]
    (tmp_path / "hazards.yaml").write_text(yaml.safe_dump(data), encoding="utf-8")
    problems = evidence_problems(HazardLog.load(tmp_path / "hazards.yaml"), REPO_ROOT)
    hazard = data["hazards"][0]["id"]
    assert problems == [
        f"{hazard} mitigation 1: tests/test_scenarios.py::test_that_was_renamed: no such test function in that file",
        f"{hazard} mitigation 1: tests/test_nowhere.py::test_anything: no such test file",
        f"{hazard} mitigation 1: tests/scenarios/999-never-written.yaml: no such scenario",
        f"{hazard} mitigation 1: a sentence, not a test: neither tests/<file>.py::<test> nor "
        "tests/scenarios/<NNN-name>.yaml",
        f"{hazard} mitigation 1: docs/safety/missing.md: no such document",
    ]


def test_the_hazard_log_and_the_safety_case_are_up_to_date(knowledge: Knowledge) -> None:
    stale = SafetyDocs.build(REPO_ROOT, knowledge).stale()
    assert stale == [], f"{stale} out of date: run `cds-service safety render`"


def test_safety_check_fails_on_a_stale_report_and_render_repairs_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    repo = tmp_path / "repo"
    shutil.copytree(REPO_ROOT / "docs" / "safety", repo / "docs" / "safety")
    shutil.copytree(REPO_ROOT / "tests", repo / "tests", ignore=shutil.ignore_patterns("__pycache__", "artefacts"))
    shutil.copytree(REPO_ROOT / "content", repo / "content")  # the changelog the hazard log cites
    report = repo / "docs" / "safety" / "safety-case.md"
    report.write_text(report.read_text(encoding="utf-8").replace("Content version", "Content vershun"))
    assert cli_main(["safety", "check", "--repo", str(repo)]) == 1
    assert "safety-case.md: out of date" in capsys.readouterr().err
    assert cli_main(["safety", "render", "--repo", str(repo)]) == 0
    assert cli_main(["safety", "check", "--repo", str(repo)]) == 0
    assert report.read_text(encoding="utf-8") == (REPO_ROOT / "docs" / "safety" / "safety-case.md").read_text()


def test_the_documents_say_that_silence_is_not_an_all_clear() -> None:
    case = (REPO_ROOT / "docs" / "safety" / "safety-case.md").read_text(encoding="utf-8")
    integration = (REPO_ROOT / "docs" / "safety" / "ehr-integration.md").read_text(encoding="utf-8")
    assert "**Silence is not an all-clear.**" in case and "**It advises; it does not diagnose.**" in case
    assert "## Silence is not an all-clear" in integration
    assert "decision support unavailable" in integration and "read-in-part card" in integration


# ---- rule traceability: check-content -------------------------------------------------------------------------


def _scenarios_without(tmp_path: Path, pattern: str) -> Path:
    """A copy of the scenarios folder without the files whose text matches `pattern`."""
    folder = tmp_path / "scenarios"
    folder.mkdir()
    for path in SCENARIOS.glob("*.yaml"):
        if not re.search(pattern, path.read_text(encoding="utf-8"), re.IGNORECASE):
            shutil.copy(path, folder / path.name)
    return folder


def test_check_content_names_a_rule_no_scenario_fires(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = _scenarios_without(tmp_path, r"l'?\s?hermitte|electric")
    assert cli_main(["check-content", "--scenarios", str(folder)]) == 2
    err = capsys.readouterr().err
    assert "rule 'electric-shocks-on-neck-flexion': no scenario fires it" in err
    assert "stroke-sign-facial-droop" not in err


def test_check_content_names_a_rule_without_a_twin(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = _scenarios_without(tmp_path, r"^title: 'Twin of 023")
    assert cli_main(["check-content", "--scenarios", str(folder)]) == 2
    err = capsys.readouterr().err
    assert "rule 'loss-of-bowel-control': no scenario holds one of its findings (bowel-incontinence)" in err
    assert err.count("rule '") == 1


def test_check_content_refuses_a_missing_scenarios_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main(["check-content", "--scenarios", str(tmp_path / "none")]) == 2
    assert "no scenarios folder here" in capsys.readouterr().err


# ---- the content release --------------------------------------------------------------------------------------


@pytest.fixture
def content_copy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    content = tmp_path / "content"
    shutil.copytree(REPO_ROOT / "content", content)
    monkeypatch.setenv("CDS_CONTENT_DIR", str(content))
    return content


def test_check_content_refuses_content_changed_since_its_review(
    content_copy: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rules = content_copy / "weakness" / "rules.yaml"
    rules.write_text("# a comment changes no meaning\n" + rules.read_text(encoding="utf-8"), encoding="utf-8")
    assert cli_main(["check-content"]) == 0
    capsys.readouterr()
    rules.write_text(rules.read_text(encoding="utf-8").replace("acute_window: 72h", "acute_window: 96h"))
    assert cli_main(["check-content"]) == 2
    err = capsys.readouterr().err
    assert f"release.yaml: the clinical content changed since {RELEASED} was reviewed" in err
    digest = re.search(r"content_digest: ([0-9a-f]{64})", err)
    assert digest is not None
    release = content_copy / "weakness" / "release.yaml"
    text = re.sub(r"content_digest: \w+", f"content_digest: {digest.group(1)}", release.read_text())
    release.write_text(text)
    assert cli_main(["check-content"]) == 0


def test_check_content_refuses_a_version_without_a_reviewed_changelog_entry(
    content_copy: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    release = content_copy / "weakness" / "release.yaml"
    changelog = content_copy / "CHANGELOG.md"
    release.write_text(release.read_text().replace(f'content_version: "{RELEASED}"', 'content_version: "9999.1.1"'))
    assert cli_main(["check-content"]) == 2
    assert "CHANGELOG.md: no `## 9999.1.1` entry" in capsys.readouterr().err
    entry = "## 9999.1.1\n\n- The acute window of the emergency tier is unchanged (a test entry).\n\n"
    original = changelog.read_text()
    changelog.write_text(original.replace(f"## {RELEASED}", entry + f"## {RELEASED}", 1))
    assert cli_main(["check-content"]) == 2
    assert "needs the line `Reviewed by: Clinical safety officer, weakness-triage team`" in capsys.readouterr().err
    reviewed = entry.replace("\n\n-", "\n\nReviewed by: Clinical safety officer, weakness-triage team\n\n-", 1)
    changelog.write_text(original.replace(f"## {RELEASED}", reviewed + f"## {RELEASED}", 1))
    assert cli_main(["check-content"]) == 0
    assert "9999.1.1 (reviewed by Clinical safety officer" in capsys.readouterr().out


# ---- the knowledge version and the basis on every card --------------------------------------------------------


@pytest.fixture(scope="module")
def scenario_cards(knowledge: Knowledge) -> list[tuple[str, dict[str, object]]]:
    from cds_service.domain.pipeline import evaluate

    return [
        (scenario.name, card)
        for scenario in read_scenarios(SCENARIOS)
        for card in evaluate(scenario.observations, scenario.patient, knowledge, scenario.now, "http://x").cards
    ]


def test_every_card_carries_the_content_version_and_its_rules(
    knowledge: Knowledge, scenario_cards: list[tuple[str, dict[str, object]]]
) -> None:
    assert len({card["indicator"] for _, card in scenario_cards}) == 3
    for name, card in scenario_cards:
        extension = card["extension"]["org.weakness-triage"]  # type: ignore[index]
        assert extension["content_version"] == knowledge.release.content_version == RELEASED, name
        if card["indicator"] in ("critical", "warning"):
            assert extension["rules"] and set(extension["rules"]) <= {r.id for r in knowledge.rules}, name


RECORDED_WHEN = re.compile(r"; recorded \d+ \w+ ago \(\d{1,2} \w{3} \d{4} \d{2}:\d{2} UTC\)|; time not recorded")


def test_every_card_line_says_what_was_recorded_and_when(
    knowledge: Knowledge, scenario_cards: list[tuple[str, dict[str, object]]]
) -> None:
    labels = {finding.id: finding.label for finding in knowledge.findings.values()}
    checked = 0
    for name, card in scenario_cards:
        findings = card["extension"]["org.weakness-triage"].get("findings", [])  # type: ignore[index, attr-defined]
        lines = [line for line in str(card["detail"]).splitlines() if line.startswith("- **")]
        assert len(lines) == len(findings), name
        for line, finding in zip(lines, findings, strict=True):
            assert line.startswith(f"- **{labels[finding['id']]}**"), (name, line)
            assert RECORDED_WHEN.search(line), (name, line)
            if "time-not-recorded" in finding.get("flags", []):
                assert "time not recorded" in line, (name, line)
            checked += 1
    assert checked > 150


def test_a_score_line_shows_its_maximum(scenario_cards: list[tuple[str, dict[str, object]]]) -> None:
    [card] = [card for name, card in scenario_cards if name == "042-nihss-facial-palsy-2"]
    assert "NIHSS facial palsy 2 of 3; recorded 1 h ago" in str(card["detail"])


class FhirAnswer:
    def __init__(self) -> None:
        self.observations: list[dict[str, object]] = []

    def __call__(self, _path: str) -> Reply:
        return Reply(body=bundle(self.observations))


@pytest.fixture(scope="module")
def fhir() -> Iterator[tuple[StubFhirServer, FhirAnswer]]:
    answer = FhirAnswer()
    with StubFhirServer(answer) as server:
        yield server, answer


@pytest.fixture(scope="module")
def served(fhir: tuple[StubFhirServer, FhirAnswer]) -> Iterator[ServiceServer]:
    env = {"CDS_ALLOWED_FHIR_SERVERS": fhir[0].base_url, "CDS_ALLOW_HTTP_LOOPBACK": "1"}
    with ServiceServer(env=env) as server:
        yield server


def _call(served: ServiceServer, body: dict[str, object]) -> list[dict[str, object]]:
    response = requests.post(
        f"{served.base_url}/cds-services/{PATIENT_VIEW}", json=body, headers={"X-CDS-Evaluation-Time": NOW}, timeout=10
    )
    assert response.status_code == 200, response.text
    return list(response.json()["cards"])


def _fetch_request(fhir_server: str) -> dict[str, object]:
    return hook_request(PATIENT, fhirServer=fhir_server, fhirAuthorization=fhir_authorization("t0k"))


def test_a_fhir_answer_holding_another_patients_sign_raises_no_card(
    served: ServiceServer, fhir: tuple[StubFhirServer, FhirAnswer]
) -> None:
    server, answer = fhir
    answer.observations = [_droop("someone-else")]
    assert _call(served, _fetch_request(server.base_url)) == []
    answer.observations = [_droop("someone-else"), _droop(PATIENT)]
    assert [card["indicator"] for card in _call(served, _fetch_request(server.base_url))] == ["critical"]


def test_the_card_log_keeps_the_content_version_and_the_rules(served: ServiceServer) -> None:
    [card] = _call(served, hook_request(PATIENT, observations=[_droop(PATIENT)]))
    extension = card["extension"]["org.weakness-triage"]  # type: ignore[index]
    issued = Store(served.env["CDS_DATABASE_URL"]).issued_card(str(card["uuid"]))
    assert issued is not None
    assert (
        (issued.content_version, issued.rules)
        == (RELEASED, extension["rules"])
        == (
            extension["content_version"],
            ["stroke-sign-facial-droop"],
        )
    )


def test_the_scenarios_run_in_process_as_check_content_runs_them(knowledge: Knowledge) -> None:
    """The in-process run sees the Observations as the tests' scenario loader builds them (ids, subject)."""
    [scenario] = [s for s in read_scenarios(SCENARIOS) if s.name == "120-other-patient-only"]
    outcome = run(scenario, knowledge)
    assert outcome.fired == frozenset() and outcome.indicators == ()
    [droop] = [s for s in read_scenarios(SCENARIOS) if s.name == "001-facial-droop-boolean-true"]
    assert run(droop, knowledge).fired == {"stroke-sign-facial-droop"}
