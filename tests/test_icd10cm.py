"""ICD-10-CM by hierarchy: the committed expansion matches the tabular, and the runtime index answers from it."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from cds_service.knowledge import icd10cm_expand
from cds_service.knowledge.icd10cm import SYSTEM, Icd10cmIndex, Icd10cmMatch, load_icd10cm
from cds_service.yaml_source import ContentError, load_yaml

GUIDE = Path(__file__).resolve().parents[1] / "content" / "weakness"
EXPANDED = GUIDE / icd10cm_expand.TARGET
FINDINGS = load_yaml(GUIDE / "findings.yaml").data["findings"]
FINDING_IDS = {f["id"] for f in FINDINGS}


@pytest.fixture(scope="module")
def tabular() -> None:
    """Import the package once for this module's expander tests (about 1.4 s)."""
    icd10cm_expand.tabular()


@pytest.fixture(scope="module")
def index() -> Icd10cmIndex:
    return load_icd10cm(load_yaml(EXPANDED), FINDING_IDS)


def _guide_copy(tmp_path: Path) -> Path:
    for name in ("findings.yaml", icd10cm_expand.SOURCE, icd10cm_expand.TARGET):
        shutil.copy(GUIDE / name, tmp_path / name)
    return tmp_path


def _line_of(path: Path, text: str) -> int:
    return next(n for n, line in enumerate(path.read_text().splitlines(), 1) if text in line)


@pytest.mark.usefixtures("tabular")
def test_the_committed_expansion_is_up_to_date() -> None:
    assert icd10cm_expand.stale() == []


@pytest.mark.usefixtures("tabular")
def test_the_expander_names_file_and_line_of_a_wrong_title_and_reports_a_stale_copy(tmp_path: Path) -> None:
    guide = _guide_copy(tmp_path)
    source = guide / icd10cm_expand.SOURCE
    source.write_text(source.read_text().replace("title: Facial weakness\n", "title: Facial droop\n", 1))
    with pytest.raises(ContentError) as caught:
        icd10cm_expand.expand(guide)
    assert caught.value.file == source and caught.value.line == _line_of(source, "title: Facial droop")
    assert "'Facial weakness'" in caught.value.problem

    source.write_text(source.read_text().replace("title: Facial droop\n", "title: Facial weakness\n"))
    target = guide / icd10cm_expand.TARGET
    target.write_text(target.read_text().replace("    - R47.81  # Slurred speech\n", ""))
    problems = icd10cm_expand.stale(guide)
    assert problems[0].startswith(f"{target} is stale (1 lines to add, 0 to remove)")
    assert "+    - R47.81  # Slurred speech" in problems


def test_children_of_listed_codes_count(index: Icd10cmIndex) -> None:
    assert index.lookup("G81.91") == Icd10cmMatch("limb-weakness", "present")  # under G81 > G81.9
    assert index.lookup("G81") == Icd10cmMatch("limb-weakness", "present")  # the header itself
    assert index.lookup("R47.01") == Icd10cmMatch("speech-difficulty", "present")  # under R47 > R47.0
    assert index.lookup("R40.2432") == Icd10cmMatch("confusion", "present")  # a 7th-character GCS code


def test_codes_are_found_without_the_dot_and_in_any_case(index: Icd10cmIndex) -> None:
    assert index.lookup("R29810") == Icd10cmMatch("facial-droop", "present")
    assert index.lookup(" r47.01 ") == Icd10cmMatch("speech-difficulty", "present")
    assert index.lookup("F32A") == Icd10cmMatch("depressed-mood", "present")


def test_sequelae_chronic_markers_and_history_never_mean_a_present_finding(index: Icd10cmIndex) -> None:
    assert index.lookup("I69.351") == Icd10cmMatch("limb-weakness", "old-deficit")
    assert index.lookup("I69391") == Icd10cmMatch("swallowing-difficulty", "old-deficit")
    assert index.lookup("G89.29") == Icd10cmMatch("back-or-limb-pain", "chronic")
    assert index.lookup("Z86.73") == Icd10cmMatch(None, "never")
    assert index.lookup("T14.91XS") == Icd10cmMatch(None, "never")
    assert index.lookup("T14.91XA") == Icd10cmMatch("self-harm-thoughts", "present")


def test_excluded_branches_look_alikes_and_unknown_codes_mean_nothing(index: Icd10cmIndex) -> None:
    assert index.lookup("G51.0") is None  # Bell's palsy is not the facial droop sign
    assert index.lookup("R47.82") is None  # excluded inside R47
    assert index.lookup("R40.2412") is None  # GCS 13-15 excluded inside R40.2
    assert index.lookup("F32.5") is None  # in remission
    assert index.lookup("A00.0") is None  # valid ICD-10-CM, not ours
    assert index.lookup("XYZ") is None and index.lookup("") is None


def test_every_icd10cm_code_of_findings_yaml_is_present_for_the_same_finding(index: Icd10cmIndex) -> None:
    listed = [(f["id"], c["code"]) for f in FINDINGS for c in f.get("codes", []) if c["system"] == "icd10cm"]
    assert len(listed) > 30
    assert [(finding, code) for finding, code in listed if index.lookup(code) != (finding, "present")] == []


def test_the_index_knows_its_system_and_release(index: Icd10cmIndex) -> None:
    assert SYSTEM == "http://hl7.org/fhir/sid/icd-10-cm"
    assert index.release.startswith("ICD-10-CM FY2026")


def test_the_loader_names_file_and_line_of_an_unknown_finding(tmp_path: Path) -> None:
    broken = tmp_path / icd10cm_expand.TARGET
    broken.write_text(EXPANDED.read_text().replace("\n  limb-weakness:\n", "\n  arm-weakness:\n", 1))
    with pytest.raises(ContentError) as caught:
        load_icd10cm(load_yaml(broken), FINDING_IDS)
    # yaml_source gives a key's value line: the first code of the finding's list, just under the key
    assert caught.value.file == broken and caught.value.line == _line_of(broken, "  arm-weakness:") + 1
    assert "no finding 'arm-weakness'" in caught.value.problem


def test_the_loader_refuses_a_code_in_two_sections(tmp_path: Path) -> None:
    broken = tmp_path / icd10cm_expand.TARGET
    broken.write_text(EXPANDED.read_text().replace("never_fire:\n", "never_fire:\n  - G81.91\n", 1))
    with pytest.raises(ContentError) as caught:
        load_icd10cm(load_yaml(broken), FINDING_IDS)
    assert caught.value.line == _line_of(broken, "never_fire:") + 1
    assert "G81.91 is already listed under present.limb-weakness" in caught.value.problem
