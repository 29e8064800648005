"""schema.org JSON-LD: each term as a DefinedTerm, the glossary as a DefinedTermSet."""

from typing import Any

from sqlmodel import Session, col, select

from app import urls
from app.glossary.shared import introduced_in, title_order
from app.models import Synonym, Term
from app.views import DefinedTermSet

SITE_NAME = "Glossary Lab"
SITE_DESCRIPTION = "A machine-learning glossary with a live experiment on every page."


def defined_term(base_url: str, term: Term, synonyms: list[str]) -> dict[str, Any]:
    """A term's DefinedTerm, as its page embeds it (its set named in full)."""
    url = urls.absolute(base_url, urls.term(term.slug))
    index = urls.absolute(base_url, urls.terms())
    return {
        "@context": "https://schema.org",
        "@type": "DefinedTerm",
        "@id": url,
        "name": term.title,
        "description": term.summary,
        "alternateName": synonyms,
        "url": url,
        "termCode": term.slug,
        **_citation(term),
        "inDefinedTermSet": {
            "@type": "DefinedTermSet",
            "@id": index,
            "name": SITE_NAME,
            "url": index,
        },
    }


def _citation(term: Term) -> dict[str, Any]:
    """The work that introduced the term, as schema.org's `citation` (absent when none)."""
    source = introduced_in(term)
    if source is None:
        return {}
    work: dict[str, Any] = {
        "@type": "ScholarlyArticle",
        "name": source.title,
        "author": source.authors,
        "datePublished": str(source.year),
        "url": source.url,
    }
    if source.identifier:
        work["identifier"] = source.identifier
    return {"citation": work}


def build_glossary(session: Session, base_url: str) -> DefinedTermSet:
    """Every term, in A-Z order, as one DefinedTermSet (each term names its set by URL)."""
    index = urls.absolute(base_url, urls.terms())
    synonyms: dict[str, list[str]] = {}
    for synonym in session.exec(select(Synonym).order_by(col(Synonym.position))).all():
        synonyms.setdefault(synonym.term_slug, []).append(synonym.name)
    return DefinedTermSet(
        id=index,
        name=SITE_NAME,
        description=SITE_DESCRIPTION,
        url=index,
        hasDefinedTerm=[
            {
                "@type": "DefinedTerm",
                "@id": urls.absolute(base_url, urls.term(t.slug)),
                "name": t.title,
                "description": t.summary,
                "alternateName": synonyms.get(t.slug, []),
                "termCode": t.slug,
                "url": urls.absolute(base_url, urls.term(t.slug)),
                "inDefinedTermSet": index,
            }
            for t in session.exec(select(Term).order_by(title_order())).all()
        ],
    )
