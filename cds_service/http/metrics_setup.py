"""What `serve` does for Prometheus before gunicorn forks: the multiprocess directory, and the master's hooks.

prometheus-client's multiprocess mode keeps each worker's values in files under PROMETHEUS_MULTIPROC_DIR, read when
the variable is set before the library is first imported, so this module imports it only inside the hooks. Unset,
the directory is a temporary one of this server's, removed when it stops; set, its old files are cleared at start
(values of a previous run would otherwise be added in).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from cds_service.settings import Settings

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


def _prepare_directory() -> tuple[Path, bool]:
    given = os.environ.get(MULTIPROC_ENV)
    if not given:
        directory = Path(tempfile.mkdtemp(prefix="cds-metrics-"))
        os.environ[MULTIPROC_ENV] = str(directory)
        return directory, True
    directory = Path(given)
    directory.mkdir(parents=True, exist_ok=True)
    for stale in directory.glob("*.db"):
        stale.unlink()
    return directory, False


def gunicorn_metrics_hooks(settings: Settings, host: str) -> dict[str, Any]:
    """Gunicorn server hooks for CDS_METRICS (none when off); call before the app or prometheus_client is imported."""
    if settings.metrics == "off":
        return {}
    directory, owned = _prepare_directory()

    def child_exit(_server: Any, worker: Any) -> None:
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)  # its live gauges go; its counters stay in the sum

    def on_exit(_server: Any) -> None:
        if owned:
            shutil.rmtree(directory, ignore_errors=True)

    hooks: dict[str, Any] = {"child_exit": child_exit, "on_exit": on_exit}
    port = settings.metrics_port
    if port is not None:

        def when_ready(_server: Any) -> None:
            from prometheus_client import CollectorRegistry, multiprocess, start_http_server

            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)
            start_http_server(port, addr=host, registry=registry)  # a daemon thread in the master

        hooks["when_ready"] = when_ready
    return hooks
