"""Datasette-style twin contract: every HTML page names its JSON twin with
<link rel="alternate">, and what the page SHOWS (parsed from its HTML) is what that JSON says.

The page is never compared with the view object its template was given (that would compare
the builder with itself): each checker below reads titles, summaries, synonyms, links,
counts, notes and categories out of the markup a reader sees, and compares them with the
JSON twin's fields one by one. A template that shows the wrong field fails here."""

import json
import re
import unicodedata
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import urlsplit

from bs4 import BeautifulSoup, Tag
from fastapi.testclient import TestClient

Json = dict[str, Any]
Seen = Counter[str]


# ---------------------------------------------------------------- reading the page


def text(node: Tag | None) -> str:
    """What a reader sees in an element: its text, whitespace collapsed."""
    assert node is not None, "element missing"
    return " ".join(node.get_text().split())


def fragment_text(html: str) -> str:
    """The text an HTML fragment from the JSON (a *_html field) shows once rendered."""
    return text(BeautifulSoup(f"<div>{html}</div>", "html.parser").div)


def one(page: Tag, selector: str) -> Tag:
    found = page.select(selector)
    assert len(found) == 1, (selector, len(found))
    return found[0]


def none(page: Tag, selector: str) -> None:
    assert page.select(selector) == [], f"{selector} shown but the JSON has nothing for it"


def href(node: Tag) -> str:
    value = node.get("href")
    assert isinstance(value, str), node
    return value


def attr(node: Tag, name: str) -> str:
    value = node.get(name)
    assert isinstance(value, str), (name, node)
    return value


def cards(nodes: Iterable[Tag]) -> list[tuple[str, str, str]]:
    """(title, link, summary) of each term card (the term_card macro)."""
    return [
        (text(one(c, ".term-card__title")), href(one(c, ".term-card__title")), text(c.p))
        for c in nodes
    ]


def refs(items: list[Json]) -> list[tuple[str, str, str]]:
    return [(t["title"], t["url"], t["summary"]) for t in items]


def plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def index_letter(title: str) -> str:
    """The A-Z letter a reader expects a title under (its first letter, accents dropped)."""
    first = unicodedata.normalize("NFKD", title.strip())[:1].upper()
    return first if first.isalpha() else "#"


def breadcrumbs(page: Tag) -> list[tuple[str, str | None]]:
    nav = one(page, "nav.breadcrumbs")
    return [(text(li), li.a["href"] if li.a else None) for li in nav.select("li")]  # type: ignore[misc]


def check_category_grid(page: Tag, categories: list[Json], seen: Seen) -> None:
    shown = [
        (
            text(one(card, ".category-card__title")),
            href(one(card, "a")),
            text(one(card, ".category-card__count")),
            text(card.p),
        )
        for card in page.select(".category-grid .category-card")
    ]
    assert shown == [
        (c["title"], c["url"], f"{c['term_count']} terms", c["description"]) for c in categories
    ]
    seen["category cards"] += len(shown)


# ---------------------------------------------------------------- one checker per page kind


def check_home(page: BeautifulSoup, view: Json, seen: Seen) -> None:
    assert text(one(page, ".hero .lead")).startswith(f"{view['term_count']} terms "), view
    featured = view["featured"]
    if featured:
        link = one(page, ".featured__card h3 a")
        assert (text(link), href(link)) == (featured["title"], featured["url"])
        assert text(one(page, ".featured__summary")) == featured["summary"]
        seen["featured"] += 1
    else:
        none(page, ".featured__card")
    letters = [(text(a), href(a)) for a in page.select(".letter-strip a")]
    assert letters == [
        (f"{item['letter']} ({item['count']} terms)", f"/terms#letter-{item['letter']}")
        for item in view["letters"]
    ]
    assert letters
    check_category_grid(page, view["categories"], seen)


def check_term_list(page: BeautifulSoup, view: Json, seen: Seen) -> None:
    active = next((c for c in view["categories"] if c["slug"] == view["category"]), None)
    heading = text(page.h1)
    assert heading == "All terms A–Z" + (f" in {active['title']}" if active else "")
    count = text(one(page, "main > p.subtle"))
    assert count.startswith(plural(view["total"], "term")), count
    # the filter offers every category with its count, and selects the active one
    options = [(attr(o, "value"), text(o)) for o in page.select("#category-filter option")]
    total = sum(c["term_count"] for c in view["categories"])
    assert options == [("", f"All categories ({total})")] + [
        (c["slug"], f"{c['title']} ({c['term_count']})") for c in view["categories"]
    ]
    selected = [attr(o, "value") for o in page.select("#category-filter option[selected]")]
    assert selected == ([view["category"]] if view["category"] else [])
    # every term, under its letter, in the JSON's order within each letter
    expected: dict[str, list[Json]] = defaultdict(list)
    for item in view["items"]:
        expected[index_letter(item["title"])].append(item)
    groups = page.select("section.letter-group")
    shown = {text(g.h2): cards(g.select(".term-card")) for g in groups}
    assert shown == {letter: refs(items) for letter, items in expected.items()}
    assert [text(g.h2) for g in groups] == sorted(expected)
    jump = [text(a) for a in page.select('nav[aria-label="Jump to letter"] a')]
    assert jump == sorted(expected)
    seen["index cards"] += sum(len(c) for c in shown.values())


