"""The store's governance rules on SQLite and PostgreSQL: feedback stored once and unknown cards flagged, override
comments kept only when switched on, retention, and the governance report over what was stored."""

from __future__ import annotations

import csv
import io
import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from cds_service.migrations import upgrade
from cds_service.report import as_csv, as_json, as_text, build_report
from cds_service.store import IssuedCardRow, Store, make_engine

NOW = datetime.now(UTC)
CODE_SYSTEM = "http://terminology.hl7.org/CodeSystem/non-adherence-reason-codes"


def _open(url: str, **options: Any) -> Store:
    engine = make_engine(url)
    upgrade(engine)  # as `cds-service db upgrade` does (a server does it itself only for SQLite)
    engine.dispose()
    return Store(url, **options)


@pytest.fixture
def store(database_url: str) -> Iterator[Store]:
    store = _open(database_url)
    yield store
    store.engine.dispose()


def _card(rules: list[str], tier: str = "emergency", issued_at: datetime = NOW, service: str = "svc") -> IssuedCardRow:
    indicator = {"emergency": "critical", "urgent": "warning"}.get(tier, "info")
    return IssuedCardRow(str(uuid.uuid4()), service, str(uuid.uuid4()), indicator, tier, rules, [], issued_at, "e" * 64)


def _overridden(card: str, code: str | None, at: datetime = NOW, comment: str | None = None) -> dict[str, Any]:
    reason: dict[str, Any] = {"reason": {"system": CODE_SYSTEM, "code": code}} if code else {}
    if comment:
        reason["userComment"] = comment
    return {"card": card, "outcome": "overridden", "outcomeTimestamp": at, "overrideReason": reason}


def _accepted(card: str, at: datetime = NOW) -> dict[str, Any]:
    return {"card": card, "outcome": "accepted", "outcomeTimestamp": at}


def test_the_same_feedback_posted_twice_is_stored_once(store: Store) -> None:
    card = _card(["r1"])
    store.record_cards("pat-1", [card])
    first = store.record_feedback("svc", [_overridden(card.uuid, "already-assessed")])
    again = store.record_feedback("svc", [_overridden(card.uuid, "already-assessed")])
    assert (first.known, first.duplicate, again.known, again.duplicate) == (1, 0, 0, 1)
    assert again.fresh == (False,)
    later = store.record_feedback("svc", [_accepted(card.uuid, NOW + timedelta(minutes=5))])
    assert later.fresh == (True,)
    assert [f.outcome for f in store.feedback_for(card.uuid)] == ["overridden", "accepted"]


def test_feedback_for_an_unknown_card_is_stored_and_flagged(store: Store) -> None:
    stranger = str(uuid.uuid4())
    stored = store.record_feedback("svc", [_accepted(stranger)])
    assert (stored.known, stored.unknown) == (0, 1)
    [kept] = store.feedback_for(stranger)
    assert kept.known_card is None
    assert build_report(store).feedback_for_unknown_cards == {"svc": 1}


def test_override_comments_are_kept_only_when_switched_on(database_url: str) -> None:
    for keep, expected in ((False, None), (True, "pt Jane D. refused transport")):
        store = _open(database_url, store_override_comments=keep)
        card = _card(["r1"])
        store.record_cards("pat-1", [card])
        store.record_feedback(
            "svc", [_overridden(card.uuid, "patient-declined", comment="pt Jane D. refused transport")]
        )
        assert [f.override_comment for f in store.feedback_for(card.uuid)] == [expected]
        report = build_report(store, comments=True)
        assert ("Jane" in as_json(report, comments=True)) is keep
        assert "Jane" not in as_json(report) and "Jane" not in as_text(report) and "Jane" not in as_csv(report)
        store.engine.dispose()


def test_an_override_of_a_known_card_is_an_acknowledgement_for_its_patient(store: Store) -> None:
    card = _card(["r1"])
    store.record_cards("pat-1", [card])
    store.record_feedback("svc", [_overridden(card.uuid, "already-assessed", NOW - timedelta(hours=1))])
    store.record_feedback("svc", [_overridden(str(uuid.uuid4()), "already-assessed")])  # unknown card: nothing
    [ack] = store.acknowledgements("pat-1", NOW - timedelta(hours=12))
    assert (ack.card_uuid, ack.tier, ack.evidence_key, ack.reason_code) == (
        card.uuid,
        "emergency",
        "e" * 64,
        "already-assessed",
    )
    assert store.acknowledgements("pat-2", NOW - timedelta(hours=12)) == []
    assert store.acknowledgements("pat-1", NOW - timedelta(minutes=30)) == []


