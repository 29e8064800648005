"""Entry previews in a real Chromium: on our own pages (hover after a dwell, the card's
content, staying open inside the card, closing after leaving, Escape, keyboard focus), and
<gl-term> on another origin's page whose CSP allows only the glossary's origin and nothing
inline (loaded with its SRI hash; no console error, no CSP violation; dark hosts get dark)."""

import base64
import hashlib
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from playwright.sync_api import expect

from app.routes.embed_term import GL_TERM_FILE
from tests.browser.hosts import another_origin

pytestmark = pytest.mark.browser

CARD = ".gl-preview"


def collect_errors(page: Any) -> list[str]:
    """Console errors (CSP violations are reported there) and uncaught exceptions."""
    errors: list[str] = []
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    return errors


def term_json(live_server: str, slug: str) -> dict[str, Any]:
    body: dict[str, Any] = httpx.get(f"{live_server}/api/terms/{slug}").json()
    return body


def test_hovering_a_related_term_previews_it(
    new_page: Callable[..., Any], live_server: str
) -> None:
    # A page that links to residual-connection, the entry with an illustration.
    related = term_json(live_server, "residual-connection")["related"][0]["slug"]
    target = term_json(live_server, "residual-connection")
    page = new_page()
    errors = collect_errors(page)
    asked: list[float] = []
    page.on("request", lambda r: asked.append(time.monotonic()) if "/summary" in r.url else None)
    page.goto(f"/terms/{related}")
    link = page.locator('.related-list a[href="/terms/residual-connection"]')
    card = page.locator(CARD)
    # Lower bounds from a moment before the hover: they hold however busy the machine is.
    before = time.monotonic()
    link.hover()
    expect(card).to_be_visible()
    assert time.monotonic() - before >= 0.4  # shown at about 500 ms, never before
    assert asked and asked[0] - before >= 0.1  # fetched after about 150 ms of dwell
    expect(card).to_have_attribute("role", "tooltip")
    expect(card.locator(".gl-preview__title")).to_have_text(target["title"])
    expect(card.locator(".gl-preview__extract")).to_have_text(target["summary"])
    expect(card.locator(".gl-preview__synonyms")).to_contain_text(target["synonyms"][0])
    expect(card.locator("img.gl-preview__thumb")).to_have_attribute(
        "src", live_server + target["illustration"]["url"]
    )
    expect(link).to_have_attribute("aria-describedby", card.get_attribute("id") or "")

    # Into the card: it stays open (longer than the close delay).
    box = card.bounding_box()
    assert box is not None
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2, steps=8)
    page.wait_for_timeout(700)
    expect(card).to_be_visible()
    # Away from both: it closes, and the link is no longer described by it.
    page.mouse.move(5, 5)
    expect(card).to_be_hidden()
    expect(link).not_to_have_attribute("aria-describedby", card.get_attribute("id") or "")

    # Scrolled away under a still pointer: no pointerout comes, yet the card closes.
    link.hover()
    expect(card).to_be_visible()
    page.evaluate("window.scrollBy(0, 4000)")
    expect(card).to_be_hidden()
    assert errors == []


def test_keyboard_focus_opens_and_escape_closes(
    new_page: Callable[..., Any], live_server: str
) -> None:
    related = term_json(live_server, "residual-connection")["related"]
    page = new_page()
    errors = collect_errors(page)
    page.goto("/terms/residual-connection")
    links = page.locator(".related-list a")
    card = page.locator(CARD)
    links.nth(0).focus()
    expect(card.locator(".gl-preview__title")).to_have_text(related[0]["title"])
    page.keyboard.press("Escape")
    expect(card).to_be_hidden()
    expect(links.nth(0)).to_be_focused()  # focus stays where the reader was
    page.keyboard.press("Tab")  # the next related term, by keyboard
    expect(links.nth(1)).to_be_focused()
    expect(card).to_be_visible()
    expect(card.locator(".gl-preview__title")).to_have_text(related[1]["title"])
    expect(card.locator(".gl-preview__extract")).to_have_text(related[1]["summary"])
    assert errors == []


