"""HTML pages, parsed (not substring soup)."""

import json

from bs4 import BeautifulSoup
from fastapi.testclient import TestClient


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
    for wanted in (
        "Definition",
        "Background",
        "How the word is used",
        "Live experiment",
        "Who works on it",
        "Read more",
    ):
        assert wanted in headings
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


def test_backlinks_come_from_text_links(client: TestClient) -> None:
    page_json = client.get("/api/terms/resnet").json()
    mentioning = {t["slug"] for t in page_json["backlinks"]}
    for slug in mentioning:
        text = client.get(f"/api/terms/{slug}").json()
        assert "[[resnet" in text["definition"] + text["background"] + text["usage_note"]


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
