"""The store on PostgreSQL (127.0.0.1:5432, as on every development and CI machine), in a database of its own."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import psycopg
import pytest

from cds_service.migrations import upgrade
from cds_service.store import IssuedCardRow, Store, make_engine
from tests.support.postgres import ADMIN, fresh_database


@pytest.fixture(scope="module")
def store() -> Iterator[Store]:
    with fresh_database() as url:
        upgrade(make_engine(url))  # as `cds-service db upgrade` does: a server never migrates PostgreSQL itself
        store = Store(url)
        try:
            yield store
        finally:
            store.engine.dispose()


def test_cards_and_feedback_are_joined_on_postgresql(store: Store) -> None:
    card = IssuedCardRow(
        str(uuid.uuid4()),
        "svc",
        str(uuid.uuid4()),
        "critical",
        "emergency",
        ["stroke-sign-facial-droop"],
        ["facial-droop"],
        datetime.now(UTC),
    )
    store.record_cards("pat-1", [card])
    issued = store.issued_card(card.uuid)
    assert issued is not None and issued.findings == ["facial-droop"] and issued.patient_hash != "pat-1"
    feedback = [
        {
            "card": card.uuid,
            "outcome": "overridden",
            "outcomeTimestamp": datetime.now(UTC),
            "overrideReason": {"reason": {"system": "urn:x", "code": "cds-not-applicable"}},
        }
    ]
    assert store.record_feedback("svc", feedback).known == 1
    assert [f.known_card for f in store.feedback_for(card.uuid)] == [card.uuid]


def test_a_token_id_is_claimed_once_even_under_concurrency(store: Store) -> None:
    expires = int(datetime.now(UTC).timestamp()) + 300
    jti = str(uuid.uuid4())
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda _: store.claim_token_id("https://ehr.example", jti, expires), range(8)))
    assert results.count(True) == 1


def test_card_rows_are_written_after_the_database_drops_every_connection(store: Store) -> None:
    """A PostgreSQL restart or failover must not cost a hook call: pooled connections are pinged on checkout."""

    def issue() -> str:
        card = IssuedCardRow(str(uuid.uuid4()), "svc", str(uuid.uuid4()), "info", "contact", [], [], datetime.now(UTC))
        store.record_cards("pat-1", [card])
        return card.uuid

    issue()  # the pool holds an open connection now
    with psycopg.connect(ADMIN, autocommit=True) as admin:
        killed = admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (store.engine.url.database,)
        ).fetchall()
    assert killed and all(ok for (ok,) in killed)
    assert store.issued_card(issue()) is not None
