"""app/urls.py is the one place links are built: every URL it builds is one the app
answers, and every page has its JSON twin where the API documents it."""

from fastapi.routing import APIRoute
from fastapi.testclient import TestClient

from app import urls
from app.routes import glossary, search


def test_every_url_built_is_answered(client: TestClient) -> None:
    built = [
        urls.home(),
        urls.terms(),
        urls.terms(category="prompting"),
        urls.term("residual-connection"),
        urls.categories(),
        urls.category("prompting"),
        urls.organizations(),
        urls.organization("openai"),
        urls.illustration("residual-connection.svg"),
        urls.search("skip connection", category="model-architecture", limit=5, offset=0),
        urls.suggest(),
        urls.glossary(),
        urls.opensearch(),
        urls.docs(),
        urls.openapi(),
    ]
    for url in built:
        response = client.get(url)
        assert response.status_code == 200, (url, response.text[:200])
    assert urls.search("a b", limit=5, offset=10) == "/search?q=a+b&limit=5&offset=10"
    assert urls.json_twin("/terms", "category=x", {"limit": 500}) == (
        "/api/terms?limit=500&category=x"
    )
    assert urls.json_twin("/terms", "limit=3", {"limit": 500}) == "/api/terms?limit=3"


# Each page and its JSON twin, as the README and the OpenAPI document name them.
TWINS = {
    "/": "/api/home",
    "/terms": "/api/terms",
    "/terms/{slug}": "/api/terms/{slug}",
    "/categories": "/api/categories",
    "/categories/{slug}": "/api/categories/{slug}",
    "/organizations": "/api/organizations",
    "/organizations/{slug}": "/api/organizations/{slug}",
    "/search": "/api/search",
}


def test_every_page_has_its_json_twin_registered() -> None:
    routes = [
        r for r in (*glossary.router.routes, *search.router.routes) if isinstance(r, APIRoute)
    ]
    by_name = {r.name: r.path for r in routes}
    pages = {r.path: r.name for r in routes if not r.include_in_schema and r.name.endswith("_page")}
    assert set(pages) == set(TWINS)
    for page, twin in TWINS.items():
        assert by_name[pages[page].removesuffix("_page")] == twin, page
