"""Headless Chromium (Debian `chromium`) driven by Playwright for Python, for the browser tests.

Playwright never downloads a browser here: it launches /usr/bin/chromium (.ci/run installs it). The flags keep it off
the network (no background fetches, no QUIC) and make every host name but loopback unresolvable. Screenshots go to
tests/artefacts/ (git-ignored), one per test, for a person to look at.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType

import requests
from playwright.sync_api import Browser, sync_playwright

from tests.support.fhir_server import free_port

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTEFACTS = Path(__file__).resolve().parents[1] / "artefacts"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    '--host-resolver-rules="MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"',
]
SANDBOX_BUILD = Path(__file__).resolve().parents[3] / "shared" / "cds-hooks-sandbox"


@contextmanager
def chromium() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS, timeout=20_000)
        try:
            yield browser
        finally:
            browser.close()


def screenshot_path(name: str) -> str:
    ARTEFACTS.mkdir(exist_ok=True)
    return str(ARTEFACTS / f"{name}.png")


class StaticServer:
    """`python -m http.server` on a free loopback port, serving one folder (the sandbox's production build)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> StaticServer:
        command = [sys.executable, "-m", "http.server", "--bind", "127.0.0.1", str(self.port), "-d", str(self.folder)]
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(100):
            try:
                requests.get(self.base_url + "/index.html", timeout=0.5)
                return self
            except requests.ConnectionError:
                if self.process.poll() is not None:
                    break
                subprocess.run(["sleep", "0.05"], check=False)
        self.__exit__(None, None, None)
        raise RuntimeError(f"the static server for {self.folder} did not start")

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=5)


def stored_feedback(database_file: Path) -> list[tuple[str, str, str | None, str | None, str | None]]:
    """(card uuid, outcome, override system, override code, known card) of every feedback row, oldest first."""
    import sqlite3

    with sqlite3.connect(database_file) as db:
        rows = db.execute(
            "SELECT card_uuid, outcome, override_system, override_code, known_card FROM feedback ORDER BY id"
        ).fetchall()
    return [tuple(row) for row in rows]
