"""The card viewer (/viewer) in real headless Chromium against the service as deployed: it calls the hook through
the public API, renders the cards, posts feedback, shows failures as failures, and works from the keyboard."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from playwright.sync_api import Browser, Page, expect

from tests.support.browser import chromium, screenshot_path, stored_feedback
from tests.support.service_server import ServiceServer


@pytest.fixture(scope="module")
def service() -> Iterator[ServiceServer]:
    # No CDS_PUBLIC_URL: `serve` must derive it from the address and port it binds (card links, JWT aud).
    with ServiceServer(env={"CDS_PUBLIC_URL": "", "CDS_ALLOW_CLOCK_HEADER": ""}) as server:
        yield server


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as launched:
        yield launched


@pytest.fixture
def page(browser: Browser, service: ServiceServer) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1000, "height": 1300})
    opened = context.new_page()
    opened.goto(service.base_url + "/viewer")
    yield opened
    context.close()


def _database(service: ServiceServer) -> Path:
    return Path(service.tmp.name) / "cds.db"


def _last_response(page: Page) -> dict[str, Any]:
    """The response body the viewer shows in its raw panel (after its "HTTP <status>" line)."""
    raw = page.locator("#raw-response").text_content() or ""
    return dict(json.loads(raw.split("\n", 1)[1]))


def _call_example(page: Page, example: str) -> None:
    page.select_option("#example", example)
    page.click("#call")
    expect(page.locator("#call-status")).not_to_have_text("Calling the service…")


def test_the_stroke_example_gives_a_critical_card_whose_override_is_stored(page: Page, service: ServiceServer) -> None:
    _call_example(page, "stroke")
    card = page.locator("article.card-critical")
    expect(card).to_have_count(1)
    expect(card.locator(".badge")).to_have_text("Critical")
    guide_link = card.locator("ul.links a").first
    href = guide_link.get_attribute("href") or ""
    assert href.startswith(f"{service.base_url}/guides/weakness#"), href  # the public URL is the bound address
    guide = requests.get(href, timeout=5)
    assert guide.status_code == 200 and f'id="{href.rsplit("#", 1)[1]}"' in guide.text
    card.get_by_role("button", name="Dismiss").click()
    reason = card.get_by_label("Reason")
    reason.select_option(index=1)
    chosen = reason.locator("option:checked").inner_text()
    card.get_by_role("button", name="Dismiss this card").click()
    expect(card.locator(".feedback-status")).to_have_text("Dismissed: feedback stored.")
    page.screenshot(path=screenshot_path("viewer-stroke-dismissed"), full_page=True)
    response = _last_response(page)
    uuid = response["cards"][0]["uuid"]
    rows = [row for row in stored_feedback(_database(service)) if row[0] == uuid]
    assert len(rows) == 1 and rows[0][1] == "overridden" and rows[0][4] == uuid
    offered = {r["code"]: r for r in response["cards"][0]["overrideReasons"]}
    assert rows[0][3] in offered and offered[rows[0][3]]["display"] == chosen
    assert rows[0][2] == offered[rows[0][3]]["system"]


def test_the_absent_findings_example_gives_no_critical_card(page: Page) -> None:
    _call_example(page, "negated")
    expect(page.locator("#call-status")).to_have_text("The service answered with no cards for this patient.")
    expect(page.locator("article.card")).to_have_count(0)
    expect(page.locator("#call-error")).to_be_hidden()
    page.screenshot(path=screenshot_path("viewer-negated"), full_page=True)


def test_a_412_is_shown_as_an_error_never_as_an_all_clear(page: Page) -> None:
    page.check("#source-fhir")
    page.fill("#fhir-server", "http://127.0.0.1:9/fhir")
    page.fill("#fhir-patient", "example-stroke")
    page.click("#call")
    error = page.locator("#call-error")
    expect(error).to_be_visible()
    expect(error).to_contain_text("HTTP 412")
    expect(error).to_contain_text("fhirServer is not allowed (not in CDS_ALLOWED_FHIR_SERVERS)")
    expect(page.locator("#call-status")).to_contain_text("not an all-clear")
    expect(page.locator("article.card")).to_have_count(0)
    page.locator("#raw summary").click()
    page.screenshot(path=screenshot_path("viewer-412"), full_page=True)


def _tab_to(page: Page, selector: str, limit: int = 40) -> None:
    for _ in range(limit):
        page.keyboard.press("Tab")
        if page.evaluate("(s) => document.activeElement.matches(s)", selector):
            return
    raise AssertionError(f"Tab never reached {selector}")


def test_one_card_can_be_dismissed_with_the_keyboard_only(page: Page, service: ServiceServer) -> None:
    _tab_to(page, "#example")
    page.keyboard.press("Home")  # the first example: stroke
    _tab_to(page, "#call")
    page.keyboard.press("Enter")
    card = page.locator("article.card-critical")
    expect(card).to_have_count(1)
    _tab_to(page, "article.card-critical button.dismiss")
    page.keyboard.press("Enter")
    assert page.evaluate("document.activeElement.id").startswith("reason-")  # focus moved into the reason list
    page.keyboard.press("ArrowDown")
    _tab_to(page, "article.card-critical button.send-dismiss")
    page.keyboard.press("Enter")
    expect(card.locator(".feedback-status")).to_have_text("Dismissed: feedback stored.")
    page.screenshot(path=screenshot_path("viewer-keyboard"), full_page=True)
    assert any(row[1] == "overridden" and row[3] for row in stored_feedback(_database(service)))
