"""The markdown table of a benchmark run, as the README and docs/performance.md show it.

.venv/bin/python bench/report.py [bench/results/latest.json]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"


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
    path = Path(argv[0]) if argv else RESULTS / "latest.json"
    sys.stdout.write(markdown(json.loads(path.read_text())) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
