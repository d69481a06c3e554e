"""`cds-service check-content` (content, cards, release, rule traceability) and `cds-service safety render | check`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from cds_service.hooks.response_check import ResponseCheck
from cds_service.knowledge.load import load_knowledge
from cds_service.knowledge.model import Knowledge
from cds_service.safety.release_check import release_problems
from cds_service.safety.traceability import read_scenarios, run, trace_rules, untraced
from cds_service.settings import REPO_ROOT, load_settings

DEFAULT_SCENARIOS = REPO_ROOT / "tests" / "scenarios"


def _loaded() -> tuple[Knowledge, Path, Path, str, str]:
    settings = load_settings(for_server=False)
    knowledge = load_knowledge(settings.content_dir, settings.cards_dir, settings.guide_id)
    return knowledge, settings.content_dir, settings.cards_dir, settings.guide_id, settings.base_url


def check_content(args: argparse.Namespace) -> int:
    knowledge, content_dir, cards_dir, guide_id, base_url = _loaded()
    ResponseCheck(knowledge, base_url)  # every template's fixed card fields are spec-true
    scenarios = read_scenarios(Path(args.scenarios))
    traces = trace_rules(knowledge, [run(scenario, knowledge) for scenario in scenarios])
    problems = release_problems(knowledge.release, content_dir, cards_dir, guide_id) + untraced(knowledge, traces)
    if problems:
        sys.stderr.writelines(f"cds-service: check-content: {problem}\n" for problem in problems)
        return 2
    release = knowledge.release
    sys.stdout.write(
        f"content OK: guide '{knowledge.guide.id}' {release.content_version} (reviewed by {release.reviewed_by}), "
        f"{len(knowledge.findings)} findings, {len(knowledge.scores)} scores, {len(knowledge.rules)} rules, "
        f"{len(knowledge.cards)} card templates; every rule fired by a scenario and silent in another "
        f"({len(scenarios)} scenarios)\n"
    )
    return 0


def safety_render(args: argparse.Namespace) -> int:
    from cds_service.safety.case import SafetyDocs

    docs = SafetyDocs.build(Path(args.repo), *_loaded()[:1])
    if args.action == "check":
        stale = docs.stale()
        sys.stderr.writelines(f"{path}: out of date: run `cds-service safety render`\n" for path in stale)
        return 1 if stale else 0
    for path in docs.write():
        sys.stdout.write(f"wrote {path}\n")
    return 0


def add_content_commands(commands: Any) -> None:
    """Register `check-content` and `safety` on the top-level parser's sub-commands."""
    p = commands.add_parser("check-content", help="validate content/ and cards/, the release and rule traceability")
    p.add_argument(
        "--scenarios", default=str(DEFAULT_SCENARIOS), help=f"scenarios folder (default {DEFAULT_SCENARIOS})"
    )
    p.set_defaults(run=check_content)
    p = commands.add_parser("safety", help="the hazard log and the safety case report (docs/safety/)")
    p.add_argument("action", choices=["render", "check"], help="render: regenerate both; check: exit 1 if stale")
    p.add_argument("--repo", default=str(REPO_ROOT), help=f"the repository (default {REPO_ROOT})")
    p.set_defaults(run=safety_render)
