"""The service as deployed (`cds-service serve`, gunicorn) on a free loopback port, for protocol tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import TracebackType

import requests

from tests.support.fhir_server import free_port

REPO = Path(__file__).resolve().parents[2]


class ServiceServer:
    def __init__(self, env: dict[str, str] | None = None, workers: int = 2) -> None:
        self.tmp = tempfile.TemporaryDirectory(prefix="cds-service-")
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.log_path = Path(self.tmp.name) / "service.log"
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("CDS_")},
            "CDS_PUBLIC_URL": self.base_url,
            "CDS_AUTH": "off",
            "CDS_DATABASE_URL": f"sqlite:///{self.tmp.name}/cds.db",
            "CDS_ALLOW_CLOCK_HEADER": "1",
            **(env or {}),
        }
        self.workers = workers
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> ServiceServer:
        self._log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "cds_service", "serve", "--host", "127.0.0.1", "--port", str(self.port),
             "--workers", str(self.workers)],
            cwd=REPO, env=self.env, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"service exited with {self.process.returncode}:\n{self.logs()[-3000:]}")
            try:
                if requests.get(f"{self.base_url}/healthz", timeout=1).status_code == 200:
                    return self
            except requests.ConnectionError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"service not ready after 30 s:\n{self.logs()[-3000:]}")

    def logs(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        if hasattr(self, "_log"):
            self._log.close()

    def cleanup(self) -> None:
        self.stop()
        self.tmp.cleanup()

    def __enter__(self) -> ServiceServer:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.cleanup()
