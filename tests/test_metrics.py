"""GET /metrics switched off, or on a port of its own (served by the gunicorn master); FHIR failures and JWT
refusals counted by class; the labels stay bounded sets."""

from __future__ import annotations

from pathlib import Path

import requests

from cds_service.http.app import create_app
from cds_service.http.metrics import fhir_failure_kind, jwt_failure_class
from cds_service.security.auth import AuthFailure, Failure
from cds_service.settings import Settings
from tests.support.fhir_server import free_port
from tests.support.requests_factory import PATIENT_VIEW, hook_request
from tests.support.service_server import ServiceServer


def test_metrics_off_has_no_route(tmp_path: Path) -> None:
    for mode, status in (("off", 404), ("on", 200)):
        app = create_app(Settings(auth="off", database_url=f"sqlite:///{tmp_path}/cds.db", metrics=mode))
        assert app.test_client().get("/metrics").status_code == status


def test_metrics_on_their_own_port_count_fhir_failures_by_kind() -> None:
    metrics_port, closed_port = free_port(), free_port()  # nothing listens on closed_port
    fhir_server = f"http://127.0.0.1:{closed_port}/fhir"
    env = {"CDS_METRICS": str(metrics_port), "CDS_ALLOWED_FHIR_SERVERS": fhir_server, "CDS_ALLOW_HTTP_LOOPBACK": "1"}
    with ServiceServer(env=env, workers=2) as server:
        assert requests.get(server.base_url + "/metrics", timeout=5).status_code == 404  # not on the service port
        body = hook_request("pat-1", observations=None, fhirServer=fhir_server)
        for _ in range(3):
            answer = requests.post(f"{server.base_url}/cds-services/{PATIENT_VIEW}", json=body, timeout=10)
            assert answer.status_code == 412
        text = requests.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).text
    assert 'cds_fhir_failures_total{kind="unreachable"} 3.0' in text
    assert 'route="/cds-services/<service_id>",status="412"' in text


def test_every_refusal_class_and_fhir_message_has_its_own_label() -> None:
    classes = [value for name, value in vars(Failure).items() if name.isupper()]
    slugs = {jwt_failure_class(AuthFailure(failure, "exp").client_error().message) for failure in classes}
    assert len(slugs) == len(classes) and "other" not in slugs
    assert fhir_failure_kind("prefetch 'observations' ...: FHIR server too slow (timeout)") == "timeout"
    assert fhir_failure_kind("prefetch 'observations' ...: FHIR server answered HTTP 503") == "http_status"
    assert fhir_failure_kind("something new") == "other"
