"""Security baseline: headers everywhere, body limit, no internals in errors, escaping."""

import json
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
from bs4 import BeautifulSoup
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlmodel import text

from app.db import SessionDep
from app.main import create_app
from tests.conftest import make_settings
from tests.factories import default_terms, write_corpus

EVIL_TITLE = "<script>alert('t')</script>"
EVIL_SYNONYM = '"><img src=x onerror=alert(1)>'


def assert_security_headers(
    headers: dict[str, str] | object, hsts: bool = False, framable: bool = False
) -> None:
    """The headers every response has; `framable` for experiment cards (/embed/demo/*), which
    other sites may frame."""
    csp = headers["content-security-policy"]  # type: ignore[index]
    for part in (
        "script-src 'self'",
        "style-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "frame-ancestors *" if framable else "frame-ancestors 'none'",
    ):
        assert part in csp
    assert ("x-frame-options" in headers) != framable  # type: ignore[operator]
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
    assert headers["x-content-type-options"] == "nosniff"  # type: ignore[index]
    assert headers["referrer-policy"]  # type: ignore[index]
    assert ("strict-transport-security" in headers) == hsts  # type: ignore[operator]


ANY_MCP = "application/json, text/event-stream"
SMALL_RUN = {
    "preset": "residual-vs-plain",
    "depth": "4",
    "width": "16",
    "steps": "3",
    "batch_size": "16",
}
# Content types that must name their charset (text, script, SVG and XML are all text).
TEXT_TYPES = (
    "text/",
    "application/javascript",
    "image/svg+xml",
    "application/xml",
    "application/opensearchdescription+xml",
)


# Every kind of response the app gives, each with the status it must have.
EXPECTED_STATUS = {
    "page": 200,
    "home": 200,
    "search page": 200,
    "api": 200,
    "api search": 200,
    "api suggest": 200,
    "demo json": 200,
    "event stream": 200,
    "static css": 200,
    "static js": 200,
    "static svg": 200,
    "illustration": 200,
    "opensearch": 200,
    "docs": 200,
    "openapi": 200,
    "healthz": 200,
    "head": 200,
    "304": 304,
    "301 page": 301,
    "301 api": 301,
    "404 page": 404,
    "404 api": 404,
    "404 static": 404,
    "405 api": 405,
    "413 api": 413,
    "413 page": 413,
    "422 api": 422,
    "422 demo": 422,
    "summary": 200,
    "gl-term module": 200,
    "embed card": 200,
    "embed 404": 404,
    "oembed": 200,
    "oembed 404": 404,
    "skos turtle": 200,
    "skos json-ld": 200,
    "sitemap": 200,
    "robots": 200,
    "llms.txt": 200,
    "markdown twin": 200,
    "demo script": 200,
    "mcp garbage": 400,
}
# Only these may be framed by other sites, and only these read by other sites' scripts.
FRAMABLE = {"embed card", "embed 404"}
CROSS_ORIGIN = {"summary", "gl-term module", "oembed", "oembed 404"}


