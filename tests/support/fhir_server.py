"""A real FHIR R4 server (sekmet-fhir) on loopback for tests.

Usage::

    with FhirServer() as fhir:
        fhir.load([patient, *observations])
        requests.get(f"{fhir.base_url}/Observation", params={"patient": "p1", "_sort": "-date", "_count": 2})

Each server gets its own temp dir (settings.yaml + SQLite DB), a free port and ``host: 127.0.0.1``; it runs
``sekmet serve -c settings.yaml`` in its own process group and needs no internet. Ready in ~0.7 s.

Verified against sekmet-fhir 0.1.1:

- ``base_url`` is ``http://127.0.0.1:PORT/fhir``; ``GET {base}/metadata`` is the readiness probe.
- ``GET {base}/Patient/{id}`` -> the resource; unknown id -> 404 OperationOutcome.
- ``GET {base}/Observation?patient=ID&_sort=-date&_count=N`` -> searchset Bundle with ``total`` (full count) and
  absolute links ``self``/``first``/``next``/``last`` (``previous`` past page 1), e.g.
  ``http://127.0.0.1:PORT/fhir/Observation?patient=p1&_sort=-date&_count=2&_offset=2``; ``next`` only when more
  results exist. Paging is offset-based; default page size 20, max 1000. Without ``_sort``: insertion order.
- ``patient=`` (and ``subject=``) accept a bare id or ``Patient/id``. ``code=`` / ``category=`` accept ``code``,
  ``system|code`` and comma ORs. ``date=`` takes prefixes (``ge2024-02-01``).
- Unknown search params are ignored, and the Bundle then carries an extra OperationOutcome entry
  (``search.mode == "outcome"``): filter entries on ``search.mode == "match"``. ``Prefer: handling=strict`` -> 400.
- Auth is off (``server_auth.types: [none]``, the default): any ``Authorization`` header is accepted and ignored.
  sekmet logs every inbound request (Authorization redacted to its scheme): see ``request_log()``.
- Writes are validated structurally (fhir.resources R4B models): unknown elements or a missing required element
  (e.g. ``Observation.status``) -> 400. References are not checked. Resources are stored and returned verbatim
  (dates keep their original string form and offset) with ``meta.versionId``/``meta.lastUpdated`` added.
- ``load()`` uses a transaction Bundle of ``PUT Type/id`` entries (atomic: one bad resource rolls back all).
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from contextlib import closing
from pathlib import Path
from types import TracebackType
from typing import Any

import requests

FHIR_JSON = "application/fhir+json"


def free_port() -> int:
    """A currently free TCP port on 127.0.0.1."""
    with closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _sekmet_executable() -> str:
    """The `sekmet` script of the running interpreter's environment, else the one on PATH."""
    local = Path(sys.executable).parent / "sekmet"
    found = str(local) if local.exists() else shutil.which("sekmet")
    if not found:
        raise RuntimeError("sekmet not found: install sekmet-fhir into the test environment")
    return found


class FhirServerError(RuntimeError):
    """The FHIR server failed to start or rejected test data."""


