"""/api/terms/{slug}/summary (Wikipedia's page-summary shape) and /embed/gl-term.js, the
module other sites load: shapes checked against each term's JSON twin, absolute URLs,
redirects, errors, CORS without credentials, no cookies, and the README's SRI hash."""

import base64
import hashlib
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from fastapi.testclient import TestClient

from app.main import create_app
from app.routes.embed_term import GL_TERM_FILE
from tests.conftest import ROOT, make_settings
from tests.factories import default_terms, write_corpus

BASE = "http://testserver"
WIKIPEDIA_FIELDS = {
    "type",
    "title",
    "displaytitle",
    "titles",
    "extract",
    "extract_html",
    "description",
    "lang",
    "dir",
    "timestamp",
    "content_urls",
}


def summary_of(client: TestClient, slug: str) -> dict[str, Any]:
    response = client.get(f"/api/terms/{slug}/summary")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/json")
    body: dict[str, Any] = response.json()
    return body


def test_summary_has_wikipedias_shape_and_the_twins_content(client: TestClient) -> None:
    twin = client.get("/api/terms/residual-connection").json()
    summary = summary_of(client, "residual-connection")
    assert WIKIPEDIA_FIELDS <= set(summary)
    assert summary["type"] == "standard"
    assert summary["lang"] == "en" and summary["dir"] == "ltr"
    assert summary["title"] == twin["title"] == "Residual Connection"
    assert summary["titles"] == {
        "canonical": "residual-connection",
        "normalized": "Residual Connection",
        "display": "Residual Connection",
    }
    assert summary["extract"] == twin["summary"]
    assert summary["extract_html"] == f"<p>{twin['summary']}</p>"
    assert summary["description"] == twin["category"]["title"]
    assert summary["synonyms"] == twin["synonyms"] and len(summary["synonyms"]) >= 2
    assert summary["timestamp"] == client.get("/healthz").json()["loaded_at"]
    urls = summary["content_urls"]
    assert urls["desktop"]["page"] == BASE + twin["url"]
    assert urls["mobile"]["page"] == BASE + twin["url"]
    assert urls["desktop"]["api"] == f"{BASE}/api/terms/residual-connection"
    # The absolute URLs lead somewhere: the page and the JSON twin.
    assert client.get(urlsplit(urls["desktop"]["page"]).path).status_code == 200
    assert client.get(urlsplit(urls["desktop"]["api"]).path).json() == twin


def test_every_summary_agrees_with_its_twin(client: TestClient) -> None:
    """Over the whole corpus: the thumbnail exactly when the entry has an illustration (absolute,
    served, sized), and the same title, extract and synonyms as the term's JSON twin."""
    items = client.get("/api/terms?limit=500").json()["items"]
    assert len(items) >= 300
    illustrated = thumbnails = 0
    for item in items:
        twin = client.get(f"/api/terms/{item['slug']}").json()
        summary = summary_of(client, item["slug"])
        assert (summary["title"], summary["extract"]) == (twin["title"], twin["summary"])
        assert len(summary["synonyms"]) == len(twin["synonyms"])
        assert summary["description"] == twin["category"]["title"]
        illustrated += twin["illustration"] is not None
        thumbnail = summary.get("thumbnail")
        assert (thumbnail is None) == (twin["illustration"] is None), item["slug"]
        if thumbnail is not None:
            thumbnails += 1
            assert thumbnail["source"] == BASE + twin["illustration"]["url"]
            assert thumbnail["width"] > 0 and thumbnail["height"] > 0
    assert thumbnails == illustrated > 0


def test_a_thumbnail_is_served_as_an_image(client: TestClient) -> None:
    thumbnail = summary_of(client, "residual-connection")["thumbnail"]
    svg = (ROOT / "data" / "illustrations" / "residual-connection.svg").read_text()
    assert f'viewBox="0 0 {thumbnail["width"]} {thumbnail["height"]}"' in svg
    image = client.get(urlsplit(thumbnail["source"]).path)
    assert image.status_code == 200
    assert image.headers["content-type"].startswith("image/svg+xml")


def test_absolute_urls_follow_the_host_asked(client: TestClient) -> None:
    response = client.get(
        "/api/terms/residual-connection/summary", headers={"host": "glossary.example"}
    )
    page = response.json()["content_urls"]["desktop"]["page"]
    assert page == "http://glossary.example/terms/residual-connection"


