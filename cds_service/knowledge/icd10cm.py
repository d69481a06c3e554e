"""ICD-10-CM recognition by hierarchy at run time, from content/<guide>/icd10cm-expanded.yaml.

That file is generated at content-build time by knowledge/icd10cm_expand.py, which walks the tabular of the
simple-icd-10-cm package. This module never imports the package (about 176 MB and 1.4 s per process): it only
indexes the generated code lists.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, NamedTuple

from marshmallow import fields, validate

from cds_service.knowledge.reading import validated
from cds_service.validation import Strict
from cds_service.yaml_source import YamlDocument

SYSTEM = "http://hl7.org/fhir/sid/icd-10-cm"
Kind = Literal["present", "old-deficit", "never", "chronic"]
CODE = validate.Regexp(r"^[A-Z][0-9][0-9A-Z](\.[0-9A-Z]{1,4})?$", error="not a dotted ICD-10-CM code")


class ExpandedFile(Strict):
    system = fields.String(required=True, validate=validate.Equal(SYSTEM))
    release = fields.String(required=True)
    package = fields.String(required=True)
    present = fields.Dict(keys=fields.String(), values=fields.List(fields.String(validate=CODE)), required=True)
    old_deficit = fields.Dict(keys=fields.String(validate=CODE), values=fields.String(), required=True)
    never_fire = fields.List(fields.String(validate=CODE), required=True)
    chronic = fields.Dict(keys=fields.String(validate=CODE), values=fields.String(), required=True)


class Icd10cmMatch(NamedTuple):
    finding: str | None  # None for "never": such a code means no finding at all
    kind: Kind


def normalise(code: str) -> str:
    """'r29810 ' -> 'R29.810': EHRs send codes without the dot and in any case."""
    text = code.strip().upper()
    if len(text) > 3 and "." not in text:
        text = f"{text[:3]}.{text[3:]}"
    return text


@dataclass(frozen=True)
class Icd10cmIndex:
    present: dict[str, str]  # code -> finding it means
    old_deficit: dict[str, str]  # sequela code -> finding whose OLD deficit it records
    never_fire: frozenset[str]
    chronic: dict[str, str]  # code -> finding it marks as long-standing
    release: str = ""
    system: str = SYSTEM

    def lookup(self, code: str) -> Icd10cmMatch | None:
        key = normalise(code)
        if key in self.present:
            return Icd10cmMatch(self.present[key], "present")
        if key in self.old_deficit:
            return Icd10cmMatch(self.old_deficit[key], "old-deficit")
        if key in self.chronic:
            return Icd10cmMatch(self.chronic[key], "chronic")
        if key in self.never_fire:
            return Icd10cmMatch(None, "never")
        return None


class _Claims:
    """Each code may appear once in the whole file, and every finding named must exist."""

    def __init__(self, doc: YamlDocument, finding_ids: set[str]) -> None:
        self.doc, self.finding_ids = doc, finding_ids
        self.section_of: dict[str, str] = {}

    def finding(self, path: tuple[str | int, ...], finding: str) -> str:
        if finding not in self.finding_ids:
            raise self.doc.error(path, f"no finding {finding!r} in findings.yaml")
        return finding

    def code(self, path: tuple[str | int, ...], code: str, section: str) -> str:
        if code in self.section_of:
            raise self.doc.error(path, f"code {code} is already listed under {self.section_of[code]}")
        self.section_of[code] = section
        return code


def load_icd10cm(doc: YamlDocument, finding_ids: set[str]) -> Icd10cmIndex:
    """The index of an icd10cm-expanded.yaml; raises ContentError naming file and line for any problem."""
    data = validated(doc, ExpandedFile())
    claims = _Claims(doc, finding_ids)
    present: dict[str, str] = {}
    for finding, codes in data["present"].items():
        claims.finding(("present", finding), finding)
        for i, code in enumerate(codes):
            present[claims.code(("present", finding, i), code, f"present.{finding}")] = finding
    mapped: dict[str, dict[str, str]] = {"old_deficit": {}, "chronic": {}}
    for section, by_code in mapped.items():
        for code, finding in data[section].items():
            claims.code((section, code), code, section)
            by_code[code] = claims.finding((section, code), finding)
    never = frozenset(claims.code(("never_fire", i), c, "never_fire") for i, c in enumerate(data["never_fire"]))
    return Icd10cmIndex(present, mapped["old_deficit"], never, mapped["chronic"], data["release"])
