"""`cds-service serve`: the production server (gunicorn), with everything checked before it forks.

gthread workers (README "Reliability"): a call waiting on a FHIR server holds one thread, not the worker. On HUP
the master checks the new content first and keeps the old workers serving when it has an error.
"""

from __future__ import annotations

import argparse
import gc
import logging
import os
import sys
from typing import Any

from cds_service.hooks.response_check import InvalidTemplate, ResponseCheck
from cds_service.knowledge.load import load_knowledge
from cds_service.knowledge.model import Knowledge
from cds_service.settings import Settings, load_settings
from cds_service.yaml_source import ContentError

log = logging.getLogger("cds_service")
DEFAULT_THREADS = 8  # gthread: a call waiting on a FHIR server holds one thread, not the worker
GC_FIRST_THRESHOLD = 20_000  # default 700; a large chart's JSON alone holds far more containers


def banner(settings: Settings, host: str, port: int, workers: int) -> str:
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


def worker_counts(workers: int = 0, threads: int = 0) -> tuple[int, int]:
    """Workers and threads per worker: the flag, else CDS_WORKERS / CDS_THREADS, else the CPUs this process may use
    (the container's CPU limit, cpu_limit.py; min 2) and DEFAULT_THREADS."""
    from cds_service.cpu_limit import available_cpus
    from cds_service.settings import server_counts

    env_workers, env_threads = server_counts() if not (workers and threads) else (0, 0)
    return workers or env_workers or max(2, available_cpus()), threads or env_threads or DEFAULT_THREADS


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


def with_bound_public_url(env: Any, host: str, port: int) -> dict[str, str]:
    """The environment, with CDS_PUBLIC_URL defaulting to the address `serve` binds (card links and the JWT aud)."""
    if env.get("CDS_PUBLIC_URL", "").strip():
        return dict(env)
    shown = "127.0.0.1" if host in ("0.0.0.0", "", "::") else (f"[{host}]" if ":" in host else host)
    return {**env, "CDS_PUBLIC_URL": f"http://{shown}:{port}"}


def checked_knowledge(settings: Settings) -> Knowledge:
    """The content and cards, loaded and checked as the workers will use them; raises ContentError/InvalidTemplate."""
    knowledge = load_knowledge(settings.content_dir, settings.cards_dir, settings.guide_id)
    ResponseCheck(knowledge, settings.base_url)
    return knowledge


def checked_files(settings: Settings) -> Knowledge:
    """Every file a new worker reads (content, cards, the acknowledged-card template, the trusted issuers),
    checked; raises ContentError/InvalidTemplate naming the file and line."""
    knowledge = checked_knowledge(settings)
    from cds_service.repeat_alerts import AcknowledgedTemplate

    AcknowledgedTemplate.load(settings.cards_dir)
    if settings.auth == "jwt" and settings.trusted_issuers_file is not None:
        from cds_service.security.trusted_issuers import load_trusted_issuers

        issuers = load_trusted_issuers(settings.trusted_issuers_file, settings.allow_http_loopback)
        log.info("trusted_issuers_loaded", extra={"issuers": sorted(issuers)})
    return knowledge


def prepare(settings: Settings) -> Knowledge:
    """Everything that can be wrong with the configuration, found before forking; the database created or
    upgraded (SQLite), or checked to be at the head revision (another database)."""
    knowledge = checked_files(settings)
    from cds_service.store import Store

    Store(settings.database_url, settings.patient_hash_key).engine.dispose()
    return knowledge


def serve(args: argparse.Namespace) -> int:
    from gunicorn.app.base import BaseApplication
    from gunicorn.arbiter import Arbiter

    from cds_service.http.logging_setup import configure_logging
    from cds_service.http.metrics_setup import gunicorn_metrics_hooks

    configure_logging()
    settings = load_settings(with_bound_public_url(os.environ, args.host, args.port))
    content = {"knowledge": prepare(settings)}  # the last content that passed its checks: every worker starts on it
    metrics_hooks = gunicorn_metrics_hooks(settings, args.host)  # before prometheus_client is imported
    from cds_service.http.app import create_app
    from cds_service.runtime import Runtime

    workers, threads = worker_counts(args.workers, args.threads)
    if settings.auth == "off":
        log.warning("authentication_off", extra={"detail": "CDS_AUTH=off: every caller is trusted; demo only"})
    sys.stderr.write(banner(settings, args.host, args.port, workers))
    options = {**gunicorn_options(args.host, args.port, workers, threads), **metrics_hooks}

    class ContentCheckingArbiter(Arbiter):
        def reload(self) -> None:
            """HUP: new workers only on content that passes its checks; else the old workers keep serving."""
            try:
                content["knowledge"] = checked_files(settings)  # all a new worker reads, not the content alone
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