class FhirServer:
    """A sekmet FHIR R4 server on 127.0.0.1 with a throwaway SQLite store. Use as a context manager."""

    def __init__(self, startup_timeout: float = 20.0, validation: str = "strict") -> None:
        self.startup_timeout = startup_timeout
        self.validation = validation  # sekmet inbound validation: strict | warn | off
        self.port = 0
        self.ready_seconds = 0.0
        self.workdir: Path | None = None
        self.process: subprocess.Popen[bytes] | None = None
        self.http = requests.Session()
        self.http.trust_env = False  # never route loopback calls through an environment proxy

    @property
    def base_url(self) -> str:
        """FHIR base, e.g. http://127.0.0.1:PORT/fhir."""
        return f"http://127.0.0.1:{self.port}/fhir"

    def __enter__(self) -> FhirServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # ---------------- lifecycle ----------------

    def start(self) -> FhirServer:
        """Start the server and wait until /metadata answers (retries on a port taken in the meantime)."""
        if self.process is not None:
            return self
        self.workdir = Path(tempfile.mkdtemp(prefix="sekmet-"))
        atexit.register(self.stop)
        for attempt in range(3):
            self.port = free_port()
            self._spawn()
            try:
                self._wait_ready()
                return self
            except FhirServerError as e:
                in_use = "address already in use" in self._stderr_tail().lower()
                self._terminate()
                if not in_use or attempt == 2:
                    message = self._failure_message(str(e))
                    self.stop()
                    raise FhirServerError(message) from None
        raise AssertionError("unreachable")

    def stop(self) -> None:
        """Terminate the server's process group (SIGKILL after 5 s) and delete its temp dir."""
        self._terminate()
        if self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)
            self.workdir = None
        self.http.close()
        atexit.unregister(self.stop)

    def _spawn(self) -> None:
        assert self.workdir is not None
        settings = {
            "base_url": self.base_url,
            "host": "127.0.0.1",
            "port": self.port,
            "data_dir": str(self.workdir / "data"),
            "own_private_key_path": str(self.workdir / "keys" / "sekmet_private.pem"),
            "server_auth": {"types": ["none"]},
            "validation": {"inbound": self.validation},
            "simulator": {"enabled": False},
        }
        config = self.workdir / "settings.yaml"
        config.write_text(json.dumps(settings, indent=2))  # JSON is valid YAML
        env = {k: v for k, v in os.environ.items() if not k.startswith("SEKMET_")}  # env would override settings
        self._stdout = open(self.workdir / "stdout.log", "wb")  # noqa: SIM115 - open as long as the server runs
        self._stderr = open(self.workdir / "stderr.log", "wb")  # noqa: SIM115 - open as long as the server runs
        self.process = subprocess.Popen(
            [_sekmet_executable(), "serve", "-c", str(config)],
            cwd=self.workdir,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=self._stdout,
            stderr=self._stderr,
            start_new_session=True,
        )

    def _wait_ready(self) -> None:
        assert self.process is not None
        started = time.monotonic()
        deadline = started + self.startup_timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise FhirServerError(f"it exited with code {self.process.returncode}")
            try:
                if self.http.get(f"{self.base_url}/metadata", timeout=1).status_code == 200:
                    self.ready_seconds = time.monotonic() - started
                    return
            except requests.RequestException:
                pass
            time.sleep(0.05)
        raise FhirServerError(f"no answer within {self.startup_timeout:g} s")

    def _terminate(self) -> None:
        proc, self.process = self.process, None
        if proc is not None:
            for sig, wait in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, sig)  # own session: pgid == pid
                try:
                    proc.wait(timeout=wait)
                    break
                except subprocess.TimeoutExpired:
                    continue
        for f in (getattr(self, "_stdout", None), getattr(self, "_stderr", None)):
            if f is not None:
                f.close()

    def _stderr_tail(self, chars: int = 3000) -> str:
        path = self.workdir / "stderr.log" if self.workdir else None
        if path is None or not path.exists():
            return ""
        return path.read_text(errors="replace")[-chars:]

    def _failure_message(self, reason: str) -> str:
        return (
            f"sekmet FHIR server did not become ready on {self.base_url}: {reason}"
            f"\n--- stderr tail ---\n{self._stderr_tail()}"
        )

    # ---------------- data ----------------

    def load(self, resources: list[dict[str, Any]]) -> None:
        """Create/update resources under their own ids (one transaction), then check each reads back unchanged."""
        if not resources:
            return
        missing = [r.get("resourceType") for r in resources if not r.get("id")]
        if missing:
            raise ValueError(f"load() needs an id on every resource; missing on: {missing}")
        bundle: dict[str, Any] = {
            "resourceType": "Bundle",
            "type": "transaction",
            "entry": [
                {"resource": r, "request": {"method": "PUT", "url": f"{r['resourceType']}/{r['id']}"}}
                for r in resources
            ],
        }
        resp = self.http.post(self.base_url, json=bundle, headers={"Content-Type": FHIR_JSON}, timeout=30)
        if resp.status_code != 200:
            raise FhirServerError(f"transaction rejected ({resp.status_code}): {resp.text[:2000]}")
        for r in resources:
            got = self.read(r["resourceType"], r["id"])
            strip = {"meta"}
            if got is None or {k: v for k, v in got.items() if k not in strip} != {
                k: v for k, v in r.items() if k not in strip
            }:
                raise FhirServerError(f"{r['resourceType']}/{r['id']} did not read back as written: {got}")

    def read(self, resource_type: str, resource_id: str) -> dict[str, Any] | None:
        """GET Type/id; None when not found."""
        resp = self.http.get(f"{self.base_url}/{resource_type}/{resource_id}", timeout=10)
        if resp.status_code == 404:
            return None
        resp.raise_for_status()
        return resp.json()

    def request_log(self) -> list[dict[str, Any]]:
        """Inbound /fhir requests sekmet recorded, oldest first: method, url (path+query), status, authorization
        (redacted to the scheme, e.g. "Bearer ***redacted***"). Rows are written just after the response is sent."""
        assert self.workdir is not None, "server not started"
        db = self.workdir / "data" / "sekmet.db"
        with closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)) as conn:
            rows = conn.execute(
                "SELECT method, url, status, req_headers FROM traffic WHERE direction = 'inbound' ORDER BY id"
            ).fetchall()
        return [
            {"method": m, "url": u, "status": s, "authorization": json.loads(h or "{}").get("authorization")}
            for m, u, s, h in rows
        ]
