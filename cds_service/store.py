"""The durable store (SQLAlchemy): every card issued, every feedback item, the service's own secrets, and the
JWT ids already accepted (replay cache shared by every worker and server process on one database).

Patient ids are stored only as an HMAC keyed with a secret the store keeps (or CDS_PATIENT_HASH_KEY), so feedback
can be joined to cards and cards grouped by patient without the store holding an identifier.

The schema is versioned by cds_service/migrations (Alembic); these models mirror its head revision.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import hmac
import json
import secrets
import threading
import time
from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    bindparam,
    create_engine,
    delete,
    event,
    insert,
    select,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker

from cds_service.migrations import ensure_schema


class Base(DeclarativeBase):
    pass


@dataclass(frozen=True)
class IssuedCardRow:
    """What the card log keeps of one card, built from its decision (answer.py); the patient id is added hashed."""

    uuid: str
    service_id: str
    hook_instance: str
    indicator: str
    tier: str
    rules: list[str]
    findings: list[str]
    issued_at: datetime
    evidence_key: str | None = None  # repeat_alerts.evidence_key: the tier and what each shown Observation said
    content_version: str | None = None  # the content release the card was made with (with `rules`: the knowledge)


class IssuedCard(Base):
    """One row per card answered. Written on every hook call, so it has no secondary index until a query needs one:
    each index is another random b-tree page per commit (4 of them were 3/4 of the insert's cost on SQLite)."""

    __tablename__ = "issued_cards"

    uuid: Mapped[str] = mapped_column(String(36), primary_key=True)
    service_id: Mapped[str] = mapped_column(String(100))
    hook_instance: Mapped[str] = mapped_column(String(64))
    indicator: Mapped[str] = mapped_column(String(16))
    tier: Mapped[str] = mapped_column(String(40))
    rules: Mapped[list[str]] = mapped_column(JSON)
    findings: Mapped[list[str]] = mapped_column(JSON)
    patient_hash: Mapped[str] = mapped_column(String(64))
    issued_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    evidence_key: Mapped[str | None] = mapped_column(String(64), nullable=True)
    content_version: Mapped[str | None] = mapped_column(String(40), nullable=True)


class FeedbackRecord(Base):
    __tablename__ = "feedback"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    card_uuid: Mapped[str] = mapped_column(String(64), index=True)
    service_id: Mapped[str] = mapped_column(String(100), index=True)
    known_card: Mapped[str | None] = mapped_column(ForeignKey("issued_cards.uuid"), nullable=True)
    outcome: Mapped[str] = mapped_column(String(16))
    accepted_suggestions: Mapped[list[str]] = mapped_column(JSON, default=list)
    override_system: Mapped[str | None] = mapped_column(String(255), nullable=True)
    override_code: Mapped[str | None] = mapped_column(String(100), nullable=True)
    override_comment: Mapped[str | None] = mapped_column(Text, nullable=True)
    outcome_timestamp: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    dedupe_key: Mapped[str | None] = mapped_column(String(64), nullable=True)  # equal for the same item posted twice

    __table_args__ = (Index("ux_feedback_dedupe_key", "dedupe_key", unique=True),)


class Acknowledgement(Base):
    """A card a clinician overrode, by patient and evidence: the next chart open shows it as a short info line."""

    __tablename__ = "acknowledgements"

    card_uuid: Mapped[str] = mapped_column(String(36), primary_key=True)
    patient_hash: Mapped[str] = mapped_column(String(64), index=True)
    tier: Mapped[str] = mapped_column(String(40))
    evidence_key: Mapped[str] = mapped_column(String(64))
    reason_code: Mapped[str | None] = mapped_column(String(100), nullable=True)
    overridden_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    recorded_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


@dataclass(frozen=True)
class AcknowledgementRow:
    card_uuid: str
    tier: str
    evidence_key: str
    reason_code: str | None
    overridden_at: datetime


_ACK = Acknowledgement.__table__.c
_SELECT_ACKNOWLEDGEMENTS = (
    select(_ACK.card_uuid, _ACK.tier, _ACK.evidence_key, _ACK.reason_code, _ACK.overridden_at)
    .where(_ACK.patient_hash == bindparam("patient_hash"))
    .order_by(_ACK.overridden_at.desc())
)


@dataclass(frozen=True)
class FeedbackStored:
    """What one feedback request did: items for cards we issued, for unknown cards, and items seen before."""

    known: int
    unknown: int
    duplicate: int
    fresh: tuple[bool, ...]  # per item: stored now (False: the same item was stored before)


class Secret(Base):
    __tablename__ = "service_secrets"

    name: Mapped[str] = mapped_column(String(50), primary_key=True)
    value: Mapped[str] = mapped_column(String(200))


class UsedTokenId(Base):
    """A JWT `jti` already accepted, kept until its token expires. The primary key makes a replay lose the race."""

    __tablename__ = "used_token_ids"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)  # sha256(iss, jti): bounded, no raw values
    expires_at: Mapped[int] = mapped_column(BigInteger, index=True)  # epoch seconds


