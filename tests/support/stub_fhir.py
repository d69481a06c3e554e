"""A tiny FHIR-like server on loopback for what a real server will not do: record the exact URL and bearer token,
serve hand-made paging, answer slowly (or drip the body), fail, or redirect. Runs in a thread; stops with the
context manager."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any


@dataclass
class Reply:
    status: int = 200
    body: Any = None
    delay: float = 0.0
    drip: float = 0.0  # > 0: the body is sent one byte at a time, this many seconds apart
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Hit:
    path: str
    authorization: str | None


Route = Callable[[str], Reply]


class StubFhirServer:
    def __init__(self, route: Route) -> None:
        self.route = route
        self.hits: list[Hit] = []
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                stub.hits.append(Hit(self.path, self.headers.get("Authorization")))
                reply = stub.route(self.path)
                if reply.delay:
                    time.sleep(reply.delay)
                payload = json.dumps(reply.body).encode() if reply.body is not None else b""
                try:
                    self.send_response(reply.status)
                    for name, value in {"Content-Type": "application/fhir+json", **reply.headers}.items():
                        self.send_header(name, value)
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    if reply.drip:
                        for index in range(len(payload)):
                            self.wfile.write(payload[index : index + 1])
                            self.wfile.flush()
                            time.sleep(reply.drip)
                    else:
                        self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (deadline): that is what some tests want

            def log_message(self, *_: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.base_url = f"http://127.0.0.1:{self.server.server_address[1]}/fhir"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> StubFhirServer:
        self.thread.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.server.shutdown()
        self.server.server_close()
