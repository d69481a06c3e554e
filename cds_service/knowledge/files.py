"""The shapes of the files in content/ and cards/, as strict marshmallow schemas (unknown keys are errors).

Cross-references (a rule's finding exists, a card's guide section exists) are checked by knowledge/load.py.
"""

from __future__ import annotations

import re

from marshmallow import fields, validate

from cds_service.knowledge.model import INDICATORS, OPERATORS, QUALIFIERS
from cds_service.validation import Strict

WINDOW = re.compile(r"^(\d+)\s*([smhd])$")
ID = validate.Regexp(r"^[a-z0-9-]+$", error="must be lower-case letters, digits and dashes")
# Cards and the guide page are GitHub markdown read by EHRs that may render raw HTML: allow none.
NO_HTML = validate.Regexp(r"^(?![\s\S]*<[A-Za-z/!?])", error="raw HTML is not allowed here (markdown only)")


class CodeEntry(Strict):
    system = fields.String(required=True)
    code = fields.String(required=True, validate=validate.Length(min=1))
    display = fields.String(required=True)
    source = fields.String(required=True, validate=validate.Length(min=1))


class TopicEntry(CodeEntry):
    """A card's source topic: a code shown to the EHR; its source is the cards file itself."""

    source = fields.String(load_default="cards/common.yaml")


class ComparisonEntry(Strict):
    op = fields.String(required=True, validate=validate.OneOf(list(OPERATORS)))
    value = fields.Float(required=True)


# ---- content/recognition.yaml --------------------------------------------------------------------------------


class PresenceEntry(Strict):
    present = fields.List(fields.Nested(CodeEntry), load_default=list)
    absent = fields.List(fields.Nested(CodeEntry), load_default=list)
    unknown_values = fields.List(fields.Nested(CodeEntry), load_default=list, data_key="unknown")  # not Meta.unknown


class InterpretationEntry(Strict):
    system = fields.String(required=True)
    present = fields.List(fields.String(), load_default=list)
    absent = fields.List(fields.String(), load_default=list)
    worsening = fields.List(fields.String(), load_default=list)


class SymptomObservationEntry(Strict):
    present = fields.Nested(CodeEntry, required=True)
    absent = fields.Nested(CodeEntry, required=True)


class QualifierComponentEntry(Strict):
    component = fields.Nested(CodeEntry, required=True)
    values = fields.List(fields.Nested(CodeEntry), required=True, validate=validate.Length(min=1))


class RecognitionFile(Strict):
    systems = fields.Dict(keys=fields.String(), values=fields.String(), required=True)
    presence = fields.Nested(PresenceEntry, required=True)
    interpretation = fields.Nested(InterpretationEntry, required=True)
    symptom_observation = fields.Nested(SymptomObservationEntry, required=True)
    qualifier_components = fields.Dict(
        keys=fields.String(validate=validate.OneOf(QUALIFIERS)),
        values=fields.Nested(QualifierComponentEntry),
        required=True,
    )
    ignored_statuses = fields.List(fields.String(), required=True)
    flagged_statuses = fields.Dict(keys=fields.String(), values=fields.String(), required=True)


# ---- content/<guide>/findings.yaml ---------------------------------------------------------------------------


class FindingEntry(Strict):
    id = fields.String(required=True, validate=ID)
    label = fields.String(required=True)
    guide_section = fields.String(required=True)
    focal = fields.Boolean(load_default=False)
    codes = fields.List(fields.Nested(CodeEntry), load_default=list)
    text_patterns = fields.List(fields.String(), load_default=list)
    notes = fields.String()


class ScoreEntry(Strict):
    id = fields.String(required=True)
    code = fields.Nested(CodeEntry, required=True)
    finding = fields.String(required=True)
    present_when = fields.Nested(ComparisonEntry, required=True)
    severe_when = fields.Nested(ComparisonEntry)
    body_sites = fields.List(fields.String(), load_default=list)
    notes = fields.String()


class BodySiteEntry(Strict):
    id = fields.String(required=True)
    focal = fields.Boolean(load_default=False)
    codes = fields.List(fields.Nested(CodeEntry), required=True, validate=validate.Length(min=1))


class FastComponentEntry(Strict):
    code = fields.Nested(CodeEntry, required=True)
    finding = fields.String(required=True)


class FastEntry(Strict):
    panel = fields.Nested(CodeEntry, required=True)
    components = fields.Dict(keys=fields.String(), values=fields.Nested(FastComponentEntry), required=True)


