"""Real Chromium (Debian's, driven by Playwright) through what people do, on a desktop in light
mode and on a phone in dark mode: search with the header's autocomplete -> the entry -> run
its demo -> charts drawn -> a related term -> back; the A-Z index, its letter strip and
category filter, a category page; a 404 and the way out of it; the demo's controls, table and
permalink. Screenshots of every step go to test-output/ (CI keeps them as artifacts).

Uses the fixtures of tests/browser/conftest.py: `new_page` (a page in its own context, closed
at teardown) on `live_server` (real uvicorn, real corpus)."""

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import PATIENCE_MS

pytestmark = pytest.mark.browser

# The demo's charts that every gradient-flow experiment draws, and its per-layer table.
CHARTS = ("#demo-chart-weight_gradients", "#demo-chart-loss")
LAYER_TABLE = 'table.data-table[data-table="weight_gradients"]'
# (color scheme, viewport): a desktop in light mode, a phone in dark mode
SCREENS = [("light", {"width": 1280, "height": 900}), ("dark", {"width": 390, "height": 844})]
IDS = ["light-desktop", "dark-phone"]


@pytest.fixture(params=SCREENS, ids=IDS)
def screen(request: pytest.FixtureRequest, new_page: Callable[..., Any]) -> tuple[str, Any]:
    """(name, page) in a fresh context with the screen's size and color scheme."""
    scheme, viewport = request.param
    page = new_page(
        viewport=viewport,
        color_scheme=scheme,
        is_mobile=viewport["width"] < 500,
        has_touch=viewport["width"] < 500,
    )
    return f"{scheme}-{viewport['width']}", page


def watch_errors(page: Any) -> list[str]:
    """Script errors and CSP violations (a blocked inline script or style shows up here)."""
    errors: list[str] = []
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    return errors


def set_range(page: Any, selector: str, value: str) -> None:
    """Move a range input with the keyboard, as a person would (no script injection)."""
    slider = page.locator(selector)
    slider.focus()
    target = int(value)
    for _ in range(300):
        current = int(slider.input_value())
        if current == target:
            return
        slider.press("ArrowRight" if current < target else "ArrowLeft")
    raise AssertionError(f"{selector} did not reach {value}")


def shot(page: Any, output_dir: Path, name: str) -> None:
    page.screenshot(path=str(output_dir / f"{name}.png"), full_page=True)


def wait_for_chart(page: Any, canvas: str) -> None:
    """Until the canvas has a few hundred painted pixels (Chart.js loads on demand)."""
    page.wait_for_function(
        """(selector) => { const c = document.querySelector(selector);
        if (!c || !c.width) return false;
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        let n = 0; for (let i = 3; i < d.length; i += 4) if (d[i]) n++; return n > 500; }""",
        arg=canvas,
    )


def test_search_entry_demo_related_and_back(screen: tuple[str, Any], output_dir: Path) -> None:
    name, page = screen
    errors = watch_errors(page)
    page.goto("/")
    dark = page.evaluate("matchMedia('(prefers-color-scheme: dark)').matches")
    assert dark == name.startswith("dark")
    background = page.evaluate("getComputedStyle(document.body).backgroundColor")
    assert background == ("rgb(17, 20, 24)" if dark else "rgb(251, 251, 249)")

    # search: type in the header box, pick the suggestion with the keyboard
    box = page.locator("#header-q")
    box.click()
    box.press_sequentially("skip con", delay=30)
    listbox = page.locator("#" + (box.get_attribute("aria-controls") or "missing"))
    option = listbox.get_by_role("option", name=re.compile("Skip connection"))
    expect(option).to_be_visible()
    shot(page, output_dir, f"journey-{name}-1-autocomplete")
    box.press("ArrowDown")
    box.press("Enter")
    page.wait_for_url("**/terms/residual-connection")
    expect(page.locator("h1")).to_have_text("Residual Connection")

    # the demo: it loads when scrolled to; change the steps, run, charts and table appear
    page.locator("#demo").scroll_into_view_if_needed()
    expect(page.locator("#demo .demo__summary")).not_to_be_empty()
    set_range(page, "#demo-steps", "41" if dark else "42")  # not cached: a real run
    page.locator("#demo button[type=submit]").click()
    expect(page.locator("#demo .demo__status")).to_have_text(re.compile("^Ran in .* on cpu"))
    for canvas in CHARTS:
        wait_for_chart(page, canvas)
    steps = "41" if dark else "42"
    expect(page).to_have_url(re.compile(f"[?&]steps={steps}(&|#|$)"))  # the permalink follows
    shot(page, output_dir, f"journey-{name}-2-demo")

    # a related term, then back to the entry
    related = page.locator(".related-list a").first
    related_title = related.inner_text()
    related.click()
    expect(page.locator("h1")).to_have_text(related_title)
    shot(page, output_dir, f"journey-{name}-3-related")
    page.go_back()
    page.wait_for_url(re.compile(r"/terms/residual-connection"))
    expect(page.locator("h1")).to_have_text("Residual Connection")
    assert not errors, errors


