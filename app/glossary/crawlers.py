"""What search-engine crawlers read: /sitemap.xml (every page a reader can land on) and
/robots.txt (what not to crawl, and where the sitemap is)."""

from xml.etree import ElementTree as ET

from sqlalchemy import func
from sqlmodel import Session, col, select

from app import urls
from app.glossary.shared import title_order
from app.glossary.status import loaded_at
from app.models import Category, Organization, Term

SITEMAP_NAMESPACE = "http://www.sitemaps.org/schemas/sitemap/0.9"

# Not for crawlers: paths that run compute per request (the experiments, search, the MCP
# server), whose query strings make an endless URL space (search results; the search page
# without a query is an empty form), or that copy a page's experiment panel for framing on
# other sites (/embed/demo/).
DISALLOWED = (
    "/api/demo",
    "/api/search",
    "/api/suggest",
    "/search",
    "/embed/demo/",
    "/mcp",
)


def page_paths(session: Session) -> list[str]:
    """Every page worth a search result: the indexes, then each term, category and
    organization. Search results (any query) and the API's JSON are left out."""
    lists = [urls.home(), urls.terms(), urls.categories(), urls.organizations()]
    terms = session.exec(select(Term.slug).order_by(title_order())).all()
    categories = session.exec(select(Category.slug).order_by(col(Category.position))).all()
    organizations = session.exec(
        select(Organization.slug).order_by(func.lower(Organization.name))
    ).all()
    return [
        *lists,
        *(urls.term(slug) for slug in terms),
        *(urls.category(slug) for slug in categories),
        *(urls.organization(slug) for slug in organizations),
    ]


def sitemap_xml(session: Session, base_url: str) -> bytes:
    """The sitemaps.org document: each page's absolute URL, last modified at the content's
    load (every page is rendered from it)."""
    # The namespace as a plain attribute: every element is in it, so no prefixes are needed.
    root = ET.Element("urlset", xmlns=SITEMAP_NAMESPACE)
    modified = loaded_at(session)
    for path in page_paths(session):
        entry = ET.SubElement(root, "url")
        ET.SubElement(entry, "loc").text = urls.absolute(base_url, path)
        if modified is not None:
            ET.SubElement(entry, "lastmod").text = modified
    ET.indent(root)
    document: bytes = ET.tostring(root, encoding="utf-8", xml_declaration=True)
    return document + b"\n"


def robots_txt(base_url: str) -> str:
    """Every crawler may read every page; the DISALLOWED paths are off limits."""
    lines = ["User-agent: *", *(f"Disallow: {path}" for path in DISALLOWED), "Allow: /"]
    lines += ["", f"Sitemap: {urls.absolute(base_url, urls.sitemap())}"]
    return "\n".join(lines) + "\n"
