"""The real CDS Hooks sandbox (its production build, ../shared/cds-hooks-sandbox) in headless Chromium against the
service as deployed and a loopback FHIR server filled by `cds-service examples load`: discovery, the patient-view
call, our critical card, and a dismiss-with-reason that reaches the store, with CDS_AUTH=off and with CDS_AUTH=jwt
(the sandbox signs in the browser with its own key; the kit's issuer entry pins it, its jku is never fetched)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from playwright.sync_api import Browser, expect

from cds_service.cli import sandbox_url
from tests.support.browser import SANDBOX_BUILD, StaticServer, chromium, screenshot_path, stored_feedback
from tests.support.fhir_server import FhirServer
from tests.support.service_server import ServiceServer

KIT = Path(__file__).resolve().parents[1] / "sandbox" / "trusted-issuers.yaml"
pytestmark = pytest.mark.skipif(not (SANDBOX_BUILD / "index.html").is_file(), reason="no sandbox build here")


@pytest.fixture(scope="module")
def fhir() -> Iterator[FhirServer]:
    with FhirServer() as server:
        loaded = subprocess.run(
            [sys.executable, "-m", "cds_service", "examples", "load", "--fhir-server", server.base_url],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert loaded.returncode == 0, loaded.stderr
        assert "patientId=example-stroke" in loaded.stdout
        yield server


@pytest.fixture(scope="module")
def sandbox() -> Iterator[StaticServer]:
    with StaticServer(SANDBOX_BUILD) as server:
        yield server


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as launched:
        yield launched


def _service_env(mode: str, fhir: FhirServer, sandbox: StaticServer, tmp: Path) -> dict[str, str]:
    common = {"CDS_ALLOW_HTTP_LOOPBACK": "1", "CDS_ALLOW_CLOCK_HEADER": ""}
    if mode == "off":
        return {**common, "CDS_AUTH": "off", "CDS_ALLOWED_FHIR_SERVERS": fhir.base_url}
    kit = yaml.safe_load(KIT.read_text(encoding="utf-8"))
    kit["issuers"][0]["fhir_servers"] = [fhir.base_url]  # the one change a tester makes: their FHIR server
    issuers = tmp / "trusted-issuers.yaml"
    issuers.write_text(yaml.safe_dump(kit), encoding="utf-8")
    return {**common, "CDS_AUTH": "jwt", "CDS_TRUSTED_ISSUERS": str(issuers), "CDS_CORS_ORIGINS": sandbox.base_url}


@pytest.mark.parametrize("mode", ["off", "jwt"])
def test_the_sandbox_shows_our_critical_card_and_stores_a_dismiss_with_reason(
    mode: str, fhir: FhirServer, sandbox: StaticServer, browser: Browser, tmp_path: Path
) -> None:
    with ServiceServer(env=_service_env(mode, fhir, sandbox, tmp_path)) as service:
        context = browser.new_context(viewport={"width": 1200, "height": 1300})
        page = context.new_page()
        page.goto(sandbox_url(sandbox.base_url, fhir.base_url, "example-stroke", service.base_url))
        summary = page.get_by_role("paragraph").filter(has_text="Emergency warning sign:")
        expect(summary).to_be_visible(timeout=15_000)
        expect(summary).to_contain_text("Facial droop")
        page.screenshot(path=screenshot_path(f"sandbox-{mode}-card"), full_page=True)
        page.get_by_role("button", name="select dismiss reason").first.click()
        menu_items = page.get_by_role("menuitem")
        expect(menu_items.first).to_be_visible()
        reason = menu_items.first.inner_text().strip()
        menu_items.first.click()
        page.screenshot(path=screenshot_path(f"sandbox-{mode}-dismissed"), full_page=True)
        database = Path(service.tmp.name) / "cds.db"
        for _ in range(50):
            rows = stored_feedback(database)
            if rows:
                break
            page.wait_for_timeout(100)
        context.close()
        logs = service.logs()
    assert reason
    assert len(rows) == 1, logs[-2000:]
    card_uuid, outcome, _system, code, known = rows[0]
    assert outcome == "overridden" and known == card_uuid and code, rows
    assert '"status": 401' not in logs and '"status": 403' not in logs
