"""The glossary in other formats, checked against the database they come from: SKOS (parsed
with rdflib), the sitemap and robots.txt, llms.txt and every term's Markdown twin."""

import html
import os
import re
import subprocess
import sys
import warnings
from collections import Counter
from urllib.parse import urlsplit
from urllib.robotparser import RobotFileParser
from xml.etree import ElementTree as ET

import pytest
from fastapi.testclient import TestClient
from rdflib import RDF, SKOS, Graph, Literal, URIRef
from sqlmodel import Session, select

from app.models import Category, Organization, RelatedTerm, Synonym, Term
from tests.conftest import PATIENCE_S, ROOT

BASE = "http://testserver"
SITEMAP = "{http://www.sitemaps.org/schemas/sitemap/0.9}"
MARKDOWN_LINK = re.compile(r"\[((?:[^\]\\]|\\.)+)\]\((<[^>]+>|[^)\s]+)\)")


def tables(client: TestClient) -> dict[str, list[object]]:
    """The content tables, read straight from the app's database."""
    with Session(client.app.state.engine) as session:  # type: ignore[attr-defined]
        return {
            "terms": list(session.exec(select(Term)).all()),
            "categories": list(session.exec(select(Category)).all()),
            "organizations": list(session.exec(select(Organization)).all()),
            "synonyms": list(session.exec(select(Synonym)).all()),
            "related": list(session.exec(select(RelatedTerm)).all()),
        }


def terms_of(client: TestClient) -> list[Term]:
    return [t for t in tables(client)["terms"] if isinstance(t, Term)]


def term_uri(slug: str) -> URIRef:
    return URIRef(f"{BASE}/terms/{slug}")


def category_uri(slug: str) -> URIRef:
    return URIRef(f"{BASE}/categories/{slug}")


def html_text(fragment: str) -> str:
    """An independent reading of rendered HTML as text: tags dropped, entities decoded."""
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", fragment)).split())


# --- SKOS -----------------------------------------------------------------------------------

SKOS_FORMATS = {
    "/api/glossary/skos.ttl": ("text/turtle", "turtle"),
    "/api/glossary/skos.jsonld": ("application/ld+json", "json-ld"),
}


@pytest.fixture(scope="module")
def skos_graphs(client: TestClient) -> dict[str, Graph]:
    graphs = {}
    for path, (media_type, rdf_format) in SKOS_FORMATS.items():
        response = client.get(path)
        assert response.status_code == 200, response.text[:300]
        assert response.headers["content-type"].split(";")[0] == media_type
        graphs[path] = parse(response.text, rdf_format)
    return graphs


def parse(text: str, rdf_format: str) -> Graph:
    """The document's triples. rdflib 7.6's JSON-LD parser builds a ConjunctiveGraph of its
    own and then warns that the class is deprecated: that one warning is not ours to fix."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "ConjunctiveGraph is deprecated", DeprecationWarning)
        return Graph().parse(data=text, format=rdf_format)


@pytest.mark.parametrize("path", list(SKOS_FORMATS))
def test_skos_counts_match_the_database(
    client: TestClient, skos_graphs: dict[str, Graph], path: str
) -> None:
    graph = skos_graphs[path]
    db = tables(client)
    terms = [t for t in db["terms"] if isinstance(t, Term)]
    categories = [c for c in db["categories"] if isinstance(c, Category)]
    synonyms = [s for s in db["synonyms"] if isinstance(s, Synonym)]
    related = [r for r in db["related"] if isinstance(r, RelatedTerm)]

    schemes = set(graph.subjects(RDF.type, SKOS.ConceptScheme))
    assert schemes == {URIRef(f"{BASE}/terms")}
    scheme = schemes.pop()
    concepts = set(graph.subjects(RDF.type, SKOS.Concept))
    term_nodes = {term_uri(t.slug) for t in terms}
    category_nodes = {category_uri(c.slug) for c in categories}
    assert concepts == term_nodes | category_nodes
    assert len(concepts) == len(terms) + len(categories)
    assert set(graph.subjects(SKOS.inScheme, scheme)) == concepts
    assert set(graph.objects(scheme, SKOS.hasTopConcept)) == category_nodes
    assert set(graph.subjects(SKOS.topConceptOf, scheme)) == category_nodes

    # one English prefLabel per concept: the title
    labels = {(s, o) for s, o in graph.subject_objects(SKOS.prefLabel)}
    assert labels == {(term_uri(t.slug), Literal(t.title, lang="en")) for t in terms} | {
        (category_uri(c.slug), Literal(c.title, lang="en")) for c in categories
    }
    alt = Counter(s for s, _ in graph.subject_objects(SKOS.altLabel))
    assert sum(alt.values()) == len(synonyms)
    assert alt == Counter(term_uri(s.term_slug) for s in synonyms)
    assert {(s, o) for s, o in graph.subject_objects(SKOS.related)} == {
        (term_uri(r.term_slug), term_uri(r.related_slug)) for r in related
    }
    broader = {(s, o) for s, o in graph.subject_objects(SKOS.broader)}
    assert broader == {(term_uri(t.slug), category_uri(t.category_slug)) for t in terms}
    narrower = {(o, s) for s, o in graph.subject_objects(SKOS.narrower)}
    assert narrower == broader
    definitions = dict(graph.subject_objects(SKOS.definition))
    assert all(definitions[term_uri(t.slug)] == Literal(t.summary, lang="en") for t in terms)
    scope = list(graph.subjects(SKOS.scopeNote, None))
    history = list(graph.subjects(SKOS.historyNote, None))
    assert len(scope) == len(set(scope)) == sum(1 for t in terms if t.usage_note.strip())
    assert len(history) == len(set(history)) == sum(1 for t in terms if t.background.strip())


def test_skos_goes_through_the_response_cache(client: TestClient) -> None:
    first = client.get("/api/glossary/skos.ttl")
    again = client.get("/api/glossary/skos.ttl", headers={"If-None-Match": first.headers["etag"]})
    assert again.status_code == 304


JSONLD_DIGEST = """
import hashlib, sys
from sqlmodel import Session
from app import db
from app.glossary.skos import skos_jsonld
with Session(db.make_engine(sys.argv[1], read_only=True)) as session:
    print(hashlib.sha256(skos_jsonld(session, "http://x/").encode()).hexdigest())
