"""`cds-service serve | triage | check-content | openapi`."""

from __future__ import annotations

import argparse
import gc
import json
import logging
import os
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from marshmallow import ValidationError

from cds_service.caller import Caller
from cds_service.domain.fhir_time import parse_fhir_datetime
from cds_service.errors import ClientError
from cds_service.fhir.prefetch import bundle_resources
from cds_service.hooks.response_check import InvalidTemplate, ResponseCheck
from cds_service.hooks.schemas import HookRequestSchema
from cds_service.hooks.services import SERVICES, ServiceDefinition
from cds_service.knowledge.load import load_knowledge
from cds_service.knowledge.model import Knowledge
from cds_service.settings import Settings, SettingsError, load_settings
from cds_service.validation import dotted, first_error
from cds_service.yaml_source import ContentError

log = logging.getLogger("cds_service")


def _banner(settings: Settings, host: str, port: int, workers: int) -> str:
    auth = (
        "JWT verification ON (CDS_AUTH=jwt)"
        if settings.auth == "jwt"
        else "!!! AUTHENTICATION OFF (CDS_AUTH=off): local demo only, never with real patient data !!!"
    )
    database = settings.database_url.split("@")[-1]  # never print credentials
    return (
        f"weakness-triage CDS service on http://{host}:{port} ({workers} workers)\n"
        f"  auth:       {auth}\n  public URL: {settings.base_url}\n  database:   {database}\n"
        f"  discovery:  {settings.base_url}/cds-services\n"
    )


DEFAULT_THREADS = 8  # gthread: a call waiting on a FHIR server holds one thread, not the worker (README "Reliability")


def worker_counts(workers: int = 0, threads: int = 0) -> tuple[int, int]:
    """Workers and threads per worker: the flag, else CDS_WORKERS / CDS_THREADS, else the CPU count (min 2) and 8."""
    from cds_service.settings import server_counts

    env_workers, env_threads = server_counts() if not (workers and threads) else (0, 0)
    return workers or env_workers or max(2, os.cpu_count() or 2), threads or env_threads or DEFAULT_THREADS


def gunicorn_options(host: str, port: int, workers: int, threads: int) -> dict[str, Any]:
    """The server settings of `serve`; bench/ runs its baseline app under exactly these."""
    return {
        "bind": f"{host}:{port}",
        "workers": workers,
        "threads": threads,
        "worker_class": "gthread" if threads > 1 else "sync",
        "timeout": 30,
        "graceful_timeout": 10,
        "keepalive": 5,
        "accesslog": None,
        "limit_request_field_size": 16384,
    }


GC_FIRST_THRESHOLD = 20_000  # default 700; a large chart's JSON alone holds far more containers


