"""Observation normalisation: keep this patient's usable, relevant Observations and reduce each to plain facts.

Relevance is decided from the raw JSON by domain/prefilter.py *before* any model validation, so the cost of
fhir.resources validation is paid only for Observations that can change the result. Facts are then read
defensively from the raw JSON: an Observation that fails
validation is still evaluated on the elements the rules need, and carries the validation problem so the card can say
so. The service validates lazily (pipeline.evaluate): only the Observations a card shows, since the validation result
only ever adds the "did-not-validate" flag to a card line.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from fhir.resources.R4B.observation import Observation as R4BObservation
from pydantic import ValidationError

from cds_service.domain.fhir_time import parse_fhir_datetime
from cds_service.domain.json_depth import MAX_DEPTH, deeper_than
from cds_service.domain.prefilter import observation_is_relevant, text_matcher
from cds_service.knowledge.model import Key, Knowledge


@dataclass(frozen=True)
class Concept:
    keys: tuple[Key, ...] = ()
    texts: tuple[str, ...] = ()  # CodeableConcept.text and coding displays


@dataclass(frozen=True)
class Value:
    kind: str  # boolean | concept | number | text | none
    boolean: bool | None = None
    concept: Concept = Concept()
    number: float | None = None
    text: str | None = None


@dataclass(frozen=True)
class Component:
    code: Concept
    value: Value
    data_absent: bool


@dataclass(frozen=True)
class ObservationFact:
    reference: str
    status: str
    effective: datetime | None
    issued: datetime | None
    code: Concept
    value: Value
    interpretation: frozenset[str]
    data_absent: bool
    body_sites: tuple[Key, ...]
    components: tuple[Component, ...]
    body_site_texts: tuple[str, ...] = ()  # bodySite.text and displays, for a site given in words only
    categories: tuple[str, ...] = ()  # Observation.category codes (exam, vital-signs, survey...)
    performer: str | None = None  # the first performer's display, when the record names one
    validation_error: str | None = None
    validated: bool = True  # False: not checked with fhir.resources yet (see validated())
    source: dict[str, Any] | None = field(default=None, compare=False, repr=False)  # the raw JSON, for validated()

    @property
    def when(self) -> datetime | None:
        """The clinically relevant time: effective[x] (start of a period), else issued."""
        return self.effective or self.issued


@dataclass
class SelectionStats:
    received: int = 0
    other_patient: int = 0
    other_focus: int = 0  # about someone or something else than the patient (Observation.focus)
    ignored_status: int = 0
    not_relevant: int = 0
    did_not_validate: int = 0
    kept: int = 0


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def concept(raw: Any) -> Concept:
    cc = _dict(raw)
    keys: list[Key] = []
    texts: list[str] = []
    if text := _str(cc.get("text")):
        texts.append(text)
    for coding in _list(cc.get("coding")):
        coding = _dict(coding)
        system, code = _str(coding.get("system")), _str(coding.get("code"))
        if system and code:
            keys.append((system, code))
        if display := _str(coding.get("display")):
            texts.append(display)
    return Concept(tuple(keys), tuple(texts))


def _value(raw: dict[str, Any]) -> Value:
    if isinstance(raw.get("valueBoolean"), bool):
        return Value("boolean", boolean=raw["valueBoolean"])
    if "valueCodeableConcept" in raw:
        return Value("concept", concept=concept(raw["valueCodeableConcept"]))
    number = raw.get("valueInteger", _dict(raw.get("valueQuantity")).get("value"))
    if isinstance(number, int | float) and not isinstance(number, bool):
        return Value("number", number=float(number))
    if isinstance(raw.get("valueString"), str):
        return Value("text", text=raw["valueString"])
    return Value("none")


def _effective(raw: dict[str, Any]) -> datetime | None:
    for key in ("effectiveDateTime", "effectiveInstant"):
        if key in raw:
            return parse_fhir_datetime(raw[key])
    if "effectivePeriod" in raw:
        period = _dict(raw["effectivePeriod"])
        return parse_fhir_datetime(period.get("start")) or parse_fhir_datetime(period.get("end"))
    if "effectiveTiming" in raw:
        events = _list(_dict(raw["effectiveTiming"]).get("event"))
        return parse_fhir_datetime(events[0]) if events else None
    return None


def _interpretation(raw: dict[str, Any]) -> frozenset[str]:
    codes: set[str] = set()
    for cc in _list(raw.get("interpretation")):
        for coding in _list(_dict(cc).get("coding")):
            if code := _str(_dict(coding).get("code")):
                codes.add(code)
    return frozenset(codes)


def _validation_problem(raw: dict[str, Any]) -> str | None:
    """The first validation problem as `element: kind` (never the element's value: it may be patient data)."""
    if deeper_than(raw):
        return f"(resource): nested deeper than {MAX_DEPTH} levels"
    try:
        R4BObservation.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        location = ".".join(str(part) for part in first.get("loc", ())) or "(resource)"
        extra = f" (+{exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        return f"{location}: {first.get('type', 'invalid')}{extra}"
    except (TypeError, ValueError) as exc:  # fhir.resources raises these for some malformed shapes
        return f"(resource): {type(exc).__name__}"
    return None


def to_fact(raw: dict[str, Any], reference: str, *, validate: bool = True) -> ObservationFact:
    sites = concept(raw.get("bodySite"))
    components = tuple(
        Component(concept(_dict(c).get("code")), _value(_dict(c)), "dataAbsentReason" in _dict(c))
        for c in _list(raw.get("component"))
    )
    return ObservationFact(
        reference=reference,
        status=_str(raw.get("status")) or "unknown",
        effective=_effective(raw),
        issued=parse_fhir_datetime(raw.get("issued")),
        code=concept(raw.get("code")),
        value=_value(raw),
        interpretation=_interpretation(raw),
        data_absent="dataAbsentReason" in raw,
        body_sites=sites.keys,
        components=components,
        body_site_texts=sites.texts,
        categories=tuple(key[1] for cc in _list(raw.get("category")) for key in concept(cc).keys),
        performer=next((_str(_dict(p).get("display")) for p in _list(raw.get("performer"))), None),
        validation_error=_validation_problem(raw) if validate else None,
        validated=validate,
        source=raw,
    )


def validated(fact: ObservationFact) -> ObservationFact:
    """The fact with its fhir.resources validation done (a no-op when it already was)."""
    if fact.validated or fact.source is None:
        return fact
    return dataclasses.replace(fact, validation_error=_validation_problem(fact.source), validated=True)


def _about_someone_else(raw: dict[str, Any], own: str, own_suffix: str) -> bool:
    """Observation.focus names what the record is about when it is not its subject (a relative, a fetus, a
    device): any focus other than the patient makes the record someone else's."""
    for focus in _list(raw.get("focus")):
        reference = _dict(focus).get("reference")
        if not (isinstance(reference, str) and (reference == own or reference.endswith(own_suffix))):
            return True
    return False


def select_observations(
    resources: Iterable[Any], patient_id: str, knowledge: Knowledge, *, prefilter: bool = True, validate: bool = True
) -> tuple[list[ObservationFact], SelectionStats]:
    """This patient's Observations that are results (not ignored statuses) and can matter, as facts.

    validate=False leaves fhir.resources validation to validated(), for the facts that turn out to matter.
    """
    stats = SelectionStats()
    ignored = knowledge.recognition.ignored_statuses
    facts: list[ObservationFact] = []
    own, own_suffix = f"Patient/{patient_id}", f"/Patient/{patient_id}"
    relevant, lookups, texts = knowledge.relevant_codes, knowledge.code_lookups, text_matcher(knowledge)
    for index, raw in enumerate(resources):
        if not isinstance(raw, dict) or raw.get("resourceType") != "Observation":
            continue
        stats.received += 1
        subject = raw.get("subject")
        reference = subject.get("reference") if isinstance(subject, dict) else None
        if not (isinstance(reference, str) and (reference == own or reference.endswith(own_suffix))):
            stats.other_patient += 1
            continue
        if _about_someone_else(raw, own, own_suffix):
            stats.other_focus += 1
            continue
        if _str(raw.get("status")) in ignored:
            stats.ignored_status += 1
            continue
        if prefilter and not observation_is_relevant(raw, relevant, lookups, texts):
            stats.not_relevant += 1
            continue
        reference = f"Observation/{raw['id']}" if _str(raw.get("id")) else f"Observation (entry {index + 1})"
        fact = to_fact(raw, reference, validate=validate)
        if fact.validation_error:
            stats.did_not_validate += 1
        facts.append(fact)
    stats.kept = len(facts)
    return facts, stats
