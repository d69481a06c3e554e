"""The example patients, the tester-facing CLI and the sandbox kit's issuer semantics."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
import requests

from cds_service.cli import main
from cds_service.knowledge.examples import load_examples
from tests.support import jwt_kit
from tests.support.requests_factory import PATIENT_VIEW, hook_request
from tests.support.service_server import ServiceServer

EXAMPLES = Path(__file__).resolve().parents[1] / "content" / "examples"
SANDBOX_ISS = "https://sandbox.cds-hooks.org"


def test_example_times_move_with_the_load_time() -> None:
    examples = load_examples(EXAMPLES)
    later = examples.shifted("stroke", examples.reference_time + timedelta(days=3))
    written = examples.by_id["stroke"].bundle
    for before, after in zip(written["entry"], later["entry"], strict=True):
        if "effectiveDateTime" in before["resource"]:
            assert after["resource"]["effectiveDateTime"] != before["resource"]["effectiveDateTime"]
        assert after["resource"].get("birthDate") == before["resource"].get("birthDate")


@pytest.mark.parametrize("example_id", sorted(load_examples(EXAMPLES).by_id))
def test_each_example_gives_the_cards_it_promises(
    example_id: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["examples", "request", example_id]) == 0
    request = tmp_path / "request.json"
    request.write_text(capsys.readouterr().out)
    assert main(["triage", str(request), "--format", "json"]) == 0
    cards = json.loads(capsys.readouterr().out)["cards"]
    assert [c["indicator"] for c in cards] == list(load_examples(EXAMPLES).by_id[example_id].expect)
    for card in cards:  # machine references live in the extension, not in the words
        assert "Observation/" not in card["detail"] and "rule `" not in card["detail"]


@pytest.mark.parametrize(
    ("content", "says"),
    [
        (b"", "is empty"),
        (b"not json", "is not JSON"),
        (b"[1, 2]", "is a JSON array"),
        (b'\xef\xbb\xbf{"resourceType": "Bundle"}', "byte order mark"),
    ],
)
def test_triage_says_what_is_wrong_with_its_input(
    content: bytes, says: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "input.json"
    path.write_bytes(content)
    assert main(["triage", str(path)]) == 2
    assert says in capsys.readouterr().err


def test_triage_text_output_has_no_markdown_escapes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["examples", "request", "contact"]) == 0
    request = tmp_path / "request.json"
    request.write_text(capsys.readouterr().out)
    assert main(["triage", str(request)]) == 0
    text = capsys.readouterr().out
    assert "[INFO]" in text and "\\" not in text and "**" not in text


def test_version_and_help_list_the_environment(capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (["--version"], ["--help"]):
        with pytest.raises(SystemExit) as stop:
            main(argv)
        assert stop.value.code == 0
    out = capsys.readouterr().out
    assert "cds-service 0.1.0" in out and "CDS_PUBLIC_URL" in out and "CDS_TRUSTED_ISSUERS" in out


@pytest.fixture(scope="module")
def prefetch_only(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServiceServer, jwt_kit.SigningKey]]:
    key = jwt_kit.ec_key("sandbox-like")
    issuers = jwt_kit.write_issuers(
        tmp_path_factory.mktemp("kit") / "issuers.yaml",
        [{"iss": SANDBOX_ISS, "jwks": jwt_kit.jwks(key), "fhir_servers": []}],
    )
    env = {"CDS_AUTH": "jwt", "CDS_TRUSTED_ISSUERS": str(issuers), "CDS_CORS_ORIGINS": "http://127.0.0.1:1"}
    with ServiceServer(env=env) as service:
        yield service, key


def test_a_prefetch_only_issuer_may_send_fhir_server_and_is_never_called_back(
    prefetch_only: tuple[ServiceServer, jwt_kit.SigningKey],
) -> None:
    service, key = prefetch_only
    path = f"/cds-services/{PATIENT_VIEW}"

    def call(body: dict[str, object], called: str = path) -> requests.Response:
        token = jwt_kit.sign(key, jwt_kit.claims(SANDBOX_ISS, service.base_url + called))
        headers = {"Authorization": f"Bearer {token}"}
        return requests.post(service.base_url + called, json=body, headers=headers, timeout=10)

    sent = hook_request(observations=[], fhirServer="https://fhir.example.org/r4")
    assert call(sent).status_code == 200  # fhirServer is ignored, not refused
    missing = hook_request(fhirServer="https://fhir.example.org/r4")
    refused = call(missing)
    assert refused.status_code == 412
    assert "prefetch only (fhir_servers: [])" in refused.json()["issue"][0]["diagnostics"]
    # A discovery URL given with a trailing slash: the sandbox then calls "<discovery>/<id>", aud as called.
    doubled = f"/cds-services//{PATIENT_VIEW}"
    assert call(sent, doubled).status_code == 200
    token = jwt_kit.sign(key, jwt_kit.claims(SANDBOX_ISS, service.base_url + "/cds-services/"))
    headers = {"Authorization": f"Bearer {token}"}
    discovery = requests.get(service.base_url + "/cds-services/", headers=headers, timeout=10)
    assert discovery.status_code == 200 and discovery.json()["services"]
