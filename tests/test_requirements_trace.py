"""Inferno's table of CDS Hooks 2.0 requirements as a fixture: every requirement on the Service is traced in
tests/requirements_trace.yaml to the tests that assert it, or says why it is not applicable or not tested yet."""

from __future__ import annotations

import ast
import csv
import math
from collections import Counter
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
TABLE = REPO / "tests" / "fixtures" / "cds-hooks-examples" / "cds-hooks-2.0-requirements.inferno.tsv"
TRACE = REPO / "tests" / "requirements_trace.yaml"
LEVELS = ("SHALL", "SHALL NOT", "SHOULD", "SHOULD NOT", "MAY", "DEPRECATED")
STATUSES = ("tested", "not-applicable", "not-tested")
KEYS = {"id", "status", "tests", "why"}
# Share of the Service's SHALL / SHALL NOT requirements that are `tested`: the honest figure when this was set,
# rounded down. Raise it as gaps close; it must never go down.
MIN_SHALL_TESTED_PERCENT = 82


@dataclass(frozen=True)
class Requirement:
    id: int
    conformance: str
    actors: frozenset[str]
    text: str


@cache
def requirements() -> dict[int, Requirement]:
    with TABLE.open(newline="", encoding="utf-8") as file:
        rows = list(csv.reader(file, delimiter="\t"))
    assert rows[0][:5] == ["ID*", "URL*", "Requirement*", "Conformance*", "Actors*"], rows[0][:5]
    table: dict[int, Requirement] = {}
    for row in rows[1:]:
        # One quote (ID 19) spills over into the next cell, so the conformance is the first cell after the quote
        # that holds a conformance keyword, and the actors are the cell after it.
        level = next((i for i in range(3, len(row)) if row[i] in LEVELS), None)
        assert level is not None and level + 1 < len(row), f"no conformance keyword in row {row[:1]}"
        requirement = Requirement(
            int(row[0]), row[level], frozenset(a.strip() for a in row[level + 1].split(",")), " ".join(row[2:level])
        )
        assert requirement.id not in table, f"ID {requirement.id} appears twice in the table"
        table[requirement.id] = requirement
    return table


def service_requirements() -> dict[int, Requirement]:
    return {rid: r for rid, r in requirements().items() if "Service" in r.actors}


@cache
def trace() -> list[dict[str, Any]]:
    entries = yaml.safe_load(TRACE.read_text(encoding="utf-8"))
    assert isinstance(entries, list) and all(isinstance(e, dict) for e in entries), "the trace is a list of mappings"
    return entries


@cache
def functions_in(path: str) -> frozenset[str]:
    """`name` and `Class::name` of every test function defined in a test file."""
    tree = ast.parse((REPO / path).read_text(encoding="utf-8"), filename=path)
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            names.add(node.name)
        elif isinstance(node, ast.ClassDef):
            names |= {
                f"{node.name}::{item.name}"
                for item in node.body
                if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef)
            }
    return frozenset(name for name in names if name.rsplit("::", 1)[-1].startswith("test"))


def test_the_requirements_table_parses() -> None:
    table = requirements()
    assert sorted(table) == list(range(1, 221))
    assert {actor for r in table.values() for actor in r.actors} == {"Client", "Service"}
    assert all(r.text.strip() for r in table.values())
    assert len(service_requirements()) == 120  # 105 Service + 15 "Client, Service"


def test_every_service_requirement_is_traced_exactly_once() -> None:
    counts = Counter(entry.get("id") for entry in trace())
    assert [rid for rid, n in counts.items() if n > 1] == [], "traced more than once"
    assert sorted(set(service_requirements()) - set(counts)) == [], "Service requirements missing from the trace"
    assert sorted(set(counts) - set(service_requirements()), key=str) == [], "not Service requirements of the table"


def test_every_entry_is_well_formed() -> None:
    problems = []
    for entry in trace():
        rid, status, tests, why = entry.get("id"), entry.get("status"), entry.get("tests"), entry.get("why")
        if set(entry) - KEYS:
            problems.append(f"{rid}: unknown keys {sorted(set(entry) - KEYS)}")
        if status not in STATUSES:
            problems.append(f"{rid}: status {status!r} is not one of {STATUSES}")
        if why is not None and not (isinstance(why, str) and why.strip()):
            problems.append(f"{rid}: why must be a non-empty string")
        if status == "tested":
            if not (isinstance(tests, list) and tests and all(isinstance(t, str) for t in tests)):
                problems.append(f"{rid}: a tested requirement names at least one test")
            elif len(set(tests)) != len(tests):
                problems.append(f"{rid}: a test is named twice")
        elif status in ("not-applicable", "not-tested"):
            if why is None:
                problems.append(f"{rid}: {status} needs a why")
            if tests is not None:
                problems.append(f"{rid}: only tested requirements name tests")
    assert problems == []


def test_every_named_test_exists() -> None:
    missing = []
    for entry in trace():
        for name in entry.get("tests") or []:
            path, sep, function = name.partition("::")
            function = function.split("[", 1)[0]  # a parametrized id names the same function
            if not (sep and path.startswith("tests/test_") and path.endswith(".py") and (REPO / path).is_file()):
                missing.append(f"{entry['id']}: {name} (no such test file)")
            elif function not in functions_in(path):
                missing.append(f"{entry['id']}: {name} (no such test function)")
    assert missing == []


def test_the_share_of_tested_shall_requirements_does_not_go_down() -> None:
    status = {entry["id"]: entry["status"] for entry in trace()}
    shall = [rid for rid, r in service_requirements().items() if r.conformance in ("SHALL", "SHALL NOT")]
    tested = sum(status.get(rid) == "tested" for rid in shall)
    assert math.floor(100 * tested / len(shall)) >= MIN_SHALL_TESTED_PERCENT, (
        f"{tested} of {len(shall)} Service SHALL requirements are tested"
    )
