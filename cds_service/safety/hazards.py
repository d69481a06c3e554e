"""The hazard log (docs/safety/hazards.yaml): its shape, its risk matrix, and the evidence it names, which must exist.

A mitigation's `evidence` names tests (`tests/test_x.py::test_name`, a `[param]` id may follow) or scenarios
(`tests/scenarios/NNN-name.yaml`); `see` names documents. A name that does not resolve is a problem, reported with
the hazard and the mitigation, so the log cannot cite a test that was renamed or deleted.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from marshmallow import fields, validate

from cds_service.knowledge.reading import validated
from cds_service.validation import Strict
from cds_service.yaml_source import load_yaml

SEVERITIES = ("minor", "significant", "considerable", "major", "catastrophic")
LIKELIHOODS = ("very-low", "low", "medium", "high", "very-high")
_TEST_ID = re.compile(r"^(tests/(?:[\w/]+/)?test_\w+\.py)::(\w+(?:::\w+)?)(\[[^\]]+\])?$")
_SCENARIO_ID = re.compile(r"^tests/scenarios/\d{3}-[\w.-]+\.yaml$")
_TEXT = fields.String(required=True, validate=validate.Length(min=10))


class MitigationEntry(Strict):
    control = _TEXT
    evidence = fields.List(fields.String(), required=True, validate=validate.Length(min=1))
    see = fields.List(fields.String(), load_default=list)


class ResidualEntry(Strict):
    severity = fields.String(validate=validate.OneOf(SEVERITIES))  # default: the hazard's severity
    likelihood = fields.String(required=True, validate=validate.OneOf(LIKELIHOODS))
    justification = _TEXT


class HazardEntry(Strict):
    id = fields.String(required=True, validate=validate.Regexp(r"^H\d{2}$", error="must be like H07"))
    group = fields.String(required=True)
    title = fields.String(required=True)
    cause = _TEXT
    effect = _TEXT
    severity = fields.String(required=True, validate=validate.OneOf(SEVERITIES))
    likelihood = fields.String(required=True, validate=validate.OneOf(LIKELIHOODS))
    mitigations = fields.List(fields.Nested(MitigationEntry), required=True, validate=validate.Length(min=1))
    residual = fields.Nested(ResidualEntry, required=True)


class HazardLogFile(Strict):
    scales = fields.Dict(keys=fields.String(), values=fields.Dict(keys=fields.String(), values=fields.String()))
    risk_matrix = fields.Dict(
        keys=fields.String(validate=validate.OneOf(LIKELIHOODS)),
        values=fields.List(fields.Integer(validate=validate.Range(1, 5)), validate=validate.Length(equal=5)),
        required=True,
    )
    risk_levels = fields.Dict(keys=fields.Integer(validate=validate.Range(1, 5)), values=fields.String(), required=True)
    hazards = fields.List(fields.Nested(HazardEntry), required=True, validate=validate.Length(min=1))


@dataclass(frozen=True)
class HazardLog:
    file: Path
    scales: dict[str, dict[str, str]]
    matrix: dict[str, list[int]]  # likelihood -> the risk for each severity, in SEVERITIES order
    levels: dict[int, str]
    hazards: list[dict[str, Any]]

    @classmethod
    def load(cls, file: Path) -> HazardLog:
        doc = load_yaml(file)
        data = validated(doc, HazardLogFile())
        if set(data["risk_matrix"]) != set(LIKELIHOODS) or set(data["risk_levels"]) != {1, 2, 3, 4, 5}:
            raise doc.error(("risk_matrix",), "needs a row per likelihood and a name for each risk level 1-5")
        ids = [hazard["id"] for hazard in data["hazards"]]
        if duplicate := next((i for i, hazard in enumerate(ids) if hazard in ids[:i]), None):
            raise doc.error(("hazards", duplicate, "id"), f"duplicate hazard id {ids[duplicate]!r}")
        return cls(file, data.get("scales", {}), data["risk_matrix"], data["risk_levels"], data["hazards"])

    def risk(self, severity: str, likelihood: str) -> int:
        return self.matrix[likelihood][SEVERITIES.index(severity)]

    def initial_risk(self, hazard: dict[str, Any]) -> int:
        return self.risk(hazard["severity"], hazard["likelihood"])

    def residual_risk(self, hazard: dict[str, Any]) -> int:
        residual = hazard["residual"]
        return self.risk(residual.get("severity", hazard["severity"]), residual["likelihood"])

    def evidence(self) -> list[str]:
        return [ref for h in self.hazards for m in h["mitigations"] for ref in m["evidence"]]


def defined_tests(path: Path) -> frozenset[str]:
    """`name` and `Class::name` of every test function defined at the top of a test file."""
    names: set[str] = set()
    for node in ast.parse(path.read_text(encoding="utf-8"), filename=str(path)).body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            names.add(node.name)
        elif isinstance(node, ast.ClassDef):
            names |= {f"{node.name}::{item.name}" for item in node.body if isinstance(item, ast.FunctionDef)}
    return frozenset(name for name in names if name.rsplit("::", 1)[-1].startswith("test"))


def unresolved(reference: str, repo: Path) -> str | None:
    """Why a piece of evidence does not resolve, or None when it names a test or a scenario that exists."""
    if _SCENARIO_ID.match(reference):
        return None if (repo / reference).is_file() else "no such scenario"
    match = _TEST_ID.match(reference)
    if match is None:
        return "neither tests/<file>.py::<test> nor tests/scenarios/<NNN-name>.yaml"
    file, name = repo / match.group(1), match.group(2)
    if not file.is_file():
        return "no such test file"
    return None if name in defined_tests(file) else "no such test function in that file"


def evidence_problems(log: HazardLog, repo: Path) -> list[str]:
    problems = []
    for hazard in log.hazards:
        for index, mitigation in enumerate(hazard["mitigations"], start=1):
            for reference in mitigation["evidence"]:
                if why := unresolved(reference, repo):
                    problems.append(f"{hazard['id']} mitigation {index}: {reference}: {why}")
            for document in mitigation["see"]:
                if not (repo / document.split("#")[0]).is_file():
                    problems.append(f"{hazard['id']} mitigation {index}: {document}: no such document")
    return problems
