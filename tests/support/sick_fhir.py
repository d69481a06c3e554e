"""FHIR servers that misbehave at the socket level, one listening port per behaviour, for the fetch path's faults.

Each behaviour answers every request the same way: drip the status line or the headers, drip the body, go silent
after the headers, answer well but too late, 500 with HTML, 401 with WWW-Authenticate, invalid JSON, a 100 MB body,
a reset mid-body, a redirect to itself, a `next` link to itself. Threads stop with the context manager.
"""

from __future__ import annotations

import contextlib
import json
import socket
import struct
import threading
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any

DRIP_SECONDS = 0.1
GIVE_UP_SECONDS = 15.0  # no behaviour keeps a socket longer than this


def _alive_until() -> float:
    return time.monotonic() + GIVE_UP_SECONDS


def _head(status: str, headers: dict[str, str]) -> bytes:
    lines = [f"HTTP/1.1 {status}", *(f"{k}: {v}" for k, v in headers.items()), "", ""]
    return "\r\n".join(lines).encode()


def _json_head(length: int) -> bytes:
    return _head("200 OK", {"Content-Type": "application/fhir+json", "Content-Length": str(length)})


def _drip(conn: socket.socket, data: bytes) -> None:
    stop = _alive_until()
    for index in range(len(data)):
        if time.monotonic() > stop:
            return
        conn.sendall(data[index : index + 1])
        time.sleep(DRIP_SECONDS)


def _silence() -> None:
    time.sleep(GIVE_UP_SECONDS)


class SickFhirServers:
    """`url(name)` is a fhirServer base URL whose every answer has the named fault."""

    def __init__(self, good_bundle: dict[str, Any]) -> None:
        self.good = json.dumps(good_bundle).encode()
        self.behaviours: dict[str, Callable[[socket.socket, str], None]] = {
            "status-line-dripped": lambda c, _p: _drip(c, _json_head(len(self.good)) + self.good),
            "headers-dripped": self._headers_dripped,
            "body-dripped": lambda c, _p: (c.sendall(_json_head(len(self.good))), _drip(c, self.good)),
            "silent-after-headers": lambda c, _p: (c.sendall(_json_head(len(self.good))), _silence()),
            "good-answer-too-late": self._too_late,
            "html-500": lambda c, _p: c.sendall(self._html(500)),
            "401-www-authenticate": self._unauthorized,
            "invalid-json": lambda c, _p: c.sendall(_json_head(14) + b'{"resourceType'),
            "body-100mb": self._huge,
            "reset-mid-body": self._reset,
            "redirect-loop": self._redirect,
            "next-link-to-itself": self._next_self,
        }
        self._listeners: dict[str, socket.socket] = {}
        self._stopped = threading.Event()

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self._listeners[name].getsockname()[1]}/fhir"

    def _headers_dripped(self, conn: socket.socket, _path: str) -> None:
        conn.sendall(b"HTTP/1.1 200 OK\r\n")
        _drip(conn, _json_head(len(self.good)).split(b"\r\n", 1)[1] + self.good)

    def _too_late(self, conn: socket.socket, _path: str) -> None:
        time.sleep(3.0)
        conn.sendall(_json_head(len(self.good)) + self.good)

    @staticmethod
    def _html(status: int) -> bytes:
        page = b"<html><body><h1>Internal Server Error</h1></body></html>"
        head = _head(f"{status} Internal Server Error", {"Content-Type": "text/html", "Content-Length": str(len(page))})
        return head + page

    @staticmethod
    def _unauthorized(conn: socket.socket, _path: str) -> None:
        body = b'{"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"login"}]}'
        headers = {"WWW-Authenticate": 'Bearer error="invalid_token"', "Content-Length": str(len(body))}
        conn.sendall(_head("401 Unauthorized", {"Content-Type": "application/fhir+json", **headers}) + body)

    @staticmethod
    def _huge(conn: socket.socket, _path: str) -> None:
        size, chunk = 100 * 1024 * 1024, b" " * (1024 * 1024)
        conn.sendall(_json_head(size) + b'{"resourceType":"Bundle","type":"searchset","entry":[')
        for _ in range(100):
            conn.sendall(chunk)

    def _reset(self, conn: socket.socket, _path: str) -> None:
        conn.sendall(_json_head(len(self.good)) + self.good[: len(self.good) // 2])
        time.sleep(0.05)
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # close -> RST

    def _redirect(self, conn: socket.socket, path: str) -> None:
        location = f"http://127.0.0.1:{conn.getsockname()[1]}{path}"
        conn.sendall(_head("302 Found", {"Location": location, "Content-Length": "0"}))

    def _next_self(self, conn: socket.socket, path: str) -> None:
        bundle = json.loads(self.good)
        bundle["link"] = [{"relation": "next", "url": f"http://127.0.0.1:{conn.getsockname()[1]}{path}"}]
        body = json.dumps(bundle).encode()
        conn.sendall(_json_head(len(body)) + body)

    def _serve_one(self, name: str, conn: socket.socket) -> None:
        with conn:
            try:
                conn.settimeout(GIVE_UP_SECONDS)
                request = b""
                while b"\r\n\r\n" not in request:
                    data = conn.recv(65536)
                    if not data:
                        return
                    request += data
                path = request.split(b" ", 2)[1].decode()
                self.behaviours[name](conn, path)
            except OSError:
                pass  # the service gave up on us: that is the point

    def _accept(self, name: str, listener: socket.socket) -> None:
        while not self._stopped.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve_one, args=(name, conn), daemon=True).start()

    def __enter__(self) -> SickFhirServers:
        for name in self.behaviours:
            listener = socket.create_server(("127.0.0.1", 0))
            self._listeners[name] = listener
            threading.Thread(target=self._accept, args=(name, listener), daemon=True).start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stopped.set()
        for listener in self._listeners.values():
            with contextlib.suppress(OSError):
                listener.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept()
            listener.close()