class FindingsFile(Strict):
    body_sites = fields.List(fields.Nested(BodySiteEntry), load_default=list)
    findings = fields.List(fields.Nested(FindingEntry), required=True, validate=validate.Length(min=1))
    scores = fields.List(fields.Nested(ScoreEntry), load_default=list)
    fast = fields.Nested(FastEntry)


# ---- content/<guide>/rules.yaml ------------------------------------------------------------------------------


class TierEntry(Strict):
    id = fields.String(required=True)
    indicator = fields.String(required=True, validate=validate.OneOf(INDICATORS))
    window = fields.String(required=True, validate=validate.Regexp(WINDOW.pattern, error="must be like 24h, 14d"))
    card = fields.String(required=True)
    suppressed_by = fields.List(fields.String(), load_default=list)
    # After a clinician overrides this tier's card, the same evidence shows as a short info line for this long.
    repeat_quiet = fields.String(validate=validate.Regexp(WINDOW.pattern, error="must be like 12h, 7d"))
    notes = fields.String()


class EmergencyEntry(Strict):
    tier = fields.String(required=True)
    recheck_card = fields.String(required=True, validate=ID)
    acute_qualifiers = fields.List(
        fields.String(validate=validate.OneOf(QUALIFIERS)), required=True, validate=validate.Length(min=1)
    )
    notes = fields.String()


class ProvenanceEntry(Strict):
    guide_section = fields.String(required=True)
    statement = fields.String(required=True)
    beyond_guide = fields.Boolean(load_default=False)
    source = fields.String()


class RuleEntry(Strict):
    id = fields.String(required=True, validate=ID)
    tier = fields.String(required=True)
    findings = fields.List(fields.String(), required=True, validate=validate.Length(min=1))
    requires_all = fields.List(fields.String(validate=validate.OneOf(QUALIFIERS)), load_default=list)
    requires_any = fields.List(fields.String(validate=validate.OneOf(QUALIFIERS)), load_default=list)
    provenance = fields.Nested(ProvenanceEntry, required=True)


class RulesFile(Strict):
    tiers = fields.List(fields.Nested(TierEntry), required=True, validate=validate.Length(min=1))
    emergency = fields.Nested(EmergencyEntry, required=True)
    rules = fields.List(fields.Nested(RuleEntry), required=True, validate=validate.Length(min=1))


# ---- content/<guide>/guide.yaml ------------------------------------------------------------------------------


class SectionEntry(Strict):
    id = fields.String(required=True, validate=ID)
    title = fields.String(required=True)
    body = fields.String(required=True, validate=NO_HTML)


class GuideFile(Strict):
    id = fields.String(required=True)
    title = fields.String(required=True)
    summary = fields.String(required=True)
    source = fields.String(required=True)
    reviewed = fields.String(required=True)
    sections = fields.List(fields.Nested(SectionEntry), required=True, validate=validate.Length(min=1))


# ---- cards/*.yaml --------------------------------------------------------------------------------------------


class SuggestionEntry(Strict):
    label = fields.String(required=True)
    description = fields.String(required=True)
    code = fields.Nested(CodeEntry, required=True)


class OverrideEntry(Strict):
    code = fields.String(required=True)
    display = fields.String(required=True, validate=validate.Length(min=1))


class LinkEntry(Strict):
    label = fields.String(required=True)
    section = fields.String(required=True)


class CardFile(Strict):
    id = fields.String(required=True)
    indicator = fields.String(required=True, validate=validate.OneOf(INDICATORS))
    summary = fields.String(required=True, validate=NO_HTML)
    detail = fields.String(required=True, validate=NO_HTML)
    earlier_heading = fields.String(validate=NO_HTML)
    link = fields.Nested(LinkEntry, required=True)
    override_reasons = fields.List(fields.Nested(OverrideEntry), load_default=list)
    suggestions = fields.List(fields.Nested(SuggestionEntry), load_default=list)


class SourceEntry(Strict):
    label = fields.String(required=True, validate=validate.Length(min=1))
    topic = fields.Nested(TopicEntry)


class WhyEntry(Strict):
    lead = fields.String(required=True, validate=NO_HTML)
    rule = fields.String(required=True, validate=NO_HTML)
    guide_section = fields.String(required=True, validate=NO_HTML)
    beyond_guide = fields.String(required=True, validate=NO_HTML)


class CommonCardFile(Strict):
    source = fields.Nested(SourceEntry, required=True)
    override_reason_system = fields.String(required=True)
    flags = fields.Dict(keys=fields.String(), values=fields.String(validate=NO_HTML), required=True)
    why = fields.Nested(WhyEntry, required=True)
