"""Alembic migrations on SQLite and PostgreSQL: an empty database, and one made by `create_all` before migrations
existed, with the four issued_cards indexes of round 1 or without them (round 2), reach the same head schema with
their rows kept. `serve` upgrades SQLite itself and refuses a PostgreSQL database that is behind."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from cds_service.migrations import SchemaBehind, current_revision, head_revision, upgrade
from cds_service.store import Base, Store, make_engine
from tests.support.gunicorn_process import REPO

ROUND_1_INDEXES = {f"ix_issued_cards_{c}" for c in ("service_id", "hook_instance", "patient_hash", "issued_at")}


def _pre_migration_schema(with_round_1_indexes: bool) -> sa.MetaData:
    """The tables exactly as the store's models declared them before migrations (commit 1f57421)."""
    metadata = sa.MetaData()
    indexed = with_round_1_indexes
    sa.Table(
        "issued_cards",
        metadata,
        sa.Column("uuid", sa.String(36), primary_key=True),
        sa.Column("service_id", sa.String(100), nullable=False, index=indexed),
        sa.Column("hook_instance", sa.String(64), nullable=False, index=indexed),
        sa.Column("indicator", sa.String(16), nullable=False),
        sa.Column("tier", sa.String(40), nullable=False),
        sa.Column("rules", sa.JSON, nullable=False),
        sa.Column("findings", sa.JSON, nullable=False),
        sa.Column("patient_hash", sa.String(64), nullable=False, index=indexed),
        sa.Column("issued_at", sa.DateTime(timezone=True), nullable=False, index=indexed),
    )
    sa.Table(
        "feedback",
        metadata,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("card_uuid", sa.String(64), nullable=False, index=True),
        sa.Column("service_id", sa.String(100), nullable=False, index=True),
        sa.Column("known_card", sa.String(36), sa.ForeignKey("issued_cards.uuid"), nullable=True),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("accepted_suggestions", sa.JSON, nullable=False),
        sa.Column("override_system", sa.String(255)),
        sa.Column("override_code", sa.String(100)),
        sa.Column("override_comment", sa.Text),
        sa.Column("outcome_timestamp", sa.DateTime(timezone=True), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
    )
    sa.Table(
        "service_secrets",
        metadata,
        sa.Column("name", sa.String(50), primary_key=True),
        sa.Column("value", sa.String(200), nullable=False),
    )
    sa.Table(
        "used_token_ids",
        metadata,
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("expires_at", sa.BigInteger, nullable=False, index=True),
    )
    return metadata


def _old_database(url: str, with_round_1_indexes: bool) -> sa.Engine:
    engine = make_engine(url)
    metadata = _pre_migration_schema(with_round_1_indexes)
    metadata.create_all(engine)
    now = datetime.now(UTC)
    with engine.begin() as connection:
        connection.execute(
            metadata.tables["issued_cards"].insert(),
            [
                {
                    "uuid": "c-1",
                    "service_id": "svc",
                    "hook_instance": "h-1",
                    "indicator": "critical",
                    "tier": "emergency",
                    "rules": ["stroke-sign-facial-droop"],
                    "findings": ["facial-droop"],
                    "patient_hash": "p" * 64,
                    "issued_at": now,
                }
            ],
        )
        connection.execute(
            metadata.tables["feedback"].insert(),
            [
                {
                    "card_uuid": "c-1",
                    "service_id": "svc",
                    "known_card": "c-1",
                    "outcome": "accepted",
                    "accepted_suggestions": [],
                    "outcome_timestamp": now,
                    "received_at": now,
                }
            ],
        )
        connection.execute(metadata.tables["service_secrets"].insert(), [{"name": "patient_hash_key", "value": "k"}])
    return engine


def _differences(engine: sa.Engine) -> list[object]:
    with engine.connect() as connection:
        return list(compare_metadata(MigrationContext.configure(connection), Base.metadata))


def test_an_empty_database_is_upgraded_to_exactly_the_models(database_url: str) -> None:
    engine = make_engine(database_url)
    assert current_revision(engine) is None
    upgrade(engine)
    assert current_revision(engine) == head_revision()
    assert _differences(engine) == []
    engine.dispose()


@pytest.mark.parametrize("with_round_1_indexes", [True, False], ids=["round-1-indexes", "round-2"])
def test_a_pre_migration_database_reaches_the_head_schema_with_its_rows(
    database_url: str, with_round_1_indexes: bool
) -> None:
    engine = _old_database(database_url, with_round_1_indexes)
    before = {ix["name"] for ix in sa.inspect(engine).get_indexes("issued_cards")}
    assert (before >= ROUND_1_INDEXES) is with_round_1_indexes
    upgrade(engine)
    engine.dispose()  # a fresh inspector: SQLAlchemy caches reflection per engine
    engine = make_engine(database_url)
    assert current_revision(engine) == head_revision()
    assert {ix["name"] for ix in sa.inspect(engine).get_indexes("issued_cards")}.isdisjoint(ROUND_1_INDEXES)
    assert _differences(engine) == []
    store = Store(database_url)
    card = store.issued_card("c-1")
    assert card is not None and card.rules == ["stroke-sign-facial-droop"] and card.evidence_key is None
    assert [f.outcome for f in store.feedback_for("c-1")] == ["accepted"]
    assert store.patient_hash("x") == Store(database_url, "k").patient_hash("x")  # the stored key was kept
    store.engine.dispose()
    engine.dispose()


def test_a_sqlite_file_is_upgraded_by_the_store_itself(tmp_path: object) -> None:
    url = f"sqlite:///{tmp_path}/old.db"
    _old_database(url, with_round_1_indexes=True).dispose()
    store = Store(url)
    assert current_revision(store.engine) == head_revision()
    store.engine.dispose()


def _cli(*args: str, database_url: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CDS_")}
    env |= {"CDS_DATABASE_URL": database_url, "CDS_AUTH": "off"}
    command = [sys.executable, "-m", "cds_service", *args]
    return subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=60, check=False)


def test_postgresql_behind_is_refused_until_db_upgrade_runs(postgresql_url: str) -> None:
    with pytest.raises(SchemaBehind, match="cds-service db upgrade"):
        Store(postgresql_url)
    served = _cli("serve", "--port", "1", database_url=postgresql_url)  # refused before it binds anything
    assert served.returncode == 2 and "run `cds-service db upgrade`" in served.stderr, served.stderr
    assert _cli("db", "current", database_url=postgresql_url).returncode == 1
    upgraded = _cli("db", "upgrade", database_url=postgresql_url)
    assert upgraded.returncode == 0 and f"none -> {head_revision()}" in upgraded.stdout, upgraded.stderr
    current = _cli("db", "current", database_url=postgresql_url)
    assert current.returncode == 0 and "up to date" in current.stdout
    Store(postgresql_url).engine.dispose()
