"""The category views: every category with its term count, and one category's terms."""

from sqlalchemy import func
from sqlmodel import Session, col, select

from app import urls
from app.glossary.shared import NotFound, term_ref, title_order
from app.models import Category, Term
from app.views import CategoryList, CategorySummary, CategoryView


def category_summaries(session: Session) -> list[CategorySummary]:
    """Every category in its data/ order, with how many terms it has."""
    counts = dict(
        session.exec(select(Term.category_slug, func.count()).group_by(Term.category_slug)).all()
    )
    return [
        CategorySummary(
            slug=c.slug,
            title=c.title,
            url=urls.category(c.slug),
            description=c.description,
            term_count=counts.get(c.slug, 0),
        )
        for c in session.exec(select(Category).order_by(col(Category.position))).all()
    ]


def build_category_list(session: Session) -> CategoryList:
    return CategoryList(categories=category_summaries(session))


def build_category(session: Session, slug: str) -> CategoryView:
    summary = next((c for c in category_summaries(session) if c.slug == slug), None)
    if summary is None:
        raise NotFound(f"No category {slug!r}.")
    terms = session.exec(
        select(Term).where(Term.category_slug == slug).order_by(title_order())
    ).all()
    return CategoryView(**summary.model_dump(), terms=[term_ref(t) for t in terms])
