"""The organization views: every organization, and what one did for each term."""

from collections import Counter

from sqlalchemy import func
from sqlmodel import Session, col, select

from app import urls
from app.glossary.shared import NotFound, term_ref, title_order
from app.models import Organization, Term, TermOrganization
from app.views import OrganizationList, OrganizationSummary, OrganizationTerm, OrganizationView


def _organization_summaries(session: Session) -> list[OrganizationSummary]:
    counts = Counter(session.exec(select(TermOrganization.organization_slug)).all())
    return [
        OrganizationSummary(
            slug=org.slug,
            name=org.name,
            url=urls.organization(org.slug),
            website=org.url,
            description=org.description,
            term_count=counts.get(org.slug, 0),
        )
        for org in session.exec(select(Organization).order_by(func.lower(Organization.name))).all()
    ]


def build_organization_list(session: Session) -> OrganizationList:
    return OrganizationList(organizations=_organization_summaries(session))


def build_organization(session: Session, slug: str) -> OrganizationView:
    summary = next((o for o in _organization_summaries(session) if o.slug == slug), None)
    if summary is None:
        raise NotFound(f"No organization {slug!r}.")
    rows = session.exec(
        select(TermOrganization, Term)
        .join(Term, col(Term.slug) == col(TermOrganization.term_slug))
        .where(TermOrganization.organization_slug == slug)
        .order_by(title_order())
    ).all()
    return OrganizationView(
        **summary.model_dump(),
        terms=[
            OrganizationTerm(term=term_ref(term), note=link.note, note_html=link.note_html)
            for link, term in rows
        ],
    )