def test_hostile_text_is_escaped_in_the_html_fields(tmp_path: Path) -> None:
    """The HTML fields are escaped text (other sites' tools may insert them as HTML); the plain
    fields carry the text as it is. The size comes from width/height when the SVG has them."""
    terms = default_terms()
    entry = terms["residual-connection"]
    entry["title"] = "<b>Bold</b> & co"
    entry["summary"] = "Uses `<script>alert(2)</script>` in code and quotes \" ' & too."
    entry["illustration"] = {
        "file": "pic.svg",
        "alt": "A small picture",
        "caption": "A small caption",
    }
    data = write_corpus(tmp_path / "data", terms)
    (data / "illustrations" / "pic.svg").write_text(
        '<svg xmlns="http://www.w3.org/2000/svg" width="300" height="200" viewBox="0 0 30 20">'
        "<title>t</title></svg>"
    )
    with TestClient(create_app(make_settings(tmp_path, data))) as small:
        summary = summary_of(small, "residual-connection")
    assert summary["title"] == summary["titles"]["normalized"] == entry["title"]
    assert summary["extract"] == entry["summary"]
    assert (
        summary["displaytitle"]
        == summary["titles"]["display"]
        == "&lt;b&gt;Bold&lt;/b&gt; &amp; co"
    )
    assert summary["extract_html"] == (
        "<p>Uses `&lt;script&gt;alert(2)&lt;/script&gt;` in code and quotes \" ' &amp; too.</p>"
    )
    assert (summary["thumbnail"]["width"], summary["thumbnail"]["height"]) == (300, 200)


def test_a_synonym_or_other_spelling_moves_to_the_canonical_summary(client: TestClient) -> None:
    for asked in ("skip-connection", "Residual-Connection"):
        response = client.get(f"/api/terms/{asked}/summary")
        assert response.status_code == 301, (asked, response.text)
        assert response.headers["location"] == "/api/terms/residual-connection/summary"
        # A cross-origin fetch follows the redirect only if it allows the reader too.
        assert response.headers["access-control-allow-origin"] == "*"


def test_an_unknown_term_is_a_json_404(client: TestClient) -> None:
    response = client.get("/api/terms/no-such-entry-anywhere/summary")
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"status", "message", "details"} and body["status"] == 404


def test_cors_for_everyone_without_credentials_or_cookies(client: TestClient) -> None:
    for path in ("/api/terms/residual-connection/summary", "/embed/gl-term.js"):
        response = client.get(path, headers={"origin": "https://blog.example"})
        assert response.status_code == 200, path
        assert response.headers["access-control-allow-origin"] == "*", path
        assert "access-control-allow-credentials" not in response.headers, path
        assert "set-cookie" not in response.headers, path
    # Only the paths other sites need: the term's full JSON stays same-origin.
    assert "access-control-allow-origin" not in client.get("/api/terms/attention").headers


def test_gl_term_module_is_javascript_cacheable_and_the_file(client: TestClient) -> None:
    response = client.get("/embed/gl-term.js")
    assert response.status_code == 200
    assert response.headers["content-type"].split(";")[0] == "text/javascript"
    assert response.headers["cache-control"].startswith("public, max-age=")
    assert response.content == GL_TERM_FILE.read_bytes()
    again = client.get("/embed/gl-term.js", headers={"if-none-match": response.headers["etag"]})
    assert again.status_code == 304


def test_both_operations_are_documented(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    summary = paths["/api/terms/{slug}/summary"]["get"]["responses"]
    assert summary["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/TermSummary"
    }
    assert {"301", "404"} <= set(summary)
    module = paths["/embed/gl-term.js"]["get"]["responses"]["200"]["content"]
    assert set(module) == {"text/javascript"}


def sri_hash(data: bytes) -> str:
    return "sha384-" + base64.b64encode(hashlib.sha384(data).digest()).decode()


def test_readme_publishes_the_modules_current_sri_hash() -> None:
    """An embedder pins the hash: the README's must be the file's (update both together)."""
    expected = sri_hash(GL_TERM_FILE.read_bytes())
    assert expected in (ROOT / "README.md").read_text(encoding="utf-8"), expected