PRUNE_EVERY_SECONDS = 60.0
_INSERT_ISSUED_CARDS = insert(IssuedCard)  # built once: building the statement was a third of record_cards


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")  # several workers read and write one file
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.close()


def make_engine(database_url: str) -> Engine:
    if database_url.startswith("sqlite:///"):
        Path(database_url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(database_url, connect_args={"check_same_thread": False})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(database_url, pool_pre_ping=True)


def aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)  # SQLite gives DateTime back without a zone


def feedback_dedupe_key(service_id: str, item: dict[str, Any]) -> str:
    """Equal for the same feedback posted twice (an EHR retrying), different for a new outcome or time."""
    coding = item.get("overrideReason", {}).get("reason", {})
    parts = [
        service_id,
        item["card"],
        item["outcome"],
        aware(item["outcomeTimestamp"]).isoformat(),
        coding.get("system"),
        coding.get("code"),
        sorted(s["id"] for s in item.get("acceptedSuggestions", [])),
    ]
    return hashlib.sha256(json.dumps(parts).encode()).hexdigest()


class Store:
    def __init__(
        self, database_url: str, patient_hash_key: str | None = None, *, store_override_comments: bool = False
    ) -> None:
        self.engine = make_engine(database_url)
        ensure_schema(self.engine)  # SQLite: upgraded here; PostgreSQL: SchemaBehind unless `db upgrade` ran
        self.store_override_comments = store_override_comments  # clinician free text: may name the patient
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)
        self._hash_key = (patient_hash_key or self._stored_secret("patient_hash_key")).encode()
        self._next_prune = 0.0
        # SQLite locks the whole file for a write, and a waiting connection sleeps in growing steps (1, 2, 5 ... 100
        # ms): the threads of a worker take turns on a mutex instead, which costs microseconds.
        self._writing: AbstractContextManager[Any] = (
            threading.Lock() if self.engine.dialect.name == "sqlite" else contextlib.nullcontext()
        )

    def _stored_secret(self, name: str) -> str:
        with self.sessions() as session:
            found = session.get(Secret, name)
            if found:
                return found.value
            session.add(Secret(name=name, value=secrets.token_hex(32)))
            try:
                session.commit()
            except IntegrityError:  # another worker created it first
                session.rollback()
            return session.execute(select(Secret.value).where(Secret.name == name)).scalar_one()

    def patient_hash(self, patient_id: str) -> str:
        return hmac.new(self._hash_key, patient_id.encode(), hashlib.sha256).hexdigest()

    def ping(self) -> None:
        with self.engine.connect() as connection:
            connection.exec_driver_sql("SELECT 1")

    def record_cards(self, patient_id: str, cards: list[IssuedCardRow]) -> None:
        """Insert one row per card and commit before the answer leaves (feedback may refer to it at once).

        One Core INSERT in one transaction: the same rows and the same commit as the ORM unit of work, with less CPU
        (docs/performance.md)."""
        if not cards:
            return
        patient_hash = self.patient_hash(patient_id)
        rows = [{**asdict(card), "patient_hash": patient_hash} for card in cards]
        with self._writing, self.engine.begin() as connection:  # pooled: pre-pinged on PostgreSQL
            connection.execute(_INSERT_ISSUED_CARDS, rows)

    def record_feedback(self, service_id: str, items: list[dict[str, Any]]) -> FeedbackStored:
        """Store every item once, in one transaction; an item for a card we never issued is kept, flagged by a null
        `known_card`. An override of a known card becomes an acknowledgement (repeat_alerts.py)."""
        received = datetime.now(UTC)
        known = unknown = duplicate = 0
        fresh: list[bool] = []
        with self._writing, self.sessions.begin() as session:
            uuids = [item["card"] for item in items]
            cards = {c.uuid: c for c in session.execute(select(IssuedCard).where(IssuedCard.uuid.in_(uuids))).scalars()}
            for item in items:
                card = cards.get(item["card"])
                fresh.append(self._insert_feedback(session, service_id, item, card, received))
                if not fresh[-1]:
                    duplicate += 1
                    continue
                known, unknown = (known + 1, unknown) if card else (known, unknown + 1)
                if card is not None and card.evidence_key and item["outcome"] == "overridden":
                    self._acknowledge(session, card, item, received)
        return FeedbackStored(known, unknown, duplicate, tuple(fresh))

    def _insert_or_ignore(self, session: Session, model: type[Base], values: dict[str, Any], key: str) -> bool:
        dialect = postgresql if self.engine.dialect.name == "postgresql" else sqlite
        statement = dialect.insert(model).values(**values).on_conflict_do_nothing(index_elements=[key])
        # RETURNING says whether the row went in (psycopg reports no rowcount for this statement)
        inserted = session.connection().execute(statement.returning(model.__table__.c[key]))
        return inserted.first() is not None

    def _insert_feedback(
        self, session: Session, service_id: str, item: dict[str, Any], card: IssuedCard | None, received: datetime
    ) -> bool:
        reason = item.get("overrideReason", {})
        coding = reason.get("reason", {})
        values = {
            "card_uuid": item["card"],
            "service_id": service_id,
            "known_card": card.uuid if card else None,
            "outcome": item["outcome"],
            "accepted_suggestions": [s["id"] for s in item.get("acceptedSuggestions", [])],
            "override_system": coding.get("system"),
            "override_code": coding.get("code"),
            "override_comment": reason.get("userComment") if self.store_override_comments else None,
            "outcome_timestamp": item["outcomeTimestamp"],
            "received_at": received,
            "dedupe_key": feedback_dedupe_key(service_id, item),
        }
        return self._insert_or_ignore(session, FeedbackRecord, values, "dedupe_key")

    def _acknowledge(self, session: Session, card: IssuedCard, item: dict[str, Any], received: datetime) -> None:
        values = {
            "card_uuid": card.uuid,
            "patient_hash": card.patient_hash,
            "tier": card.tier,
            "evidence_key": card.evidence_key,
            "reason_code": item.get("overrideReason", {}).get("reason", {}).get("code"),
            "overridden_at": item["outcomeTimestamp"],
            "recorded_at": received,
        }
        self._insert_or_ignore(session, Acknowledgement, values, "card_uuid")

    def acknowledgements(self, patient_id: str, since: datetime) -> list[AcknowledgementRow]:
        """Overrides of this patient's cards made since `since`, newest first (read on every hook call that has a
        critical or warning card: a Core query on the patient index, no ORM objects)."""
        with self.engine.connect() as connection:
            found = connection.execute(_SELECT_ACKNOWLEDGEMENTS, {"patient_hash": self.patient_hash(patient_id)})
            return [AcknowledgementRow(*row) for row in found if aware(row.overridden_at) >= since]

    def claim_token_id(self, issuer: str, jti: str, expires_at: int) -> bool:
        """Record a token id as used until `expires_at`; False when it was already used and has not expired."""
        key = hashlib.sha256(f"{issuer}\n{jti}".encode()).hexdigest()
        now = int(time.time())
        self._prune(now)
        # One statement, one commit, atomic on both databases: insert, or take over a row whose token has expired
        # (not yet pruned); a live row is left alone, and then nothing is written: a replay.
        with self._writing, self.engine.begin() as connection:
            claimed = connection.execute(self._claim, {"key": key, "expires_at": expires_at, "now": now})
            return claimed.first() is not None  # RETURNING: a row came back only when it was written

    @functools.cached_property
    def _claim(self) -> Any:
        insert_ = (postgresql.insert if self.engine.dialect.name == "postgresql" else sqlite.insert)(UsedTokenId)
        statement = insert_.values(key=bindparam("key"), expires_at=bindparam("expires_at"))
        return statement.on_conflict_do_update(
            index_elements=[UsedTokenId.key],
            set_={"expires_at": statement.excluded.expires_at},
            where=UsedTokenId.expires_at < bindparam("now"),
        ).returning(UsedTokenId.key)

    def _prune(self, now: int) -> None:
        if time.monotonic() < self._next_prune:
            return
        self._next_prune = time.monotonic() + PRUNE_EVERY_SECONDS
        with self._writing, self.sessions.begin() as session:
            session.execute(delete(UsedTokenId).where(UsedTokenId.expires_at < now))

    def issued_card(self, card_uuid: str) -> IssuedCard | None:
        with self.sessions() as session:
            return session.get(IssuedCard, card_uuid)

    def feedback_for(self, card_uuid: str) -> list[FeedbackRecord]:
        with self.sessions() as session:
            return list(
                session.execute(
                    select(FeedbackRecord).where(FeedbackRecord.card_uuid == card_uuid).order_by(FeedbackRecord.id)
                ).scalars()
            )

    def prune(self, older_than: timedelta) -> dict[str, int]:
        """Delete cards, feedback and acknowledgements older than `older_than`, and every expired token id."""
        cutoff = datetime.now(UTC) - older_than
        old_cards = select(IssuedCard.uuid).where(IssuedCard.issued_at < cutoff)
        with self.sessions.begin() as session:
            counts = {
                "feedback": session.execute(
                    delete(FeedbackRecord).where(
                        (FeedbackRecord.received_at < cutoff) | FeedbackRecord.known_card.in_(old_cards)
                    )
                ),
                "acknowledgements": session.execute(
                    delete(Acknowledgement).where(
                        (Acknowledgement.recorded_at < cutoff) | Acknowledgement.card_uuid.in_(old_cards)
                    )
                ),
                "cards": session.execute(delete(IssuedCard).where(IssuedCard.issued_at < cutoff)),
                "token_ids": session.execute(delete(UsedTokenId).where(UsedTokenId.expires_at < int(time.time()))),
            }
            return {name: result.rowcount for name, result in counts.items()}  # type: ignore[attr-defined]


__all__ = [
    "Acknowledgement",
    "FeedbackRecord",
    "FeedbackStored",
    "IssuedCard",
    "IssuedCardRow",
    "Store",
    "UsedTokenId",
]
