"""The service as deployed (`cds-service serve`, gunicorn) on a free loopback port, for protocol tests."""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path
from types import TracebackType

from tests.support.fhir_server import free_port
from tests.support.gunicorn_process import GunicornProcess


class ServiceServer:
    def __init__(self, env: dict[str, str] | None = None, workers: int = 2) -> None:
        self.tmp = tempfile.TemporaryDirectory(prefix="cds-service-")
        port = free_port()
        self.base_url = f"http://127.0.0.1:{port}"
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("CDS_")},
            "CDS_PUBLIC_URL": self.base_url,
            "CDS_AUTH": "off",
            "CDS_DATABASE_URL": f"sqlite:///{self.tmp.name}/cds.db",
            "CDS_ALLOW_CLOCK_HEADER": "1",
            **(env or {}),
        }
        command = [
            sys.executable,
            "-m",
            "cds_service",
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            str(workers),
        ]
        self.server = GunicornProcess("service", command, port, self.env, Path(self.tmp.name) / "service.log")

    def start(self) -> ServiceServer:
        self.server.start()
        return self

    def logs(self) -> str:
        return self.server.logs()

    def stop(self) -> None:
        self.server.stop()

    def cleanup(self) -> None:
        self.stop()
        self.tmp.cleanup()

    def __enter__(self) -> ServiceServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.cleanup()