def every_kind_of_response(client: TestClient) -> dict[str, httpx.Response]:
    """One response of each kind the app gives: pages, API, static, errors, redirects, 304,
    the event stream, the docs. Each is checked to have its EXPECTED_STATUS."""
    etag = client.get("/api/terms/resnet").headers["etag"]
    with client.stream("GET", "/api/demo/stream", params=SMALL_RUN) as stream:
        stream.read()
    responses = {
        "page": client.get("/terms/resnet"),
        "home": client.get("/"),
        "search page": client.get("/search", params={"q": "residual"}),
        "api": client.get("/api/terms"),
        "api search": client.get("/api/search", params={"q": "residual"}),
        "api suggest": client.get("/api/suggest", params={"q": "res"}),
        "demo json": client.get("/api/demo", params=SMALL_RUN),
        "event stream": stream,
        "static css": client.get("/static/css/site.css"),
        "static js": client.get("/static/js/demo.js"),
        "static svg": client.get("/static/favicon.svg"),
        "illustration": client.get("/illustrations/residual-connection.svg"),
        "opensearch": client.get("/opensearch.xml"),
        "docs": client.get("/docs"),
        "openapi": client.get("/openapi.json"),
        "healthz": client.get("/healthz"),
        "head": client.head("/terms/resnet"),
        "304": client.get("/api/terms/resnet", headers={"if-none-match": etag}),
        "301 page": client.get("/terms/skip-connection"),
        "301 api": client.get("/api/terms/skip-connection"),
        "404 page": client.get("/nowhere"),
        "404 api": client.get("/api/nowhere"),
        "404 static": client.get("/static/nowhere.css"),
        "405 api": client.delete("/api/terms"),
        "413 api": client.post("/api/terms", content=b"x" * 70_000),
        "413 page": client.post("/terms", content=b"x" * 70_000),
        "422 api": client.get("/api/terms", params={"limit": "many"}),
        "422 demo": client.get("/api/demo", params={"depth": "999"}),
        "summary": client.get("/api/terms/resnet/summary"),
        "gl-term module": client.get("/embed/gl-term.js"),
        "embed card": client.get("/embed/demo/residual-vs-plain", params={"lock": "depth"}),
        "embed 404": client.get("/embed/demo/nothing-like-it"),
        "oembed": client.get(
            "/oembed", params={"url": "http://testserver/terms/residual-connection"}
        ),
        "oembed 404": client.get("/oembed", params={"url": "https://elsewhere.example/x"}),
        "skos turtle": client.get("/api/glossary/skos.ttl"),
        "skos json-ld": client.get("/api/glossary/skos.jsonld"),
        "sitemap": client.get("/sitemap.xml"),
        "robots": client.get("/robots.txt"),
        "llms.txt": client.get("/llms.txt"),
        "markdown twin": client.get("/terms/resnet.md"),
        "demo script": client.get("/api/demo/script", params=SMALL_RUN),
        "mcp garbage": client.post(
            "/mcp",
            content=b"not json",
            # a loopback Host: /mcp answers other hosts 421 (DNS-rebinding protection)
            headers={"host": "127.0.0.1", "content-type": "application/json", "accept": ANY_MCP},
        ),
    }
    assert set(responses) == set(EXPECTED_STATUS)
    statuses = {kind: response.status_code for kind, response in responses.items()}
    assert statuses == EXPECTED_STATUS, {
        kind: (status, responses[kind].text[:200])
        for kind, status in statuses.items()
        if status != EXPECTED_STATUS[kind]
    }
    return responses


def test_headers_on_every_kind_of_response(client: TestClient) -> None:
    responses = every_kind_of_response(client)
    for kind, response in responses.items():
        try:
            assert_security_headers(response.headers, framable=kind in FRAMABLE)
        except (AssertionError, KeyError) as error:
            raise AssertionError(f"{kind}: {error!r}") from error
        content_type = response.headers.get("content-type", "")
        if content_type.startswith(TEXT_TYPES):
            assert "charset=utf-8" in content_type, (kind, content_type)
    stream = responses["event stream"]
    assert stream.headers["content-type"] == "text/event-stream; charset=utf-8"
    # FastAPI's EventSourceResponse: no-cache, and no buffering in a proxy (nginx)
    assert stream.headers["cache-control"] == "no-cache"
    assert stream.headers["x-accel-buffering"] == "no"
    assert "event: result" in stream.text
    assert responses["301 page"].headers["location"] == "/terms/residual-connection"
    assert responses["301 api"].headers["location"] == "/api/terms/residual-connection"
    assert responses["304"].content == b""
    assert responses["head"].content == b""


