"""Body sites: which group of content/<guide>/findings.yaml a record's bodySite is in, by code or by its words."""

from __future__ import annotations

from dataclasses import dataclass

from cds_service.domain.observations import ObservationFact
from cds_service.knowledge.model import BodySiteGroup, Knowledge

LATERALITY = {"left": "left", "right": "right", "bilateral": "both", "both": "both"}


@dataclass(frozen=True)
class Site:
    group: BodySiteGroup | None  # None: no site recorded, or one of no listed group
    recorded: bool  # whether the record names a body site at all
    key: str  # the body part measured, for latest-wins: "group:side", "" when none, "other" when unlisted

    @property
    def focal(self) -> bool:
        return self.group is not None and self.group.focal


def _side(texts: tuple[str, ...]) -> str:
    for text in texts:
        for word, side in LATERALITY.items():
            if word in text.lower().split():
                return side
    return ""


NO_SITE = Site(None, False, "")


def site_of(fact: ObservationFact, knowledge: Knowledge) -> Site:
    if not fact.body_sites and not fact.body_site_texts:
        return NO_SITE
    for group in knowledge.body_sites:
        if any(key in group.codes for key in fact.body_sites):
            return Site(group, True, f"{group.id}:{_side(fact.body_site_texts)}")
    for group in knowledge.body_sites:
        if group.text_pattern is not None and any(group.text_pattern.search(t) for t in fact.body_site_texts):
            return Site(group, True, f"{group.id}:{_side(fact.body_site_texts)}")
    return Site(None, True, "other")
