"""How much of the chart was read: when paging stopped early, the cards speak only for the records read."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class ChartReadInPart:
    reason: str  # page-cap | size-cap | deadline | next-page-failed
    pages_read: int
    observations_read: int
    oldest_read: datetime | None  # the oldest record read (effective time, else issued)