def test_only_embeds_are_framable_and_only_embed_endpoints_cross_origin(
    client: TestClient,
) -> None:
    for kind, response in every_kind_of_response(client).items():
        csp = response.headers["content-security-policy"]
        assert ("frame-ancestors *" in csp) == (kind in FRAMABLE), kind
        cors = response.headers.get("access-control-allow-origin")
        assert cors == ("*" if kind in CROSS_ORIGIN else None), (kind, cors)
        assert "access-control-allow-credentials" not in response.headers, kind
        assert "set-cookie" not in response.headers, kind


def test_head_answers_like_get_without_a_body(client: TestClient) -> None:
    for url in ("/terms/resnet", "/api/terms/resnet", "/"):
        get, head = client.get(url), client.head(url)
        assert head.status_code == 200, (url, head.status_code)
        assert head.content == b""
        assert head.headers["content-type"] == get.headers["content-type"]
        assert_security_headers(head.headers)


def test_hsts_on_every_kind_of_response_when_configured(real_db: Path) -> None:
    from app.demo.experiment import execute
    from tests.demo_fixtures import runner_in, thread_runner

    app = create_app(make_settings(real_db, real_db / "data", hsts_max_age=31536000))
    with (
        TestClient(app, follow_redirects=False) as client,
        runner_in(app, thread_runner(execute)),  # the demo's responses too, run in-process
    ):
        responses = every_kind_of_response(client)
    for kind, response in responses.items():
        assert_security_headers(response.headers, hsts=True, framable=kind in FRAMABLE)
        assert response.headers["strict-transport-security"] == (
            "max-age=31536000; includeSubDomains"
        ), kind


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
    assert api.json() == {
        "status": 500,
        "details": None,
        "message": "Something went wrong on our side. The error has been logged.",
    }
    assert page.headers["content-type"].startswith("text/html")
    for response in (api, page):
        for secret in ("secret_table_name", "SELECT", "Traceback", "hunter2", "sqlalchemy"):
            assert secret not in response.text
        assert_security_headers(response.headers)


# Category and organization files are data too: hostile names, descriptions and URLs.
EVIL_CATEGORIES = """
[model-architecture]
title = '<script>alert("c1")</script>'
description = '"><img src=x onerror=alert("c2")> and <b>bold</b> & more'

[training-optimization]
title = "Training and optimization"
description = "How networks learn."
"""
EVIL_ORGANIZATIONS = """
[microsoft-research]
name = '</a><script>alert("o1")</script>'
url = 'https://example.org/"><script>alert("o2")</script>'
description = "<img src=x onerror=alert('o3')>"

[anthropic]
name = "Anthropic"
url = "https://www.anthropic.com/"
description = "Builds the Claude models."
"""


@pytest.fixture
def evil_client(tmp_path: Path) -> Iterator[TestClient]:
    terms = default_terms()
    entry = terms["residual-connection"]
    entry["title"] = EVIL_TITLE
    entry["synonyms"] = [EVIL_SYNONYM, "Skip connection"]
    entry["summary"] = "Uses `<script>alert(2)</script>` in code and quotes \" ' & too."
    entry["definition"] = 'Code `"><img src=x onerror=alert(3)>` stays text. ' + " w" * 70
    entry["formula"] = "a < b > c"
    entry["organizations"] = [
        {"key": "anthropic", "note": 'Note with " quotes & ampersands, but no tags.'}
    ]
    entry["read_more"] = [
        {"title": "</a><script>alert(6)</script>", "url": 'https://example.org/?q="><script>'}
    ]
    entry["illustration"] = {
        "file": "pic.svg",
        "alt": 'Alt "><script>alert(7)</script>',
        "caption": "<img src=x onerror=alert(8)>",
    }
    data = write_corpus(
        tmp_path / "data", terms, categories=EVIL_CATEGORIES, organizations=EVIL_ORGANIZATIONS
    )
    (data / "illustrations" / "pic.svg").write_text(
        '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 10 10"><title>t</title></svg>'
    )
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
    for url in (
        "/",
        f"/terms/{slug}",
        "/terms",
        "/terms?category=model-architecture",
        "/categories",
        "/categories/model-architecture",
        "/organizations",
        "/organizations/anthropic",
        "/organizations/microsoft-research",
        "/search?q=residual",
        "/search?q=skip+connection",
        "/search?q=script",
        "/terms/does-not-exist",
        "/resnet",
    ):
        response = evil_client.get(url)
        assert response.status_code in (200, 404), url
        assert_no_active_markup(response.text)
    page = evil_client.get(f"/terms/{slug}").text
    assert EVIL_TITLE not in page
    assert "&lt;script&gt;alert(&#39;t&#39;)&lt;/script&gt;" in page
    # shown as text: what the files say, character for character, and no element made of it
    for url, shown in (
        ("/categories", '<script>alert("c1")</script>'),
        ("/categories/model-architecture", "<b>bold</b> & more"),
        ("/organizations", '</a><script>alert("o1")</script>'),
        ("/organizations/microsoft-research", "<img src=x onerror=alert('o3')>"),
    ):
        text_shown = BeautifulSoup(evil_client.get(url).text, "html.parser").get_text()
        assert shown in text_shown, url
    api = evil_client.get(f"/api/terms/{slug}").json()
    assert api["title"] == EVIL_TITLE  # JSON carries the text as text