def check_term(page: BeautifulSoup, view: Json, seen: Seen) -> None:
    assert text(one(page, "h1#term-title")) == view["title"]
    assert text(page.title).startswith(f"{view['title']} · ")
    assert attr(one(page, 'meta[name="description"]'), "content") == view["summary"]
    assert text(one(page, ".term__summary")) == view["summary"]
    # category: above the title and in the breadcrumbs
    category = one(page, ".term__category a")
    assert (text(category), href(category)) == (view["category"]["title"], view["category"]["url"])
    assert breadcrumbs(page) == [
        ("Home", "/"),
        (view["category"]["title"], view["category"]["url"]),
        (view["title"], None),
    ]
    # synonyms
    chips = [text(c) for c in page.select(".term__synonyms .chip")]
    assert chips == view["synonyms"]
    if not view["synonyms"]:
        none(page, ".term__synonyms")
    seen["synonyms"] += len(chips)
    # the three text sections, each under its own heading
    for section, field in (
        ("definition", "definition_html"),
        ("background", "background_html"),
        ("usage", "usage_note_html"),
    ):
        prose = one(page, f'section[aria-labelledby="{section}-heading"] .prose')
        assert text(prose) == fragment_text(view[field]), section
        assert text(prose), section
    # formula: MathML shown, TeX source folded under it
    if view["formula_mathml"]:
        figure = one(page, "figure.formula")
        assert figure.find("math") is not None
        assert text(one(figure, "code")) == view["formula"]
        seen["formulas"] += 1
    else:
        none(page, "figure.formula")
    # illustration
    if view["illustration"]:
        img = one(page, "figure.illustration img")
        assert (attr(img, "src"), attr(img, "alt")) == (
            view["illustration"]["url"],
            view["illustration"]["alt"],
        )
        assert text(one(page, "figure.illustration figcaption")) == view["illustration"]["caption"]
        seen["illustrations"] += 1
    else:
        none(page, "figure.illustration")
    # the work that introduced it: title, link, authors and year
    source = view["introduced_in"]
    if source is not None:
        origin = one(page, ".term__origin")
        assert text(one(origin, "cite")) == source["title"]
        assert href(one(origin, "a")) == source["url"]
        assert text(origin).endswith(f"({source['authors']}, {source['year']})")
        assert view["json_ld"]["citation"]["name"] == source["title"]
        seen["sources"] += 1
    else:
        none(page, ".term__origin")
        assert "citation" not in view["json_ld"]
    # organizations: name, link and what the note says
    orgs = [
        (text(one(li, ".org-notes__name")), href(one(li, ".org-notes__name")), text(li.span))
        for li in page.select(".org-notes li")
    ]
    assert orgs == [
        (o["name"], o["url"], fragment_text(o["note_html"])) for o in view["organizations"]
    ]
    seen["organization notes"] += len(orgs)
    # read more
    more = [(text(a), href(a)) for a in page.select(".read-more a")]
    assert more == [(link["title"], link["url"]) for link in view["read_more"]]
    # related terms: title, link, summary
    related = [(text(li.a), href(li.a), text(li.p)) for li in page.select(".related-list li")]  # type: ignore[arg-type]
    assert related == refs(view["related"])
    assert related, "a term page without related terms"
    seen["related"] += len(related)
    # backlinks: the terms that mention this one
    backlinks = [(text(a), href(a)) for a in page.select(".backlinks a")]
    assert backlinks == [(t["title"], t["url"]) for t in view["backlinks"]]
    if not view["backlinks"]:
        none(page, ".backlinks")
    seen["backlinks"] += len(backlinks)
    # the demo panel runs this entry's experiment, and says (even without JavaScript) what
    # it is and which published effects each run checks
    demo = one(page, "#demo")
    assert attr(demo, "data-preset") == view["demo_preset"]
    experiment = view.get("experiment")
    if experiment is not None:
        assert experiment["name"] == view["demo_preset"]
        assert text(one(demo, "#demo-heading")) == f"Live experiment: {experiment['title']}"
        intro = f"{experiment['description']} ({experiment['citation']})"
        assert text(one(demo, ".demo__intro")) == intro
        claims = [(attr(li, "data-claim"), text(li)) for li in demo.select(".claims .claim")]
        assert claims == [(c["id"], c["statement"]) for c in experiment["claims"]]
        assert claims, "an experiment that checks nothing"
        assert href(one(demo, ".demo__noscript a")) == experiment["api_url"]
        seen["experiments"] += 1
    # machine-readable copies of the same entry
    script = one(page, 'script[type="application/ld+json"]')
    assert json.loads(script.string or "") == view["json_ld"]
    assert attr(one(page, 'link[rel="canonical"]'), "href") == view["json_ld"]["url"]
    assert urlsplit(view["json_ld"]["url"]).path == view["url"]
    seen["terms"] += 1


