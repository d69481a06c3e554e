"""content/ and cards/: loaded, cross-checked, every rule and code sourced; broken files named with their line."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from cds_service.cli import main as cli_main
from cds_service.knowledge.load import load_knowledge
from cds_service.knowledge.model import Knowledge
from cds_service.settings import REPO_ROOT
from cds_service.yaml_source import ContentError

# The copyrighted source is not in this repository; it sits in the team's shared folder beside the clone.
SOURCE_GUIDE = REPO_ROOT.parent / "shared" / "seed" / "weakness-care-guide.txt"


def test_every_rule_states_where_it_comes_from(knowledge: Knowledge) -> None:
    section_ids = {s["id"] for s in knowledge.guide.sections}
    for rule in knowledge.rules:
        assert rule.provenance["guide_section"] in section_ids, rule.id
        assert rule.provenance["statement"].strip(), rule.id
        if rule.provenance["beyond_guide"]:
            assert rule.provenance["source"].strip(), rule.id


def test_every_code_carries_its_source(knowledge: Knowledge) -> None:
    codes = [c for f in knowledge.findings.values() for c in f.codes] + [s.code for s in knowledge.scores.values()]
    assert codes and all(code.source.strip() for code in codes)


def test_every_finding_is_reachable_by_some_rule(knowledge: Knowledge) -> None:
    used = {finding for rule in knowledge.rules for finding in rule.findings}
    assert set(knowledge.findings) <= used


def test_the_phq9_item9_rule_is_marked_beyond_the_guide(knowledge: Knowledge) -> None:
    rules = [r for r in knowledge.rules if "self-harm-thoughts" in r.findings]
    assert rules and all(r.provenance["beyond_guide"] and r.tier == "urgent" for r in rules)


def _shingles(text: str, size: int = 7) -> set[tuple[str, ...]]:
    words = re.findall(r"[a-z']+", text.lower())
    return {tuple(words[i : i + size]) for i in range(len(words) - size + 1)}


def test_our_guide_page_copies_no_sentence_of_the_copyrighted_source(knowledge: Knowledge) -> None:
    if not SOURCE_GUIDE.exists():
        pytest.skip("source guide not available")
    ours = " ".join([knowledge.guide.summary] + [s["body"] for s in knowledge.guide.sections])
    shared = _shingles(ours) & _shingles(SOURCE_GUIDE.read_text())
    assert not shared, f"seven-word runs copied from the source: {sorted(shared)[:5]}"


@pytest.fixture
def content_copy(tmp_path: Path) -> tuple[Path, Path]:
    content, cards = tmp_path / "content", tmp_path / "cards"
    shutil.copytree(REPO_ROOT / "content", content)
    shutil.copytree(REPO_ROOT / "cards", cards)
    return content, cards


def _break(path: Path, old: str, new: str) -> int:
    text = path.read_text()
    assert old in text, old
    line = text[: text.index(old)].count("\n") + 1
    path.write_text(text.replace(old, new, 1))
    return line


@pytest.mark.parametrize(
    ("file", "old", "new", "problem"),
    [
        ("content/weakness/rules.yaml", "tier: emergency", "tier: emergncy", "unknown tier"),
        ("content/weakness/rules.yaml", "window: 24h", "window: 24 hours", "must be like"),
        ("content/weakness/findings.yaml", "guide_section: emergency", "guide_section: nowhere", "no guide section"),
        ("cards/emergency.yaml", "indicator: critical", "indicator: urgent", "Must be one of"),
        ("cards/emergency.yaml", "detail: |\n", "detail: |\n  <b>bold</b>\n", "raw HTML is not allowed"),
    ],
)
def test_a_broken_content_file_is_named_with_its_line(
    content_copy: tuple[Path, Path], file: str, old: str, new: str, problem: str
) -> None:
    content, cards = content_copy
    path = content.parent / file
    line = _break(path, old, new)
    with pytest.raises(ContentError) as error:
        load_knowledge(content, cards)
    assert error.value.file == path
    assert error.value.line == line
    assert problem in error.value.problem


def test_invalid_yaml_is_reported_with_its_line(content_copy: tuple[Path, Path]) -> None:
    content, cards = content_copy
    path = content / "weakness" / "rules.yaml"
    path.write_text(path.read_text() + "\n  - broken: [unclosed\n")
    with pytest.raises(ContentError) as error:
        load_knowledge(content, cards)
    assert error.value.file == path and "not valid YAML" in error.value.problem and error.value.line


def test_check_content_is_clean(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main(["check-content"]) == 0
    assert "content OK" in capsys.readouterr().out


def test_check_content_names_file_and_line_of_a_problem(
    content_copy: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    content, cards = content_copy
    line = _break(content / "weakness" / "rules.yaml", "tier: emergency", "tier: emergncy")
    monkeypatch.setenv("CDS_CONTENT_DIR", str(content))
    monkeypatch.setenv("CDS_CARDS_DIR", str(cards))
    assert cli_main(["check-content"]) == 2
    assert f"rules.yaml:{line}:" in capsys.readouterr().err


def test_serve_refuses_to_start_with_broken_content(content_copy: tuple[Path, Path], tmp_path: Path) -> None:
    content, cards = content_copy
    line = _break(content / "weakness" / "findings.yaml", "guide_section: emergency", "guide_section: nowhere")
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("CDS_")},
        "CDS_AUTH": "off",
        "CDS_CONTENT_DIR": str(content),
        "CDS_CARDS_DIR": str(cards),
        "CDS_DATABASE_URL": f"sqlite:///{tmp_path}/cds.db",
    }
    done = subprocess.run(
        [sys.executable, "-m", "cds_service", "serve", "--port", "1"],
        env=env,
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert f"findings.yaml:{line}:" in done.stderr and "no guide section 'nowhere'" in done.stderr


def test_check_content_needs_no_server_auth_settings() -> None:
    """Commands that only read content run in jwt mode without an issuers file (only `serve` needs one)."""
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("CDS_")}, "CDS_AUTH": "jwt"}
    done = subprocess.run(
        [sys.executable, "-m", "cds_service", "check-content"],
        env=env,
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "content OK" in done.stdout
