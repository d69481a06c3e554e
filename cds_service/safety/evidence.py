"""The figures the safety case quotes, computed from the repository as it is: nothing in the report is typed by hand.

Scenario figures come from running every scenario through the pure pipeline in-process (safety/traceability.py),
the same run `check-content` makes; test figures from the hazard log's citations; the CDS Hooks conformance figures
from tests/requirements_trace.yaml.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import yaml

from cds_service.knowledge.model import Knowledge, Release
from cds_service.safety.hazards import HazardLog
from cds_service.safety.traceability import Outcome, RuleTrace, read_scenarios, run, trace_rules

SCENARIOS = Path("tests") / "scenarios"
REQUIREMENTS_TRACE = Path("tests") / "requirements_trace.yaml"


@dataclass(frozen=True)
class Acceptance:
    """How many scenarios of one kind the pipeline answered as they say: `met` of `total`."""

    what: str
    met: int
    total: int


@dataclass(frozen=True)
class Evidence:
    release: Release
    scenarios: int
    expecting: dict[str, int]  # indicator -> scenarios that expect a card of it
    twins: int  # scenarios that must raise neither a critical nor a warning card
    acceptance: list[Acceptance]
    traces: list[RuleTrace]
    cited_tests: int
    cited_test_files: int
    cited_scenarios: int
    requirement_statuses: dict[str, int]
    hazards: int
    initial_risks: dict[int, int]
    residual_risks: dict[int, int]


def _expects(outcome: Outcome, indicator: str) -> bool:
    return indicator in (outcome.scenario.data.get("expect") or {})


def _forbids(outcome: Outcome, indicator: str) -> bool:
    return (outcome.scenario.data.get("must_not") or {}).get(indicator) is True


def acceptance(outcomes: list[Outcome]) -> list[Acceptance]:
    figures = []
    for indicator, card in (("critical", "a critical (911)"), ("warning", "a warning (same-day)")):
        wanted = [o for o in outcomes if _expects(o, indicator)]
        figures.append(
            Acceptance(
                f"scenarios expecting {card} card that got one",
                sum(indicator in o.indicators for o in wanted),
                len(wanted),
            )
        )
        barred = [o for o in outcomes if _forbids(o, indicator)]
        figures.append(
            Acceptance(
                f"scenarios that must raise no {indicator} card and raised none",
                sum(indicator not in o.indicators for o in barred),
                len(barred),
            )
        )
    return figures


def _requirement_statuses(repo: Path) -> dict[str, int]:
    entries = yaml.safe_load((repo / REQUIREMENTS_TRACE).read_text(encoding="utf-8")) or []
    return dict(sorted(Counter(str(entry.get("status")) for entry in entries).items()))


def gather(repo: Path, knowledge: Knowledge, log: HazardLog) -> Evidence:
    outcomes = [run(scenario, knowledge) for scenario in read_scenarios(repo / SCENARIOS)]
    cited = set(log.evidence())
    tests = {ref.split("[")[0] for ref in cited if "::" in ref}
    expecting = Counter(ind for o in outcomes for ind in (o.scenario.data.get("expect") or {}))
    return Evidence(
        release=knowledge.release,
        scenarios=len(outcomes),
        expecting={ind: expecting[ind] for ind in ("critical", "warning", "info")},
        twins=sum(_forbids(o, "critical") and _forbids(o, "warning") for o in outcomes),
        acceptance=acceptance(outcomes),
        traces=trace_rules(knowledge, outcomes),
        cited_tests=len(tests),
        cited_test_files=len({ref.split("::")[0] for ref in tests}),
        cited_scenarios=len({ref for ref in cited if "::" not in ref}),
        requirement_statuses=_requirement_statuses(repo),
        hazards=len(log.hazards),
        initial_risks=dict(sorted(Counter(log.initial_risk(h) for h in log.hazards).items())),
        residual_risks=dict(sorted(Counter(log.residual_risk(h) for h in log.hazards).items())),
    )
