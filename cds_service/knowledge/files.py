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
    present = fields.List(fields.Nested(CodeEntry), required=True)
    absent = fields.List(fields.Nested(CodeEntry), required=True)
    uncertain = fields.List(fields.Nested(CodeEntry), required=True)


class ValueStringsEntry(Strict):
    present = fields.List(fields.String(validate=validate.Length(min=1)), required=True)
    absent = fields.List(fields.String(validate=validate.Length(min=1)), required=True)
    uncertain = fields.List(fields.String(validate=validate.Length(min=1)), required=True)


class InterpretationEntry(Strict):
    system = fields.String(required=True)
    present = fields.List(fields.String(), required=True)
    absent = fields.List(fields.String(), required=True)
    uncertain = fields.List(fields.String(), required=True)
    worsening = fields.List(fields.String(), load_default=list)


_CUES = fields.List(fields.String(validate=validate.Length(min=1)), required=True, validate=validate.Length(min=1))


class TextCuesEntry(Strict):
    negation_before = _CUES
    negation_after = _CUES
    uncertainty = _CUES
    historical = _CUES
    other_person = _CUES
    instrument = _CUES


class SymptomObservationEntry(Strict):
    present = fields.Nested(CodeEntry, required=True)
    absent = fields.Nested(CodeEntry, required=True)
    also_present = fields.List(fields.Nested(CodeEntry), load_default=list)  # other questions answered by a finding


class QualifierEntry(Strict):
    components = fields.List(fields.Nested(CodeEntry), required=True, validate=validate.Length(min=1))
    values = fields.List(fields.Nested(CodeEntry), required=True, validate=validate.Length(min=1))


class RecognitionFile(Strict):
    systems = fields.Dict(keys=fields.String(), values=fields.String(), required=True)
    presence = fields.Nested(PresenceEntry, required=True)
    value_strings = fields.Nested(ValueStringsEntry, required=True)
    interpretation = fields.Nested(InterpretationEntry, required=True)
    text_cues = fields.Nested(TextCuesEntry, required=True)
    symptom_observation = fields.Nested(SymptomObservationEntry, required=True)
    qualifiers = fields.Dict(
        keys=fields.String(validate=validate.OneOf(QUALIFIERS)), values=fields.Nested(QualifierEntry), required=True
    )
    ignored_statuses = fields.List(fields.String(), required=True)
    flagged_statuses = fields.Dict(keys=fields.String(), values=fields.String(), required=True)
    future_tolerance = fields.String(required=True, validate=validate.Regexp(WINDOW.pattern, error="must be like 5m"))


# ---- content/<guide>/findings.yaml ---------------------------------------------------------------------------


class FindingEntry(Strict):
    id = fields.String(required=True, validate=ID)
    label = fields.String(required=True)
    guide_section = fields.String(required=True)
    focal = fields.Boolean(load_default=False)
    codes = fields.List(fields.Nested(CodeEntry), load_default=list)
    text_patterns = fields.List(fields.String(), load_default=list)
    old_deficit_codes = fields.List(fields.Nested(CodeEntry), load_default=list)
    notes = fields.String()


class BodySiteEntry(Strict):
    id = fields.String(required=True)
    focal = fields.Boolean(load_default=False)
    codes = fields.List(fields.Nested(CodeEntry), required=True, validate=validate.Length(min=1))
    text_patterns = fields.List(fields.String(), load_default=list)


class FindingsFile(Strict):
    body_sites = fields.List(fields.Nested(BodySiteEntry), load_default=list)
    findings = fields.List(fields.Nested(FindingEntry), required=True, validate=validate.Length(min=1))


# ---- content/<guide>/instruments.yaml ------------------------------------------------------------------------


class AnswerEntry(Strict):
    code = fields.String(required=True, validate=validate.Length(min=1))
    display = fields.String(required=True)
    score = fields.Float(required=True, allow_none=True)  # null: the item could not be assessed (e.g. amputation)


class AnswerListEntry(Strict):
    system = fields.String(required=True)
    source = fields.String(required=True, validate=validate.Length(min=1))
    answers = fields.List(fields.Nested(AnswerEntry), required=True, validate=validate.Length(min=1))


class ItemEntry(Strict):
    id = fields.String(required=True, validate=ID)
    code = fields.Nested(CodeEntry, required=True)
    finding = fields.String(required=True)
    present_when = fields.Nested(ComparisonEntry, required=True)
    severe_when = fields.Nested(ComparisonEntry)
    body_sites = fields.List(fields.String(), load_default=list)
    answer_list = fields.String()
    label = fields.String(validate=NO_HTML)  # how a card names the item (the LOINC display when absent)
    max_score = fields.Float()
    measures = fields.String(validate=validate.Regexp(r"^[a-z-]+:(left|right|both)?$"))
    notes = fields.String()


