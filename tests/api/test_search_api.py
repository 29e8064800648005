"""Search over HTTP: /search and its JSON twin, go=1, /api/suggest, /opensearch.xml, hostile
queries, and a property test that feeds arbitrary text through the whole path."""

import re
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote
from xml.etree import ElementTree

import pytest
from bs4 import BeautifulSoup
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.main import create_app
from tests.conftest import make_settings
from tests.factories import default_terms, write_corpus

MAX_QUERY = 2_000  # the q parameter's documented maxLength

OPENSEARCH = "{http://a9.com/-/spec/opensearch/1.1/}"
HOSTILE = [
    '"',
    '"unclosed',
    "*",
    "**",
    "NEAR(a b)",
    "NEAR",
    "a AND b OR NOT c",
    "AND",
    "OR",
    "NOT",
    "(((",
    ")",
    "()",
    "title:x",
    "x:",
    ":",
    "-x",
    "-",
    "^x",
    "^",
    "a\x00b",
    "\x00",
    "🙂",
    "🧠 attention",
    "a" * 10_000,
    "",
    " ",
    "\t\n",
    "{title}: x",
    "resid*",
    '"skip connection"',
    "'; DROP TABLE term; --",
    "%",
    "_",
    "\\",
    "<mark>x</mark>",
    "<script>alert(1)</script>",
    "&amp;",
    "ñ",
    "日本語",
    "x" * 500 + " y" * 500,
]


def no_markup_but_marks(html: str) -> bool:
    return "<" not in re.sub(r"</?mark>", "", html)


def test_search_json(client: TestClient) -> None:
    body = client.get("/api/search", params={"q": "skip connection"}).json()
    hit = body["hits"][0]
    assert hit["slug"] == "residual-connection" and hit["exact"] is True
    assert hit["matched_field"] == "synonyms" and hit["matched_synonym"] == "Skip connection"
    assert hit["title_html"] == "Residual <mark>Connection</mark>"
    assert hit["url"] == "/terms/residual-connection"
    assert body["corrected_query"] is None and body["total_exact"] is True
    assert set(hit) >= {"title", "slug", "summary", "score", "snippet_html", "category"}


def test_search_page_shows_the_synonym_arrow_and_highlights(client: TestClient) -> None:
    response = client.get("/search", params={"q": "skip connection"})
    page = BeautifulSoup(response.text, "html.parser")
    first = page.select_one(".search-hits li")
    assert (
        first.select_one(".search-hit__via").get_text() == "Skip connection → Residual Connection"
    )
    assert first.select_one("a mark").get_text() == "Connection"


def test_typo_search_says_what_it_searched(client: TestClient) -> None:
    body = client.get("/api/search", params={"q": "residul conection"}).json()
    assert body["hits"][0]["slug"] == "residual-connection"
    assert body["corrected_query"] == "residual connection"
    page = BeautifulSoup(client.get("/search?q=residul+conection").text, "html.parser")
    assert "residual connection" in page.select_one(".search-corrected").get_text()


@pytest.mark.parametrize(
    ("query", "entry"),
    [
        ("skip connection", "residual-connection"),
        ("Residual Connection", "residual-connection"),
        ("layer-norm", "layer-normalization"),
        ("LayerNorm", "layer-normalization"),
        ("LR", "learning-rate"),
        ("Rélu", "relu"),
    ],
)
def test_go_jumps_to_an_exact_name(client: TestClient, query: str, entry: str) -> None:
    response = client.get("/search", params={"q": query, "go": "1"})
    assert response.status_code == 301, response.text[:200]
    assert response.headers["location"] == f"/terms/{entry}"


@pytest.mark.parametrize("query", ["resid", "residul conection", "gradient size", "zzzzqqq", ""])
def test_go_without_an_exact_name_shows_results(client: TestClient, query: str) -> None:
    response = client.get("/search", params={"q": query, "go": "1"})
    assert response.status_code == 200


