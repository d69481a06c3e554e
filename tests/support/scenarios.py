"""Loading the clinical scenarios of tests/scenarios/*.yaml and checking an answer against them."""

from __future__ import annotations

import copy
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tests.support.requests_factory import hook_request

SCENARIO_DIR = Path(__file__).resolve().parents[1] / "scenarios"
EXTENSION_KEY = "org.weakness-triage"
DEFAULT_PATIENT = "scenario-patient"
NOISE_CODES = [
    ("8867-4", "Heart rate", "/min", 60, 110),
    ("9279-1", "Respiratory rate", "/min", 10, 24),
    ("2708-6", "Oxygen saturation", "%", 90, 100),
    ("8310-5", "Body temperature", "Cel", 36, 38),
    ("2345-7", "Glucose", "mg/dL", 70, 180),
]


@dataclass(frozen=True)
class Scenario:
    path: Path
    data: dict[str, Any]

    @property
    def name(self) -> str:
        return self.path.stem

    @property
    def now(self) -> str:
        return str(self.data["now"])

    @property
    def patient(self) -> str:
        return str(self.data.get("patient", DEFAULT_PATIENT))

    def observations(self) -> list[dict[str, Any]]:
        observations = []
        for index, raw in enumerate(self.data.get("observations") or []):
            obs = copy.deepcopy(raw)
            obs.setdefault("id", f"{self.name[:40]}-{index + 1}")
            obs.setdefault("subject", {"reference": f"Patient/{self.patient}"})
            observations.append(obs)
        noise = self.data.get("generate_noise")
        if noise:
            rng = random.Random(noise.get("seed", 0))
            for index in range(int(noise["count"])):
                code, display, unit, low, high = rng.choice(NOISE_CODES)
                observations.append(
                    {
                        "resourceType": "Observation",
                        "id": f"noise-{index}",
                        "status": "final",
                        "category": [
                            {
                                "coding": [
                                    {
                                        "system": "http://terminology.hl7.org/CodeSystem/observation-category",
                                        "code": "vital-signs",
                                    }
                                ]
                            }
                        ],
                        "code": {"coding": [{"system": "http://loinc.org", "code": code, "display": display}]},
                        "subject": {"reference": f"Patient/{self.patient}"},
                        "effectiveDateTime": f"2026-11-{rng.randint(1, 24):02d}T{rng.randint(0, 23):02d}:00:00Z",
                        "valueQuantity": {"value": rng.randint(low, high), "unit": unit},
                    }
                )
        return observations

    def request(self) -> dict[str, Any]:
        return hook_request(self.patient, self.observations())


def load_scenarios() -> list[Scenario]:
    return [
        Scenario(path, yaml.safe_load(path.read_text(encoding="utf-8"))) for path in sorted(SCENARIO_DIR.glob("*.yaml"))
    ]


def _findings(card: dict[str, Any]) -> list[dict[str, Any]]:
    return card.get("extension", {}).get(EXTENSION_KEY, {}).get("findings", [])


def check(scenario: Scenario, cards: list[dict[str, Any]]) -> list[str]:
    """Every way the cards disagree with the scenario (empty when they agree)."""
    problems: list[str] = []
    data = scenario.data
    by_indicator: dict[str, list[dict[str, Any]]] = {}
    for card in cards:
        by_indicator.setdefault(card["indicator"], []).extend(_findings(card))
    shown = {k: sorted({f["id"] for f in v}) for k, v in by_indicator.items()}
    if "cards" in data and [c["indicator"] for c in cards] != list(data["cards"] or []):
        problems.append(f"cards {[c['indicator'] for c in cards]} != expected {data['cards']}")
    for indicator, expected in (data.get("expect") or {}).items():
        missing = [f for f in expected or [] if f not in shown.get(indicator, [])]
        if missing:
            problems.append(f"{indicator} card lacks {missing} (has {shown.get(indicator, 'no card')})")
    for indicator, forbidden in (data.get("must_not") or {}).items():
        if forbidden is True and indicator in shown:
            problems.append(f"unexpected {indicator} card with {shown[indicator]}")
        elif isinstance(forbidden, list):
            present = [f for f in forbidden if f in shown.get(indicator, [])]
            if present:
                problems.append(f"{indicator} card must not list {present}")
    all_findings = [f for fs in by_indicator.values() for f in fs]
    for finding, flags in (data.get("flags") or {}).items():
        carried = {flag for f in all_findings if f["id"] == finding for flag in f.get("flags", [])}
        missing = [flag for flag in flags if flag not in carried]
        if missing:
            problems.append(f"{finding} lacks flags {missing} (has {sorted(carried)})")
    return problems
