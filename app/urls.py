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
    """Whether a request path is an API whose errors are JSON, not a page: everything under
    /api, and oEmbed (at the path its consumers look for, outside /api)."""
    return path == API_PREFIX or path.startswith(API_PREFIX + "/") or path == oembed()


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


def term_markdown(slug: str) -> str:
    """A term page's Markdown twin, for readers that are language models."""
    return f"/terms/{_segment(slug)}.md"


def term_summary(slug: str) -> str:
    """A term in brief, in the shape of Wikipedia's page summary (previews, <gl-term>)."""
    return api(term(slug)) + "/summary"


def gl_term_module() -> str:
    """The <gl-term> custom element, one ES module other sites load."""
    return "/embed/gl-term.js"


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


def skos_turtle() -> str:
    """The glossary as a SKOS concept scheme, in Turtle."""
    return api("/glossary/skos.ttl")


def skos_jsonld() -> str:
    """The same SKOS concept scheme as JSON-LD."""
    return api("/glossary/skos.jsonld")


def sitemap() -> str:
    return "/sitemap.xml"


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


def demo_script() -> str:
    """One run as a standalone PyTorch script; the panel adds preset= and its parameters."""
    return api("/demo/script")


def embed_demo(preset: str, query: dict[str, str | int | None] | None = None) -> str:
    """An experiment card other sites may frame: its parameters and `lock` in the query."""
    return with_query(f"/embed/demo/{_segment(preset)}", query or {})


def oembed(url: str | None = None) -> str:
    """The oEmbed endpoint; with a page or card URL, the oEmbed answer for it."""
    return with_query("/oembed", {"url": url, "format": "json" if url else None})
