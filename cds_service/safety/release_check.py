"""The content release: the clinical content must be what was reviewed, and every release must be in the changelog.

content/<guide>/release.yaml names the content version, who reviewed it and the digest of the content reviewed.
The digest is over the parsed data of every content and card file (comments and layout do not change it; any change
of a value does), so an edit of clinical meaning that was not released fails `check-content` until a new version,
a content/CHANGELOG.md entry with its reviewer, and the new digest are written.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import yaml

from cds_service.knowledge.model import Release

CHANGELOG = "CHANGELOG.md"
RELEASE_FILE = "release.yaml"
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_HEADING = re.compile(r"^## +(\S+)\s*$", re.MULTILINE)
_REVIEWED = re.compile(r"^Reviewed by: *(.+?)\s*$", re.MULTILINE)


def clinical_files(content_dir: Path, cards_dir: Path, guide_id: str) -> list[Path]:
    """The files whose data carries clinical meaning: recognition, the guide's content (not its release file or
    example patients) and the card wording."""
    guide = [p for p in sorted((content_dir / guide_id).glob("*.yaml")) if p.name != RELEASE_FILE]
    return [content_dir / "recognition.yaml", *guide, *sorted(cards_dir.glob("*.yaml"))]


def content_digest(content_dir: Path, cards_dir: Path, guide_id: str) -> str:
    digest = hashlib.sha256()
    for path in clinical_files(content_dir, cards_dir, guide_id):
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=_Loader)
        name = path.relative_to(path.parent.parent).as_posix()
        digest.update(json.dumps([name, data], sort_keys=True, default=str).encode())
    return digest.hexdigest()


def changelog_entry(text: str, version: str) -> str | None:
    """The text under `## <version>` up to the next heading of that level, or None."""
    headings = list(_HEADING.finditer(text))
    for index, heading in enumerate(headings):
        if heading.group(1) == version:
            end = headings[index + 1].start() if index + 1 < len(headings) else len(text)
            return text[heading.end() : end]
    return None


def release_problems(release: Release, content_dir: Path, cards_dir: Path, guide_id: str) -> list[str]:
    release_file = f"{content_dir / guide_id / RELEASE_FILE}"
    changelog = content_dir / CHANGELOG
    if not changelog.is_file():
        return [f"{changelog}: missing (every content version needs an entry there)"]
    entry = changelog_entry(changelog.read_text(encoding="utf-8"), release.content_version)
    problems = []
    if entry is None:
        problems.append(
            f"{changelog}: no `## {release.content_version}` entry for the content version of {release_file}"
        )
    else:
        reviewed = _REVIEWED.search(entry)
        if reviewed is None or reviewed.group(1) != release.reviewed_by:
            problems.append(
                f"{changelog}: the {release.content_version} entry needs the line "
                f"`Reviewed by: {release.reviewed_by}` (the reviewed_by of {release_file})"
            )
        if not re.search(r"^- \S", entry, re.MULTILINE):
            problems.append(f"{changelog}: the {release.content_version} entry lists no change (`- ...` lines)")
    digest = content_digest(content_dir, cards_dir, guide_id)
    if digest != release.content_digest:
        problems.append(
            f"{release_file}: the clinical content changed since {release.content_version} was reviewed: give it a "
            f"new content_version, its reviewer and a {CHANGELOG} entry, and set content_digest: {digest}"
        )
    return problems
