"""Experiment cards in a real Chromium, framed by a page of another origin (a second loopback
port served by http.server in this test): the card runs its experiment inside the frame with
its locked control disabled, while a term page refuses to be framed. And on a term page, the
panel's "Download as script" link follows its controls.

Uses `new_page` on `live_server` (tests/browser/conftest.py)."""

import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from playwright.sync_api import expect

from app.demo.catalog import EXPERIMENTS
from tests.browser.hosts import another_origin
from tests.browser.test_accessibility import axe_violations
from tests.browser.test_journey import set_range, shot, watch_errors

pytestmark = pytest.mark.browser

CARD = "/embed/demo/residual-vs-plain?depth=8&lock=depth"
# What the card's run checks first: shown, and marked, once the run is done.
FIRST_CLAIM = EXPERIMENTS["residual-vs-plain"].claims[0]


@pytest.fixture
def host(live_server: str) -> Iterator[str]:
    """Base URL of another origin whose pages frame the glossary: /card (an experiment card)
    and /term (a term page, which must refuse)."""
    pages = {
        "/card": f'<iframe id="frame" src="{live_server}{CARD}" width="640" height="480"></iframe>',
        "/term": f'<iframe id="frame" src="{live_server}/terms/residual-connection"></iframe>',
    }

    head = '<!doctype html><title>A course page</title><link rel="icon" href="data:,">'
    documents = {path: f"{head}<h1>Course</h1>{body}" for path, body in pages.items()}
    with another_origin(documents) as url:
        yield url


def test_a_card_runs_inside_another_sites_frame_with_its_lock(
    new_page: Callable[..., Any], host: str, output_dir: Path
) -> None:
    page = new_page(viewport={"width": 800, "height": 600})
    errors = watch_errors(page)
    runs: list[dict[str, list[str]]] = []
    page.on(
        "request",
        lambda r: runs.append(parse_qs(urlsplit(r.url).query)) if "/api/demo/" in r.url else None,
    )
    page.goto(f"{host}/card")
    card = page.frame_locator("#frame")
    depth = card.locator("#demo-depth")
    expect(depth).to_be_disabled()
    expect(depth).to_have_value("8")
    expect(card.locator(".demo__control[data-locked] .demo__fixed")).to_have_count(1)
    expect(card.locator("#demo-width")).to_be_enabled()
    expect(card.locator("#demo-experiment")).to_have_count(0)  # a card has no picker
    # the run completes inside the frame: its first claim is marked from the result
    claim = card.locator(f'#demo .claim[data-claim="{FIRST_CLAIM.id}"]')
    expect(claim).to_have_attribute("data-holds", re.compile("^(true|false)$"))
    expect(claim.locator(".claim__statement")).to_have_text(FIRST_CLAIM.statement)
    expect(card.locator("#demo .demo__status")).to_have_text(re.compile("^(Ran in|Cached)"))
    # At the locked depth 8 the effect does not appear, and Reset (which keeps the lock)
    # is not offered as the way to see it.
    expect(claim).to_have_attribute("data-holds", "false")
    expect(card.locator("#demo .claim__note")).to_contain_text("fixed some settings")
    expect(card.locator("#demo .claim__note")).not_to_contain_text("Reset")
    credit = card.locator(".embed__credit a")
    expect(credit).to_contain_text("Glossary Lab: Residual Connection")
    expect(credit).to_have_attribute("target", "_blank")
    shot(page, output_dir, "embed-card-in-frame")

    # An unlocked control is sent as set; the locked one keeps the card's value, even when
    # the control is tampered with.
    set_range(card, "#demo-width", "32")
    depth.evaluate("input => { input.disabled = false; input.value = '20'; }")
    card.locator("#demo button[type=submit]").click()
    expect(card.locator("#demo .demo__status")).to_have_text(re.compile("^(Ran in|Cached)"))
    asked = [q for q in runs if q.get("preset") == ["residual-vs-plain"]]
    assert [q.get("width") for q in asked] == [None, ["32"]], asked  # the first: the default
    assert all(q.get("depth") == ["8"] for q in asked), asked
    assert not errors, errors


def test_a_term_page_refuses_to_be_framed(new_page: Callable[..., Any], host: str) -> None:
    page = new_page()
    with page.expect_console_message(lambda m: "frame-ancestors" in m.text) as refused:
        page.goto(f"{host}/term")
    assert "'none'" in refused.value.text
    expect(page.locator("h1")).to_have_text("Course")  # the host itself is fine
    # Chromium puts its own error page in the frame instead: none of the entry shows
    framed = page.frame_locator("#frame")
    expect(framed.locator("body")).not_to_contain_text("Residual Connection")
    expect(framed.locator("#term-title, #demo")).to_have_count(0)


@pytest.mark.parametrize(
    ("scheme", "width", "height"), [("dark", 360, 640), ("light", 640, 480)], ids=["phone", "frame"]
)
def test_a_card_fits_a_phone_and_a_frame_light_and_dark(
    new_page: Callable[..., Any], output_dir: Path, scheme: str, width: int, height: int
) -> None:
    page = new_page(viewport={"width": width, "height": height}, color_scheme=scheme)
    errors = watch_errors(page)
    page.goto(CARD)
    expect(page.locator("#demo-depth")).to_be_disabled()
    expect(page.locator("#demo .demo__status")).to_have_text(re.compile("^(Ran in|Cached)"))
    widths = page.evaluate("() => [document.documentElement.scrollWidth, window.innerWidth]")
    assert widths[0] <= widths[1], widths  # nothing wider than the screen
    background = page.evaluate("() => getComputedStyle(document.body).backgroundColor")
    assert (background == "rgb(255, 255, 255)") == (scheme == "light"), background
    assert not axe_violations(page), axe_violations(page)
    shot(page, output_dir, f"embed-card-{scheme}-{width}")
    assert not errors, errors


def test_download_as_script_follows_the_controls(browser_page: Any) -> None:
    page = browser_page
    errors = watch_errors(page)
    page.goto("/terms/residual-connection#demo")
    script = page.locator("#demo a.demo__script")
    expect(script).to_have_text("Download as script")
    expect(script).to_have_attribute("download", "residual-vs-plain.py")
    expect(script).to_have_attribute("href", "/api/demo/script?preset=residual-vs-plain")
    set_range(page, "#demo-depth", "12")
    page.select_option("#demo-task", "spirals")
    expect(script).to_have_attribute(
        "href", "/api/demo/script?preset=residual-vs-plain&depth=12&task=spirals"
    )
    # an experiment on the server's language model is a script too (it trains the model)
    language_model = next(e for e in EXPERIMENTS.values() if e.needs_model)
    page.select_option("#demo-experiment", language_model.name)
    expect(page.locator("#demo-heading")).to_contain_text(language_model.title)
    expect(page.locator("#demo a.demo__script")).to_have_attribute(
        "href", f"/api/demo/script?preset={language_model.name}"
    )
    assert not errors, errors
