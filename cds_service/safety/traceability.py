"""Every rule traced to the scenarios that show it works: one that fires it, and one that holds one of its findings
and must not fire it (a negated, old, chronic or otherwise excluded twin).

The scenarios of tests/scenarios/ run here through the pure pipeline, in-process: the rules a scenario fires are
those its cards list in their extension (`org.weakness-triage.rules`), exactly what the service would answer.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

from cds_service.domain.cards import EXTENSION_KEY
from cds_service.domain.fhir_time import parse_fhir_datetime
from cds_service.domain.findings import recognise
from cds_service.domain.observations import select_observations
from cds_service.domain.pipeline import evaluate
from cds_service.knowledge.model import Knowledge
from cds_service.yaml_source import ContentError

DEFAULT_PATIENT = "scenario-patient"  # as tests/scenarios/README.md says
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@dataclass(frozen=True)
class Scenario:
    """One scenario file as the service sees it (its generated noise, vital signs only, is left out)."""

    name: str
    path: Path
    data: dict[str, Any]
    now: datetime
    patient: str
    observations: list[dict[str, Any]]


@dataclass(frozen=True)
class Outcome:
    scenario: Scenario
    indicators: tuple[str, ...]  # of the cards, in order
    fired: frozenset[str]  # rule ids the cards list
    findings: frozenset[str]  # findings its Observations speak of (present, absent or uncertain)


@dataclass(frozen=True)
class RuleTrace:
    rule: str
    fired_by: tuple[str, ...]  # scenario names
    silent_with: tuple[str, ...]  # scenarios holding one of its findings in which it does not fire


def _scenario(path: Path) -> Scenario:
    try:
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=_Loader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise ContentError(path, mark.line + 1 if mark else None, "not valid YAML") from None
    if not isinstance(data, dict) or "now" not in data:
        raise ContentError(path, None, "a scenario is a mapping with at least `now` and `observations`")
    now = parse_fhir_datetime(str(data["now"]))
    if now is None:
        raise ContentError(path, None, f"`now` is not an ISO 8601 date-time: {data['now']!r}")
    patient = str(data.get("patient", DEFAULT_PATIENT))
    observations = []
    for index, raw in enumerate(data.get("observations") or []):
        observation = copy.deepcopy(raw)
        observation.setdefault("id", f"{path.stem[:40]}-{index + 1}")
        observation.setdefault("subject", {"reference": f"Patient/{patient}"})
        observations.append(observation)
    return Scenario(path.stem, path, data, now, patient, observations)


def read_scenarios(folder: Path) -> list[Scenario]:
    if not folder.is_dir():
        raise ContentError(folder, None, "no scenarios folder here (pass --scenarios DIR)")
    return [_scenario(path) for path in sorted(folder.glob("*.yaml"))]


def run(scenario: Scenario, knowledge: Knowledge) -> Outcome:
    cards = evaluate(scenario.observations, scenario.patient, knowledge, scenario.now, "http://scenario").cards
    fired = {rule for card in cards for rule in card.get("extension", {}).get(EXTENSION_KEY, {}).get("rules", [])}
    facts, _ = select_observations(scenario.observations, scenario.patient, knowledge, prefilter=True, validate=False)
    spoken_of = {item.finding for item in recognise(facts, knowledge)}
    return Outcome(scenario, tuple(card["indicator"] for card in cards), frozenset(fired), frozenset(spoken_of))


def trace_rules(knowledge: Knowledge, outcomes: list[Outcome]) -> list[RuleTrace]:
    traces = []
    for rule in knowledge.rules:
        fired_by = tuple(o.scenario.name for o in outcomes if rule.id in o.fired)
        silent = tuple(o.scenario.name for o in outcomes if rule.id not in o.fired and o.findings & set(rule.findings))
        traces.append(RuleTrace(rule.id, fired_by, silent))
    return traces


def untraced(knowledge: Knowledge, traces: list[RuleTrace]) -> list[str]:
    """What keeps a rule from being traced, one line per problem, each naming the rule."""
    problems = []
    by_id = {trace.rule: trace for trace in traces}
    for rule in knowledge.rules:
        provenance = rule.provenance
        if not str(provenance.get("statement", "")).strip() or not provenance.get("guide_section"):
            problems.append(f"rule {rule.id!r} has no provenance (guide_section and statement)")
        if provenance.get("beyond_guide") and not str(provenance.get("source", "")).strip():
            problems.append(f"rule {rule.id!r} is beyond the guide and names no external source")
        trace = by_id[rule.id]
        if not trace.fired_by:
            problems.append(f"rule {rule.id!r}: no scenario fires it")
        if not trace.silent_with:
            problems.append(
                f"rule {rule.id!r}: no scenario holds one of its findings ({', '.join(rule.findings)}) "
                "without firing it (add a negated, old or excluded twin)"
            )
    return problems
