"""The header search box in a real Chromium: autocomplete with a misspelled synonym, chosen
with the keyboard, lands on the entry; the combobox's ARIA states; the form without
JavaScript."""

import re
from collections.abc import Callable
from typing import Any

import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.browser


def collect_errors(page: Any) -> list[str]:
    errors: list[str] = []
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    return errors


def test_misspelled_synonym_picked_with_the_keyboard_opens_the_entry(
    browser_page: Any, live_server: str
) -> None:
    page = browser_page
    errors = collect_errors(page)
    page.goto("/")
    box = page.locator("#header-q")
    expect(box).to_have_attribute("role", "combobox")
    expect(box).to_have_attribute("aria-expanded", "false")
    box.click()
    box.press_sequentially("skip conection", delay=25)  # "connection" with a letter missing
    listbox = page.locator("#" + box.get_attribute("aria-controls"))
    option = listbox.get_by_role("option", name=re.compile(r"Skip connection"))
    expect(option).to_be_visible()
    expect(option).to_contain_text("Residual Connection")
    expect(box).to_have_attribute("aria-expanded", "true")
    box.press("ArrowDown")
    expect(option).to_have_attribute("aria-selected", "true")
    expect(box).to_have_attribute("aria-activedescendant", option.get_attribute("id") or "")
    assert errors == []  # no CSP violation, no script error
    box.press("Enter")
    page.wait_for_url(f"{live_server}/terms/residual-connection")
    expect(page.locator("h1")).to_have_text("Residual Connection")


def test_arrow_keys_wrap_and_escape_closes(browser_page: Any) -> None:
    page = browser_page
    errors = collect_errors(page)
    page.goto("/categories")
    box = page.locator("#header-q")
    box.click()
    box.press_sequentially("re", delay=25)
    listbox = page.locator("#" + box.get_attribute("aria-controls"))
    options = listbox.get_by_role("option")
    expect(options.first).to_be_visible()
    count = options.count()
    assert count >= 3
    box.press("ArrowUp")  # from the box, up goes to the last suggestion
    expect(options.nth(count - 1)).to_have_attribute("aria-selected", "true")
    box.press("ArrowDown")  # and wraps to the first
    expect(options.first).to_have_attribute("aria-selected", "true")
    box.press("Escape")
    expect(listbox).to_be_hidden()
    expect(box).to_have_attribute("aria-expanded", "false")
    expect(box).not_to_have_attribute("aria-activedescendant", re.compile(".+"))
    box.press("Enter")  # no suggestion chosen: the form searches as usual
    page.wait_for_url(re.compile(r"/search\?q=re&go=1$"))
    expect(page.locator(".search-hits li").first).to_be_visible()
    assert errors == []


def test_search_page_box_also_autocompletes(browser_page: Any, live_server: str) -> None:
    page = browser_page
    page.goto("/search?q=attention")
    box = page.locator("#search-q")
    box.fill("")
    box.press_sequentially("atenti", delay=25)  # still typing, and misspelled
    option = page.locator("#" + box.get_attribute("aria-controls")).get_by_role(
        "option", name=re.compile(r"^Attention")
    )
    expect(option).to_be_visible()
    option.click()
    page.wait_for_url(f"{live_server}/terms/attention")


def test_header_form_works_without_javascript(
    new_page: Callable[..., Any], live_server: str
) -> None:
    page = new_page(java_script_enabled=False)
    page.goto("/terms")
    box = page.locator("#header-q")
    expect(box).not_to_have_attribute("role", "combobox")
    box.fill("Skip connection")
    box.press("Enter")  # go=1: an exact synonym goes straight to its entry
    page.wait_for_url(f"{live_server}/terms/residual-connection")
    page.locator("#header-q").fill("residul conection")
    page.locator("#header-q").press("Enter")
    page.wait_for_url(re.compile(r"/search\?q=residul"))
    expect(page.locator(".search-hits li a").first).to_have_text("Residual Connection")
