"""Shared browser-test fixtures: a live server over the real corpus, and Chromium pages.

`live_server` (package): base URL of a real uvicorn on 127.0.0.1 serving the real data/
corpus, loaded into a temporary database, demo warm-up off, with one demo worker process
(alive before the first test: /healthz says "ok") that loads or trains the tiny language
model. `new_page(**options)`: a fresh Chromium page in its own context (closed at teardown)
whose relative URLs resolve against `live_server`; `browser_page` is one with the default
options.
Chromium is Debian's /usr/bin/chromium driven by Playwright (never `playwright install`);
without it these tests skip, or fail when CI=true.
"""

import os
import shutil
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from tests.conftest import PATIENCE_S, ROOT, in_ci, make_settings
from tests.live import running_server

CHROMIUM = "/usr/bin/chromium"
# Playwright's wait for any action or expectation: long enough when every core is busy (the
# waits are on conditions, so a working page never takes this long).
PATIENCE_MS = int(PATIENCE_S * 1000)
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


def pytest_configure(config: pytest.Config) -> None:
    """Playwright's expect() waits 5 s by default, whatever the page's timeout: as patient
    as the rest."""
    from playwright.sync_api import expect

    expect.set_options(timeout=PATIENCE_MS)


@pytest.fixture(scope="package")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Base URL (no trailing slash) of a uvicorn serving the real corpus."""
    root = tmp_path_factory.mktemp("live")
    data = root / "data"
    shutil.copytree(ROOT / "data", data, ignore=shutil.ignore_patterns("*.db*"))
    # The demo's wall-clock budget guards the server against long runs; here it would only
    # turn a slow machine into a failed run, so it is as patient as the tests.
    settings = make_settings(
        root, data, demo_warmup=False, demo_time_budget_s=PATIENCE_S, lm_start=True, demo_workers=1
    )
    with running_server(settings) as url:
        wait_for_demo_worker(url)
        yield url


def wait_for_demo_worker(url: str) -> None:
    """Until the server's demo worker is alive (torch imported, device calibrated): runs asked
    for before would wait in the queue anyway, but a test's first run should not also wait
    for the worker to start."""
    deadline = time.monotonic() + PATIENCE_S
    while (health := httpx.get(f"{url}/healthz", timeout=PATIENCE_S).json())["status"] != "ok":
        assert time.monotonic() < deadline, f"the demo worker never became ready: {health}"
        time.sleep(0.1)


@pytest.fixture(scope="package")
def chromium_browser() -> Iterator[Any]:
    require_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def new_page(chromium_browser: Any, live_server: str) -> Iterator[Callable[..., Any]]:
    """new_page(**context_options): a page in a fresh browser context (color_scheme,
    viewport, java_script_enabled...) whose relative URLs go to the live server. Every
    context it opened is closed at teardown, whatever the test did."""
    contexts: list[Any] = []

    def open_page(**options: Any) -> Any:
        context = chromium_browser.new_context(base_url=live_server, **options)
        contexts.append(context)
        page = context.new_page()
        page.set_default_timeout(PATIENCE_MS)
        return page

    yield open_page
    for context in contexts:
        context.close()


@pytest.fixture
def browser_page(new_page: Callable[..., Any]) -> Any:
    """A page in its own browser context; page.goto("/terms") goes to the live server."""
    return new_page()
