"""Shared browser-test fixtures: a live server over the real corpus, and Chromium pages.

`live_server` (session): base URL of a real uvicorn on 127.0.0.1 serving the real data/
corpus, loaded into a temporary database, demo warm-up off. `browser_page`: a fresh
Chromium page (own context) whose relative URLs resolve against `live_server`.
Chromium is Debian's /usr/bin/chromium driven by Playwright (never `playwright install`);
without it these tests skip, or fail when CI=true.
"""

import os
import shutil
from collections.abc import Iterator
from typing import Any

import pytest

from tests.conftest import ROOT, in_ci, make_settings
from tests.live import running_server

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def require_chromium() -> None:
    """Skip (fail under CI=true) when Debian's Chromium is not installed."""
    if not os.path.exists(CHROMIUM):
        message = f"{CHROMIUM} is missing: install it with 'apt-get install chromium'"
        if in_ci():
            pytest.fail(message)
        pytest.skip(message)


@pytest.fixture(scope="package")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Base URL (no trailing slash) of a uvicorn serving the real corpus."""
    root = tmp_path_factory.mktemp("live")
    data = root / "data"
    shutil.copytree(ROOT / "data", data, ignore=shutil.ignore_patterns("*.db*"))
    with running_server(make_settings(root, data, demo_warmup=False)) as url:
        yield url


@pytest.fixture(scope="package")
def chromium_browser() -> Iterator[Any]:
    require_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def browser_page(chromium_browser: Any, live_server: str) -> Iterator[Any]:
    """A page in its own browser context; page.goto("/terms") goes to the live server."""
    context = chromium_browser.new_context(base_url=live_server)
    page = context.new_page()
    page.set_default_timeout(15_000)
    yield page
    context.close()
