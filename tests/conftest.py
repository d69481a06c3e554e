from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from cds_service.http.app import create_app
from cds_service.knowledge.load import load_knowledge
from cds_service.knowledge.model import Knowledge
from cds_service.settings import REPO_ROOT, Settings
from tests.support.postgres import fresh_database
from tests.support.service_server import ServiceServer


@pytest.fixture(scope="session")
def knowledge() -> Knowledge:
    return load_knowledge(REPO_ROOT / "content", REPO_ROOT / "cards")


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(
        public_url="http://cds.test",
        auth="off",
        database_url=f"sqlite:///{tmp_path}/cds.db",
        allowed_fhir_servers=(),
        allow_clock_header=True,
    )


@pytest.fixture
def app(settings: Settings) -> Flask:
    return create_app(settings)


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture(scope="session")
def service() -> Iterator[ServiceServer]:
    """The deployed server (gunicorn), auth off, one per test session."""
    with ServiceServer() as server:
        yield server


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database: a SQLite file, or a fresh PostgreSQL database (tests/support/postgres.py)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/cds.db"
        return
    with fresh_database() as url:
        yield url


@pytest.fixture
def postgresql_url() -> Iterator[str]:
    with fresh_database() as url:
        yield url
