"""The glossary in other formats, for other tools: SKOS (Turtle and JSON-LD) for thesaurus
and linked-data tools, /sitemap.xml and /robots.txt for search engines, and for language
models /llms.txt and each term page's Markdown twin (/terms/{slug}.md).

Every answer is a function of the content alone, so the response cache keeps it until the
next load (app/middleware/caching.py). The Markdown twin's route must be registered before
the term page's /terms/{slug}, which would otherwise take "x.md" as a slug (app/main.py).
"""

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import PlainTextResponse, RedirectResponse, Response

from app import urls
from app.db import SessionDep
from app.glossary import canonical_slug
from app.glossary.crawlers import robots_txt, sitemap_xml
from app.glossary.markdown_twin import llms_txt, term_markdown
from app.glossary.skos import skos_jsonld, skos_turtle

router = APIRouter(tags=["exports"])


class TurtleResponse(Response):
    media_type = "text/turtle"


class JsonLdResponse(Response):
    media_type = "application/ld+json"


class XmlResponse(Response):
    media_type = "application/xml"


class MarkdownResponse(Response):
    media_type = "text/markdown"


def _text(media_type: str, description: str) -> dict[int | str, dict[str, Any]]:
    """A 200 documented as text in that media type (its shape is the format's, not JSON)."""
    return {
        200: {"description": description, "content": {media_type: {"schema": {"type": "string"}}}}
    }


# The Markdown twin answers like the page it mirrors: a 301 for another spelling or a
# synonym, and the site's 404 page (HTML, as for any path outside /api) for no such term.
TWIN_RESPONSES: dict[int | str, dict[str, Any]] = {
    **_text(MarkdownResponse.media_type, "The term page as Markdown"),
    301: {"description": "A synonym or non-canonical slug; follow Location"},
    404: {"description": "No such term (the site's 404 page)", "content": {"text/html": {}}},
}


@router.get(
    "/api/glossary/skos.ttl",
    response_class=TurtleResponse,
    responses=_text(TurtleResponse.media_type, "A SKOS concept scheme in Turtle"),
)
def read_skos_turtle(request: Request, session: SessionDep) -> Response:
    """The glossary as a SKOS concept scheme: each entry a skos:Concept (prefLabel, altLabel
    per synonym, definition, scopeNote, historyNote, related), broader than it its category."""
    return TurtleResponse(skos_turtle(session, str(request.base_url)))


@router.get(
    "/api/glossary/skos.jsonld",
    response_class=JsonLdResponse,
    responses={
        200: {
            "description": "The same SKOS concept scheme as JSON-LD",
            "content": {JsonLdResponse.media_type: {"schema": {"type": "object"}}},
        }
    },
)
def read_skos_jsonld(request: Request, session: SessionDep) -> Response:
    """The SKOS concept scheme of /api/glossary/skos.ttl as JSON-LD."""
    return JsonLdResponse(skos_jsonld(session, str(request.base_url)))


@router.get(
    "/sitemap.xml",
    response_class=XmlResponse,
    responses=_text(XmlResponse.media_type, "A sitemaps.org urlset"),
)
def read_sitemap(request: Request, session: SessionDep) -> Response:
    """Every page a reader can land on, with the content's load time as lastmod."""
    return XmlResponse(sitemap_xml(session, str(request.base_url)))


@router.get(
    "/robots.txt",
    response_class=PlainTextResponse,
    responses=_text("text/plain", "Rules for crawlers and the sitemap's URL"),
)
def read_robots(request: Request) -> Response:
    """What crawlers may fetch (not the experiments, search results or /mcp), and the sitemap."""
    return PlainTextResponse(robots_txt(str(request.base_url)))


@router.get(
    "/llms.txt",
    response_class=PlainTextResponse,
    responses=_text("text/plain", "An llmstxt.org index (Markdown)"),
)
def read_llms_txt(request: Request, session: SessionDep) -> Response:
    """The llmstxt.org index: every term's Markdown twin with its summary, by category."""
    return PlainTextResponse(llms_txt(session, str(request.base_url)))


@router.get(
    "/terms/{slug}.md",
    response_class=MarkdownResponse,
    responses=TWIN_RESPONSES,
)
def read_term_markdown(request: Request, slug: str, session: SessionDep) -> Response:
    """A term page as Markdown: the entry's own Markdown, links absolute, the formula as TeX."""
    canonical = canonical_slug(session, slug)
    if canonical != slug:
        return RedirectResponse(urls.term_markdown(canonical), status_code=301)
    return MarkdownResponse(term_markdown(session, slug, str(request.base_url)))
