"""A term's short summary, shaped like Wikipedia's REST page summary (/page/summary/{title})
so that preview tools written for it (hover cards, link unfurlers) read ours unchanged; our
own previews (static/js/preview.js) and <gl-term> (static/embed/gl-term.js) read it too.

Every URL in it is absolute: the readers are other sites. `synonyms` is ours, not Wikipedia's.
"""

from functools import lru_cache
from html import escape
from pathlib import Path
from typing import Literal
from xml.etree import ElementTree

from pydantic import BaseModel, Field
from sqlmodel import Session, col, select

from app import urls
from app.glossary.shared import NotFound
from app.glossary.status import loaded_at
from app.models import Category, Synonym, Term


class SummaryTitles(BaseModel):
    canonical: str = Field(description="The slug: the key in every URL of the entry")
    normalized: str = Field(description="The title as plain text")
    display: str = Field(description="The title as HTML (escaped text)")


class SummaryThumbnail(BaseModel):
    source: str = Field(description="Absolute URL of the illustration (SVG)")
    width: int = Field(description="Intrinsic width (the SVG's viewBox)")
    height: int


class DesktopUrls(BaseModel):
    page: str = Field(description="The entry's page")
    api: str = Field(description="The entry's full JSON (the page's JSON twin)")


class MobileUrls(BaseModel):
    page: str


class ContentUrls(BaseModel):
    desktop: DesktopUrls
    mobile: MobileUrls


class TermSummary(BaseModel):
    """One entry in brief, in the shape of Wikipedia's page summary."""

    type: Literal["standard"] = "standard"
    title: str
    displaytitle: str = Field(description="The title as HTML (escaped text)")
    titles: SummaryTitles
    extract: str = Field(description="The entry's summary, plain text")
    extract_html: str = Field(description="The same as HTML: one escaped paragraph")
    description: str = Field(description="A short line: the entry's category")
    lang: Literal["en"] = "en"
    dir: Literal["ltr"] = "ltr"
    timestamp: str | None = Field(description="When the content was loaded (ISO 8601)")
    thumbnail: SummaryThumbnail | None = Field(
        default=None, description="Only when the entry has an illustration"
    )
    content_urls: ContentUrls
    synonyms: list[str] = Field(description="Other names of the entry (not in Wikipedia's shape)")


def build_summary(session: Session, slug: str, base_url: str, data_dir: Path) -> TermSummary:
    """The summary of the term `slug` (canonical, see canonical_slug)."""
    term = session.get(Term, slug)
    if term is None:
        raise NotFound(f"No term {slug!r}.")
    category = session.get(Category, term.category_slug)
    assert category is not None  # foreign key
    synonyms = session.exec(
        select(Synonym.name).where(Synonym.term_slug == slug).order_by(col(Synonym.position))
    ).all()
    page = urls.absolute(base_url, urls.term(slug))
    title_html = escape(term.title, quote=False)
    return TermSummary(
        title=term.title,
        displaytitle=title_html,
        titles=SummaryTitles(canonical=slug, normalized=term.title, display=title_html),
        extract=term.summary,
        extract_html=f"<p>{escape(term.summary, quote=False)}</p>",
        description=category.title,
        timestamp=loaded_at(session),
        thumbnail=_thumbnail(term, base_url, data_dir),
        content_urls=ContentUrls(
            desktop=DesktopUrls(page=page, api=urls.absolute(base_url, urls.api(urls.term(slug)))),
            mobile=MobileUrls(page=page),  # one responsive page serves both
        ),
        synonyms=list(synonyms),
    )


def _thumbnail(term: Term, base_url: str, data_dir: Path) -> SummaryThumbnail | None:
    if not term.illustration_file:
        return None
    size = svg_size(data_dir / "illustrations" / term.illustration_file)
    if size is None:  # `glossary check` refuses such a file; never a 500 for it here
        return None
    return SummaryThumbnail(
        source=urls.absolute(base_url, urls.illustration(term.illustration_file)),
        width=size[0],
        height=size[1],
    )


def svg_size(path: Path) -> tuple[int, int] | None:
    """An SVG's intrinsic size in CSS pixels, from width/height or else its viewBox."""
    try:
        stamp = path.stat().st_mtime_ns
    except OSError:
        return None
    return _svg_size(path, stamp)


@lru_cache(maxsize=256)
def _svg_size(path: Path, stamp: int) -> tuple[int, int] | None:
    # `stamp` (the file's mtime) is part of the cache key: a reloaded file is read again.
    try:
        root = ElementTree.parse(path).getroot()  # noqa: S314  (our own reviewed files)
    except (OSError, ElementTree.ParseError):
        return None
    try:
        width, height = float(root.attrib["width"]), float(root.attrib["height"])
    except (KeyError, ValueError):
        parts = root.attrib.get("viewBox", "").replace(",", " ").split()
        if len(parts) != 4:
            return None
        try:
            width, height = float(parts[2]), float(parts[3])
        except ValueError:
            return None
    if width <= 0 or height <= 0:
        return None
    return round(width), round(height)
