"""The governance report: how each rule's cards were received, per service, tier and rule, over a period.

Read from the card log and the feedback table. A card that fired on several rules counts once under each rule.
Patients are counted by distinct hashed key and never listed; override comments (clinician free text) appear only
when asked for, and only where the store kept them (CDS_STORE_OVERRIDE_COMMENTS=1).
"""

from __future__ import annotations

import csv
import io
import json
import statistics
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import func, select

from cds_service.store import FeedbackRecord, IssuedCard, Store, aware

NO_RULE = "(no rule)"  # a re-check card lists findings without a firing rule


@dataclass
class RuleLine:
    service: str
    tier: str
    rule: str
    issued: int = 0
    patients: int = 0
    feedback: int = 0
    accepted: int = 0
    overridden: int = 0
    override_reasons: dict[str, int] = field(default_factory=dict)
    acceptance_rate: float | None = None  # accepted / (accepted + overridden)
    median_minutes_to_feedback: float | None = None
    comments: list[str] = field(default_factory=list)


@dataclass
class Report:
    since: str | None
    until: str | None
    lines: list[RuleLine]
    feedback_for_unknown_cards: dict[str, int]  # per service: feedback naming a card uuid we never issued


@dataclass
class _Tally:
    patients: set[str] = field(default_factory=set)
    issued: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    reasons: Counter[str] = field(default_factory=Counter)
    minutes: list[float] = field(default_factory=list)
    comments: list[str] = field(default_factory=list)


def _in_period(column: Any, since: datetime | None, until: datetime | None) -> list[Any]:
    return [condition for condition in (since and column >= since, until and column < until) if condition is not None]


def build_report(
    store: Store, since: datetime | None = None, until: datetime | None = None, *, comments: bool = False
) -> Report:
    """Cards issued in [since, until) and the feedback on them."""
    tallies: dict[tuple[str, str, str], _Tally] = defaultdict(_Tally)
    card_keys: dict[str, list[tuple[str, str, str]]] = {}
    issued_at: dict[str, datetime] = {}
    with store.sessions() as session:
        columns = (IssuedCard.uuid, IssuedCard.service_id, IssuedCard.tier, IssuedCard.rules, IssuedCard.patient_hash)
        cards = session.execute(
            select(*columns, IssuedCard.issued_at).where(*_in_period(IssuedCard.issued_at, since, until))
        )
        for uuid, service, tier, rules, patient_hash, at in cards:
            keys = [(service, tier, rule) for rule in (rules or [NO_RULE])]
            card_keys[uuid], issued_at[uuid] = keys, aware(at)
            for key in keys:
                tallies[key].issued += 1
                tallies[key].patients.add(patient_hash)
        feedback = session.execute(
            select(FeedbackRecord)
            .join(IssuedCard, FeedbackRecord.known_card == IssuedCard.uuid)
            .where(*_in_period(IssuedCard.issued_at, since, until))
        ).scalars()
        for item in feedback:
            _count_feedback(item, card_keys[item.card_uuid], issued_at[item.card_uuid], tallies, comments)
        unknown = session.execute(
            select(FeedbackRecord.service_id, func.count())
            .where(FeedbackRecord.known_card.is_(None), *_in_period(FeedbackRecord.received_at, since, until))
            .group_by(FeedbackRecord.service_id)
        )
        unknown_counts = {service: count for service, count in unknown}
    lines = [_line(key, tally) for key, tally in sorted(tallies.items())]
    shown = [moment.isoformat() if moment else None for moment in (since, until)]
    return Report(shown[0], shown[1], lines, unknown_counts)


def _count_feedback(
    item: FeedbackRecord,
    keys: list[tuple[str, str, str]],
    issued: datetime,
    tallies: dict[tuple[str, str, str], _Tally],
    comments: bool,
) -> None:
    minutes = (aware(item.outcome_timestamp) - issued).total_seconds() / 60
    for key in keys:
        tally = tallies[key]
        tally.outcomes[item.outcome] += 1
        tally.minutes.append(max(minutes, 0.0))
        if item.outcome == "overridden":
            tally.reasons[item.override_code or "(no reason given)"] += 1
        if comments and item.override_comment:
            tally.comments.append(item.override_comment)


def _line(key: tuple[str, str, str], tally: _Tally) -> RuleLine:
    accepted, overridden = tally.outcomes["accepted"], tally.outcomes["overridden"]
    decided = accepted + overridden
    return RuleLine(
        *key,
        issued=tally.issued,
        patients=len(tally.patients),
        feedback=sum(tally.outcomes.values()),
        accepted=accepted,
        overridden=overridden,
        override_reasons=dict(tally.reasons.most_common()),
        acceptance_rate=round(accepted / decided, 3) if decided else None,
        median_minutes_to_feedback=round(statistics.median(tally.minutes), 1) if tally.minutes else None,
        comments=tally.comments,
    )


# ---- output ---------------------------------------------------------------------------------------------------

COLUMNS = (
    ("service", "service"),
    ("tier", "tier"),
    ("rule", "rule"),
    ("issued", "issued"),
    ("patients", "patients"),
    ("feedback", "feedback"),
    ("accepted", "accepted"),
    ("overridden", "overridden"),
    ("acceptance_rate", "acceptance"),
    ("median_minutes_to_feedback", "median min"),
    ("override_reasons", "override reasons"),
)
NUMERIC = {"issued", "patients", "feedback", "accepted", "overridden", "acceptance_rate", "median_minutes_to_feedback"}


def _cell(name: str, value: Any) -> str:
    if value is None:
        return "-"
    if name == "override_reasons":
        return ", ".join(f"{code} {count}" for code, count in value.items()) or "-"
    if name == "acceptance_rate":
        return f"{value:.0%}"
    return str(value)


def as_text(report: Report) -> str:
    period = f"{report.since or 'the beginning'} to {report.until or 'now'}"
    rows = [[_cell(name, getattr(line, name)) for name, _ in COLUMNS] for line in report.lines]
    headers = [title for _, title in COLUMNS]
    widths = [max(len(cell) for cell in column) for column in zip(headers, *rows, strict=False)]

    def aligned(cells: list[str]) -> str:
        parts = [
            cell.rjust(width) if name in NUMERIC else cell.ljust(width)
            for (name, _), cell, width in zip(COLUMNS, cells, widths, strict=True)
        ]
        return "  ".join(parts).rstrip()

    out = [f"Governance report: cards issued from {period}", "", aligned(headers), aligned(["-" * w for w in widths])]
    out += [aligned(row) for row in rows] or ["(no cards issued in this period)"]
    for service, count in sorted(report.feedback_for_unknown_cards.items()):
        out.append(f"\n{service}: {count} feedback item(s) for card uuids this service never issued")
    return "\n".join(out) + "\n"


def as_json(report: Report, comments: bool = False) -> str:
    document = asdict(report)
    if not comments:
        for line in document["lines"]:
            del line["comments"]
    return json.dumps(document, indent=2) + "\n"


def as_csv(report: Report, comments: bool = False) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    names = [name for name, _ in COLUMNS] + (["comments"] if comments else [])
    writer.writerow(names)
    for line in report.lines:
        row = [_csv_cell(getattr(line, name)) for name in names]
        writer.writerow(row)
    return buffer.getvalue()


def _csv_cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, dict):
        return ";".join(f"{code}={count}" for code, count in value.items())
    if isinstance(value, list):
        return " | ".join(value)
    return str(value)
