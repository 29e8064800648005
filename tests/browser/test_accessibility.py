"""Accessibility in a real Chromium: axe-core (via axe-playwright-python) reports zero
violations of wcag2a, wcag2aa and best-practice on every page type, in light and in dark mode,
including the states scripts create (the demo with its table open, the autocomplete list);
and the search and the demo are used from start to finish with the keyboard alone."""

import re
from collections.abc import Callable
from typing import Any

import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.browser

AXE_OPTIONS = {
    "runOnly": {"type": "tag", "values": ["wcag2a", "wcag2aa", "best-practice"]},
    "resultTypes": ["violations"],
}
# The demo's table of per-layer numbers (one row per layer).
LAYER_TABLE = 'table.data-table[data-table="weight_gradients"]'
# Every page type, once each.
PAGES = {
    "home": "/",
    "a-z index": "/terms",
    "a-z index, one category": "/terms?category=model-architecture",
    "entry": "/terms/residual-connection",
    "categories": "/categories",
    "category": "/categories/model-architecture",
    "organizations": "/organizations",
    "organization": "/organizations/anthropic",
    "search, hits": "/search?q=normalization",
    "search, typo corrected": "/search?q=normalisation+layr",
    "search, no hits": "/search?q=zzzzqqq",
    "search, empty": "/search",
    "404": "/terms/residual-conection",
    "api docs": "/docs",
}


def axe_violations(page: Any) -> list[str]:
    from axe_playwright_python.sync_playwright import Axe

    result = Axe().run(page, options=AXE_OPTIONS)
    return [
        f"{v['id']} ({v['impact']}): {v['help']} at "
        + "; ".join(" ".join(node["target"]) for node in v["nodes"][:5])
        for v in result.response["violations"]
    ]


def settle(page: Any, name: str) -> None:
    """Bring the page to its fullest state before the scan."""
    if name == "entry":
        page.locator("#demo").scroll_into_view_if_needed()
        expect(page.locator("#demo .demo__summary")).not_to_be_empty()
        page.locator("#demo details summary").click()
        expect(page.locator(f"#demo {LAYER_TABLE}")).to_be_visible()
    elif name == "api docs":
        expect(page.locator(".opblock").first).to_be_visible()


@pytest.fixture(params=["light", "dark"])
def scheme_page(request: pytest.FixtureRequest, new_page: Callable[..., Any]) -> Any:
    return new_page(color_scheme=request.param, viewport={"width": 1280, "height": 900})


def test_axe_finds_no_violations_on_any_page_type(scheme_page: Any) -> None:
    page = scheme_page
    found: dict[str, list[str]] = {}
    for name, path in PAGES.items():
        page.goto(path)
        settle(page, name)
        found[name] = axe_violations(page)
    # the autocomplete list, open, with an option selected
    page.goto("/categories")
    page.locator("#header-q").press_sequentially("norm", delay=20)
    expect(page.locator("#header-q")).to_have_attribute("aria-expanded", "true")
    page.locator("#header-q").press("ArrowDown")
    expect(page.locator(".suggest [aria-selected=true]")).to_be_visible()
    found["autocomplete open"] = axe_violations(page)
    found = {name: violations for name, violations in found.items() if violations}
    assert not found, "\n".join(f"{name}: {v}" for name, vs in found.items() for v in vs)


def focused(page: Any) -> dict[str, Any]:
    return page.evaluate(
        """() => { const e = document.activeElement;
        return { id: e.id, tag: e.tagName.toLowerCase(), text: (e.textContent || '').trim(),
                 href: e.getAttribute('href'), visible: e.matches(':focus-visible') }; }"""
    )


def tab_until(page: Any, predicate: Any, limit: int = 200) -> dict[str, Any]:
    """Press Tab until the focused element matches; every stop must show its focus."""
    for _ in range(limit):
        page.keyboard.press("Tab")
        element = focused(page)
        assert element["tag"] == "body" or element["visible"], element
        if predicate(element):
            return element
    raise AssertionError(f"not reached with {limit} presses of Tab")


@pytest.fixture
def keyboard_page(new_page: Callable[..., Any]) -> Any:
    return new_page(viewport={"width": 1280, "height": 900})


def test_search_with_the_keyboard_alone(keyboard_page: Any) -> None:
    page = keyboard_page
    page.goto("/")
    # the first stop is the skip link, and it works
    assert tab_until(page, lambda e: True, limit=1)["text"] == "Skip to content"
    page.keyboard.press("Enter")
    assert page.evaluate("document.activeElement.id") == "main"
    # the header search box: type, choose a suggestion with the arrows, Enter
    page.goto("/")
    tab_until(page, lambda e: e["id"] == "header-q", limit=10)
    page.keyboard.type("layer norm", delay=30)
    expect(page.locator("#header-q")).to_have_attribute("aria-expanded", "true")
    page.keyboard.press("ArrowDown")
    chosen = page.locator(".suggest [aria-selected=true]").inner_text()
    page.keyboard.press("Enter")
    expect(page.locator("h1")).to_have_text(chosen.split("→")[-1].strip())
    # free text, Escape to close the list, Enter to search; Tab to a hit, Enter to open it
    tab_until(page, lambda e: e["id"] == "header-q", limit=10)
    page.keyboard.type("vanishing", delay=30)
    expect(page.locator("#header-q")).to_have_attribute("aria-expanded", "true")
    page.keyboard.press("Escape")
    expect(page.locator("#header-q")).to_have_attribute("aria-expanded", "false")
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r"/search\?q=vanishing"))
    hit = tab_until(page, lambda e: (e["href"] or "").startswith("/terms/"))
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(re.escape(hit["href"]) + "$"))


def test_demo_with_the_keyboard_alone(keyboard_page: Any) -> None:
    page = keyboard_page
    page.goto("/terms/vanishing-gradient")
    # Tab through the page into the demo (it builds itself on the way); stop on depth
    tab_until(page, lambda e: e["id"] == "demo-depth")
    expect(page.locator("#demo .demo__summary")).not_to_be_empty()
    depth = int(page.locator("#demo-depth").input_value())
    for _ in range(depth - 8):
        page.keyboard.press("ArrowLeft")
    assert page.locator("#demo-depth").input_value() == "8"
    expect(page.locator('output[for="demo-depth"]')).to_have_text("8")
    run = tab_until(page, lambda e: e["tag"] == "button" and e["text"] == "Run", limit=20)
    assert run["visible"]
    page.keyboard.press("Enter")
    expect(page.locator("#demo .demo__status")).to_have_text(re.compile("^Ran in"))
    tab_until(page, lambda e: e["tag"] == "summary", limit=20)
    page.keyboard.press("Enter")
    expect(page.locator(f"#demo {LAYER_TABLE} tbody tr")).to_have_count(8)  # a row per layer
    expect(page).to_have_url(re.compile(r"[?&]depth=8(&|#|$)"))
