"""Where a hook call's time goes: each step of the service, timed in-process on the benchmark's workloads.

    .venv/bin/python bench/steps.py [--repeat N]

Prints one row per step (best of 5 batches, in ms) and the whole WSGI call of the service and of the baseline apps
(no HTTP server, no network), so the table shows what a change can win before a full `bench/run.py`.
"""

from __future__ import annotations

import argparse
import io
import logging
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson


def best_ms(action: Callable[[], object], repeat: int) -> float:
    for _ in range(min(20, repeat)):
        action()
    best = float("inf")
    for _ in range(5):
        started = time.perf_counter()
        for _ in range(repeat):
            action()
        best = min(best, (time.perf_counter() - started) / repeat * 1000)
    return best


def wsgi_call(app: Any, path: str, body: bytes) -> Callable[[], object]:
    """One POST through the app's WSGI interface, as gunicorn would make it (minus the socket)."""

    def call() -> object:
        environ = {
            "REQUEST_METHOD": "POST",
            "PATH_INFO": path,
            "SERVER_NAME": "127.0.0.1",
            "SERVER_PORT": "80",
            "wsgi.url_scheme": "http",
            "wsgi.input": io.BytesIO(body),
            "CONTENT_LENGTH": str(len(body)),
            "CONTENT_TYPE": "application/json",
            "SERVER_PROTOCOL": "HTTP/1.1",
            "wsgi.errors": sys.stderr,
        }
        status: list[str] = []
        chunks = app(environ, lambda s, _h, _e=None: status.append(s))
        b"".join(chunks)
        if hasattr(chunks, "close"):
            chunks.close()
        if not status or not status[0].startswith("200"):
            raise RuntimeError(f"{path}: {status}")
        return status

    return call


def main(argv: list[str] | None = None) -> int:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from bench import charts
    from bench.baseline_app import flask_app, orjson_app
    from cds_service.domain.cards import render_cards
    from cds_service.domain.findings import recognise
    from cds_service.domain.observations import select_observations, validated
    from cds_service.domain.pipeline import shown_references
    from cds_service.domain.triage import triage
    from cds_service.hooks.schemas import HookRequestSchema
    from cds_service.http.app import create_app
    from cds_service.http.logging_setup import configure_logging
    from cds_service.server import settle_heap
    from cds_service.settings import Settings
    from cds_service.store import IssuedCardRow

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=100, help="calls per timed batch (default 100)")
    args = parser.parse_args(argv)

    configure_logging()
    logging.getLogger().handlers[0].setStream(open("/dev/null", "w"))  # noqa: SIM115 - lives as long as the run
    tmp = tempfile.mkdtemp(prefix="cds-steps-")
    settings = Settings(public_url="http://127.0.0.1:8080", auth="off", database_url=f"sqlite:///{tmp}/cds.db")
    app = create_app(settings)
    runtime = app.extensions["cds_runtime"]  # what http/context.py attaches
    knowledge, store = runtime.knowledge, runtime.store
    settle_heap()
    now = datetime.now(UTC)
    path = "/cds-services/weakness-triage-patient-view"
    hook_schema = HookRequestSchema()

    rows: dict[str, dict[str, float]] = {}
    workloads = [w for w in charts.workloads(now, None) if w.id != "W3"]
    for workload in workloads:
        raw = orjson.dumps(workload.body)
        body = orjson.loads(raw)
        resources = [e["resource"] for e in body["prefetch"]["observations"]["entry"]]
        facts, _ = select_observations(resources, charts.PATIENT_ID, knowledge, validate=False)
        decisions = triage(recognise(facts, knowledge), knowledge, now)
        shown = shown_references(decisions)
        cards = render_cards(decisions, knowledge, settings.base_url, charts.PATIENT_ID, now)
        tiers = [d.tier.id for d in decisions]
        repeat = max(5, args.repeat // (10 if workload.observations > 500 else 1))
        steps: dict[str, Callable[[], object]] = {
            "orjson.loads (the orjson app's work)": lambda raw=raw: orjson.loads(raw),
            "hook request schema": lambda body=body: hook_schema.load(body),
            "pre-filter + facts (select)": lambda r=resources: select_observations(
                r, charts.PATIENT_ID, knowledge, validate=False
            ),
            "depth guard + fhir.resources validation of shown": lambda f=facts, s=shown: [
                validated(x.__class__(**{**x.__dict__, "validated": False})) for x in f if x.reference in s
            ],
            "recognise + triage + render": lambda f=facts: render_cards(
                triage(recognise(f, knowledge), knowledge, now), knowledge, settings.base_url, charts.PATIENT_ID, now
            ),
            "response check (split)": lambda c=cards: runtime.response_check.problems({"cards": c}),
            "store.record_cards (SQLite commit)": lambda t=tiers: store.record_cards(
                charts.PATIENT_ID,
                [IssuedCardRow(str(uuid.uuid4()), "bench", "hook", "info", tier, [], [], now) for tier in t],
            ),
            "whole WSGI call: service": wsgi_call(app, path, raw),
            "whole WSGI call: baseline (Flask get_json)": wsgi_call(flask_app, path, raw),
            "whole WSGI call: orjson app": wsgi_call(orjson_app, path, raw),
        }
        rows[workload.id] = {name: best_ms(step, repeat) for name, step in steps.items()}

    ids = list(rows)
    names = list(next(iter(rows.values())))
    print(f"{'step (ms, best of 5 batches)':<46}" + "".join(f"{i:>9}" for i in ids))
    for name in names:
        print(f"{name:<46}" + "".join(f"{rows[i][name]:>9.3f}" for i in ids))
    for baseline in ("baseline (Flask get_json)", "orjson app"):
        ratios = [rows[i][f"whole WSGI call: {baseline}"] / rows[i]["whole WSGI call: service"] for i in ids]
        print(f"{'in-process ratio, ' + baseline:<46}" + "".join(f"{r:>9.2f}" for r in ratios))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
