"""Injection, judged by a real browser rather than by parsing: hostile text in the search box,
the URL's path, the search and filter parameters and the demo's permalink parameters never
runs (no dialog, no global set by the payload) and is never even blocked by the CSP (which
would mean it reached the DOM as markup)."""

from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.browser

PAYLOAD = (
    '"><img src=x onerror="window.__pwned=1;alert(1)">'
    "<script>window.__pwned=2;alert(2)</script>'><svg onload=alert(3)>"
)


def test_hostile_input_never_runs_in_the_browser(browser_page: Any) -> None:
    page = browser_page
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
    typed = PAYLOAD[:40]
    with page.expect_response(
        lambda r: (
            urlsplit(r.url).path == "/api/suggest"
            and parse_qs(urlsplit(r.url).query).get("q") == [typed.strip()]
        )
    ) as answer:
        page.locator("#header-q").press_sequentially(typed, delay=5)
    if answer.value.json()[1]:  # suggestions came back: wait until they are on the page
        expect(page.locator("#header-q")).to_have_attribute("aria-expanded", "true")
    page.locator("#header-q").press("Enter")
    page.wait_for_url("**/search?**")
    assert page.evaluate("window.__pwned") is None
    assert dialogs == [] and refused == [], (dialogs, refused)
