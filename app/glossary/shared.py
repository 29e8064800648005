"""What every view builder shares: NotFound, terms as they appear in lists, and the work
that introduced a term (its page and its JSON-LD read it the same way)."""

from typing import Any

from sqlalchemy import func

from app import urls
from app.models import Term
from app.views import IntroducedIn, TermRef


class NotFound(Exception):
    """No such thing: a 404 (the page then offers the closest terms, the API one JSON error)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def term_ref(term: Term) -> TermRef:
    return TermRef(
        slug=term.slug,
        title=term.title,
        summary=term.summary,
        category=term.category_slug,
        url=urls.term(term.slug),
    )


def title_order() -> Any:
    """A-Z by title, case-insensitive (the order of every list of terms)."""
    return func.lower(Term.title)


def introduced_in(term: Term) -> IntroducedIn | None:
    """The introduced_* columns as one value, or None when the entry names no work."""
    if term.introduced_title is None:
        return None
    return IntroducedIn(
        title=term.introduced_title,
        authors=term.introduced_authors or "",
        year=term.introduced_year or 0,
        url=term.introduced_url or "",
        identifier=term.introduced_id,
    )
