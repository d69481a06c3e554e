"""What CDS Hooks 2.0.1 asks of every card, checked field by field (not through our own schema, so a gap in the
schema cannot hide a gap in the cards)."""

from __future__ import annotations

import uuid
from typing import Any

from markdown_it import MarkdownIt

_markdown = MarkdownIt("commonmark", {"html": True}).enable("table")


def empty_values(value: Any, path: str = "") -> list[str]:
    """Paths of null, "", [] or {} (CDS Hooks: "no empty values"), written here so the check is not our own."""
    if value is None or value in ("", [], {}):
        return [path or "(root)"]
    if isinstance(value, dict):
        return [p for key, item in value.items() for p in empty_values(item, f"{path}.{key}" if path else key)]
    if isinstance(value, list):
        return [p for index, item in enumerate(value) for p in empty_values(item, f"{path}[{index}]")]
    return []


def _non_empty_string(value: Any) -> bool:
    return isinstance(value, str) and value.strip() != ""


def _coding(coding: dict[str, Any], *, display_required: bool = False) -> None:
    assert _non_empty_string(coding.get("system")) and _non_empty_string(coding.get("code")), coding
    if display_required:
        assert _non_empty_string(coding.get("display")), coding


def _has_raw_html(markdown: str) -> bool:
    return any(
        token.type in ("html_block", "html_inline")
        for block in _markdown.parse(markdown)
        for token in [block, *(block.children or [])]
    )


def assert_spec_cards(response: dict[str, Any]) -> None:
    assert set(response) <= {"cards", "systemActions"} and isinstance(response["cards"], list)
    assert [path for path in empty_values(response) if path != "cards"] == []
    uuids = [card["uuid"] for card in response["cards"]]
    assert len(uuids) == len(set(uuids)), "card uuids must be unique"
    for card in response["cards"]:
        assert_spec_card(card)


def assert_spec_card(card: dict[str, Any]) -> None:
    uuid.UUID(card["uuid"])
    assert _non_empty_string(card["summary"]) and len(card["summary"]) < 140, card["summary"]
    assert card["indicator"] in ("info", "warning", "critical")
    assert _non_empty_string(card["detail"]) and not _has_raw_html(card["detail"]), card["detail"]
    source = card["source"]
    assert _non_empty_string(source["label"])
    assert source.get("url", "https://").startswith(("http://", "https://"))
    if "topic" in source:
        _coding(source["topic"])
    for link in card.get("links", []):
        assert _non_empty_string(link["label"]) and link["url"].startswith(("http://", "https://"))
        assert link["type"] in ("absolute", "smart")
        if link["type"] == "absolute":
            assert "appContext" not in link
    for reason in card.get("overrideReasons", []):
        _coding(reason, display_required=True)
    suggestions = card.get("suggestions", [])
    if suggestions:
        assert card["selectionBehavior"] in ("at-most-one", "any")
    for suggestion in suggestions:
        assert _non_empty_string(suggestion["label"])
        uuid.UUID(suggestion["uuid"])
        for action in suggestion.get("actions", []):
            assert action["type"] in ("create", "update", "delete")
            assert _non_empty_string(action["description"])
            if action["type"] == "create":
                assert isinstance(action["resource"], dict) and action["resource"].get("resourceType")
