"""content/recognition.yaml: how EHRs say present, absent or uncertain, and qualify a finding."""

from __future__ import annotations

import re
from typing import Any

from cds_service.knowledge import files
from cds_service.knowledge.model import ABSENT, PRESENT, UNCERTAIN, Key, Recognition, TextCues, normalise_answer
from cds_service.knowledge.reading import CodeReader, duration, validated
from cds_service.validation import ErrorPath
from cds_service.yaml_source import YamlDocument


def _cue_pattern(words: list[str], *, at: str) -> re.Pattern[str]:
    """Any of the cue words as whole words; `at` anchors them: "end" (the text before a finding's words),
    "start" (the text after them: nothing but the cue), or "any"."""
    marks = [word for word in words if not any(char.isalnum() for char in word)]  # "\?": "?facial droop"
    spoken = [re.escape(word).replace("\\ ", r"\s+") for word in words if word not in marks]
    body = rf"(?:(?<![\w/-])(?:{'|'.join(spoken)})(?![\w/])" + "".join(f"|{mark}" for mark in marks) + ")"
    anchored = {
        "end": rf"{body}[\s:-]*(?:\w+\s+){{0,3}}$",  # "no facial droop", "denies any weakness of"
        "start": rf"^[\s:=,-]*(?:(?:is|was|are|were)\s+)?{body}[\s.!)]*$",  # "facial droop: absent"
        "any": body,
    }[at]
    return re.compile(anchored, re.IGNORECASE)


def _cues(data: dict[str, list[str]]) -> TextCues:
    return TextCues(
        negation_before=_cue_pattern(data["negation_before"], at="end"),
        negation_after=_cue_pattern(data["negation_after"], at="start"),
        negation=_cue_pattern(data["negation_before"] + data["negation_after"], at="any"),
        uncertainty=_cue_pattern(data["uncertainty"], at="any"),
        historical=_cue_pattern(data["historical"], at="any"),
        other_person=_cue_pattern(data["other_person"], at="any"),
        instrument=_cue_pattern(data["instrument"], at="any"),
    )


def _by_presence(doc: YamlDocument, path: ErrorPath, sets: dict[str, list[Any]], read: Any) -> dict[Any, str]:
    """Every entry of the present / absent / uncertain lists, mapped to its presence; one entry in two is an error."""
    result: dict[Any, str] = {}
    for presence in (PRESENT, ABSENT, UNCERTAIN):
        for i, entry in enumerate(sets[presence]):
            key = read((*path, presence, i), entry)
            if key in result and result[key] != presence:
                raise doc.error((*path, presence, i), f"{entry!r} is listed as {result[key]} and as {presence}")
            result[key] = presence
    return result


def _qualifiers(
    doc: YamlDocument, reader: CodeReader, data: dict[str, Any]
) -> tuple[dict[Key, frozenset[str]], dict[Key, frozenset[str]]]:
    components: dict[Key, set[str]] = {}
    values: dict[Key, set[str]] = {}
    for name, spec in data.items():
        path = ("qualifiers", name)
        for i, entry in enumerate(spec["components"]):
            components.setdefault(reader.code(doc, (*path, "components", i), entry).key, set()).add(name)
        for i, entry in enumerate(spec["values"]):
            values.setdefault(reader.code(doc, (*path, "values", i), entry).key, set()).add(name)
    return ({k: frozenset(v) for k, v in components.items()}, {k: frozenset(v) for k, v in values.items()})


def load_recognition(doc: YamlDocument) -> tuple[Recognition, CodeReader]:
    data = validated(doc, files.RecognitionFile())
    reader = CodeReader(dict(data["systems"]))
    by_code = _by_presence(doc, ("presence",), data["presence"], lambda path, e: reader.code(doc, path, e).key)
    by_string = _by_presence(doc, ("value_strings",), data["value_strings"], lambda _path, e: normalise_answer(e))
    interp = data["interpretation"]
    by_interpretation = _by_presence(doc, ("interpretation",), interp, lambda _path, e: e)
    symptom = data["symptom_observation"]
    components, values = _qualifiers(doc, reader, data["qualifiers"])
    recognition = Recognition(
        presence_by_code=by_code,
        presence_by_string=by_string,
        interpretation=by_interpretation,
        interpretation_worsening=frozenset(interp["worsening"]),
        cues=_cues(data["text_cues"]),
        symptom_present=reader.code(doc, ("symptom_observation", "present"), symptom["present"]).key,
        symptom_absent=reader.code(doc, ("symptom_observation", "absent"), symptom["absent"]).key,
        finding_questions=frozenset(
            {
                reader.code(doc, ("symptom_observation", "present"), symptom["present"]).key,
                *reader.keys(doc, ("symptom_observation", "also_present"), symptom["also_present"]),
            }
        ),
        qualifier_components=components,
        qualifier_values=values,
        ignored_statuses=frozenset(data["ignored_statuses"]),
        flagged_statuses=dict(data["flagged_statuses"]),
        future_tolerance=duration(data["future_tolerance"]),
    )
    return recognition, reader
