"""The markdown table of a benchmark run, as the README and docs/performance.md show it.

.venv/bin/python bench/report.py [bench/results/last-run.json]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from bench.baseline_app import observations_url
from bench.charts import PATIENT_ID

RESULTS = Path(__file__).resolve().parent / "results"
# The query the service (and the baselines) make in W3 (the Observations prefetch; the optional Patient is not
# fetched), sent straight to the FHIR server.
FHIR_PATHS = {"observations": observations_url("", PATIENT_ID)}
# Issue 12's targets: ratios to the bare Flask baseline measured in the same run, at concurrency 16.
TARGETS: dict[str, dict[str, float]] = {
    "W1": {"min_ratio_c16": 0.6, "max_p99_c1_ms": 15.0},
    "W1-jwt": {"min_ratio_c16": 0.55, "max_p99_c1_ms": 15.0},
    "W2": {"min_ratio_c16": 0.9},
    "W3": {"min_ratio_c16": 0.7},
    "memory": {"max_worker_peak_rss_mb": 150.0},
}


def _fmt(value: float, digits: int = 1) -> str:
    return f"{value:.{digits}f}"


def table(results: list[dict[str, Any]]) -> str:
    header = (
        f"{'workload':<9}{'conc':>5}{'req/s':>9}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}{'base req/s':>11}"
        f"{'ratio':>7}{'base p99':>9}{'orjson app':>11}{'ratio':>7}{'errors':>7}{'peak RSS/worker MB':>20}"
    )
    lines = [header, "-" * len(header)]
    for item in results:
        rss = max(item["service_worker_peak_rss_mb"], default=0.0)
        for run in item["runs"]:
            s, b = run["service"], run["baseline"]
            lines.append(
                f"{item['id']:<9}{run['connections']:>5}{_fmt(s['rps'], 0):>9}{_fmt(s['p50_ms'], 2):>9}"
                f"{_fmt(s['p95_ms'], 2):>9}{_fmt(s['p99_ms'], 2):>9}{_fmt(b['rps'], 0):>11}"
                f"{_fmt(run['ratio'], 2):>7}{_fmt(b['p99_ms'], 2):>9}"
                f"{_fmt(run['baseline_orjson']['rps'], 0):>11}{_fmt(run['ratio_orjson'], 2):>7}"
                f"{s['errors']:>7}{_fmt(rss):>20}"
            )
        if "fhir_direct" in item:
            c1 = item["runs"][0]["service"]
            lines.append(
                f"{'':<9}W3 added time at c1: service p50 {c1['p50_ms']:.2f} ms - FHIR server's own p50 "
                f"{item['fhir_direct']['p50_sum_ms']:.2f} ms ({' + '.join(FHIR_PATHS)}) = "
                f"{item['added_p50_ms']:.2f} ms"
            )
            lines.append(
                f"{'':<9}the baselines' added time (fetch + parse, no triage): Flask "
                f"{item['baseline_added_p50_ms']:.2f} ms, orjson app "
                f"{item['baseline_orjson_added_p50_ms']:.2f} ms; the service beyond the Flask baseline: "
                f"{item['added_p50_ms'] - item['baseline_added_p50_ms']:.2f} ms"
            )
    return "\n".join(lines)


def _ratio_verdict(item: dict[str, Any], target: dict[str, float]) -> dict[str, Any]:
    c1, c16 = item["runs"][0], item["runs"][-1]
    verdict: dict[str, Any] = {
        "ratio_c16": c16["ratio"],
        "ratio_orjson_app_c16": c16["ratio_orjson"],
        "p99_c1_ms": c1["service"]["p99_ms"],
        "p99_c16_ms": c16["service"]["p99_ms"],
        "errors": sum(run["service"]["errors"] for run in item["runs"]),
    }
    met = c16["ratio"] >= target["min_ratio_c16"] and verdict["errors"] == 0
    if "max_p99_c1_ms" in target:
        met = met and c1["service"]["p99_ms"] < target["max_p99_c1_ms"]
    return {**verdict, "met": met}


def verdicts(results: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {
        item["id"]: _ratio_verdict(item, TARGETS[item["id"]]) for item in results if item["id"] in TARGETS
    }
    if "W3" in out:
        w3 = next(item for item in results if item["id"] == "W3")
        out["W3"] |= {key: w3[key] for key in ("added_p50_ms", "baseline_added_p50_ms") if key in w3}
    w2 = next((item for item in results if item["id"] == "W2"), None)
    if w2 is not None:
        peak = max(w2["service_worker_peak_rss_mb"], default=0.0)
        out["memory"] = {"worker_peak_rss_mb_after_W2": peak, "met": peak < TARGETS["memory"]["max_worker_peak_rss_mb"]}
    return out


def markdown(report: dict[str, Any]) -> str:
    lines = [
        "| workload | conc | req/s | p50 ms | p95 ms | p99 ms | baseline (Flask) req/s | **ratio** | baseline p99 "
        "| orjson app req/s | ratio to it | errors | peak RSS/worker |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for item in report["workloads"]:
        rss = max(item["service_worker_peak_rss_mb"], default=0.0)
        for run in item["runs"]:
            s, b, o = run["service"], run["baseline"], run["baseline_orjson"]
            lines.append(
                f"| {item['id']} | {run['connections']} | {s['rps']:.0f} | {s['p50_ms']:.2f} | "
                f"{s['p95_ms']:.2f} | {s['p99_ms']:.2f} | {b['rps']:.0f} | **{run['ratio']:.2f}** | "
                f"{b['p99_ms']:.2f} | {o['rps']:.0f} | {run['ratio_orjson']:.2f} | {s['errors']} | "
                f"{rss:.0f} MB |"
            )
    for item in report["workloads"]:
        if "fhir_direct" in item:
            c1 = item["runs"][0]["service"]
            queries = " + ".join(key for key in item["fhir_direct"] if key != "p50_sum_ms")
            fhir_server = (
                "sekmet's recorded answers, replayed" if report.get("w3_fhir_server") == "replay" else "sekmet"
            )
            lines.append(
                f"\nW3 added time at concurrency 1: service p50 {c1['p50_ms']:.2f} ms - FHIR server's own "
                f"p50 {item['fhir_direct']['p50_sum_ms']:.2f} ms (FHIR server: {fhir_server}; queries: "
                f"{queries}, sent straight to it with wrk in the same rounds) = **{item['added_p50_ms']:.2f} "
                f"ms**."
            )
            if "baseline_added_p50_ms" in item:  # runs before the baselines fetched in W3 do not have it
                lines[-1] += (
                    f" The baselines, which only fetch and parse the same Bundle, add: Flask "
                    f"{item['baseline_added_p50_ms']:.2f} ms, orjson app "
                    f"{item['baseline_orjson_added_p50_ms']:.2f} ms; the service beyond the Flask "
                    f"baseline: {item['added_p50_ms'] - item['baseline_added_p50_ms']:.2f} ms."
                )
    machine = report["machine"]
    server = report["server"]
    lines.append(
        f"\nMachine: {machine['nproc']} x {machine['cpu_model']}, Python {machine['python']}, Linux "
        f"{machine['kernel']}, commit {machine['git_commit']}. Server: {server['workers']} "
        f"{server['worker_class']} workers x {server['threads']} thread(s). Command: `{report['command']}` "
        f"({report['duration_s']:g} s per run in {report['rounds']} rounds, {report['warmup_s']:g} s "
        f"warm-up; {report['elapsed_s']:.0f} s in all)."
    )
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    path = Path(argv[0]) if argv else RESULTS / "last-run.json"
    sys.stdout.write(markdown(json.loads(path.read_text())) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
