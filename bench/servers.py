"""Starting and stopping the servers under test on loopback, and reading their workers' memory from /proc."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from tests.support.fhir_server import free_port
from tests.support.gunicorn_process import REPO, GunicornProcess


class MeasuredGunicorn(GunicornProcess):
    """A server under test whose workers' memory is read from /proc."""

    def worker_pids(self) -> list[int]:
        if self.process is None:
            return []
        return children(self.process.pid)

    def worker_peak_rss_mb(self) -> list[float]:
        """VmHWM (peak resident set) of each live worker, in MB."""
        return [peak for pid in self.worker_pids() if (peak := _vm_hwm_mb(pid)) is not None]


def children(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found += [int(p) for p in (task / "children").read_text().split()]
        except (OSError, ValueError):
            continue
    return sorted(set(found))


def _vm_hwm_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def service(tmp: Path, workers: int, threads: int, extra_env: dict[str, str]) -> MeasuredGunicorn:
    """The service as deployed: `python -m cds_service serve`, auth off, its own SQLite file."""
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("CDS_")},
        "CDS_AUTH": "off",
        "CDS_PUBLIC_URL": f"http://127.0.0.1:{port}",
        "CDS_DATABASE_URL": f"sqlite:///{tmp / 'cds.db'}",
        **extra_env,
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
        "--threads",
        str(threads),
    ]
    return MeasuredGunicorn("service", command, port, env, tmp / "service.log")


def baseline(tmp: Path, workers: int, threads: int, parser: str) -> MeasuredGunicorn:
    """A baseline app of bench/baseline_app.py (`parser`: flask or orjson) under the service's gunicorn settings."""
    port = free_port()
    command = [
        sys.executable,
        str(REPO / "bench" / "baseline_server.py"),
        "--port",
        str(port),
        "--workers",
        str(workers),
        "--threads",
        str(threads),
        "--parser",
        parser,
    ]
    return MeasuredGunicorn(f"baseline-{parser}", command, port, dict(os.environ), tmp / f"baseline-{parser}.log")


def fhir_replay(tmp: Path, recording: Path) -> MeasuredGunicorn:
    """bench/fhir_replay.py serving `recording` (W3's FHIR server)."""
    port = free_port()
    command = [
        sys.executable,
        str(REPO / "bench" / "fhir_replay.py"),
        "--port",
        str(port),
        "--recording",
        str(recording),
    ]
    return MeasuredGunicorn("fhir-replay", command, port, dict(os.environ), tmp / "fhir-replay.log")