def settle_heap() -> None:
    """After start-up, in each worker: keep the long-lived heap out of the garbage collector's way.

    The knowledge, the fhir.resources/pydantic models and the SQLAlchemy metadata would otherwise be walked again by
    every full collection, and a hook call's JSON allocates enough containers to trigger them. Request data is
    acyclic and freed by reference counting, so the first threshold is raised too; cyclic garbage is still
    collected, in larger batches. Measured effect: docs/performance.md ("GC").
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(GC_FIRST_THRESHOLD, *gc.get_threshold()[1:])


def checked_knowledge(settings: Settings) -> Knowledge:
    """The content and cards, loaded and checked as the workers will use them; raises ContentError/InvalidTemplate."""
    knowledge = load_knowledge(settings.content_dir, settings.cards_dir, settings.guide_id)
    ResponseCheck(knowledge, settings.base_url)
    return knowledge


def _prepare(settings: Settings) -> Knowledge:
    """Everything that can be wrong with the configuration, found before forking."""
    knowledge = checked_knowledge(settings)
    if settings.auth == "jwt" and settings.trusted_issuers_file is not None:
        from cds_service.security.trusted_issuers import load_trusted_issuers

        issuers = load_trusted_issuers(settings.trusted_issuers_file, settings.allow_http_loopback)
        log.info("trusted_issuers_loaded", extra={"issuers": sorted(issuers)})
    from cds_service.store import Store

    Store(settings.database_url, settings.patient_hash_key).engine.dispose()  # schema made once, before forking
    return knowledge


def serve(args: argparse.Namespace) -> int:
    from gunicorn.app.base import BaseApplication
    from gunicorn.arbiter import Arbiter

    from cds_service.http.app import create_app
    from cds_service.http.logging_setup import configure_logging
    from cds_service.runtime import Runtime

    configure_logging()
    settings = load_settings()
    content = {"knowledge": _prepare(settings)}  # the last content that passed its checks: every worker starts on it
    workers, threads = worker_counts(args.workers, args.threads)
    if settings.auth == "off":
        log.warning("authentication_off", extra={"detail": "CDS_AUTH=off: every caller is trusted; demo only"})
    sys.stderr.write(_banner(settings, args.host, args.port, workers))
    options = gunicorn_options(args.host, args.port, workers, threads)

    class ContentCheckingArbiter(Arbiter):
        def reload(self) -> None:
            """HUP: new workers only on content that passes its checks; else the old workers keep serving."""
            try:
                content["knowledge"] = checked_knowledge(settings)
            except (ContentError, InvalidTemplate) as exc:
                log.error("content_reload_refused", extra={"error": str(exc), "detail": "old workers keep serving"})
                return
            super().reload()

    class Server(BaseApplication):
        def load_config(self) -> None:
            for key, value in options.items():
                self.cfg.set(key, value)

        def load(self) -> Any:
            configure_logging()
            app = create_app(settings, Runtime.build(settings, content["knowledge"]))
            settle_heap()
            return app

        def run(self) -> None:
            ContentCheckingArbiter(self).run()

    Server().run()
    return 0


def _patient_from(resources: list[Any]) -> str | None:
    for resource in resources:
        if isinstance(resource, dict) and resource.get("resourceType") == "Patient":
            return resource.get("id")
    for resource in resources:
        reference = ((resource or {}).get("subject") or {}).get("reference", "")
        if reference.startswith("Patient/"):
            return reference.removeprefix("Patient/")
    return None


def _hook_request(body: Any, patient: str | None) -> dict[str, Any]:
    """The CDS Hooks request a file stands for: the request itself, or a patient-view call prefetching a Bundle."""
    if not isinstance(body, dict):
        raise ValueError("input must be a FHIR Bundle or a CDS Hooks request")
    if body.get("resourceType") == "Bundle":
        patient = patient or _patient_from(bundle_resources(body))
        if not patient:
            raise ValueError("cannot tell which patient: pass --patient ID")
        return {
            "hook": "patient-view",
            "hookInstance": str(uuid.uuid4()),
            "context": {"userId": "Practitioner/cds-service-cli", "patientId": patient},
            "prefetch": {"observations": body},
        }
    if "context" in body and "hook" in body:
        if patient and isinstance(body["context"], dict):
            body = {**body, "context": {**body["context"], "patientId": patient}}
        return body
    raise ValueError("input must be a FHIR Bundle or a CDS Hooks request")


def _service_for(hook: str) -> ServiceDefinition:
    service = next((s for s in SERVICES if s.hook == hook), None)
    if service is None:
        raise ValueError(f"no service answers the hook {hook!r}")
    return service


def triage_file(args: argparse.Namespace) -> int:
    from cds_service.answer import answer
    from cds_service.runtime import Engine

    settings = load_settings(for_server=False)
    engine = Engine.build(settings)
    now = parse_fhir_datetime(args.now) if args.now else datetime.now(UTC)
    if now is None:
        raise SystemExit(f"--now must be an ISO 8601 date-time, got {args.now!r}")
    try:
        hook_request = _hook_request(json.loads(Path(args.file).read_text(encoding="utf-8")), args.patient)
        service = _service_for(str(hook_request.get("hook")))
        request = HookRequestSchema().load(hook_request)
        result = answer(engine, service, request, Caller(None, ()), now)
    except (OSError, ValueError) as exc:
        sys.stderr.write(f"{args.file}: {exc}\n")
        return 2
    except ValidationError as exc:
        path, message = first_error(exc.messages)
        sys.stderr.write(f"{args.file}: {dotted(path) or '(body)'}: {message}\n")
        return 2
    except ClientError as exc:
        sys.stderr.write(f"{args.file}: {exc.message}\n")
        return 2
    if args.format == "json":
        sys.stdout.write(json.dumps(result.body, indent=2) + "\n")
    else:
        sys.stdout.write(_as_text(result.body["cards"]))
    return 0


def _as_text(cards: list[dict[str, Any]]) -> str:
    if not cards:
        return "No cards.\n"
    out = []
    for card in cards:
        out.append(f"[{card['indicator'].upper()}] {card['summary']}\n{card.get('detail', '')}\n")
    return "\n".join(out)


def check_content(_: argparse.Namespace) -> int:
    knowledge = checked_knowledge(load_settings(for_server=False))  # every template's fixed card fields spec-true
    sys.stdout.write(
        f"content OK: guide '{knowledge.guide.id}', {len(knowledge.findings)} findings, "
        f"{len(knowledge.scores)} scores, {len(knowledge.rules)} rules, {len(knowledge.cards)} card "
        f"templates\n"
    )
    return 0


def print_openapi(_: argparse.Namespace) -> int:
    from cds_service.hooks.openapi import openapi_yaml

    sys.stdout.write(openapi_yaml())
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cds-service", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    p = commands.add_parser("serve", help="run the production server (gunicorn)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8080)
    p.add_argument("--workers", type=int, default=0, help="default: CDS_WORKERS or the number of CPUs (min 2)")
    p.add_argument("--threads", type=int, default=0, help="threads per worker (default: CDS_THREADS or 1)")
    p.set_defaults(run=serve)
    p = commands.add_parser("triage", help="triage a FHIR Bundle or a CDS Hooks request offline")
    p.add_argument("file")
    p.add_argument("--now", help="evaluation time, ISO 8601 (default: now)")
    p.add_argument("--patient", help="patient id (default: from the request or the Bundle)")
    p.add_argument("--format", choices=["json", "text"], default="text")
    p.set_defaults(run=triage_file)
    p = commands.add_parser("check-content", help="validate content/ and cards/")
    p.set_defaults(run=check_content)
    p = commands.add_parser("openapi", help="print the OpenAPI document generated from the schemas")
    p.set_defaults(run=print_openapi)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.run(args))
    except (ContentError, InvalidTemplate, SettingsError) as exc:
        sys.stderr.write(f"cds-service: {exc}\n")
        return 2
