"""The example patients of content/examples/: FHIR R4 transaction Bundles, their times shifted to stay recent.

index.yaml lists them (id, title, description, the cards expected) and gives the one `reference_time` every date-time
in the Bundles is written against. A loaded example has each Observation time moved by (now - reference_time), so a
record written "two hours before the reference time" is two hours old whenever it is loaded.
"""

from __future__ import annotations

import copy
import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from marshmallow import fields, validate

from cds_service.knowledge.reading import validated
from cds_service.validation import Strict
from cds_service.yaml_source import ContentError, load_yaml

SHIFTED_FIELDS = ("effectiveDateTime", "effectiveInstant", "issued")
SHIFTED_PERIOD_FIELDS = ("effectivePeriod",)


class _ExampleEntry(Strict):
    id = fields.String(required=True, validate=validate.Regexp(r"^[a-z0-9-]{1,40}$"))
    title = fields.String(required=True)
    description = fields.String(required=True)
    expect = fields.List(fields.String(validate=validate.OneOf(("critical", "warning", "info"))), required=True)


class _IndexFile(Strict):
    reference_time = fields.AwareDateTime(required=True, format="iso")
    examples = fields.List(fields.Nested(_ExampleEntry), required=True, validate=validate.Length(min=1))


@dataclass(frozen=True)
class Example:
    id: str
    title: str
    description: str
    expect: tuple[str, ...]
    bundle: dict[str, Any]  # the transaction Bundle as written (reference times)

    @property
    def patient_id(self) -> str:
        return next(e["resource"]["id"] for e in self.bundle["entry"] if e["resource"]["resourceType"] == "Patient")


@dataclass(frozen=True)
class Examples:
    reference_time: datetime
    by_id: dict[str, Example]

    def shifted(self, example_id: str, now: datetime) -> dict[str, Any]:
        """The example's transaction Bundle with its Observation times moved to stay as recent as written."""
        delta = now.replace(microsecond=0) - self.reference_time
        bundle = copy.deepcopy(self.by_id[example_id].bundle)
        for entry in bundle["entry"]:
            _shift_resource(entry["resource"], delta)
        return bundle


def _shift_time(value: Any, delta: timedelta) -> Any:
    if not isinstance(value, str) or "T" not in value:
        return value  # a date without a time stays as written
    moved = datetime.fromisoformat(value) + delta
    return moved.isoformat().replace("+00:00", "Z")


def _shift_resource(resource: dict[str, Any], delta: timedelta) -> None:
    for name in SHIFTED_FIELDS:
        if name in resource:
            resource[name] = _shift_time(resource[name], delta)
    for name in SHIFTED_PERIOD_FIELDS:
        period = resource.get(name)
        if isinstance(period, dict):
            for end in ("start", "end"):
                if end in period:
                    period[end] = _shift_time(period[end], delta)


def load_examples(examples_dir: Path) -> Examples:
    """content/examples/index.yaml and its Bundles; raises ContentError naming the file and the problem."""
    doc = load_yaml(examples_dir / "index.yaml")
    data = validated(doc, _IndexFile())
    by_id: dict[str, Example] = {}
    for entry in data["examples"]:
        path = examples_dir / f"{entry['id']}.json"
        try:
            bundle = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ContentError(path, None, f"cannot read the example Bundle: {exc}") from exc
        if bundle.get("resourceType") != "Bundle" or bundle.get("type") != "transaction":
            raise ContentError(path, None, "must be a FHIR transaction Bundle")
        by_id[entry["id"]] = Example(entry["id"], entry["title"], entry["description"], tuple(entry["expect"]), bundle)
    return Examples(data["reference_time"].astimezone(UTC), by_id)


def hook_request(bundle: dict[str, Any], hook: str = "patient-view") -> dict[str, Any]:
    """A CDS Hooks request as an EHR sends it for a Bundle's patient: the Patient and Observations prefetched."""
    resources = [e["resource"] for e in bundle.get("entry", []) if isinstance(e.get("resource"), dict)]
    patient = next(r for r in resources if r.get("resourceType") == "Patient")
    observations = [r for r in resources if r.get("resourceType") == "Observation"]
    return {
        "hook": hook,
        "hookInstance": str(uuid.uuid4()),
        "context": {"userId": "Practitioner/example", "patientId": patient["id"]},
        "prefetch": {
            "patient": patient,
            "observations": {
                "resourceType": "Bundle",
                "type": "searchset",
                "total": len(observations),
                "entry": [{"resource": o, "search": {"mode": "match"}} for o in observations],
            },
        },
    }
