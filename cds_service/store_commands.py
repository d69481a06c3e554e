"""`cds-service db upgrade | current | prune` and `cds-service report`: the store's commands for operators."""

from __future__ import annotations

import argparse
import re
import sys
from datetime import UTC, datetime, timedelta
from typing import Any

from cds_service.domain.fhir_time import parse_fhir_datetime
from cds_service.migrations import current_revision, head_revision, upgrade
from cds_service.settings import load_settings
from cds_service.store import Store, make_engine

_DURATION = re.compile(r"^(\d+)([dh])$")


def duration(text: str) -> timedelta:
    """`400d`, `36h`: for --older-than."""
    match = _DURATION.match(text.strip())
    if not match or int(match.group(1)) == 0:
        raise argparse.ArgumentTypeError(f"must be a positive number of days or hours, like 400d or 36h: {text!r}")
    amount, unit = int(match.group(1)), match.group(2)
    return timedelta(days=amount) if unit == "d" else timedelta(hours=amount)


def date(text: str) -> datetime:
    """A date (2026-11-01, the start of that day in UTC) or an ISO 8601 date-time: for --since and --until."""
    parsed = parse_fhir_datetime(text.strip())
    if parsed is None:
        raise argparse.ArgumentTypeError(f"must be a date like 2026-11-01 or an ISO 8601 date-time: {text!r}")
    return parsed


def db_upgrade(_: argparse.Namespace) -> int:
    engine = make_engine(load_settings(for_server=False).database_url)
    before = current_revision(engine)
    upgrade(engine)
    sys.stdout.write(f"database schema: {before or 'none'} -> {current_revision(engine)} (head)\n")
    engine.dispose()
    return 0


def db_current(_: argparse.Namespace) -> int:
    engine = make_engine(load_settings(for_server=False).database_url)
    current, head = current_revision(engine), head_revision()
    state = "up to date" if current == head else "behind: run `cds-service db upgrade`"
    sys.stdout.write(f"database schema: {current or 'none'} (head {head}, {state})\n")
    engine.dispose()
    return 0 if current == head else 1


def _store() -> Store:
    settings = load_settings(for_server=False)
    return Store(settings.database_url, settings.patient_hash_key)


def db_prune(args: argparse.Namespace) -> int:
    store = _store()
    counts = store.prune(args.older_than)
    store.engine.dispose()
    cutoff = (datetime.now(UTC) - args.older_than).isoformat(timespec="seconds")
    sys.stdout.write(f"pruned before {cutoff}: " + ", ".join(f"{n} {name}" for name, n in counts.items()) + "\n")
    return 0


def report(args: argparse.Namespace) -> int:
    from cds_service.report import as_csv, as_json, as_text, build_report

    store = _store()
    built = build_report(store, args.since, args.until, comments=args.include_comments)
    store.engine.dispose()
    if args.format == "json":
        sys.stdout.write(as_json(built, comments=args.include_comments))
    elif args.format == "csv":
        sys.stdout.write(as_csv(built, comments=args.include_comments))
    else:
        sys.stdout.write(as_text(built))
    return 0


def add_store_commands(commands: Any) -> None:
    """Register `db` and `report` on the top-level parser's sub-commands."""
    db = commands.add_parser("db", help="database schema and retention").add_subparsers(
        dest="db_command", required=True
    )
    db.add_parser("upgrade", help="upgrade the database schema to this release's (Alembic)").set_defaults(
        run=db_upgrade
    )
    db.add_parser("current", help="print the schema revision; exit 1 when behind").set_defaults(run=db_current)
    p = db.add_parser("prune", help="delete cards, feedback and acknowledgements older than a period")
    p.add_argument("--older-than", type=duration, required=True, help="e.g. 400d or 36h")
    p.set_defaults(run=db_prune)
    p = commands.add_parser("report", help="governance report: how each rule's cards were received")
    p.add_argument("--since", type=date, help="cards issued from this date (UTC) on")
    p.add_argument("--until", type=date, help="cards issued before this date (UTC)")
    p.add_argument("--format", choices=["text", "json", "csv"], default="text")
    p.add_argument(
        "--include-comments",
        action="store_true",
        help="add override comments (json, csv); clinician free text that may name the patient",
    )
    p.set_defaults(run=report)