def test_hostile_search_query_is_escaped(client: TestClient) -> None:
    response = client.get("/search", params={"q": '"><script>alert(1)</script>'})
    assert response.status_code == 200
    assert_no_active_markup(response.text)


# ---------------------------------------------------------------- 404, 405, 413 formats

HTML_404 = (
    "/nowhere",
    "/terms/no-such-term",
    "/categories/no-such-category",
    "/organizations/no-such-org",
    "/illustrations/no-such.svg",
    "/terms/a/b",
    "/static/no-such.css",
    "/static/../pyproject.toml",
    "/api-not-really",
)
API_404 = (
    "/api",
    "/api/nowhere",
    "/api/terms/no-such-term",
    "/api/categories/nope",
    "/api/organizations/nope",
    "/api/terms/a/b",
    "/api/demo/nope",
    "/api/search/deeper",
)


def assert_error_page(response: httpx.Response, status: int) -> None:
    assert response.status_code == status, response.text[:300]
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    page = BeautifulSoup(response.text, "html.parser")
    heading = "Page not found" if status == 404 else "Something went wrong"
    assert page.h1 is not None and page.h1.get_text() == heading
    assert page.find("a", href="/terms") and page.find("form", action="/search")


def assert_error_json(response: httpx.Response, status: int) -> None:
    assert response.status_code == status, response.text[:300]
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert set(body) == {"status", "message", "details"} and body["status"] == status
    assert body["message"]


def test_unknown_routes_404_as_a_page_or_as_json(client: TestClient) -> None:
    for url in HTML_404:
        assert_error_page(client.get(url), 404)
    for url in API_404:
        assert_error_json(client.get(url), 404)
    assert_error_page(client.post("/terms/resnet"), 405)
    assert_error_json(client.post("/api/terms/resnet"), 405)
    assert_error_json(client.put("/api/demo"), 405)


def test_bodies_over_the_limit_get_413_in_the_right_format(client: TestClient) -> None:
    big = b"x" * (64 * 1024 + 1)
    for url in ("/", "/terms/resnet", "/search", "/nowhere"):
        assert_error_page(client.post(url, content=big), 413)
    for url in ("/api/terms", "/api/demo", "/api/demo/stream", "/api/nowhere"):
        assert_error_json(client.post(url, content=big), 413)
    # at the limit it is the route that answers (405: these routes take no body)
    assert client.post("/api/terms", content=b"x" * (64 * 1024)).status_code == 405


# ---------------------------------------------------------------- injection through inputs

PAYLOADS = (
    "<script>alert(1)</script>",
    '"><img src=x onerror=alert(2)>',
    "'><svg onload=alert(3)>",
    "javascript:alert(4)",
    "</title><script>alert(5)</script>",
    "{{ 7*7 }}{% raw %}",
    "%3Cscript%3Ealert(6)%3C%2Fscript%3E",
)


