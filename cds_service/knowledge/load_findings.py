"""content/<guide>/findings.yaml (findings, their codes, body sites) and instruments.yaml (scored items and their
answer lists, the FAST panel)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from cds_service.knowledge import files
from cds_service.knowledge.model import Answer, BodySiteGroup, Comparison, Finding, Key, ScoreItem
from cds_service.knowledge.reading import CodeReader, validated
from cds_service.validation import ErrorPath
from cds_service.yaml_source import YamlDocument


@dataclass(frozen=True)
class FindingsContent:
    findings: dict[str, Finding]
    finding_by_code: dict[Key, str]
    old_deficit_by_code: dict[Key, str]
    body_sites: tuple[BodySiteGroup, ...]


@dataclass(frozen=True)
class InstrumentsContent:
    scores: dict[Key, ScoreItem]
    fast_panel: Key | None
    fast_components: dict[Key, str]


def compile_patterns(doc: YamlDocument, path: ErrorPath, texts: list[str]) -> tuple[re.Pattern[str], ...]:
    patterns = []
    for j, text in enumerate(texts):
        try:
            patterns.append(re.compile(text, re.IGNORECASE))
        except re.error as exc:
            raise doc.error((*path, "text_patterns", j), f"not a valid regular expression: {exc}") from exc
    return tuple(patterns)


def _claim(doc: YamlDocument, path: ErrorPath, key: Key, finding: str, taken: dict[Key, str]) -> None:
    if key in taken:
        raise doc.error(path, f"code {key[1]} already means {taken[key]!r}")
    taken[key] = finding


def _finding(
    doc: YamlDocument, reader: CodeReader, path: ErrorPath, entry: dict[str, Any], section_ids: set[str]
) -> Finding:
    if entry["guide_section"] not in section_ids:
        raise doc.error((*path, "guide_section"), f"no guide section {entry['guide_section']!r}")
    codes = tuple(reader.code(doc, (*path, "codes", j), c) for j, c in enumerate(entry["codes"]))
    old = tuple(reader.code(doc, (*path, "old_deficit_codes", j), c) for j, c in enumerate(entry["old_deficit_codes"]))
    patterns = compile_patterns(doc, path, entry["text_patterns"])
    if not codes and not patterns:
        raise doc.error(path, "a finding needs codes or text_patterns")
    return Finding(entry["id"], entry["label"], entry["guide_section"], entry["focal"], codes, patterns, old)


def _body_sites(doc: YamlDocument, reader: CodeReader, entries: list[dict[str, Any]]) -> tuple[BodySiteGroup, ...]:
    groups = []
    for i, group in enumerate(entries):
        path = ("body_sites", i)
        codes = reader.keys(doc, (*path, "codes"), group["codes"])
        patterns = compile_patterns(doc, path, group["text_patterns"])
        text = re.compile("|".join(f"(?:{p.pattern})" for p in patterns), re.IGNORECASE) if patterns else None
        groups.append(BodySiteGroup(group["id"], group["focal"], codes, text))
    return tuple(groups)


def load_findings(doc: YamlDocument, reader: CodeReader, section_ids: set[str]) -> FindingsContent:
    data = validated(doc, files.FindingsFile())
    findings: dict[str, Finding] = {}
    by_code: dict[Key, str] = {}
    old_by_code: dict[Key, str] = {}
    for i, entry in enumerate(data["findings"]):
        if entry["id"] in findings:
            raise doc.error(("findings", i, "id"), f"duplicate finding id {entry['id']!r}")
        finding = findings[entry["id"]] = _finding(doc, reader, ("findings", i), entry, section_ids)
        for j, code in enumerate(finding.codes):
            _claim(doc, ("findings", i, "codes", j), code.key, finding.id, by_code)
        for j, code in enumerate(finding.old_deficit_codes):
            _claim(doc, ("findings", i, "old_deficit_codes", j), code.key, finding.id, old_by_code)
            if code.key in by_code:
                raise doc.error(("findings", i, "old_deficit_codes", j), f"code {code.code} is also a present code")
    return FindingsContent(findings, by_code, old_by_code, _body_sites(doc, reader, data["body_sites"]))


def _answer_lists(doc: YamlDocument, reader: CodeReader, lists: dict[str, Any]) -> dict[str, dict[Key, Answer]]:
    result: dict[str, dict[Key, Answer]] = {}
    for list_id, spec in lists.items():
        system = reader.system(spec["system"])
        answers: dict[Key, Answer] = {}
        for j, answer in enumerate(spec["answers"]):
            code = reader.code(
                doc, ("answer_lists", list_id, "answers", j), {**answer, "system": system, "source": spec["source"]}
            )
            answers[code.key] = Answer(code, answer["score"])
        result[list_id] = answers
    return result


def _item(
    doc: YamlDocument,
    reader: CodeReader,
    path: ErrorPath,
    entry: dict[str, Any],
    answer_lists: dict[str, dict[Key, Answer]],
    finding_ids: set[str],
    group_ids: set[str],
) -> ScoreItem:
    if entry["finding"] not in finding_ids:
        raise doc.error((*path, "finding"), f"unknown finding {entry['finding']!r}")
    for j, site in enumerate(entry["body_sites"]):
        if site not in group_ids:
            raise doc.error((*path, "body_sites", j), f"unknown body site group {site!r}")
    list_id = entry.get("answer_list")
    if list_id is not None and list_id not in answer_lists:
        raise doc.error((*path, "answer_list"), f"unknown answer list {list_id!r}")
    answers = answer_lists.get(list_id or "", {})
    scores = [a.score for a in answers.values() if a.score is not None]
    severe = entry.get("severe_when")
    return ScoreItem(
        entry["id"],
        reader.code(doc, (*path, "code"), entry["code"]),
        entry["finding"],
        Comparison(**entry["present_when"]),
        Comparison(**severe) if severe else None,
        tuple(entry["body_sites"]),
        answers,
        list_id,
        entry.get("max_score", max(scores) if scores else None),
        entry.get("measures", ""),
        entry.get("label", ""),
    )


def load_instruments(doc: YamlDocument, reader: CodeReader, findings: FindingsContent) -> InstrumentsContent:
    data = validated(doc, files.InstrumentsFile())
    answer_lists = _answer_lists(doc, reader, data["answer_lists"])
    group_ids = {group.id for group in findings.body_sites}
    scores: dict[Key, ScoreItem] = {}
    for i, entry in enumerate(data["items"]):
        item = _item(doc, reader, ("items", i), entry, answer_lists, set(findings.findings), group_ids)
        if item.code.key in scores or item.code.key in findings.finding_by_code:
            raise doc.error(("items", i, "code"), f"code {item.code.code} is listed twice")
        scores[item.code.key] = item
    fast = data.get("fast")
    if fast is None:
        return InstrumentsContent(scores, None, {})
    components: dict[Key, str] = {}
    for name, component in fast["components"].items():
        path = ("fast", "components", name)
        if component["finding"] not in findings.findings:
            raise doc.error((*path, "finding"), f"unknown finding {component['finding']!r}")
        components[reader.code(doc, (*path, "code"), component["code"]).key] = component["finding"]
    return InstrumentsContent(scores, reader.code(doc, ("fast", "panel"), fast["panel"]).key, components)