def test_index_letters_category_and_404(screen: tuple[str, Any], output_dir: Path) -> None:
    name, page = screen
    errors = watch_errors(page)
    page.goto("/")
    page.locator(".site-nav a", has_text="A–Z").click()
    page.wait_for_url("**/terms")
    expect(page.locator("h1")).to_have_text("All terms A–Z")
    total = page.request.get("/api/terms").json()["total"]
    expect(page.locator(".letter-group .term-card")).to_have_count(total)

    # the letter strip jumps to its section
    page.locator('nav[aria-label="Jump to letter"] a', has_text=re.compile("^R$")).click()
    expect(page).to_have_url(re.compile("#letter-R$"))
    expect(page.locator("#letter-R")).to_be_in_viewport()
    shot(page, output_dir, f"index-{name}-1-letter")

    # the category filter
    category = page.request.get("/api/categories").json()["categories"][0]
    page.select_option("#category-filter", category["slug"])
    page.locator("form.filter button").click()
    page.wait_for_url(f"**/terms?category={category['slug']}")
    expect(page.locator("h1")).to_contain_text(category["title"])
    expect(page.locator(".letter-group .term-card")).to_have_count(category["term_count"])

    # a category page, from the Categories list
    page.locator(".site-nav a", has_text="Categories").click()
    page.locator(".category-card a", has_text=category["title"]).click()
    page.wait_for_url(f"**{category['url']}")
    expect(page.locator("h1")).to_have_text(category["title"])
    expect(page.locator(".term-list .term-card")).to_have_count(category["term_count"])
    shot(page, output_dir, f"index-{name}-2-category")

    # a 404 with its way out: suggestions close to the mistyped address, the search form
    response = page.goto("/terms/residual-conection")
    assert response is not None and response.status == 404
    expect(page.locator("h1")).to_have_text("Page not found")
    suggestion = page.locator("main .term-list a", has_text="Residual Connection")
    expect(suggestion).to_be_visible()
    shot(page, output_dir, f"404-{name}")
    suggestion.click()
    page.wait_for_url("**/terms/residual-connection")
    errors = [e for e in errors if "404" not in e]  # the 404 itself is logged by Chromium
    assert not errors, errors


def test_demo_run_charts_table_and_depth(new_page: Callable[..., Any], output_dir: Path) -> None:
    page = new_page(viewport={"width": 1280, "height": 1000})
    errors = watch_errors(page)
    # an entry whose experiment has depth and steps controls and a per-layer table
    page.goto("/terms/residual-connection#demo")
    expect(page.locator("#demo")).to_have_attribute("data-preset", "residual-vs-plain")
    expect(page.locator("#demo .demo__summary")).not_to_be_empty()
    set_range(page, "#demo-steps", "30")
    page.click("#demo button[type=submit]")
    expect(page.locator("#demo .demo__status")).to_have_text(re.compile("^Ran in"))
    for canvas in CHARTS:
        wait_for_chart(page, canvas)
    page.click("#demo details summary")
    rows = page.locator(f"#demo {LAYER_TABLE} tbody tr")
    depth = int(page.locator("#demo-depth").input_value())
    expect(rows).to_have_count(depth)  # one row per layer
    set_range(page, "#demo-depth", "12")
    expect(page).to_have_url(re.compile(r"[?&]depth=12(&|#|$)"))
    page.click("#demo button[type=submit]")
    expect(rows).to_have_count(12)
    shot(page, output_dir, "demo-depth-12")
    permalink = page.url
    fresh = page.context.new_page()
    fresh.set_default_timeout(PATIENCE_MS)
    fresh.goto(permalink)
    expect(fresh.locator("#demo .demo__summary")).not_to_be_empty()
    assert fresh.locator("#demo-depth").input_value() == "12"
    assert not errors, errors


def test_claims_are_marked_from_the_run_and_the_picker_switches_experiments(
    new_page: Callable[..., Any], output_dir: Path
) -> None:
    """The panel opens on the page's own experiment, marks each claim as the run's JSON says,
    switches to another experiment (kept in the permalink) and back to residual-vs-plain."""
    page = new_page(viewport={"width": 1280, "height": 1000})
    errors = watch_errors(page)
    page.goto("/terms/dropout")
    page.locator("#demo").scroll_into_view_if_needed()
    expect(page.locator("#demo-experiment")).to_have_value("dropout")
    marks = page.locator("#demo .claims .claim[data-holds]")
    expect(marks.first).to_be_visible()
    result = page.request.get("/api/demo?preset=dropout").json()
    assert result["claims"], result
    expect(marks).to_have_count(len(result["claims"]))
    for claim in result["claims"]:
        mark = page.locator(f'#demo .claim[data-claim="{claim["id"]}"]')
        expect(mark).to_have_attribute("data-holds", str(claim["holds"]).lower())
        label = "Reproduced" if claim["holds"] else "Not reproduced"
        expect(mark.locator(".claim__mark")).to_contain_text(label)
    for chart in result["charts"]:
        wait_for_chart(page, f"#demo-chart-{chart['id']}")
    shot(page, output_dir, "demo-dropout-claims")

    page.select_option("#demo-experiment", "learning-rate-sweep")
    expect(page.locator("#demo-heading")).to_contain_text("learning-rate sweep")
    expect(page).to_have_url(re.compile(r"[?&]demo=learning-rate-sweep(&|#|$)"))
    expect(page.locator("#demo .claim[data-holds]").first).to_be_visible()
    wait_for_chart(page, "#demo-chart-sweep")
    permalink = page.url
    fresh = page.context.new_page()
    fresh.set_default_timeout(PATIENCE_MS)
    fresh.goto(permalink)
    fresh.locator("#demo").scroll_into_view_if_needed()
    expect(fresh.locator("#demo-experiment")).to_have_value("learning-rate-sweep")

    page.select_option("#demo-experiment", "residual-vs-plain")
    expect(page.locator("#demo-heading")).to_contain_text("Residual connections")
    expect(page.locator('#demo .claim[data-claim="plain-gradient-vanishes"]')).to_have_attribute(
        "data-holds", "true"
    )
    assert not errors, errors