def test_on_a_phone_the_first_tap_previews_and_the_second_opens(
    new_page: Callable[..., Any], live_server: str
) -> None:
    related = term_json(live_server, "residual-connection")["related"][0]
    width, height = 360, 640
    page = new_page(viewport={"width": width, "height": height}, has_touch=True, is_mobile=True)
    errors = collect_errors(page)
    page.goto("/terms/residual-connection")
    link = page.locator(".related-list a").first
    card = page.locator(CARD)
    link.tap()
    expect(card.locator(".gl-preview__title")).to_have_text(related["title"])
    assert page.url == f"{live_server}/terms/residual-connection"  # the tap did not navigate
    box = card.bounding_box()
    assert box is not None
    assert 0 <= box["x"] and box["x"] + box["width"] <= width
    assert 0 <= box["y"] and box["y"] + box["height"] <= height
    expect(card.locator(".gl-preview__open")).to_have_attribute(
        "href", live_server + related["url"]
    )
    link.tap()  # the second tap on the same link follows it
    page.wait_for_url(live_server + related["url"])
    assert errors == []


def sri(data: bytes) -> str:
    return "sha384-" + base64.b64encode(hashlib.sha384(data).digest()).decode()


@pytest.fixture
def host_page(live_server: str) -> Iterator[str]:
    """Another origin (another loopback port) serving a page that uses <gl-term>, under a
    CSP that allows only the glossary's origin for scripts, fetches and images."""
    policy = (
        f"default-src 'none'; script-src {live_server}; connect-src {live_server}; "
        f"img-src {live_server}"
    )
    html = (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'><title>A blog</title>"
        f"<script type='module' src='{live_server}/embed/gl-term.js'"
        f" integrity='{sri(GL_TERM_FILE.read_bytes())}' crossorigin='anonymous'></script>"
        "</head><body><p>Deep nets train thanks to "
        "<gl-term slug='residual-connection'>skip connections</gl-term>, or "
        # The form that is a link without JavaScript too.
        f"<gl-term slug='attention'><a href='{live_server}/terms/attention'>attention</a>"
        "</gl-term>."
        "</p></body></html>"
    )

    with another_origin({"/": html}, {"content-security-policy": policy}) as url:
        yield url + "/"


@pytest.mark.parametrize(
    ("scheme", "background"), [("light", "rgb(255, 255, 255)"), ("dark", "rgb(24, 28, 33)")]
)
def test_gl_term_on_another_origin_under_a_strict_csp(
    new_page: Callable[..., Any], live_server: str, host_page: str, scheme: str, background: str
) -> None:
    target = term_json(live_server, "residual-connection")
    page = new_page(color_scheme=scheme)
    errors = collect_errors(page)
    page.goto(host_page)
    term = page.locator("gl-term").first
    link = term.locator("a")  # in its shadow root (CSS locators pierce open shadow roots)
    expect(link).to_have_attribute("href", f"{live_server}/terms/residual-connection")
    expect(link).to_have_accessible_name("skip connections")  # the host's text, slotted
    card = term.locator(CARD)
    before = time.monotonic()
    link.hover()
    expect(card).to_be_visible()
    assert time.monotonic() - before >= 0.4  # after the dwell, as on our pages
    expect(card.locator(".gl-preview__title")).to_have_text(target["title"])
    expect(card.locator(".gl-preview__extract")).to_have_text(target["summary"])
    expect(card.locator("img")).to_have_attribute(
        "src", live_server + target["illustration"]["url"]
    )
    expect(card).to_have_css("background-color", background)  # the host's colour scheme
    page.mouse.move(1, 1)
    expect(card).to_be_hidden()
    page.keyboard.press("Tab")  # keyboard focus opens it too, Escape closes it
    expect(link).to_be_focused()
    expect(card).to_be_visible()
    page.keyboard.press("Escape")
    expect(card).to_be_hidden()
    # The author's own link gave way to the element's: one link, to the same entry.
    linked = page.locator("gl-term").nth(1).locator("a")
    expect(linked).to_have_count(1)
    expect(linked).to_have_attribute("href", f"{live_server}/terms/attention")
    expect(linked).to_have_accessible_name("attention")
    assert errors == []
