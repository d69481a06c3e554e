"""W3's FHIR server in the benchmark: the real FHIR server's answers, recorded once and replayed byte for byte.

W3 measures the time the service adds beyond the FHIR server's own. Measured against sekmet itself, that is the
difference of two p50s of ~5-18 ms that drift by several ms between runs on a shared 2-core machine (sekmet spends
that CPU in Python, and keeps writing its traffic log after each answer, on the same two cores as the service and
wrk). A remote FHIR server costs our machine nothing. So the benchmark records sekmet's answer to each query it
will make (status, content type, body), and this server (uvicorn, one process, keep-alive) replays them: the same
bytes from a server whose own time is a fraction of a millisecond. Unknown URLs get a 404 OperationOutcome.

    python bench/fhir_replay.py --port 8099 --recording recording.json
"""

from __future__ import annotations

import argparse
import base64
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import requests

Recording = dict[str, dict[str, Any]]


def undated(query: str) -> str:
    """The query without its `date` floor: the service dates its own search back from the time of each call, and
    the chart's Observations are all inside that floor, so the recorded answer is the same."""
    return "&".join(part for part in query.split("&") if not part.startswith("date="))


# "/path?query" -> {"status", "content_type", "body_b64"}
NOT_FOUND = json.dumps(
    {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": "error", "code": "not-found", "diagnostics": "not recorded"}],
    }
).encode()


def record(fhir_base: str, paths: list[str]) -> Recording:
    """GET each path (relative to fhir_base, e.g. "/Observation?...") from the real FHIR server once."""
    recording: Recording = {}
    for path in paths:
        response = requests.get(fhir_base + path, headers={"Accept": "application/fhir+json"}, timeout=30)
        response.raise_for_status()
        where, _, query = path.partition("?")
        recording[f"{where}?{undated(query)}" if query else where] = {
            "status": response.status_code,
            "content_type": response.headers.get("Content-Type", "application/fhir+json"),
            "body_b64": base64.b64encode(response.content).decode(),
        }
    return recording


Send = Callable[[dict[str, Any]], Awaitable[None]]


def replay_app(recording: Recording, prefix: str) -> Callable[..., Awaitable[None]]:
    """An ASGI app answering GET {prefix}{path} with the recorded answer, and /healthz."""
    answers = {
        prefix + path: (item["status"], item["content_type"].encode(), base64.b64decode(item["body_b64"]))
        for path, item in recording.items()
    }

    async def app(scope: dict[str, Any], _receive: Callable[[], Awaitable[Any]], send: Send) -> None:
        if scope["type"] != "http":
            return
        query = undated(scope.get("query_string", b"").decode("latin-1"))
        target = scope["path"] + (f"?{query}" if query else "")
        if scope["path"] == "/healthz":
            status, content_type, body = 200, b"application/json", b'{"status":"ok"}'
        else:
            status, content_type, body = answers.get(target, (404, b"application/fhir+json", NOT_FOUND))
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(b"content-type", content_type), (b"content-length", str(len(body)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": body})

    return app


def main() -> int:
    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--recording", type=Path, required=True)
    parser.add_argument("--prefix", default="/fhir", help="the path the replayed server's base URL ends with")
    args = parser.parse_args()
    app = replay_app(json.loads(args.recording.read_text()), args.prefix)
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning", access_log=False)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
