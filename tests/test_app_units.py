"""Flask test-client tests of the HTTP edge: error handling and test-only switches."""

from __future__ import annotations

from pathlib import Path

import pytest
from flask.testing import FlaskClient

from cds_service.http.app import create_app
from cds_service.settings import Settings, SettingsError, load_settings
from tests.support.requests_factory import PATIENT_VIEW, hook_request, observation


def test_an_internal_failure_is_a_500_operation_outcome_without_a_trace(
    client: FlaskClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    runtime = client.application.extensions["cds_runtime"]

    def broken(*_: object, **__: object) -> None:
        raise RuntimeError("database is on fire at /secret/path")

    monkeypatch.setattr(runtime.store, "record_cards", broken)
    droop = observation("280816001", valueBoolean=True)
    response = client.post(f"/cds-services/{PATIENT_VIEW}", json=hook_request(observations=[droop]))
    assert response.status_code == 500
    body = response.get_json()
    assert body["resourceType"] == "OperationOutcome"
    assert "fire" not in response.get_data(as_text=True) and "Traceback" not in response.get_data(as_text=True)
    assert response.headers["X-Request-Id"]


def test_the_clock_header_is_ignored_unless_a_test_rig_enables_it(tmp_path: Path) -> None:
    settings = Settings(public_url="http://cds.test", auth="off", database_url=f"sqlite:///{tmp_path}/c.db")
    client = create_app(settings).test_client()
    old_droop = observation("280816001", valueBoolean=True, effectiveDateTime="2020-01-01T00:00:00Z")
    response = client.post(
        f"/cds-services/{PATIENT_VIEW}",
        json=hook_request(observations=[old_droop]),
        headers={"X-CDS-Evaluation-Time": "2020-01-01T01:00:00Z"},
    )
    assert [c["indicator"] for c in response.get_json()["cards"]] == ["info"]  # years old: re-check, not critical


def test_a_bad_clock_header_is_a_400_when_enabled(client: FlaskClient) -> None:
    response = client.post(
        f"/cds-services/{PATIENT_VIEW}", json=hook_request(observations=[]), headers={"X-CDS-Evaluation-Time": "soon"}
    )
    assert response.status_code == 400 and response.get_json()["issue"][0]["expression"] == ["X-CDS-Evaluation-Time"]


def test_every_response_carries_a_request_id(client: FlaskClient) -> None:
    first = client.get("/healthz").headers["X-Request-Id"]
    second = client.get("/healthz").headers["X-Request-Id"]
    assert first and second and first != second
    assert client.get("/healthz", headers={"X-Request-Id": "abc-123"}).headers["X-Request-Id"] == "abc-123"


def test_a_card_that_breaks_the_spec_is_never_sent(client: FlaskClient, monkeypatch: pytest.MonkeyPatch) -> None:
    def card_without_link_url(*_: object, **__: object) -> list[dict[str, object]]:
        return [
            {
                "summary": "x",
                "indicator": "info",
                "source": {"label": "x"},
                "links": [{"label": "guide", "type": "absolute"}],
            }
        ]

    monkeypatch.setattr("cds_service.domain.pipeline.render_cards", card_without_link_url)
    droop = observation("280816001", valueBoolean=True)
    response = client.post(f"/cds-services/{PATIENT_VIEW}", json=hook_request(observations=[droop]))
    assert response.status_code == 500 and response.get_json()["resourceType"] == "OperationOutcome"


def test_authentication_is_on_by_default_and_refuses_to_run_unconfigured() -> None:
    with pytest.raises(SettingsError, match="CDS_AUTH=jwt needs CDS_TRUSTED_ISSUERS"):
        load_settings({})
    assert load_settings({"CDS_AUTH": "off"}).cors_origins == ("*",)


def test_large_hook_requests_take_turns_and_small_ones_never_wait() -> None:
    import threading
    import time

    from cds_service.http import large_bodies

    inside, peak, lock = 0, 0, threading.Lock()

    def request(size: int) -> None:
        nonlocal inside, peak
        with large_bodies.large_body_turn(size):
            with lock:
                inside += 1
                peak = max(peak, inside)
            time.sleep(0.05)
            with lock:
                inside -= 1

    threads = [threading.Thread(target=request, args=(large_bodies.LARGE_BODY_BYTES,)) for _ in range(6)]
    for thread in threads:
        thread.start()
    time.sleep(0.01)
    started = time.monotonic()
    with large_bodies.large_body_turn(1000):  # a small body goes at once, even while large ones queue
        waited = time.monotonic() - started
    for thread in threads:
        thread.join()
    assert peak == large_bodies.LARGE_BODIES_AT_ONCE
    assert waited < 0.02
