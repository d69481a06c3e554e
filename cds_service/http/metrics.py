"""Prometheus metrics: what is counted, and GET /metrics.

Labels are bounded sets (route templates, statuses, indicators, rule ids, failure classes): never a patient id, a
URL, a token or a value. Under gunicorn every worker writes its own files in PROMETHEUS_MULTIPROC_DIR (set by
`serve`, see metrics_setup.py) and a scrape of any worker, or of the master's own port, adds them up.
"""

from __future__ import annotations

import os
from typing import Any

from flask import Blueprint, Response, request
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)

from cds_service.errors import ClientError
from cds_service.security.auth import Failure

blueprint = Blueprint("metrics", __name__)
LATENCY_BUCKETS = (0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)

REQUEST_SECONDS = Histogram(
    "cds_http_request_duration_seconds",
    "Time to answer an HTTP request, by route template, method and status",
    ["route", "method", "status"],
    buckets=LATENCY_BUCKETS,
)
CARDS = Counter(
    "cds_cards_total", "Cards answered, by indicator and rule (a card counts once per rule)", ["indicator", "rule"]
)
REPEATS_QUIETED = Counter(
    "cds_repeat_alerts_quieted_total", "Cards shown as an acknowledged info line instead of in full", ["tier"]
)
FHIR_SECONDS = Histogram(
    "cds_fhir_fetch_duration_seconds",
    "Time a hook call spent calling the EHR's FHIR server back (successful fetches)",
    buckets=LATENCY_BUCKETS,
)
FHIR_FAILURES = Counter("cds_fhir_failures_total", "FHIR callbacks that failed (answered 412), by kind", ["kind"])
JWT_REFUSALS = Counter("cds_jwt_refusals_total", "Requests refused with 401, by failure class", ["failure"])
FEEDBACK = Counter(
    "cds_feedback_total", "Feedback items received, by outcome and whether they were new", ["outcome", "stored"]
)

_FAILURE_CLASSES = {
    value: value.replace(" ", "_").replace("'", "")
    for name, value in vars(Failure).items()
    if name.isupper() and isinstance(value, str)
}
# The 412 messages of fhir/prefetch.py and fhir/client.py, by the words that tell their kind apart.
_FHIR_KINDS = (
    ("too slow", "timeout"),
    ("deadline", "timeout"),
    ("unreachable", "unreachable"),
    ("answered HTTP", "http_status"),
    ("larger than", "too_large"),
    ("not JSON", "invalid_response"),
    ("did not return a resource", "invalid_response"),
    ("not a Bundle", "invalid_response"),
    ("no fhirServer", "no_server"),
    ("allowed", "refused_url"),
    ("refusing", "refused_url"),
    ("outside", "refused_url"),
)


def fhir_failure_kind(message: str) -> str:
    return next((kind for words, kind in _FHIR_KINDS if words in message), "other")


def jwt_failure_class(message: str) -> str:
    failure = message.removeprefix("authentication failed: ")
    return next((slug for text, slug in _FAILURE_CLASSES.items() if failure.startswith(text)), "other")


def count_client_error(error: ClientError) -> None:
    if error.status == 401:
        JWT_REFUSALS.labels(jwt_failure_class(error.message)).inc()
    elif error.status == 412 and "could not be fetched" in error.message:
        FHIR_FAILURES.labels(fhir_failure_kind(error.message)).inc()


def observe_request(status: int, seconds: float) -> None:
    rule = request.url_rule
    REQUEST_SECONDS.labels(rule.rule if rule else "(no route)", request.method, str(status)).observe(seconds)


def count_answer(cards: list[dict[str, Any]], log_fields: dict[str, Any]) -> None:
    for card in cards:
        rules = card.get("extension", {}).get("org.weakness-triage", {}).get("rules") or ["(none)"]
        for rule in rules:
            CARDS.labels(card["indicator"], rule).inc()
    for tier in log_fields.get("quieted", ()):
        REPEATS_QUIETED.labels(tier).inc()
    if log_fields.get("fetched"):
        FHIR_SECONDS.observe(log_fields.get("fhir_ms", 0.0) / 1000)


def count_feedback(items: list[dict[str, Any]], fresh: tuple[bool, ...]) -> None:
    for item, new in zip(items, fresh, strict=True):
        FEEDBACK.labels(item["outcome"], "new" if new else "duplicate").inc()


def registry() -> CollectorRegistry:
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        return REGISTRY  # one process (tests, a single worker): its own counters
    collected = CollectorRegistry()
    multiprocess.MultiProcessCollector(collected)
    return collected


@blueprint.get("/metrics")
def metrics() -> Response:
    return Response(generate_latest(registry()), mimetype=CONTENT_TYPE_LATEST)