def test_header_form_goes_and_works_without_javascript(client: TestClient) -> None:
    page = BeautifulSoup(client.get("/terms/attention").text, "html.parser")
    form = page.select_one("form.header-search")
    assert form["action"] == "/search" and form["method"] == "get" and form["role"] == "search"
    fields = {i["name"]: i.get("value") for i in form.find_all("input")}
    assert fields == {"q": "", "go": "1"}
    assert form.find("input", attrs={"name": "q"})["data-suggest"] == "/api/suggest"
    script = form.find("script")
    assert script["src"].startswith("/static/js/search.js") and script.has_attr("defer")
    assert client.get(script["src"]).status_code == 200


def test_no_results_offers_did_you_mean(client: TestClient) -> None:
    body = client.get("/api/search", params={"q": "attentionxyzq"}).json()
    assert body["total"] == 0 and body["hits"] == []
    assert body["did_you_mean"][0]["slug"] == "attention"
    page = BeautifulSoup(client.get("/search?q=attentionxyzq").text, "html.parser")
    assert page.find("h2", string="Did you mean")
    assert page.select_one(".term-list a")["href"] == "/terms/attention"


def test_paging_and_category(client: TestClient) -> None:
    first = client.get("/api/search?q=gradient&limit=5").json()
    second = client.get("/api/search?q=gradient&limit=5&offset=5").json()
    assert first["total"] == second["total"] > 10
    assert not {h["slug"] for h in first["hits"]} & {h["slug"] for h in second["hits"]}
    page = BeautifulSoup(client.get("/search?q=gradient&limit=5").text, "html.parser")
    assert page.select_one('.search-pager a[rel="next"]')["href"] == (
        "/search?q=gradient&limit=5&offset=5"
    )
    some = client.get("/api/search?q=gradient&category=training-optimization").json()
    assert some["hits"] and {h["category"] for h in some["hits"]} == {"training-optimization"}
    blank = client.get("/api/search?q=gradient&category=").json()
    assert blank["category"] is None and blank["total"] == first["total"]


@pytest.mark.parametrize("path", ["/api/search", "/search", "/api/suggest"])
@pytest.mark.parametrize("query", HOSTILE, ids=range(len(HOSTILE)))
def test_hostile_queries_never_fail(client: TestClient, path: str, query: str) -> None:
    response = client.get(path, params={"q": query})
    if len(query) > MAX_QUERY:  # past the documented limit: a clear 422, never a 500
        assert response.status_code == 422, response.text[:300]
        return
    assert response.status_code == 200, (query, response.text[:300])
    if path == "/api/search":
        for hit in response.json()["hits"]:
            assert no_markup_but_marks(hit["title_html"]) and no_markup_but_marks(
                hit["snippet_html"]
            )


@pytest.mark.parametrize("path", ["/api/search", "/api/suggest"])
def test_too_long_is_a_json_422(client: TestClient, path: str) -> None:
    response = client.get(path, params={"q": "a" * (MAX_QUERY + 1)})
    assert response.status_code == 422
    assert response.json()["status"] == 422 and "q" in response.json()["message"]
    assert client.get(path, params={"q": "x", "limit": "0"}).status_code == 422


def test_search_page_too_long_is_422(client: TestClient) -> None:
    assert client.get("/search", params={"q": "a" * (MAX_QUERY + 1)}).status_code == 422
    assert client.get("/search", params={"q": "€" * MAX_QUERY}).status_code == 200


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=80))
def test_any_text_through_the_whole_search_path(client: TestClient, query: str) -> None:
    response = client.get("/api/search", params={"q": query, "limit": 5})
    assert response.status_code == 200, (query, response.text[:300])
    body = response.json()
    assert body["query"] == query and body["total"] >= len(body["hits"])
    scores = [hit["score"] for hit in body["hits"]]
    assert scores == sorted(scores, reverse=True)
    for hit in body["hits"]:
        assert no_markup_but_marks(hit["title_html"]), hit
        assert no_markup_but_marks(hit["snippet_html"]), hit
    page = client.get("/search", params={"q": query, "go": "1"})
    assert page.status_code in (200, 301), (query, page.text[:300])
    suggest = client.get("/api/suggest", params={"q": query})
    assert suggest.status_code == 200 and suggest.json()[0] == query


