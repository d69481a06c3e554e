"""Starting and stopping the servers under test on loopback, and reading their workers' memory from /proc."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from contextlib import closing
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class GunicornProcess:
    """One gunicorn master (and its workers) in its own process group; stop() ends the whole group."""

    def __init__(self, name: str, command: list[str], port: int, env: dict[str, str], log_path: Path) -> None:
        self.name = name
        self.command = command
        self.port = port
        self.env = env
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> GunicornProcess:
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(self.command, cwd=REPO, env=self.env, stdin=subprocess.DEVNULL,
                                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.process.returncode}:\n{self.log_tail()}")
            try:
                if requests.get(f"{self.base_url}/healthz", timeout=1).status_code == 200:
                    return self
            except requests.RequestException:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"{self.name} not ready after {timeout:g} s:\n{self.log_tail()}")

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")[-chars:]
        except OSError:
            return ""

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None:
            return
        for sig, wait in ((signal.SIGTERM, 15.0), (signal.SIGKILL, 5.0)):
            try:
                os.killpg(process.pid, sig)  # start_new_session: the group id is the master's pid
            except ProcessLookupError:
                break
            try:
                process.wait(timeout=wait)
                break
            except subprocess.TimeoutExpired:
                continue

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


def service(tmp: Path, workers: int, threads: int, extra_env: dict[str, str]) -> GunicornProcess:
    """The service as deployed: `python -m cds_service serve`, auth off, its own SQLite file."""
    port = free_port()
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("CDS_")},
           "CDS_AUTH": "off", "CDS_PUBLIC_URL": f"http://127.0.0.1:{port}",
           "CDS_DATABASE_URL": f"sqlite:///{tmp / 'cds.db'}", **extra_env}
    command = [sys.executable, "-m", "cds_service", "serve", "--host", "127.0.0.1", "--port", str(port),
               "--workers", str(workers), "--threads", str(threads)]
    return GunicornProcess("service", command, port, env, tmp / "service.log")


def baseline(tmp: Path, workers: int, threads: int) -> GunicornProcess:
    port = free_port()
    command = [sys.executable, str(REPO / "bench" / "baseline_server.py"), "--port", str(port),
               "--workers", str(workers), "--threads", str(threads)]
    return GunicornProcess("baseline", command, port, dict(os.environ), tmp / "baseline.log")