"""


def test_skos_jsonld_bytes_do_not_depend_on_the_process(client: TestClient) -> None:
    """rdflib orders JSON-LD by hashes that change per process; the same content must give
    the same bytes (and ETag) in every web process."""
    database_url = client.app.state.settings.database_url  # type: ignore[attr-defined]
    digests = {
        subprocess.run(
            [sys.executable, "-c", JSONLD_DIGEST, database_url],
            env={**os.environ, "PYTHONHASHSEED": seed},
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
            timeout=PATIENCE_S,
        ).stdout
        for seed in ("1", "2", "3")
    }
    assert len(digests) == 1, digests


def test_skos_formats_carry_the_same_triples(skos_graphs: dict[str, Graph]) -> None:
    turtle, jsonld = (set(skos_graphs[path]) for path in SKOS_FORMATS)
    assert turtle == jsonld


def test_one_skos_concept_in_detail(client: TestClient, skos_graphs: dict[str, Graph]) -> None:
    view = client.get("/api/terms/residual-connection").json()
    node = term_uri("residual-connection")
    for graph in skos_graphs.values():
        assert set(graph.objects(node, SKOS.prefLabel)) == {Literal(view["title"], lang="en")}
        assert set(graph.objects(node, SKOS.altLabel)) == {
            Literal(name, lang="en") for name in view["synonyms"]
        }
        assert len(view["synonyms"]) >= 2
        assert set(graph.objects(node, SKOS.definition)) == {Literal(view["summary"], lang="en")}
        assert set(graph.objects(node, SKOS.related)) == {
            URIRef(BASE + ref["url"]) for ref in view["related"]
        }
        assert set(graph.objects(node, SKOS.broader)) == {URIRef(BASE + view["category"]["url"])}
        assert node in set(graph.objects(URIRef(BASE + view["category"]["url"]), SKOS.narrower))
        # The notes are plain text: the words the page shows, no markup left.
        for predicate, field in ((SKOS.scopeNote, "usage_note"), (SKOS.historyNote, "background")):
            (note,) = graph.objects(node, predicate)
            assert isinstance(note, Literal) and note.language == "en"
            assert " ".join(str(note).split()) == html_text(view[f"{field}_html"])
            assert not re.search(r"<|\[\[|\*\*", str(note))
        assert set(graph.predicate_objects(node)) >= {(RDF.type, SKOS.Concept)}


# --- sitemap.xml and robots.txt -------------------------------------------------------------


def sitemap_entries(client: TestClient) -> list[tuple[str, str | None]]:
    response = client.get("/sitemap.xml")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/xml")
    root = ET.fromstring(response.content)  # noqa: S314  (our own document)
    assert root.tag == f"{SITEMAP}urlset"
    return [
        (url.findtext(f"{SITEMAP}loc") or "", url.findtext(f"{SITEMAP}lastmod"))
        for url in root.iter(f"{SITEMAP}url")
    ]


def test_sitemap_lists_every_page_once(client: TestClient) -> None:
    entries = sitemap_entries(client)
    locations = [loc for loc, _ in entries]
    assert all(loc.startswith(BASE + "/") for loc in locations), locations[:3]
    paths = Counter(urlsplit(loc).path for loc in locations)
    assert all(count == 1 for count in paths.values()), paths.most_common(3)
    assert len(locations) == len(paths)
    db = tables(client)
    expected = {"/", "/terms", "/categories", "/organizations"}
    expected |= {f"/terms/{t.slug}" for t in db["terms"] if isinstance(t, Term)}
    expected |= {f"/categories/{c.slug}" for c in db["categories"] if isinstance(c, Category)}
    expected |= {
        f"/organizations/{o.slug}" for o in db["organizations"] if isinstance(o, Organization)
    }
    assert set(paths) == expected
    assert not any(urlsplit(loc).query for loc in locations)  # no search results, no filters
    loaded_at = client.get("/healthz").json()["loaded_at"]
    assert loaded_at and {lastmod for _, lastmod in entries} == {loaded_at}


def test_every_sitemap_url_answers(client: TestClient) -> None:
    for location, _ in sitemap_entries(client):
        response = client.get(location)
        assert response.status_code == 200, location
        assert response.headers["content-type"].startswith("text/html"), location


def test_robots_txt_names_the_sitemap_and_keeps_crawlers_off_compute(client: TestClient) -> None:
    response = client.get("/robots.txt")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/plain; charset=utf-8"
    assert f"\nSitemap: {BASE}/sitemap.xml\n" in response.text
    robots = RobotFileParser()
    robots.parse(response.text.splitlines())
    assert robots.site_maps() == [f"{BASE}/sitemap.xml"]
    for location, _ in sitemap_entries(client):
        assert robots.can_fetch("AnyBot", location), location
    for allowed in ("/terms/adam.md", "/llms.txt", "/api/terms/adam", "/static/x"):
        assert robots.can_fetch("AnyBot", BASE + allowed), allowed
    for refused in (
        "/api/demo?preset=residual-vs-plain",
        "/api/demo/stream?preset=residual-vs-plain",
        "/api/search?q=adam",
        "/search?q=adam",
        "/search",
        "/embed/demo/residual-vs-plain",
        "/mcp",
    ):
        assert not robots.can_fetch("AnyBot", BASE + refused), refused


# --- llms.txt and the Markdown twins ------------------------------------------------------


def llms_links(client: TestClient) -> dict[str, list[tuple[str, str, str]]]:
    """llms.txt's link lists under their H2 headings: (text, url, description)."""
    response = client.get("/llms.txt")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/plain; charset=utf-8"
    lines = response.text.splitlines()
    assert lines[0] == "# Glossary Lab" and lines[1] == "" and lines[2].startswith("> ")
    sections: dict[str, list[tuple[str, str, str]]] = {}
    heading = None
    for line in lines[3:]:
        if line.startswith("## "):
            heading = line[3:]
            sections[heading] = []
        elif line.startswith("- "):
            match = re.fullmatch(r"- \[(.+?)\]\((\S+?)\)(?:: (.*))?", line)
            assert match and heading, line
            sections[heading].append((match[1], match[2], match[3] or ""))
        else:
            assert not line.startswith("#"), line  # only H1 and H2, as llmstxt.org says
    return sections


