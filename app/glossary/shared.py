"""What every view builder shares: NotFound, and terms as they appear in lists."""

from typing import Any

from sqlalchemy import func

from app import urls
from app.models import Term
from app.views import TermRef


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
