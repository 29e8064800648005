"""Real Chromium (Debian's, driven by Playwright): home -> term -> related term, and the
live demo: Run, charts drawn, table filled, depth changed. Screenshots go to test-output/."""

import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.conftest import ROOT, in_ci, make_settings
from tests.live import running_server

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def base_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if not os.path.exists(CHROMIUM):
        message = "Chromium is missing: install it with 'apt-get install chromium'"
        if in_ci():
            pytest.fail(message)
        pytest.skip(message)
    root = tmp_path_factory.mktemp("journey")
    data = root / "data"
    shutil.copytree(ROOT / "data", data, ignore=shutil.ignore_patterns("*.db*"))
    with running_server(make_settings(root, data, demo_warmup=True)) as url:
        yield url


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def set_range(page: object, selector: str, value: str) -> None:
    """Move a range input with the keyboard, as a person would (no script injection)."""
    slider = page.locator(selector)  # type: ignore[attr-defined]
    slider.focus()
    target = int(value)
    for _ in range(300):
        current = int(slider.input_value())
        if current == target:
            return
        slider.press("ArrowRight" if current < target else "ArrowLeft")
    raise AssertionError(f"{selector} did not reach {value}")


def shot(page: object, output_dir: Path, name: str) -> None:
    page.screenshot(path=str(output_dir / f"{name}.png"), full_page=True)  # type: ignore[attr-defined]


@pytest.mark.parametrize(("scheme", "width"), [("light", 1280), ("dark", 390)])
def test_home_to_term_to_related(
    base_url: str, browser: object, output_dir: Path, scheme: str, width: int
) -> None:
    context = browser.new_context(  # type: ignore[attr-defined]
        viewport={"width": width, "height": 900}, color_scheme=scheme)
    page = context.new_page()
    errors: list[str] = []
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    page.goto(base_url + "/")
    shot(page, output_dir, f"home-{scheme}-{width}")
    page.click(".featured__card h3 a")
    page.wait_for_url("**/terms/residual-connection")
    assert page.inner_text("h1") == "Residual Connection"
    page.wait_for_selector("#demo .demo__summary:not(:empty)", timeout=30_000)
    shot(page, output_dir, f"term-{scheme}-{width}")
    related = page.locator(".related-list a").first
    related_title = related.inner_text()
    related.click()
    page.wait_for_load_state()
    assert page.inner_text("h1") == related_title
    shot(page, output_dir, f"related-{scheme}-{width}")
    assert not errors, errors
    context.close()


def test_demo_run_charts_table_and_depth(
    base_url: str, browser: object, output_dir: Path
) -> None:
    context = browser.new_context(viewport={"width": 1280, "height": 1000})  # type: ignore[attr-defined]
    page = context.new_page()
    errors: list[str] = []
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    page.goto(base_url + "/terms/resnet#demo")
    page.wait_for_selector("#demo .demo__summary:not(:empty)", timeout=30_000)
    set_range(page, "#demo-steps", "30")
    page.click("#demo button[type=submit]")
    expect(page.locator("#demo .demo__status")).to_have_text(re.compile("^Ran in"),
                                                             timeout=30_000)
    for canvas in ("#demo-chart-grad", "#demo-chart-loss"):
        drawn = page.evaluate(
            f"""() => {{ const c = document.querySelector('{canvas}');
            const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
            let n = 0; for (let i = 3; i < d.length; i += 4) if (d[i]) n++; return n; }}""")
        assert drawn > 500, canvas
    page.click("#demo details summary")
    rows = page.locator("#demo table.data-table tbody tr")
    assert rows.count() == 32 + 1  # one row per layer at the default depth, plus the final loss
    set_range(page, "#demo-depth", "12")
    assert "depth=12" in page.url
    page.click("#demo button[type=submit]")
    expect(page.locator("#demo table.data-table tbody tr")).to_have_count(13, timeout=30_000)
    shot(page, output_dir, "demo-depth-12")
    permalink = page.url
    fresh = context.new_page()
    fresh.goto(permalink)
    fresh.wait_for_selector("#demo .demo__summary:not(:empty)", timeout=30_000)
    assert fresh.locator("#demo-depth").input_value() == "12"
    assert not errors, errors
    context.close()