def test_llms_txt_lists_every_term_once_under_its_category(client: TestClient) -> None:
    sections = llms_links(client)
    db = tables(client)
    titles = {c.slug: c.title for c in db["categories"] if isinstance(c, Category)}
    terms = terms_of(client)
    listed = [url for name, links in sections.items() if name != "Optional" for _, url, _ in links]
    assert len(listed) == len(set(listed)) == len(terms)
    for term in terms:
        entry = (term.title, f"{BASE}/terms/{term.slug}.md", term.summary)
        assert entry in sections[titles[term.category_slug]], term.slug
    for _, url, _ in sections["Optional"]:
        assert client.get(url).status_code == 200, url


def test_every_term_has_a_markdown_twin(client: TestClient) -> None:
    """Through llms.txt's links: each answers, with the entry's title, summary and names."""
    synonyms: dict[str, list[str]] = {}
    for synonym in tables(client)["synonyms"]:
        assert isinstance(synonym, Synonym)
        synonyms.setdefault(synonym.term_slug, []).append(synonym.name)
    by_url = {f"{BASE}/terms/{t.slug}.md": t for t in terms_of(client)}
    for name, links in llms_links(client).items():
        for _, url, _ in links if name != "Optional" else []:
            response = client.get(url)
            assert response.status_code == 200, url
            assert response.headers["content-type"] == "text/markdown; charset=utf-8"
            term = by_url[url]
            text = response.text
            assert text.startswith(f"# {term.title}\n\n> {term.summary}\n"), url
            for synonym in synonyms.get(term.slug, []):
                assert synonym in text, (url, synonym)
            assert "[[" not in text, url
            if term.formula:
                assert f"$$\n{term.formula.strip()}\n$$" in text, url


