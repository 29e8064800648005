"""Experiment cards (/embed/demo/{preset}) and oEmbed (/oembed), over the real corpus.

The card is read as a reader's browser gets it: the panel's data attributes demo.js boots
from, the settings it lists, the credit link; its headers let any site frame it while every
other page refuses to be framed. oEmbed answers are checked field by field, and the iframe
they carry is parsed and followed to a card that renders."""

from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from bs4 import BeautifulSoup, Tag
from fastapi.testclient import TestClient
from httpx2 import Response

from app.demo.catalog import EXPERIMENTS
from app.glossary.embed import CARD_HEIGHT, CARD_WIDTH

BASE = "http://testserver"  # the TestClient's origin: the URLs oEmbed calls ours
CARD = "/embed/demo/residual-vs-plain"


def page(response: Response) -> BeautifulSoup:
    return BeautifulSoup(response.text, "html.parser")


def panel(soup: BeautifulSoup) -> Tag:
    found = soup.select("#demo")
    assert len(found) == 1, found
    return found[0]


def oembed(client: TestClient, url: str, **extra: str | int) -> Response:
    return client.get("/oembed", params={"url": url, "format": "json", **extra})


def iframe_of(answer: dict[str, object]) -> Tag:
    frames = BeautifulSoup(str(answer["html"]), "html.parser").find_all("iframe")
    assert len(frames) == 1, answer["html"]
    return frames[0]


# ----------------------------------------------------------------------------- the card


def test_card_prefills_its_settings_and_locks_what_it_names(client: TestClient) -> None:
    response = client.get(CARD, params={"depth": "12", "activation": "ReLU", "lock": "depth"})
    assert response.status_code == 200, response.text[:300]
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    soup = page(response)
    demo = panel(soup)
    assert demo["data-preset"] == "residual-vs-plain"
    assert "data-embed" in demo.attrs
    # validated values, as the API canonicalizes them (choices fold to lower case)
    assert parse_qs(str(demo["data-initial"])) == {"depth": ["12"], "activation": ["relu"]}
    assert demo["data-lock"] == "depth"
    settings = {li["data-param"]: li for li in demo.select(".demo__settings li")}
    shown = {name: li.select_one("strong").get_text() for name, li in settings.items()}  # type: ignore[union-attr]
    assert (shown["depth"], shown["activation"], shown["width"]) == ("12", "relu", "64")
    assert "data-locked" in settings["depth"].attrs
    assert "data-locked" not in settings["activation"].attrs
    # the panel alone: no site header, search form or footer
    assert not soup.select(".site-header, .site-footer, form.header-search")
    assert soup.select_one("script[src^='/static/js/demo.js']") is not None


def test_card_credits_its_term_page_in_a_new_tab(client: TestClient) -> None:
    credit = page(client.get(CARD)).select_one(".embed__credit a")
    assert credit is not None
    assert credit["href"] == "/terms/residual-connection"
    assert credit["target"] == "_blank" and credit["rel"] == ["noopener"]
    assert "Glossary Lab: Residual Connection" in credit.get_text()
    assert client.get(str(credit["href"])).status_code == 200


def test_lock_all_locks_every_parameter(client: TestClient) -> None:
    demo = panel(page(client.get(CARD, params={"lock": "all"})))
    names = [p["name"] for p in EXPERIMENTS["residual-vs-plain"].catalog_entry()["params"]]
    assert str(demo["data-lock"]).split(",") == names
    assert len(demo.select(".demo__settings li[data-locked]")) == len(names)


@pytest.mark.parametrize(
    ("path", "query", "status", "words"),
    [
        (CARD, {"depth": "1000"}, 422, "depth"),
        (CARD, {"depth": "deep"}, 422, "depth"),
        (CARD, {"temperature": "2"}, 422, "temperature"),  # another experiment's parameter
        (CARD, {"lock": "depth,colour"}, 422, "colour"),
        ("/embed/demo/no-such-experiment", {}, 404, "no-such-experiment"),
    ],
)
def test_bad_cards_get_the_friendly_error_page(
    client: TestClient, path: str, query: dict[str, str], status: int, words: str
) -> None:
    response = client.get(path, params=query)
    assert response.status_code == status, response.text[:300]
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    soup = page(response)
    assert words in soup.select_one("p.lead").get_text()  # type: ignore[union-attr]
    assert "Traceback" not in response.text


def test_only_embeds_may_be_framed(client: TestClient) -> None:
    for response in (client.get(CARD), client.get("/embed/demo/no-such-experiment")):
        assert "frame-ancestors *" in response.headers["content-security-policy"]
        assert "x-frame-options" not in response.headers
    term = client.get("/terms/residual-connection")
    assert "frame-ancestors 'none'" in term.headers["content-security-policy"]
    assert term.headers["x-frame-options"] == "DENY"


# ----------------------------------------------------------------------------- oEmbed