def test_prune_deletes_what_is_older_than_the_period(store: Store) -> None:
    old, new = _card(["r1"], issued_at=NOW - timedelta(days=401)), _card(["r1"])
    store.record_cards("pat-1", [old, new])
    store.record_feedback("svc", [_overridden(old.uuid, "x", NOW - timedelta(days=400)), _accepted(new.uuid)])
    expired = int((NOW - timedelta(minutes=1)).timestamp())
    assert store.claim_token_id("iss", "spent", expired) and store.claim_token_id("iss", "live", expired + 600)
    counts = store.prune(timedelta(days=400))
    assert counts == {"feedback": 1, "acknowledgements": 1, "cards": 1, "token_ids": 1}
    assert store.issued_card(old.uuid) is None and store.issued_card(new.uuid) is not None
    assert store.feedback_for(old.uuid) == [] and len(store.feedback_for(new.uuid)) == 1
    assert not store.claim_token_id("iss", "live", expired + 600)  # a live token id is still refused


def test_the_report_counts_cards_feedback_reasons_patients_and_time_to_feedback(store: Store) -> None:
    face = [_card(["stroke-sign-facial-droop"]) for _ in range(4)]
    both = _card(["stroke-sign-facial-droop", "stroke-sign-confusion"])
    mood = _card(["low-mood"], tier="contact", issued_at=NOW - timedelta(days=3))
    store.record_cards("pat-1", [*face[:2], both])
    store.record_cards("pat-2", face[2:])
    store.record_cards("pat-3", [mood])
    store.record_feedback(
        "svc",
        [
            _accepted(face[0].uuid, NOW + timedelta(minutes=2)),
            _overridden(face[1].uuid, "already-assessed", NOW + timedelta(minutes=10)),
            _overridden(face[2].uuid, "already-assessed", NOW + timedelta(minutes=4)),
            _overridden(both.uuid, "patient-declined", NOW + timedelta(minutes=6)),
        ],
    )
    report = build_report(store)
    lines = {(line.tier, line.rule): line for line in report.lines}
    droop = lines[("emergency", "stroke-sign-facial-droop")]
    assert (droop.issued, droop.patients, droop.feedback, droop.accepted, droop.overridden) == (5, 2, 4, 1, 3)
    assert droop.override_reasons == {"already-assessed": 2, "patient-declined": 1}
    assert droop.acceptance_rate == 0.25 and droop.median_minutes_to_feedback == 5.0
    confusion = lines[("emergency", "stroke-sign-confusion")]
    assert (confusion.issued, confusion.overridden, confusion.acceptance_rate) == (1, 1, 0.0)
    assert lines[("contact", "low-mood")].acceptance_rate is None
    recent = build_report(store, since=NOW - timedelta(days=1))
    assert {line.rule for line in recent.lines} == {"stroke-sign-facial-droop", "stroke-sign-confusion"}
    assert build_report(store, until=NOW - timedelta(days=1)).lines[0].rule == "low-mood"
    _check_formats(report)


def _check_formats(report: Any) -> None:
    text = as_text(report).splitlines()
    header = next(line for line in text if line.startswith("service"))
    row = next(line for line in text if "stroke-sign-facial-droop" in line)
    assert header.index("issued") < header.index("patients") and len(row.split()) >= 11
    assert row.index(" 5 ") < header.index("patients")  # numbers right-aligned under their heading
    assert "already-assessed 2, patient-declined 1" in row and "25%" in row
    assert "pat-" not in as_text(report) + as_json(report) + as_csv(report)  # patients are counted, never listed
    document = json.loads(as_json(report))
    assert {line["rule"] for line in document["lines"]} >= {"stroke-sign-facial-droop"}
    rows = list(csv.DictReader(io.StringIO(as_csv(report))))
    droop = next(r for r in rows if r["rule"] == "stroke-sign-facial-droop")
    assert droop["override_reasons"] == "already-assessed=2;patient-declined=1" and droop["acceptance_rate"] == "0.25"