def assert_not_reflected(response: httpx.Response, payload: str) -> None:
    """The payload never reaches a page as markup; JSON carries it only as JSON text."""
    content_type = response.headers.get("content-type", "")
    assert response.headers["x-content-type-options"] == "nosniff"
    if content_type.startswith("text/html"):
        assert_no_active_markup(response.text)
        if "<" in payload or ">" in payload:
            assert payload not in response.text
    else:  # JSON (application/json, or the OpenSearch suggestions' +json), never HTML
        assert content_type.split(";")[0].endswith("json"), content_type


@pytest.mark.parametrize("payload", PAYLOADS)
def test_path_segments_never_reach_a_page_unescaped(client: TestClient, payload: str) -> None:
    segment = quote(payload, safe="")
    for template in (
        "/terms/{}",
        "/categories/{}",
        "/organizations/{}",
        "/illustrations/{}",
        "/{}",
        "/terms/{}/more",
        "/api/terms/{}",
        "/api/categories/{}",
        "/api/organizations/{}",
        "/api/{}",
    ):
        response = client.get(template.format(segment))
        assert response.status_code in (301, 404), (template, response.status_code)
        assert_not_reflected(response, payload)


@pytest.mark.parametrize("payload", PAYLOADS)
def test_demo_parameters_never_reach_a_page_unescaped(client: TestClient, payload: str) -> None:
    catalog = client.get("/api/demo/presets").json()
    params = sorted({param["name"] for entry in catalog for param in entry["params"]})
    assert len(params) >= 5, params
    for name in ("preset", *params, "unknown"):
        for route in ("/api/demo", "/api/demo/stream"):
            response = client.get(route, params={name: payload})
            assert response.status_code == 422, (route, name, response.text[:200])
            assert_not_reflected(response, payload)
        # the permalink of a term's demo carries the parameters in the page's own URL
        page = client.get("/terms/residual-connection", params={name: payload})
        assert page.status_code == 200
        assert_not_reflected(page, payload)


@pytest.mark.parametrize("payload", PAYLOADS)
def test_query_parameters_never_reach_a_page_unescaped(client: TestClient, payload: str) -> None:
    for url, params in (
        ("/search", {"q": payload}),
        ("/search", {"q": "residual", "category": payload}),
        ("/search", {"q": payload, "go": "1"}),
        ("/terms", {"category": payload}),
        ("/api/search", {"q": payload, "category": payload}),
        ("/api/suggest", {"q": payload}),
        ("/api/terms", {"category": payload}),
    ):
        response = client.get(url, params=params)
        assert response.status_code in (200, 404, 422), (url, response.text[:200])
        assert_not_reflected(response, payload)


# Any text at all, with the characters that matter to HTML made likely.
HOSTILE_TEXT = st.text(
    alphabet=st.one_of(st.sampled_from("<>\"'&=/ ;:`"), st.characters(codec="utf-8")),
    max_size=40,
)
MARKER = "<x-injected x-injected=1 onclick=1>"


@settings(
    max_examples=60,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(before=HOSTILE_TEXT, after=HOSTILE_TEXT)
def test_no_input_can_add_an_element_or_attribute(
    client: TestClient, before: str, after: str
) -> None:
    """Whatever surrounds it, a tag typed into the search box or a URL stays text."""
    payload = before + MARKER + after
    for response in (
        client.get("/search", params={"q": payload}),
        client.get("/terms", params={"category": payload}),
        client.get("/terms/" + quote(payload, safe="")),
    ):
        if not response.headers.get("content-type", "").startswith("text/html"):
            continue
        page = BeautifulSoup(response.text, "html.parser")
        assert page.find("x-injected") is None, response.text
        for element in page.find_all(True):
            assert "x-injected" not in element.attrs and "onclick" not in element.attrs