def test_oembed_for_a_term_page_frames_its_card(client: TestClient) -> None:
    response = oembed(client, f"{BASE}/terms/residual-connection")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    assert response.headers["access-control-allow-origin"] == "*"
    answer = response.json()
    assert answer["version"] == "1.0" and answer["type"] == "rich"
    assert answer["provider_name"] == "Glossary Lab"
    assert answer["provider_url"] == f"{BASE}/"
    assert "Residual" in answer["title"]
    assert (answer["width"], answer["height"]) == (CARD_WIDTH, CARD_HEIGHT)
    assert isinstance(answer["cache_age"], int) and answer["cache_age"] > 0
    frame = iframe_of(answer)
    assert frame["src"] == f"{BASE}{CARD}"
    assert (frame["width"], frame["height"]) == (str(CARD_WIDTH), str(CARD_HEIGHT))
    assert frame["title"] == answer["title"]
    card = client.get(str(frame["src"]).removeprefix(BASE))
    assert card.status_code == 200
    assert "frame-ancestors *" in card.headers["content-security-policy"]


def test_oembed_keeps_a_cards_settings_and_obeys_the_size_limits(client: TestClient) -> None:
    asked = f"{BASE}{CARD}?{urlencode({'depth': '8', 'lock': 'depth,width'})}"
    answer = oembed(client, asked, maxwidth=300, maxheight=1000).json()
    assert (answer["width"], answer["height"]) == (300, CARD_HEIGHT)
    frame = iframe_of(answer)
    assert (frame["width"], frame["height"]) == ("300", str(CARD_HEIGHT))
    src = urlsplit(str(frame["src"]))
    assert src.path == CARD
    assert parse_qs(src.query) == {"depth": ["8"], "lock": ["depth,width"]}
    # the raw markup escapes the query's ampersand inside the attribute
    assert "depth=8&amp;lock=depth%2Cwidth" in answer["html"]


def test_oembed_follows_term_permalinks_and_synonyms(client: TestClient) -> None:
    def framed(url: str) -> tuple[str, dict[str, list[str]]]:
        response = oembed(client, url)
        assert response.status_code == 200, response.text
        src = urlsplit(str(iframe_of(response.json())["src"]))
        return src.path, parse_qs(src.query)

    assert framed(f"{BASE}/terms/residual-connection?depth=12#demo") == (CARD, {"depth": ["12"]})
    assert framed(f"{BASE}/terms/skip-connection") == (CARD, {})  # a synonym's URL
    assert framed(f"{BASE}/terms/dropout") == ("/embed/demo/dropout", {})
    # the panel's permalink to another experiment than the page's own
    other = f"{BASE}/terms/dropout?demo=residual-vs-plain&steps=50"
    assert framed(other) == (CARD, {"steps": ["50"]})


@pytest.mark.parametrize(
    ("params", "status"),
    [
        ({"url": f"{BASE}/terms/residual-connection", "format": "xml"}, 501),
        ({"url": "https://example.org/terms/residual-connection"}, 404),  # not ours
        ({"url": f"{BASE}/terms/accuracy"}, 404),  # no experiment of its own
        ({"url": f"{BASE}/terms/no-such-term"}, 404),
        ({"url": f"{BASE}/categories"}, 404),
        ({"url": f"{BASE}{CARD}?depth=1000"}, 422),
        ({"url": "/terms/residual-connection"}, 422),  # not absolute
        ({}, 422),  # missing
        ({"url": f"{BASE}/terms/residual-connection", "maxwidth": "0"}, 422),
    ],
)
def test_oembed_errors_are_json(client: TestClient, params: dict[str, str], status: int) -> None:
    response = client.get("/oembed", params=params)
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert body["status"] == status and body["message"]


def test_term_pages_link_their_oembed_only_when_they_have_an_experiment(
    client: TestClient,
) -> None:
    soup = page(client.get("/terms/residual-connection"))
    links = soup.select('link[rel="alternate"][type="application/json+oembed"]')
    assert len(links) == 1
    assert links[0]["title"]
    answer = client.get(str(links[0]["href"]).removeprefix(BASE))
    assert answer.status_code == 200
    assert urlsplit(str(iframe_of(answer.json())["src"])).path == CARD
    # the JSON twin's link is still the only plain application/json alternate
    assert len(soup.select('link[rel="alternate"][type="application/json"]')) == 1
    accuracy = client.get("/terms/accuracy")
    assert accuracy.status_code == 200
    assert panel(page(accuracy))  # it shows the default experiment, not one of its own
    assert not page(accuracy).select('link[type="application/json+oembed"]')


def test_panel_offers_the_script_download_url(client: TestClient) -> None:
    demo = panel(page(client.get("/terms/residual-connection")))
    assert demo["data-script"] == "/api/demo/script"
    assert "data-embed" not in demo.attrs