def check_category_index(page: BeautifulSoup, view: Json, seen: Seen) -> None:
    assert text(page.h1) == "Categories"
    check_category_grid(page, view["categories"], seen)


def check_category(page: BeautifulSoup, view: Json, seen: Seen) -> None:
    assert text(page.h1) == view["title"]
    assert text(one(page, ".lead")) == view["description"]
    assert attr(one(page, 'meta[name="description"]'), "content") == view["description"]
    assert text(one(page, "main > p.subtle")).startswith(f"{view['term_count']} terms ")
    assert breadcrumbs(page)[-1] == (view["title"], None)
    shown = cards(page.select(".term-list .term-card"))
    assert shown == refs(view["terms"])
    assert len(shown) == view["term_count"] > 0
    seen["category terms"] += len(shown)


def check_organization_index(page: BeautifulSoup, view: Json, seen: Seen) -> None:
    shown = [
        (
            text(one(card, ".org-card__name")),
            href(one(card, ".org-card__name")),
            text(one(card, ".subtle")),
            text(card.p),
        )
        for card in page.select(".org-grid .org-card")
    ]
    assert shown == [
        (o["name"], o["url"], plural(o["term_count"], "term"), o["description"])
        for o in view["organizations"]
    ]
    assert shown
    seen["organization cards"] += len(shown)


def check_organization(page: BeautifulSoup, view: Json, seen: Seen) -> None:
    assert text(page.h1) == view["name"]
    assert text(one(page, ".lead")) == view["description"]
    website = one(page, "main a.external")
    assert (text(website), href(website)) == (view["website"], view["website"])
    assert breadcrumbs(page)[-1] == (view["name"], None)
    heading = [text(h) for h in page.select("main h2")]
    assert heading == [f"Its part in {plural(view['term_count'], 'term')}"]
    shown = [(text(li.a), href(li.a), text(li.p)) for li in page.select(".org-terms li")]  # type: ignore[arg-type]
    assert shown == [
        (t["term"]["title"], t["term"]["url"], fragment_text(t["note_html"])) for t in view["terms"]
    ]
    assert len(shown) == view["term_count"]
    seen["organization terms"] += len(shown)


FIELD_LABELS = {"title": "title", "synonyms": "synonym", "summary": "summary", "body": "text"}


def marks(html: str) -> list[str]:
    return [text(m) for m in BeautifulSoup(html, "html.parser").find_all("mark")]


def check_search(page: BeautifulSoup, view: Json, seen: Seen) -> None:
    assert attr(one(page, "#search-q"), "value") == view["query"]
    assert attr(one(page, "#header-q"), "value") == view["query"]
    status = page.select('main [role="status"]')
    if not view["query"]:
        assert status == [] and page.select(".search-hits") == []
        seen["empty search"] += 1
        return
    hits = page.select(".search-hits .search-hit")
    shown = []
    for li in hits:
        title = one(li, ".term-card__title")
        via = li.select_one(".search-hit__via")
        shown.append(
            (
                text(title),
                href(title),
                [text(m) for m in title.find_all("mark")],
                text(one(li, ".search-hit__snippet")),
                text(via) if via else None,
                text(one(li, ".search-hit__meta")),
            )
        )
    assert shown == [
        (
            fragment_text(h["title_html"]),
            h["url"],
            marks(h["title_html"]),
            fragment_text(h["snippet_html"]),
            f"{h['matched_synonym']} → {h['title']}" if h["matched_synonym"] else None,
            "Exact name"
            if h["exact"]
            else f"Matched in the {FIELD_LABELS.get(h['matched_field'], h['matched_field'])}",
        )
        for h in view["hits"]
    ]
    assert [fragment_text(h["title_html"]) for h in view["hits"]] == [
        h["title"] for h in view["hits"]
    ]
    corrected = page.select(".search-corrected a")
    if view["hits"]:
        assert attr(one(page, "ol.search-hits"), "start") == str(view["offset"] + 1)
        count = f"{view['total']}{'' if view['total_exact'] else '+'} result"
        assert text(one(page, 'main [role="status"]')).startswith(count)
        assert [text(a) for a in corrected] == (
            [view["corrected_query"]] if view["corrected_query"] else []
        )
        seen["search hits"] += len(shown)
        seen["synonym hits"] += sum(1 for h in view["hits"] if h["matched_synonym"])
        seen["corrected queries"] += len(corrected)
    else:
        assert text(one(page, 'main [role="status"]')).startswith("No entry matches")
        assert corrected == []
        assert cards(page.select("main .term-list .term-card")) == refs(view["did_you_mean"])
        seen["did you mean"] += len(view["did_you_mean"])
        seen["searches without hits"] += 1


