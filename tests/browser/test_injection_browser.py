"""Injection, judged by a real browser rather than by parsing: hostile text in the search box,
the URL's path, the search and filter parameters and the demo's permalink parameters never
runs (no dialog, no global set by the payload) and is never even blocked by the CSP (which
would mean it reached the DOM as markup)."""

from typing import Any
from urllib.parse import quote

import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.browser

PAYLOAD = (
    '"><img src=x onerror="window.__pwned=1;alert(1)">'
    "<script>window.__pwned=2;alert(2)</script>'><svg onload=alert(3)>"
)


def test_hostile_input_never_runs_in_the_browser(chromium_browser: Any, live_server: str) -> None:
    context = chromium_browser.new_context(base_url=live_server)
    page = context.new_page()
    page.set_default_timeout(15_000)
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    refused: list[str] = []
    page.on(
        "console",
        lambda msg: (
            refused.append(msg.text)
            if "Content Security Policy" in msg.text or "Refused to" in msg.text
            else None
        ),
    )
    page.on("pageerror", lambda exc: refused.append(str(exc)))
    encoded = quote(PAYLOAD, safe="")
    for url in (
        f"/search?q={encoded}",
        f"/search?q=residual&category={encoded}",
        f"/terms?category={encoded}",
        f"/terms/{encoded}",
        f"/categories/{encoded}",
        f"/organizations/{encoded}",
        f"/{encoded}",
    ):
        page.goto(url)
        page.wait_for_load_state("load")
        assert page.evaluate("window.__pwned") is None, url
    # the demo's permalink parameters become control values, never markup
    page.goto(f"/terms/vanishing-gradient?depth={encoded}&activation={encoded}&lr={encoded}#demo")
    expect(page.locator("#demo-depth")).to_be_attached()
    expect(page.locator("#demo .demo__status")).not_to_be_empty()
    # typed into the header search box: suggestions are built with textContent
    page.goto("/")
    page.locator("#header-q").press_sequentially(PAYLOAD[:40], delay=5)
    page.wait_for_timeout(400)  # the debounce and a round trip
    page.locator("#header-q").press("Enter")
    page.wait_for_url("**/search?**")
    assert page.evaluate("window.__pwned") is None
    assert dialogs == [] and refused == [], (dialogs, refused)
    context.close()
