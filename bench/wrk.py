"""Driving a server with wrk (Debian package `wrk`): a fixed POST or GET, results read back as JSON from Lua."""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import asdict, dataclass
from pathlib import Path

from bench.jwt_load import TokenSupply

LUA = r"""
local body_path = os.getenv("BENCH_BODY")
if body_path and body_path ~= "" then
  local f = assert(io.open(body_path, "rb"))
  wrk.method = "POST"
  wrk.body = f:read("*a")
  f:close()
  wrk.headers["Content-Type"] = "application/json"
end

-- JWT on: one pre-signed token per request, from line BENCH_TOKEN_OFFSET + 1 of BENCH_TOKENS on (bench/jwt_load.py)
local tokens_path = os.getenv("BENCH_TOKENS")
if tokens_path and tokens_path ~= "" then
  local tokens, index = {}, tonumber(os.getenv("BENCH_TOKEN_OFFSET"))
  for line in io.lines(tokens_path) do tokens[#tokens + 1] = line end
  request = function()
    index = index + 1
    wrk.headers["Authorization"] = "Bearer " .. tokens[(index - 1) % #tokens + 1]
    return wrk.format()
  end
end

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests":%d,"duration_us":%d,"bytes":%d,"connect_errors":%d,"read_errors":%d,' ..
    '"write_errors":%d,"status_errors":%d,"timeouts":%d,"p50_us":%d,"p95_us":%d,"p99_us":%d,' ..
    '"max_us":%d,"mean_us":%.1f}\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(95), latency:percentile(99), latency.max, latency.mean))
end
"""


class WrkMissing(RuntimeError):
    pass


@dataclass(frozen=True)
class WrkResult:
    connections: int
    seconds: float
    requests: int
    rps: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float
    mean_ms: float
    errors: int  # connect/read/write errors, timeouts and non-2xx/3xx answers

    def as_dict(self) -> dict[str, float | int]:
        return asdict(self)


def require_wrk() -> str:
    path = shutil.which("wrk")
    if path is None:
        raise WrkMissing("wrk is not installed: run `apt-get install wrk` (Debian package) and try again")
    return path


def run(
    url: str,
    body_path: Path | None,
    connections: int,
    seconds: float,
    script_dir: Path,
    tokens: TokenSupply | None = None,
    timeout_s: float = 10.0,
) -> WrkResult:
    """`connections` keep-alive connections on one wrk thread for `seconds` (each sends the same request; with
    `tokens`, each its own bearer token)."""
    wrk = require_wrk()
    script = script_dir / "bench.lua"
    if not script.exists():
        script.write_text(LUA)
    env = {"BENCH_BODY": str(body_path) if body_path else "", "PATH": "/usr/bin:/bin"}
    if tokens is not None:
        env |= {"BENCH_TOKENS": str(tokens.path), "BENCH_TOKEN_OFFSET": str(tokens.offset)}
    command = [
        wrk,
        "-t1",
        f"-c{connections}",
        f"-d{max(1, round(seconds))}s",
        f"--timeout={timeout_s:g}s",
        "-s",
        str(script),
        url,
    ]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=seconds + timeout_s + 30)
    line = next((ln for ln in done.stdout.splitlines() if ln.startswith("BENCH_JSON ")), None)
    if done.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stdout[-2000:]}{done.stderr[-2000:]}")
    data = json.loads(line.removeprefix("BENCH_JSON "))
    duration = data["duration_us"] / 1e6
    errors = (
        data["connect_errors"] + data["read_errors"] + data["write_errors"] + data["status_errors"] + data["timeouts"]
    )
    return WrkResult(
        connections=connections,
        seconds=round(duration, 2),
        requests=data["requests"],
        rps=round(data["requests"] / duration, 1) if duration else 0.0,
        p50_ms=data["p50_us"] / 1000,
        p95_ms=data["p95_us"] / 1000,
        p99_ms=data["p99_us"] / 1000,
        max_ms=data["max_us"] / 1000,
        mean_ms=round(data["mean_us"] / 1000, 3),
        errors=errors,
    )


def merge(rounds: list[WrkResult]) -> WrkResult:
    """Several rounds of the same run as one: requests/s over the summed time; the median p50, the worst p95/p99."""
    seconds = sum(r.seconds for r in rounds)
    requests = sum(r.requests for r in rounds)
    p50s = sorted(r.p50_ms for r in rounds)
    return WrkResult(
        connections=rounds[0].connections,
        seconds=round(seconds, 2),
        requests=requests,
        rps=round(requests / seconds, 1) if seconds else 0.0,
        p50_ms=p50s[len(p50s) // 2],
        p95_ms=max(r.p95_ms for r in rounds),
        p99_ms=max(r.p99_ms for r in rounds),
        max_ms=max(r.max_ms for r in rounds),
        mean_ms=round(sum(r.mean_ms * r.requests for r in rounds) / requests, 3) if requests else 0.0,
        errors=sum(r.errors for r in rounds),
    )