# The twin's path says which page kind it is.
CHECKERS: list[tuple[re.Pattern[str], Callable[[BeautifulSoup, Json, Seen], None]]] = [
    (re.compile(r"/api/home"), check_home),
    (re.compile(r"/api/terms"), check_term_list),
    (re.compile(r"/api/terms/[^/]+"), check_term),
    (re.compile(r"/api/categories"), check_category_index),
    (re.compile(r"/api/categories/[^/]+"), check_category),
    (re.compile(r"/api/organizations"), check_organization_index),
    (re.compile(r"/api/organizations/[^/]+"), check_organization),
    (re.compile(r"/api/search"), check_search),
]

SEARCHES = [
    "/search",
    "/search?q=residual",
    "/search?q=skip+connection",
    "/search?q=LN",
    "/search?q=normalisation+layr",
    "/search?q=atention",
    "/search?q=gradient&offset=5&limit=5",
    "/search?q=gradient&category=prompting",
    "/search?q=%3Cmark%3E",
    "/search?q=attentionxyzq",
    "/search?q=zzzzqqq",
]


def page_urls(client: TestClient) -> list[str]:
    """Every page of the site: home, A-Z (whole and per category), each term, category and
    organization, and searches of each outcome."""
    terms = client.get("/api/terms?limit=500").json()["items"]
    categories = client.get("/api/categories").json()["categories"]
    orgs = client.get("/api/organizations").json()["organizations"]
    assert terms and categories and orgs
    return [
        "/",
        "/terms",
        *(f"/terms?category={c['slug']}" for c in categories),
        "/categories",
        *(c["url"] for c in categories),
        "/organizations",
        *(o["url"] for o in orgs),
        *(t["url"] for t in terms),
        *SEARCHES,
    ]


def test_every_page_shows_what_its_json_twin_says(client: TestClient) -> None:
    urls = page_urls(client)
    seen: Seen = Counter()
    checked: Counter[str] = Counter()
    mentions: dict[str, set[str]] = defaultdict(set)  # linked term URL -> URLs linking to it
    backlinks: dict[str, list[str]] = {}  # term URL -> its backlinks, as its page shows them
    for url in urls:
        response = client.get(url)
        assert response.status_code == 200, (url, response.text[:300])
        assert response.headers["content-type"] == "text/html; charset=utf-8", url
        page = BeautifulSoup(response.text, "html.parser")
        link = one(page, 'link[rel="alternate"][type="application/json"]')
        twin = client.get(href(link))
        assert twin.status_code == 200, (url, twin.text[:300])
        assert twin.headers["content-type"] == "application/json", url
        path = urlsplit(href(link)).path
        checker = next(check for pattern, check in CHECKERS if pattern.fullmatch(path))
        try:
            checker(page, twin.json(), seen)
        except AssertionError as error:
            raise AssertionError(f"{url} does not show what {href(link)} says: {error}") from error
        checked[checker.__name__] += 1
        if checker is check_term:
            backlinks[url] = [href(a) for a in page.select(".backlinks a")]
            for a in page.select(".prose a.term-link"):
                if href(a) != url:
                    mentions[href(a)].add(url)

    terms = client.get("/api/terms?limit=500").json()["total"]
    assert checked["check_term"] == terms
    assert checked["check_category"] == checked["check_term_list"] - 1 > 0
    assert checked["check_organization"] > 0 and checked["check_search"] == len(SEARCHES)
    assert checked["check_home"] == checked["check_category_index"] == 1
    # each kind of list was shown non-empty somewhere, so its comparison meant something
    for kind in (
        "synonyms",
        "related",
        "backlinks",
        "organization notes",
        "formulas",
        "illustrations",
        "sources",
        "experiments",
        "category terms",
        "organization terms",
        "index cards",
        "search hits",
        "synonym hits",
        "corrected queries",
        "did you mean",
        "searches without hits",
        "empty search",
    ):
        assert seen[kind] > 0, f"no page showed any {kind}"

    # "Terms that mention this" on every page lists exactly the pages whose text links to it
    assert mentions, "no entry's text links to another entry"
    for url, shown in backlinks.items():
        assert sorted(shown) == sorted(mentions.get(url, ())), url