def test_markdown_twin_in_detail(client: TestClient) -> None:
    view = client.get("/api/terms/residual-connection").json()
    text = client.get("/terms/residual-connection.md").text
    assert f"- Also called: {', '.join(view['synonyms'])}" in text
    work = view["introduced_in"]
    assert f"[{work['title']}]({work['url']})" in text and str(work["year"]) in text
    assert f"This entry as a web page: {BASE}/terms/residual-connection\n" in text
    assert f"This entry as JSON: {BASE}/api/terms/residual-connection\n" in text
    # Each text section is the entry's own Markdown, its [[links]] now links to other twins.
    assert "`y = x + F(x)`" in text
    assert view["definition"].count("[[") >= 3
    sections = {"Definition": "definition", "Background": "background"}
    sections["How the word is used"] = "usage_note"
    for heading, field in sections.items():
        section = text.split(f"\n## {heading}\n\n", 1)[1].split("\n## ", 1)[0]
        assert section.split("\n\n$$\n")[0].strip() == with_twin_links(client, view[field])


def with_twin_links(client: TestClient, markdown: str) -> str:
    """[[slug]] and [[slug|text]] as links to the twins, titles read from the JSON API."""

    def replace(match: re.Match[str]) -> str:
        slug, label = match[1], match[2]
        title = client.get(f"/api/terms/{slug}").json()["title"]
        return f"[{label or title}]({BASE}/terms/{slug}.md)"

    return re.sub(r"\[\[([a-z0-9-]+)(?:\|([^\]|]+))?\]\]", replace, markdown.strip())


def test_markdown_twin_sections(client: TestClient) -> None:
    view = client.get("/api/terms/residual-connection").json()
    text = client.get("/terms/residual-connection.md").text
    for heading in ("Definition", "Background", "How the word is used", "Related terms"):
        assert f"\n## {heading}\n" in text
    for ref in view["related"]:
        assert f"- [{ref['title']}]({BASE}/terms/{ref['slug']}.md): {ref['summary']}" in text
    experiment = view["experiment"]
    assert f"[{experiment['title']}]({BASE}/terms/residual-connection#demo)" in text
    assert all(claim["statement"] in text for claim in experiment["claims"])
    # Every link to this site resolves.
    ours = [url for _, url in MARKDOWN_LINK.findall(text) if url.startswith(BASE)]
    ours += re.findall(rf"{re.escape(BASE)}/\S+", text)
    assert len(ours) > 20
    for url in set(ours):
        url = url.strip("<>").rstrip(").,:")
        assert client.get(url.split("#")[0]).status_code == 200, url


def test_markdown_twin_links_resolve_in_a_sample(client: TestClient) -> None:
    terms = sorted(terms_of(client), key=lambda t: t.slug)
    checked = set()
    for term in terms[::40]:
        text = client.get(f"/terms/{term.slug}.md").text
        for _, url in MARKDOWN_LINK.findall(text):
            url = url.strip("<>")
            if url.startswith(BASE) and url not in checked:
                checked.add(url)
                assert client.get(url.split("#")[0]).status_code == 200, (term.slug, url)
    assert len(checked) > 50


def test_markdown_twin_redirects_and_404(client: TestClient) -> None:
    for asked in ("skip-connection", "Residual-Connection"):
        response = client.get(f"/terms/{asked}.md")
        assert response.status_code == 301, asked
        assert response.headers["location"] == "/terms/residual-connection.md"
    missing = client.get("/terms/no-such-term-at-all.md")
    assert missing.status_code == 404
    assert missing.headers["content-type"].startswith("text/html")


def test_term_page_links_its_markdown_twin(client: TestClient) -> None:
    page = client.get("/terms/residual-connection").text
    assert '<link rel="alternate" type="text/markdown" href="/terms/residual-connection.md">' in (
        page
    )
    assert '<link rel="alternate" type="application/json"' in page


def test_exports_are_documented_with_their_media_types(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    documented = {
        "/api/glossary/skos.ttl": "text/turtle",
        "/api/glossary/skos.jsonld": "application/ld+json",
        "/sitemap.xml": "application/xml",
        "/robots.txt": "text/plain",
        "/llms.txt": "text/plain",
        "/terms/{slug}.md": "text/markdown",
    }
    for path, media_type in documented.items():
        assert list(paths[path]["get"]["responses"]["200"]["content"]) == [media_type], path
