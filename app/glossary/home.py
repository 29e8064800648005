"""The home page's view: counts, categories, the A-Z letters and the featured term."""

from sqlmodel import Session, select

from app.glossary.categories import category_summaries
from app.glossary.shared import term_ref, title_order
from app.glossary.status import term_count
from app.glossary.terms import letter_counts
from app.models import Term
from app.views import HomeView


def build_home(session: Session, featured_slug: str) -> HomeView:
    """The featured term is the configured one, or the first A-Z when it is missing."""
    featured = (
        session.get(Term, featured_slug)
        or session.exec(select(Term).order_by(title_order())).first()
    )
    return HomeView(
        term_count=term_count(session),
        categories=category_summaries(session),
        letters=letter_counts(session),
        featured=term_ref(featured) if featured else None,
    )
