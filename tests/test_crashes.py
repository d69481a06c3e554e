"""Crashes: kill -9 of the server's process group in the middle of a feedback load (SQLite and PostgreSQL): after a
restart, every feedback answered 200 is stored and no request is stored in part. A content edit with an error,
then gunicorn's reload signal (HUP): the old workers keep serving and the error is logged."""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import requests
from sqlalchemy import create_engine, text

from cds_service.migrations import upgrade
from tests.support.requests_factory import PATIENT_VIEW, hook_request, observation
from tests.support.service_server import ServiceServer

ADMIN = "postgresql://postgres@127.0.0.1:5432/test"
ITEMS_PER_REQUEST = 3
CLIENTS = 8


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest) -> Iterator[str]:
    if request.param == "sqlite":
        with tempfile.TemporaryDirectory(prefix="cds-crash-") as folder:
            yield f"sqlite:///{folder}/cds.db"
        return
    name = f"cds_crash_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(ADMIN, autocommit=True, connect_timeout=3) as admin:  # CI machines run PostgreSQL
        admin.execute(f'CREATE DATABASE "{name}"')
        try:
            url = f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
            engine = create_engine(url)
            upgrade(engine)  # as an operator does (`cds-service db upgrade`): serve refuses a database that is behind
            engine.dispose()
            yield url
        finally:
            admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


def _feedback_load(base_url: str, stop: threading.Event, acknowledged: list[str], sent: list[str]) -> None:
    session = requests.Session()
    while not stop.is_set():
        request_id = uuid.uuid4().hex
        items = [
            {"card": f"{request_id}-{n}", "outcome": "overridden", "outcomeTimestamp": "2026-11-25T12:00:00Z"}
            for n in range(ITEMS_PER_REQUEST)
        ]
        sent.append(request_id)
        try:
            response = session.post(
                f"{base_url}/cds-services/{PATIENT_VIEW}/feedback", json={"feedback": items}, timeout=5
            )
        except requests.RequestException:
            return  # in flight at the kill: may or may not be stored, but never in part
        if response.status_code == 200:
            acknowledged.append(request_id)


def _stored_items(database_url: str) -> dict[str, int]:
    engine = create_engine(database_url)
    try:
        with engine.connect() as connection:
            rows = connection.execute(text("SELECT card_uuid FROM feedback")).scalars().all()
    finally:
        engine.dispose()
    counts: dict[str, int] = {}
    for card in rows:
        request_id = card.rsplit("-", 1)[0]
        counts[request_id] = counts.get(request_id, 0) + 1
    return counts


def test_kill_9_during_a_feedback_load_loses_no_acknowledged_feedback(database_url: str) -> None:
    env = {"CDS_DATABASE_URL": database_url}
    service = ServiceServer(env=env).start()
    acknowledged: list[str] = []
    sent: list[str] = []
    stop = threading.Event()
    clients = [
        threading.Thread(target=_feedback_load, args=(service.base_url, stop, acknowledged, sent))
        for _ in range(CLIENTS)
    ]
    try:
        for client in clients:
            client.start()
        time.sleep(1.0)
        assert service.server.process is not None
        os.killpg(service.server.process.pid, signal.SIGKILL)  # master and workers, mid-transaction
        time.sleep(0.3)
    finally:
        stop.set()
        for client in clients:
            client.join()
        service.cleanup()
    with ServiceServer(env=env) as restarted:  # recovery: the store opens and serves again
        again = requests.post(
            f"{restarted.base_url}/cds-services/{PATIENT_VIEW}/feedback",
            json={
                "feedback": [
                    {"card": "after-restart", "outcome": "overridden", "outcomeTimestamp": "2026-11-25T12:00:00Z"}
                ]
            },
            timeout=5,
        )
        assert again.status_code == 200
    stored = _stored_items(database_url)
    lost = [request_id for request_id in acknowledged if stored.get(request_id) != ITEMS_PER_REQUEST]
    partial = {request_id: n for request_id, n in stored.items() if n != ITEMS_PER_REQUEST and request_id != "after"}
    print(
        f"crash ({database_url.split(':')[0]}): {len(sent)} feedback requests sent, {len(acknowledged)} answered 200, "
        f"{sum(1 for r in sent if stored.get(r) == ITEMS_PER_REQUEST)} stored whole, {len(lost)} acknowledged but "
        f"lost, {len(partial)} stored in part"
    )
    assert len(acknowledged) > 20
    assert not lost and not partial


def test_a_content_error_then_hup_keeps_the_old_workers_serving(tmp_path: Path) -> None:
    content = shutil.copytree(Path(__file__).resolve().parents[1] / "content", tmp_path / "content")
    env = {"CDS_CONTENT_DIR": str(content)}
    droop = observation("280816001", valueBoolean=True, effectiveDateTime="2026-11-25T10:00:00Z")

    def cards(service: ServiceServer) -> list[str]:
        response = requests.post(
            f"{service.base_url}/cds-services/{PATIENT_VIEW}",
            json=hook_request("pat-1", [droop]),
            headers={"X-CDS-Evaluation-Time": "2026-11-25T12:00:00Z"},
            timeout=5,
        )
        assert response.status_code == 200, response.text
        return [card["indicator"] for card in response.json()["cards"]]

    with ServiceServer(env=env) as service:
        assert service.server.process is not None
        master = service.server.process
        assert cards(service) == ["critical"]
        broken = content / "recognition.yaml"
        good = broken.read_text(encoding="utf-8")
        broken.write_text(good + "\n  this: [is not: yaml\n", encoding="utf-8")
        master.send_signal(signal.SIGHUP)
        time.sleep(1.5)
        assert master.poll() is None, service.logs()[-2000:]
        assert cards(service) == ["critical"]
        assert "content_reload_refused" in service.logs() and "recognition.yaml" in service.logs()
        broken.write_text(good, encoding="utf-8")  # fixed: the next HUP reloads
        master.send_signal(signal.SIGHUP)
        time.sleep(1.5)
        assert master.poll() is None and cards(service) == ["critical"]
        assert service.logs().count("content_reload_refused") == 1