def test_suggest_is_opensearch(client: TestClient) -> None:
    response = client.get("/api/suggest", params={"q": "skip conection"})
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/x-suggestions+json"
    query, names, titles, urls = response.json()
    assert (query, names, titles) == (
        "skip conection",
        ["Skip connection"],
        ["Residual Connection"],
    )
    assert urls == ["http://testserver/terms/residual-connection"]
    assert client.get("/api/suggest?q=r").json() == ["r", [], [], []]
    two = client.get("/api/suggest?q=re&limit=3").json()
    assert len(two[1]) == 3 and all(name.lower().startswith("re") for name in two[1])


def test_opensearch_description(client: TestClient) -> None:
    response = client.get("/opensearch.xml")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/opensearchdescription+xml")
    root = ElementTree.fromstring(response.content)  # noqa: S314  (our own document)
    assert root.findtext(f"{OPENSEARCH}ShortName") == "Glossary Lab"
    urls = {u.get("type"): u.get("template") for u in root.findall(f"{OPENSEARCH}Url")}
    assert urls["text/html"] == "http://testserver/search?q={searchTerms}&go=1"
    assert urls["application/x-suggestions+json"] == "http://testserver/api/suggest?q={searchTerms}"
    found = client.get(urls["text/html"].replace("{searchTerms}", quote("skip connection")))
    assert found.status_code == 301


@pytest.mark.parametrize(
    "url",
    [
        "/",
        "/terms",
        "/terms/attention",
        "/categories",
        "/organizations",
        "/search",
        "/search?q=x",
        "/no-such-page",
    ],  # /docs (Swagger UI) has its own template
)
def test_every_page_links_the_opensearch_description(client: TestClient, url: str) -> None:
    page = BeautifulSoup(client.get(url).text, "html.parser")
    link = page.find("link", attrs={"rel": "search"})
    assert link is not None, url
    assert link["type"] == "application/opensearchdescription+xml"
    assert link["href"] == "/opensearch.xml"


# ---------------------------------------------------------------- twins and hostile content


@pytest.fixture(scope="module")
def uncached(real_db: Path) -> Iterator[TestClient]:
    """No response cache, so every page goes through its template (and exposes its view)."""
    app = create_app(make_settings(real_db, real_db / "data", response_cache=False))
    with TestClient(app, follow_redirects=False) as client:
        yield client


def test_markup_in_content_stays_text(tmp_path: Path) -> None:
    terms = default_terms()
    entry = terms["residual-connection"]
    entry["title"] = "Resid <b>bold</b> & co"
    entry["synonyms"] = ["<img src=x onerror=alert(1)> resid", "Skip connection"]
    entry["summary"] = 'Resid uses `<script>alert(2)</script>` & "quotes".'
    data = write_corpus(tmp_path / "data", terms)
    with TestClient(create_app(make_settings(tmp_path, data))) as client:
        hits = client.get("/api/search", params={"q": "resid"}).json()["hits"]
        hit = next(h for h in hits if h["slug"] == "residual-connection")
        assert hit["title_html"] == "<mark>Resid</mark> &lt;b&gt;bold&lt;/b&gt; &amp; co"
        assert no_markup_but_marks(hit["snippet_html"])
        assert "&lt;script&gt;" in hit["snippet_html"]
        page = client.get("/search", params={"q": "resid"}).text
        soup = BeautifulSoup(page, "html.parser")
        assert not soup.find("b") and not soup.find("img")
        assert all(s.get("src") for s in soup.find_all("script"))
        suggestions = client.get("/api/suggest", params={"q": "<img"}).json()
        assert suggestions[1] == ["<img src=x onerror=alert(1)> resid"]  # JSON text, as text
