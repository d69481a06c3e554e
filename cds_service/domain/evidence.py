"""Evidence: one record's statement about one finding, and what it said, kept as data (domain/cards.py words it)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from cds_service.domain.observations import Value
from cds_service.knowledge.model import PRESENT, Key


@dataclass(frozen=True)
class Statement:
    """What a record says about a finding."""

    kind: str  # value | interpretation | symptom | symptom-absent | score | answer | fast-item
    value: Value
    interpretation: tuple[str, ...] = ()
    item: str | None = None  # the instrument item's display (score, answer)
    previous: float | None = None  # the score's previous value, when it rose
    score: float | None = None  # the item's score (given as a number, or read from its answer)
    max_score: float | None = None
    answer: str | None = None  # the answer's display, when the item was answered with a code


@dataclass(frozen=True)
class Evidence:
    finding: str
    presence: str  # PRESENT | ABSENT | UNCERTAIN (knowledge.model)
    site: str  # the body part measured ("upper-limb:left"), "" for the finding as a whole: see triage.supersedes
    when: datetime | None
    issued: datetime | None
    reference: str
    statement: Statement
    qualifiers: frozenset[str] = frozenset()
    flags: frozenset[str] = frozenset()  # what a card line notes (status, uncertainty reason, old deficit...)
    score: tuple[str, str, float] | None = None  # (item id, body-site key, value) for "higher than before"
    severity_recorded: bool = False  # whether the record says anything about severity at all
    concept: Key | None = None  # the code that named the finding (or the item), None when named by text only
    categories: tuple[str, ...] = ()  # where it was recorded (Observation.category codes)
    performer: str | None = None  # who recorded it, when the record says

    @property
    def present(self) -> bool:
        return self.presence == PRESENT
