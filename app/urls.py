"""Every URL the app links or redirects to is built here, and nowhere else.

A page's JSON twin is the same path under /api (the home page's is /api/home): `api()`
applies that rule, for the routes that register twins (app/routes/twins.py) as for links.
Templates reach these functions as the `urls` global.
"""

from urllib.parse import parse_qsl, quote, urlencode

API_PREFIX = "/api"


def api(path: str) -> str:
    """The JSON twin of a page path: /terms/x -> /api/terms/x, and / -> /api/home."""
    return API_PREFIX + ("/home" if path == "/" else path)


def json_twin(path: str, query: str = "", page_defaults: dict[str, int] | None = None) -> str:
    """The JSON twin of a page as it was asked for: the path under /api, the same query, and
    each page default the query leaves out spelled out (so the JSON is what the page shows)."""
    asked = {name for name, _ in parse_qsl(query, keep_blank_values=True)}
    spelled = urlencode({k: v for k, v in (page_defaults or {}).items() if k not in asked})
    return with_query(api(path), "&".join(part for part in (spelled, query) if part))


def is_api(path: str) -> bool:
    """Whether a request path is under /api (its errors are JSON, not a page)."""
    return path == API_PREFIX or path.startswith(API_PREFIX + "/")


def with_query(path: str, query: str | dict[str, str | int | None]) -> str:
    """A path with a query string: a raw one as received, or parameters (None ones left out)."""
    if not isinstance(query, str):
        query = urlencode({k: v for k, v in query.items() if v is not None})
    return f"{path}?{query}" if query else path


def absolute(base_url: str, path: str) -> str:
    """A path on this site as an absolute URL (JSON-LD, OpenSearch and suggestions need them)."""
    return base_url.rstrip("/") + path


def _segment(value: str) -> str:
    return quote(value, safe="")


def home() -> str:
    return "/"


def terms(category: str | None = None) -> str:
    """The A-Z index, whole or of one category."""
    return with_query("/terms", {"category": category})


def term(slug: str) -> str:
    return f"/terms/{_segment(slug)}"


def categories() -> str:
    return "/categories"


def category(slug: str) -> str:
    return f"/categories/{_segment(slug)}"


def organizations() -> str:
    return "/organizations"


def organization(slug: str) -> str:
    return f"/organizations/{_segment(slug)}"


def illustration(file: str) -> str:
    return f"/illustrations/{_segment(file)}"


def search(
    query: str | None = None,
    *,
    category: str | None = None,
    limit: int | None = None,
    offset: int | None = None,
) -> str:
    """The search page; without arguments, the action of the search forms."""
    return with_query(
        "/search", {"q": query, "category": category, "limit": limit, "offset": offset or None}
    )


def suggest() -> str:
    return api("/suggest")


def glossary() -> str:
    """The whole glossary as schema.org JSON-LD."""
    return api("/glossary")


def opensearch() -> str:
    return "/opensearch.xml"


def docs() -> str:
    return "/docs"


def openapi() -> str:
    return "/openapi.json"


def demo_catalog() -> str:
    return api("/demo/presets")


def demo_result(experiment: str | None = None) -> str:
    """One experiment's result as JSON; without a name, the route the panel adds its query to."""
    return with_query(api("/demo"), {"preset": experiment})


def demo_stream() -> str:
    return api("/demo/stream")