class FastComponentEntry(Strict):
    code = fields.Nested(CodeEntry, required=True)
    finding = fields.String(required=True)


class FastEntry(Strict):
    panel = fields.Nested(CodeEntry, required=True)
    components = fields.Dict(keys=fields.String(), values=fields.Nested(FastComponentEntry), required=True)


class InstrumentsFile(Strict):
    answer_lists = fields.Dict(keys=fields.String(), values=fields.Nested(AnswerListEntry), load_default=dict)
    items = fields.List(fields.Nested(ItemEntry), required=True)
    fast = fields.Nested(FastEntry)


# ---- content/<guide>/rules.yaml ------------------------------------------------------------------------------


class TierEntry(Strict):
    id = fields.String(required=True)
    indicator = fields.String(required=True, validate=validate.OneOf(INDICATORS))
    window = fields.String(required=True, validate=validate.Regexp(WINDOW.pattern, error="must be like 24h, 14d"))
    card = fields.String(required=True)
    suppressed_by = fields.List(fields.String(), load_default=list)
    recheck = fields.Boolean(load_default=False)
    kept_out_by = fields.List(fields.String(validate=validate.OneOf(QUALIFIERS)), load_default=list)
    # After a clinician overrides this tier's card, the same evidence shows as a short info line for this long.
    repeat_quiet = fields.String(validate=validate.Regexp(WINDOW.pattern, error="must be like 12h, 7d"))
    notes = fields.String()


class EmergencyEntry(Strict):
    tier = fields.String(required=True)
    recheck_card = fields.String(required=True, validate=ID)
    acute_qualifiers = fields.List(
        fields.String(validate=validate.OneOf(QUALIFIERS)), required=True, validate=validate.Length(min=1)
    )
    acute_window = fields.String(required=True, validate=validate.Regexp(WINDOW.pattern, error="must be like 72h"))
    read_in_part_card = fields.String(required=True, validate=ID)
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


# ---- content/<guide>/release.yaml ----------------------------------------------------------------------------


class ReleaseFile(Strict):
    content_version = fields.String(
        required=True, validate=validate.Regexp(r"^\d+(\.\d+)+$", error="must be like 2026.11.1")
    )
    reviewed_by = fields.String(required=True, validate=validate.Length(min=3))
    reviewed_on = fields.String(required=True, validate=validate.Regexp(r"^\d{4}-\d{2}-\d{2}$", error="must be a date"))
    content_digest = fields.String(required=True, validate=validate.Regexp(r"^[0-9a-f]{64}$", error="must be a sha256"))


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
    actions = fields.String(validate=NO_HTML)
    link = fields.Nested(LinkEntry, required=True)
    override_reasons = fields.List(fields.String(), load_default=list)  # codes declared in cards/common.yaml
    suggestions = fields.List(fields.Nested(SuggestionEntry), load_default=list)


class SourceEntry(Strict):
    label = fields.String(required=True, validate=validate.Length(min=1))
    topic = fields.Nested(TopicEntry)


class WhyEntry(Strict):
    lead = fields.String(required=True, validate=NO_HTML)
    rule = fields.String(required=True, validate=NO_HTML)
    guide_section = fields.String(required=True, validate=NO_HTML)
    beyond_guide = fields.String(required=True, validate=NO_HTML)


class ReadInPartEntry(Strict):
    extent = fields.String(required=True, validate=NO_HTML)
    no_date = fields.String(required=True, validate=NO_HTML)
    reasons = fields.Dict(keys=fields.String(), values=fields.String(validate=NO_HTML), required=True)


def _phrases(**kwargs: object) -> fields.Dict:
    return fields.Dict(keys=fields.String(), values=fields.String(validate=NO_HTML), **kwargs)  # type: ignore[arg-type]


class CommonCardFile(Strict):
    source = fields.Nested(SourceEntry, required=True)
    override_reason_system = fields.String(required=True)
    override_reasons = fields.List(fields.Nested(OverrideEntry), required=True, validate=validate.Length(min=1))
    flags = _phrases(required=True)
    why = fields.Nested(WhyEntry, required=True)
    read_in_part = fields.Nested(ReadInPartEntry, required=True)
    values = _phrases(required=True)
    statements = _phrases(required=True)
    interpretations = _phrases(load_default=dict)
    sections = _phrases(required=True)
    recorded = _phrases(required=True)
    qualifiers = _phrases(load_default=dict)
    finding_notes = _phrases(load_default=dict)
