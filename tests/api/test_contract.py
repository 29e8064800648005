"""Datasette-style twin contract: every HTML page names its JSON twin with
<link rel="alternate">, and the view it rendered equals that JSON."""

from collections.abc import Iterator
from pathlib import Path

import pytest
from bs4 import BeautifulSoup
from fastapi.testclient import TestClient

from app.main import create_app
from tests.conftest import make_settings


@pytest.fixture(scope="module")
def uncached(real_db: Path) -> Iterator[TestClient]:
    """No response cache, so every page goes through its template (and exposes its view)."""
    app = create_app(make_settings(real_db, real_db / "data", response_cache=False))
    with TestClient(app, follow_redirects=False) as client:
        yield client


def page_urls(client: TestClient) -> list[str]:
    terms = client.get("/api/terms?limit=500").json()["items"]
    categories = client.get("/api/categories").json()["categories"]
    orgs = client.get("/api/organizations").json()["organizations"]
    return [
        "/",
        "/terms",
        "/terms?category=prompting",
        "/categories",
        "/organizations",
        "/search?q=residual",
        "/search?q=zzzzqqq",
        *(t["url"] for t in terms),
        *(c["url"] for c in categories),
        *(o["url"] for o in orgs),
    ]


def test_every_page_equals_its_json_twin(uncached: TestClient) -> None:
    urls = page_urls(uncached)
    assert len(urls) > 30
    for url in urls:
        page = uncached.get(url)
        assert page.status_code == 200, (url, page.text[:300])
        links = BeautifulSoup(page.text, "html.parser").select(
            'link[rel="alternate"][type="application/json"]'
        )
        assert len(links) == 1, url
        twin = uncached.get(links[0]["href"])
        assert twin.status_code == 200, (url, twin.text[:300])
        assert twin.headers["content-type"] == "application/json"
        view = page.context["view"]  # type: ignore[attr-defined]
        assert view.model_dump(mode="json") == twin.json(), url
