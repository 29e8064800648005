"""Security baseline: headers everywhere, body limit, no internals in errors, escaping."""

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from bs4 import BeautifulSoup
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlmodel import text

from app.db import SessionDep
from app.main import create_app
from tests.conftest import make_settings
from tests.factories import default_terms, write_corpus

EVIL_TITLE = "<script>alert('t')</script>"
EVIL_SYNONYM = '"><img src=x onerror=alert(1)>'


def assert_security_headers(headers: dict[str, str] | object, hsts: bool = False) -> None:
    csp = headers["content-security-policy"]  # type: ignore[index]
    for part in ("script-src 'self'", "style-src 'self'", "object-src 'none'",
                 "base-uri 'none'", "frame-ancestors 'none'"):
        assert part in csp
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
    assert headers["x-content-type-options"] == "nosniff"  # type: ignore[index]
    assert headers["referrer-policy"]  # type: ignore[index]
    assert ("strict-transport-security" in headers) == hsts  # type: ignore[operator]


def test_headers_on_every_kind_of_response(client: TestClient) -> None:
    for url in ("/", "/terms/resnet", "/api/terms", "/static/css/site.css", "/nowhere",
                "/api/nowhere", "/healthz", "/docs", "/openapi.json"):
        response = client.get(url)
        assert_security_headers(response.headers)
        content_type = response.headers["content-type"]
        if content_type.startswith("text/"):
            assert "charset=utf-8" in content_type, url


def test_hsts_when_configured(tmp_path: Path, data_dir: Path) -> None:
    app = create_app(make_settings(tmp_path, data_dir, hsts_max_age=31536000))
    with TestClient(app) as client:
        response = client.get("/")
    assert_security_headers(response.headers, hsts=True)
    assert response.headers["strict-transport-security"].startswith("max-age=31536000")


def test_body_limit(client: TestClient) -> None:
    big = b"x" * (70 * 1024)
    response = client.post("/api/terms", content=big)
    assert response.status_code == 413
    assert response.json()["status"] == 413
    assert_security_headers(response.headers)

    def chunks() -> Iterator[bytes]:
        for _ in range(80):
            yield b"y" * 1024

    chunked = client.post("/api/search", content=chunks())
    assert chunked.status_code == 413


@pytest.fixture
def failing_app(tmp_path: Path, data_dir: Path) -> FastAPI:
    app = create_app(make_settings(tmp_path, data_dir))

    @app.get("/api/explode")
    def explode_api(session: SessionDep) -> None:
        session.exec(text("SELECT secret_column FROM secret_table_name"))  # type: ignore[call-overload]

    @app.get("/explode")
    def explode_page() -> None:
        raise RuntimeError("internal detail: password=hunter2")

    return app


def test_no_traceback_or_sql_reaches_the_client(failing_app: FastAPI) -> None:
    with TestClient(failing_app, raise_server_exceptions=False) as client:
        api = client.get("/api/explode")
        page = client.get("/explode")
    assert api.status_code == 500 and page.status_code == 500
    assert api.json() == {"status": 500, "details": None,
                          "message": "Something went wrong on our side. The error has been logged."}
    assert page.headers["content-type"].startswith("text/html")
    for response in (api, page):
        for secret in ("secret_table_name", "SELECT", "Traceback", "hunter2", "sqlalchemy"):
            assert secret not in response.text
        assert_security_headers(response.headers)


@pytest.fixture
def evil_client(tmp_path: Path) -> Iterator[TestClient]:
    terms = default_terms()
    entry = terms["residual-connection"]
    entry["title"] = EVIL_TITLE
    entry["synonyms"] = [EVIL_SYNONYM, "Skip connection"]
    entry["summary"] = "Uses `<script>alert(2)</script>` in code and quotes \" ' & too."
    entry["definition"] = "Code `\"><img src=x onerror=alert(3)>` stays text. " + " w" * 70
    entry["formula"] = "a < b > c"
    entry["organizations"] = [{"key": "anthropic",
                               "note": "Note with \" quotes & ampersands, but no tags."}]
    entry["read_more"] = [{"title": "</a><script>alert(6)</script>",
                           "url": "https://example.org/?q=\"><script>"}]
    entry["illustration"] = {"file": "pic.svg", "alt": "Alt \"><script>alert(7)</script>",
                             "caption": "<img src=x onerror=alert(8)>"}
    data = write_corpus(tmp_path / "data", terms)
    (data / "illustrations" / "pic.svg").write_text(
        '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 10 10"><title>t</title></svg>')
    app = create_app(make_settings(tmp_path, data, featured_term="residual-connection"))
    with TestClient(app) as client:
        yield client


def assert_no_active_markup(html: str) -> None:
    page = BeautifulSoup(html, "html.parser")
    for script in page.find_all("script"):
        if script.get("type") == "application/ld+json":
            assert "<" not in script.string and ">" not in script.string  # \u003c escapes
            json.loads(script.string)
        else:
            assert script.get("src") and not (script.string or "").strip(), script
    for element in page.find_all(True):
        assert not any(attr.startswith("on") for attr in element.attrs), element
    assert not page.find("b")
    assert not any(img.get("src") == "x" for img in page.find_all("img"))


def test_hostile_content_renders_escaped_everywhere(evil_client: TestClient) -> None:
    slug = "residual-connection"
    for url in ("/", f"/terms/{slug}", "/terms", "/categories/model-architecture",
                "/organizations/anthropic", "/search?q=residual", "/search?q=skip+connection",
                "/terms/does-not-exist", "/resnet"):
        response = evil_client.get(url)
        assert response.status_code in (200, 404), url
        assert_no_active_markup(response.text)
    page = evil_client.get(f"/terms/{slug}").text
    assert EVIL_TITLE not in page
    assert "&lt;script&gt;alert(&#39;t&#39;)&lt;/script&gt;" in page
    api = evil_client.get(f"/api/terms/{slug}").json()
    assert api["title"] == EVIL_TITLE  # JSON carries the text as text


def test_hostile_search_query_is_escaped(client: TestClient) -> None:
    response = client.get("/search", params={"q": '"><script>alert(1)</script>'})
    assert response.status_code == 200
    assert_no_active_markup(response.text)
