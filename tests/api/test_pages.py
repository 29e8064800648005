"""HTML pages, parsed (not substring soup)."""

import json
import re
import tomllib

from bs4 import BeautifulSoup
from fastapi.testclient import TestClient

from tests.conftest import ROOT


def soup(client: TestClient, url: str, status: int = 200) -> BeautifulSoup:
    response = client.get(url)
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    return BeautifulSoup(response.text, "html.parser")


def test_home(client: TestClient) -> None:
    page = soup(client, "/")
    assert page.find("form", attrs={"role": "search"}).find("input", attrs={"name": "q"})
    assert page.select(".category-card a")
    letters = [a.get_text(strip=True)[0] for a in page.select(".letter-strip a")]
    assert "R" in letters
    assert page.select_one(".featured__card a")["href"] == "/terms/residual-connection"


def test_term_page_has_every_section(client: TestClient) -> None:
    page = soup(client, "/terms/residual-connection")
    assert page.h1.get_text(strip=True) == "Residual Connection"
    headings = [h.get_text(strip=True) for h in page.select("article h2")]
    for wanted in ("Definition", "Background", "How the word is used", "Who works on it"):
        assert wanted in headings
    assert headings[-1] == "Read more"
    demo = client.get("/api/demo/presets").json()
    title = next(e["title"] for e in demo if e["name"] == "residual-vs-plain")
    assert f"Live experiment: {title}" in headings
    chips = [c.get_text(strip=True) for c in page.select(".term__synonyms .chip")]
    assert "Skip connection" in chips
    related = page.select(".related-list li")
    assert related and all(li.p.get_text(strip=True) for li in related)
    org_links = [a["href"] for a in page.select(".org-notes a")]
    assert "/organizations/microsoft-research" in org_links
    assert page.select_one("figure.formula math") is not None
    ld = json.loads(page.find("script", attrs={"type": "application/ld+json"}).string)
    assert ld["@type"] == "DefinedTerm" and ld["name"] == "Residual Connection"
    assert "Skip connection" in ld["alternateName"]
    assert ld["inDefinedTermSet"]["@type"] == "DefinedTermSet"
    assert page.select_one("#demo")["data-preset"] == "residual-vs-plain"


# A [[slug]] or [[slug|label]] link in an entry's Markdown, read straight from the files.
WIKILINK = re.compile(r"\[\[([a-z0-9-]+)(?:\|[^\]]*)?\]\]")


def links_in_the_files() -> dict[str, set[str]]:
    """Oracle from data/terms/*.toml: slug -> the other entries whose text links to it."""
    mentioned_by: dict[str, set[str]] = {}
    for path in sorted((ROOT / "data" / "terms").glob("*.toml")):
        entry = tomllib.loads(path.read_text())
        body = "\n".join(entry.get(f, "") for f in ("definition", "background", "usage_note"))
        for target in set(WIKILINK.findall(body)) - {path.stem}:
            mentioned_by.setdefault(target, set()).add(path.stem)
    return mentioned_by


def test_backlinks_are_the_entries_whose_text_links_here(client: TestClient) -> None:
    mentioned_by = links_in_the_files()
    assert len(mentioned_by) >= 20, "the corpus hardly links its entries"
    # ResNet is linked from several entries; its page and its JSON list exactly those
    resnet = mentioned_by["resnet"]
    assert len(resnet) >= 3, resnet
    api = client.get("/api/terms/resnet").json()["backlinks"]
    assert {t["slug"] for t in api} == resnet
    page = soup(client, "/terms/resnet")
    shown = [a["href"] for a in page.select(".backlinks a")]
    assert sorted(shown) == sorted(f"/terms/{slug}" for slug in resnet)
    # and every entry's backlinks are those the files say, no more, no fewer
    terms = client.get("/api/terms?limit=500").json()["items"]
    assert terms
    for term in terms:
        backlinks = client.get(f"/api/terms/{term['slug']}").json()["backlinks"]
        expected = mentioned_by.get(term["slug"], set())
        assert {t["slug"] for t in backlinks} == expected, term["slug"]
        titles = [t["title"].lower() for t in backlinks]
        assert titles == sorted(titles), term["slug"]


def test_backlinks_in_a_small_corpus(small_client: TestClient) -> None:
    """The factory corpus: only Residual Connection's text links ResNet."""
    backlinks = small_client.get("/api/terms/resnet").json()["backlinks"]
    assert [t["slug"] for t in backlinks] == ["residual-connection"]
    page = soup(small_client, "/terms/resnet")
    assert [a["href"] for a in page.select(".backlinks a")] == ["/terms/residual-connection"]
    assert small_client.get("/api/terms/layer-normalization").json()["backlinks"] == []
    assert soup(small_client, "/terms/layer-normalization").select(".backlinks") == []


def test_index_grouped_by_letter_and_filtered(client: TestClient) -> None:
    page = soup(client, "/terms")
    groups = page.select("section.letter-group")
    assert len(groups) >= 5
    for group in groups:
        letter = group.h2.get_text(strip=True)
        titles = [a.get_text(strip=True) for a in group.select(".term-card__title")]
        assert all(t[0].upper() == letter for t in titles if t[0].isalpha())
    filtered = soup(client, "/terms?category=prompting")
    titles = {a.get_text(strip=True) for a in filtered.select(".term-card__title")}
    api = client.get("/api/terms?category=prompting&limit=500").json()
    assert titles == {t["title"] for t in api["items"]}


def test_category_and_organization_pages(client: TestClient) -> None:
    page = soup(client, "/categories/model-architecture")
    assert page.h1.get_text(strip=True) == "Model architecture"
    org = soup(client, "/organizations/microsoft-research")
    assert org.h1.get_text(strip=True) == "Microsoft Research"
    assert any(a["href"] == "/terms/residual-connection" for a in org.select(".org-terms a"))


def test_404_page_offers_closest_titles(client: TestClient) -> None:
    page = soup(client, "/terms/residul-conection", 404)
    assert page.h1.get_text(strip=True) == "Page not found"
    offered = [a["href"] for a in page.select(".term-card__title")]
    assert "/terms/residual-connection" in offered
    assert soup(client, "/no/such/page", 404).h1.get_text(strip=True) == "Page not found"


def test_markdown_links_resolve(client: TestClient) -> None:
    page = soup(client, "/terms/residual-connection")
    links = page.select(".prose a.term-link")
    assert links
    for link in links:
        assert client.get(link["href"]).status_code == 200


def test_illustration_served_as_svg(client: TestClient) -> None:
    page = soup(client, "/terms/residual-connection")
    img = page.select_one("figure.illustration img")
    assert img is not None and img["alt"]
    response = client.get(img["src"])
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("image/svg+xml")
    assert client.get("/illustrations/..%2Fcategories.toml").status_code == 404


def test_term_page_names_the_paper_that_introduced_it(client: TestClient) -> None:
    page = soup(client, "/terms/residual-connection")
    origin = page.select_one(".term__origin")
    assert origin is not None
    text = origin.get_text(" ", strip=True)
    assert "Introduced in Deep Residual Learning for Image Recognition" in text
    assert "He, Zhang, Ren, Sun, 2015" in text
    assert origin.a is not None and origin.a["href"] == "https://arxiv.org/abs/1512.03385"
    assert soup(client, "/terms/epoch").select_one(".term__origin") is None  # no single paper
