"""The benchmark of issue 5: the service as deployed against a bare Flask baseline, same server settings, wrk.

Starts on 127.0.0.1 only: W3's FHIR server (sekmet's recorded answers, replayed by bench/fhir_replay.py), the two
baseline apps (Flask's own JSON reading, the target's baseline; orjson, a stricter reference; in W3 both fetch the
same Observations from the FHIR server) and the service. Checks that each workload gets the expected cards, then
drives the baselines and the service alternately with wrk at concurrency 1 and 16 and prints requests/s, latency
percentiles, the ratios to the baselines measured in the same run with the same body, and the peak RSS of the
service's workers. Everything it started is stopped on exit, Ctrl-C or error.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any

import orjson
import requests

from bench import charts, fhir_replay, jwt_load, servers, wrk
from bench.report import FHIR_PATHS, TARGETS, table, verdicts
from cds_service.server import gunicorn_options, worker_counts

RESULTS = Path(__file__).resolve().parent / "results"
SERVICE_PATH = "/cds-services/weakness-triage-patient-view"


def log(message: str) -> None:
    sys.stderr.write(f"[bench {time.strftime('%H:%M:%S')}] {message}\n")
    sys.stderr.flush()


def machine() -> dict[str, Any]:
    model = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=servers.REPO, capture_output=True, text=True, timeout=5
        ).stdout.strip()
        dirty = bool(
            subprocess.run(
                ["git", "status", "--porcelain", "--untracked-files=no"],
                cwd=servers.REPO,
                capture_output=True,
                text=True,
                timeout=5,
            ).stdout.strip()
        )
    except (OSError, subprocess.SubprocessError):
        commit, dirty = "", False
    return {
        "nproc": os.cpu_count(),
        "cpu_model": model,
        "python": platform.python_version(),
        "kernel": platform.release(),
        "git_commit": commit + ("-dirty" if dirty else ""),
    }


def _interrupt(signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")  # unwinds the ExitStack: every server started is stopped


def _post(
    workload: charts.Workload, base_url: str, name: str, tokens: jwt_load.TokenSupply | None = None
) -> requests.Response:
    headers = {"Content-Type": "application/json"}
    if tokens is not None:
        headers["Authorization"] = f"Bearer {tokens.next_token()}"
    response = requests.post(base_url + SERVICE_PATH, data=orjson.dumps(workload.body), headers=headers, timeout=30)
    if response.status_code != 200:
        raise RuntimeError(f"{workload.id}: {name} answered {response.status_code}: {response.text[:500]}")
    return response


def check_answer(workload: charts.Workload, base_url: str, tokens: jwt_load.TokenSupply | None = None) -> None:
    """The workload must get exactly the cards it is built for; otherwise we would measure the wrong thing."""
    response = _post(workload, base_url, "service", tokens)
    indicators = [card["indicator"] for card in response.json()["cards"]]
    if indicators != workload.expect_indicators:
        raise RuntimeError(f"{workload.id}: expected cards {workload.expect_indicators}, got {indicators}")


def _spend(tokens: jwt_load.TokenSupply | None, target: str, result: wrk.WrkResult) -> wrk.WrkResult:
    """The service refuses a token twice: its next run starts after every token this one may have sent."""
    if tokens is not None and target == "service":
        tokens.take(result.requests + result.connections)
    return result


def run_workload(
    workload: charts.Workload,
    service: servers.MeasuredGunicorn,
    baselines: dict[str, servers.MeasuredGunicorn],
    args: argparse.Namespace,
    tmp: Path,
    fhir_base: str | None = None,
    tokens: jwt_load.TokenSupply | None = None,
) -> dict[str, Any]:
    """Baselines and service alternately, `args.rounds` times per concurrency, so that a burst of other load on the
    machine hits all of them; with fhir_base (W3), the FHIR server's own time is measured in the same rounds.

    "baseline"/"ratio" are against Flask's own JSON reading (the target's baseline); "baseline_orjson"/"ratio_orjson"
    against the orjson app. With `tokens` (JWT on), every request of the service and the baselines carries its own
    bearer token."""
    body_path = tmp / f"{workload.id}.json"
    body_path.write_bytes(orjson.dumps(workload.body))
    check_answer(workload, service.base_url, tokens)
    for name, baseline in baselines.items():
        _post(workload, baseline.base_url, f"baseline {name}")  # answers 200 (in W3: it reached the FHIR server)
    result: dict[str, Any] = {
        "id": workload.id + ("-jwt" if tokens else ""),
        "title": workload.title,
        "body_bytes": body_path.stat().st_size,
        "observations": workload.observations,
        "relevant": workload.relevant,
        "expected_cards": workload.expect_indicators,
        "runs": [],
    }
    seconds = args.duration / args.rounds
    direct: dict[str, list[wrk.WrkResult]] = {key: [] for key in FHIR_PATHS}
    for connections in (1, args.connections):
        rounds_of: dict[str, list[wrk.WrkResult]] = {name: [] for name in (*baselines, "service")}
        targets = {**baselines, "service": service}
        for index in range(args.rounds):
            warmup = args.warmup if index == 0 else 0.0
            for name, target in targets.items():
                url = target.base_url + SERVICE_PATH
                if warmup > 0:
                    _spend(tokens, name, wrk.run(url, body_path, connections, warmup, tmp, tokens))
                rounds_of[name].append(_spend(tokens, name, wrk.run(url, body_path, connections, seconds, tmp, tokens)))
            if fhir_base and connections == 1:
                for key, path in FHIR_PATHS.items():
                    if warmup > 0:
                        wrk.run(fhir_base + path, None, 1, warmup, tmp)
                    direct[key].append(wrk.run(fhir_base + path, None, 1, seconds, tmp))
        ours, base, strict = (wrk.merge(rounds_of[name]) for name in ("service", "flask", "orjson"))
        ratio = round(ours.rps / base.rps, 3) if base.rps else 0.0
        ratio_orjson = round(ours.rps / strict.rps, 3) if strict.rps else 0.0
        log(
            f"{workload.id} c{connections}: service {ours.rps:.0f} req/s p99 {ours.p99_ms:.1f} ms, "
            f"baseline {base.rps:.0f} req/s -> ratio {ratio:.2f} (orjson app {strict.rps:.0f} -> {ratio_orjson:.2f})"
        )
        result["runs"].append(
            {
                "connections": connections,
                "service": ours.as_dict(),
                "baseline": base.as_dict(),
                "ratio": ratio,
                "baseline_orjson": strict.as_dict(),
                "ratio_orjson": ratio_orjson,
            }
        )
    if fhir_base:
        merged = {key: wrk.merge(runs).as_dict() for key, runs in direct.items()}
        own_p50 = round(sum(found["p50_ms"] for found in merged.values()), 3)
        result["fhir_direct"] = {**merged, "p50_sum_ms": own_p50}
        c1 = result["runs"][0]
        result["added_p50_ms"] = round(c1["service"]["p50_ms"] - own_p50, 3)
        # What the bare framework and HTTP client add on their own (fetch + parse, no triage): the floor under ours.
        result["baseline_added_p50_ms"] = round(c1["baseline"]["p50_ms"] - own_p50, 3)
        result["baseline_orjson_added_p50_ms"] = round(c1["baseline_orjson"]["p50_ms"] - own_p50, 3)
    result["service_worker_peak_rss_mb"] = [round(x, 1) for x in service.worker_peak_rss_mb()]
    result["baseline_worker_peak_rss_mb"] = [round(x, 1) for x in baselines["flask"].worker_peak_rss_mb()]
    result["load_average_after"] = Path("/proc/loadavg").read_text().split()[0]
    return result


def start_fhir_server(kind: str, now: datetime, tmp: Path, stack: ExitStack) -> str:
    """W3's FHIR server: sekmet holding W1's chart, or (the default) a replay of its recorded answers; its base URL."""
    from tests.support.fhir_server import FhirServer

    log("starting the sekmet FHIR server for W3")
    fhir = FhirServer()
    fhir.start()
    if kind == "sekmet":
        stack.callback(fhir.stop)
        fhir.load(charts.w3_resources(now))
        return fhir.base_url
    try:
        fhir.load(charts.w3_resources(now))
        recording = fhir_replay.record(fhir.base_url, list(FHIR_PATHS.values()))
    finally:
        fhir.stop()
    recording_path = tmp / "fhir-recording.json"
    recording_path.write_text(json.dumps(recording))
    replay = servers.fhir_replay(tmp, recording_path)
    stack.callback(replay.stop)
    replay.start()
    log(f"W3's FHIR server: sekmet's recorded answers, replayed at {replay.base_url}/fhir")
    return replay.base_url + "/fhir"


def start_jwt_service(
    args: argparse.Namespace, tmp: Path, stack: ExitStack
) -> tuple[servers.MeasuredGunicorn, jwt_load.TokenSupply]:
    """The service as deployed with JWT on (its own folder and database), and enough tokens for W1's runs."""
    folder = tmp / "jwt"
    folder.mkdir()
    workers, threads = worker_counts(args.workers, args.threads)
    service = servers.service(folder, workers, threads, {"CDS_TRUSTED_ISSUERS": str(folder / "trusted-issuers.yaml")})
    seconds = (args.warmup + args.duration) * 2  # concurrency 1 and 16
    count = int(seconds * jwt_load.MAX_RPS) + 1000
    log(f"W1-jwt: signing {count} ES384 tokens")
    env, tokens = jwt_load.prepare(folder, service.base_url + SERVICE_PATH, count, int(time.time()), [])
    service.env |= env
    stack.callback(service.stop)
    service.start()
    return service, tokens


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="bench/run.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=float, default=8.0, help="seconds per measured wrk run (default 8)")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds of warm-up before each run (default 2)")
    parser.add_argument("--quick", action="store_true", help="3 s runs, 1 s warm-up, 1 round (about 1.5 minutes)")
    parser.add_argument(
        "--rounds",
        type=int,
        default=None,
        help="alternate baseline and service this many times per run (default 2; 1 with --quick)",
    )
    parser.add_argument("--connections", type=int, default=16, help="the high concurrency (default 16)")
    parser.add_argument("--workers", type=int, default=0, help="gunicorn workers (default: as `serve` picks)")
    parser.add_argument("--threads", type=int, default=0, help="threads per worker (default: as `serve` picks)")
    parser.add_argument(
        "--fhir-server",
        choices=("replay", "sekmet"),
        default="replay",
        help="W3's FHIR server: sekmet's recorded answers replayed by a server that costs our CPU "
        "almost nothing (default), or sekmet itself",
    )
    parser.add_argument("--only", default="", help="comma-separated workloads, e.g. W1,W3 (default: all)")
    parser.add_argument("--no-jwt", action="store_true", help="skip W1 with JWT on (W1-jwt)")
    parser.add_argument(
        "--out",
        type=Path,
        default=RESULTS / "last-run.json",
        help="where to write the JSON (default bench/results/last-run.json, untracked)",
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.duration, args.warmup = 3.0, 1.0
    if args.rounds is None:
        args.rounds = 1 if args.quick else 2
    args.rounds = max(1, args.rounds)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        wrk.require_wrk()
    except wrk.WrkMissing as exc:
        sys.stderr.write(f"bench: {exc}\n")
        return 2
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):  # SIGINT too: a background job starts ignoring it
        signal.signal(signum, _interrupt)
    only = {w.strip().upper() for w in args.only.split(",") if w.strip()}

    def wanted(workload_id: str) -> bool:
        return not only or workload_id.upper() in only or workload_id.upper().rstrip("AB") in only

    workers, threads = worker_counts(args.workers, args.threads)
    started = time.monotonic()
    now = datetime.now(UTC)
    load_before = Path("/proc/loadavg").read_text().split()[0]

    with ExitStack() as stack, tempfile.TemporaryDirectory(prefix="cds-bench-") as tmp_name:
        tmp = Path(tmp_name)
        fhir_base: str | None = None
        if wanted("W3"):
            fhir_base = start_fhir_server(args.fhir_server, now, tmp, stack)
        extra = {"CDS_ALLOWED_FHIR_SERVERS": fhir_base, "CDS_ALLOW_HTTP_LOOPBACK": "1"} if fhir_base else {}
        log(
            f"starting service and baseline: {workers} workers x {threads} threads "
            f"({gunicorn_options('127.0.0.1', 0, workers, threads)['worker_class']})"
        )
        service = servers.service(tmp, workers, threads, extra)
        stack.callback(service.stop)
        service.start()
        baselines = {parser: servers.baseline(tmp, workers, threads, parser) for parser in ("flask", "orjson")}
        for baseline in baselines.values():
            stack.callback(baseline.stop)
            baseline.start()

        jwt_service, tokens = (None, None) if args.no_jwt or not wanted("W1") else start_jwt_service(args, tmp, stack)
        results: list[dict[str, Any]] = []
        for workload in charts.workloads(now, fhir_base):
            if not wanted(workload.id):
                continue
            log(f"{workload.id}: {workload.title}")
            results.append(
                run_workload(workload, service, baselines, args, tmp, fhir_base if workload.id == "W3" else None)
            )
            if workload.id == "W1" and jwt_service is not None:
                log("W1-jwt: the same calls with JWT on, a fresh ES384 token per request")
                results.append(run_workload(workload, jwt_service, baselines, args, tmp, None, tokens))

    report = {
        "when": now.isoformat(timespec="seconds"),
        "command": " ".join([Path(sys.executable).name, "bench/run.py", *(argv if argv is not None else sys.argv[1:])]),
        "machine": machine(),
        "server": {
            "workers": workers,
            "threads": threads,
            "worker_class": gunicorn_options("127.0.0.1", 0, workers, threads)["worker_class"],
        },
        "load_generator": "wrk 1 thread, keep-alive connections",
        "w3_fhir_server": args.fhir_server,
        "duration_s": args.duration,
        "warmup_s": args.warmup,
        "rounds": args.rounds,
        "connections": [1, args.connections],
        "load_average_before": load_before,
        "workloads": results,
        "targets": TARGETS,
        "verdicts": verdicts(results),
        "elapsed_s": round(time.monotonic() - started, 1),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(table(results))
    print(f"\nverdicts: {json.dumps(report['verdicts'])}")
    print(
        f"machine: {report['machine']['nproc']} x {report['machine']['cpu_model']}; server: "
        f"{workers} {report['server']['worker_class']} workers x {threads} threads; "
        f"runs of {args.duration:g} s after {args.warmup:g} s warm-up; total {report['elapsed_s']:.0f} s"
    )
    print(f"written: {args.out}")
    return 0
