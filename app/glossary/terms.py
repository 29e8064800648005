"""The term views: the A-Z index and one term's page, and which term a URL names."""

from sqlalchemy import func
from sqlmodel import Session, col, select

from app import urls
from app.demo.catalog import DEFAULT_EXPERIMENT, EXPERIMENTS
from app.demo.experiment import Experiment
from app.glossary.categories import category_summaries
from app.glossary.jsonld import defined_term
from app.glossary.shared import NotFound, introduced_in, term_ref, title_order
from app.models import (
    Category,
    Mention,
    Organization,
    ReadMore,
    RelatedTerm,
    Synonym,
    Term,
    TermOrganization,
)
from app.text import slugify
from app.views import (
    CategoryRef,
    ExperimentClaim,
    ExperimentRef,
    Illustration,
    LetterCount,
    Link,
    OrganizationNote,
    TermList,
    TermView,
)


def letter_counts(session: Session) -> list[LetterCount]:
    """Every A-Z index letter that has terms, with how many."""
    rows = session.exec(select(Term.letter, func.count()).group_by(Term.letter)).all()
    return [LetterCount(letter=letter, count=count) for letter, count in sorted(rows)]


def build_term_list(
    session: Session,
    *,
    category: str | None = None,
    letter: str | None = None,
    limit: int = 50,
    offset: int = 0,
) -> TermList:
    """Terms in A-Z order, one page of them, optionally of one category and first letter."""
    categories = category_summaries(session)
    if category is not None and category not in {c.slug for c in categories}:
        raise NotFound(f"No category {category!r}.")
    query = select(Term)
    if category is not None:
        query = query.where(Term.category_slug == category)
    if letter is not None:
        query = query.where(Term.letter == letter.upper())
    total = session.exec(select(func.count()).select_from(query.subquery())).one()
    items = session.exec(query.order_by(title_order()).offset(offset).limit(limit)).all()
    return TermList(
        items=[term_ref(t) for t in items],
        total=total,
        limit=limit,
        offset=offset,
        category=category,
        letter=letter.upper() if letter else None,
        letters=letter_counts(session),
        categories=categories,
    )


def canonical_slug(session: Session, slug: str) -> str:
    """The slug of the term a URL segment names: itself, or the term whose slug it is in
    another case or spelling, or whose synonym it is. NotFound when none."""
    if session.get(Term, slug) is not None:
        return slug
    normalized = slugify(slug)
    if normalized and session.get(Term, normalized) is not None:
        return normalized
    synonym = session.exec(select(Synonym).where(Synonym.slug == normalized)).first()
    if synonym is not None:
        return synonym.term_slug
    raise NotFound(f"No term {slug!r}.")


def build_term(session: Session, slug: str, base_url: str) -> TermView:
    """Everything on a term's page; `slug` is canonical (see canonical_slug)."""
    term = session.get(Term, slug)
    if term is None:
        raise NotFound(f"No term {slug!r}.")
    # A term without an experiment of its own opens on the one the glossary was built around.
    experiment = EXPERIMENTS.get(term.demo_preset or DEFAULT_EXPERIMENT)
    experiment = experiment or EXPERIMENTS[DEFAULT_EXPERIMENT]
    category = session.get(Category, term.category_slug)
    assert category is not None  # foreign key
    synonyms = session.exec(
        select(Synonym.name).where(Synonym.term_slug == slug).order_by(col(Synonym.position))
    ).all()
    related = session.exec(
        select(Term)
        .join(RelatedTerm, col(RelatedTerm.related_slug) == col(Term.slug))
        .where(RelatedTerm.term_slug == slug)
        .order_by(col(RelatedTerm.position))
    ).all()
    backlinks = session.exec(
        select(Term)
        .join(Mention, col(Mention.source_slug) == col(Term.slug))
        .where(Mention.target_slug == slug)
        .order_by(title_order())
    ).all()
    organizations = session.exec(
        select(TermOrganization, Organization)
        .join(Organization, col(Organization.slug) == col(TermOrganization.organization_slug))
        .where(TermOrganization.term_slug == slug)
        .order_by(col(TermOrganization.position))
    ).all()
    read_more = session.exec(
        select(ReadMore).where(ReadMore.term_slug == slug).order_by(col(ReadMore.position))
    ).all()
    illustration = None
    if term.illustration_file:
        illustration = Illustration(
            url=urls.illustration(term.illustration_file),
            alt=term.illustration_alt or "",
            caption=term.illustration_caption or "",
        )
    return TermView(
        slug=slug,
        title=term.title,
        url=urls.term(slug),
        category=CategoryRef(
            slug=category.slug, title=category.title, url=urls.category(category.slug)
        ),
        summary=term.summary,
        definition=term.definition,
        definition_html=term.definition_html,
        background=term.background,
        background_html=term.background_html,
        usage_note=term.usage_note,
        usage_note_html=term.usage_note_html,
        formula=term.formula,
        formula_mathml=term.formula_mathml,
        synonyms=list(synonyms),
        related=[term_ref(t) for t in related],
        backlinks=[term_ref(t) for t in backlinks],
        organizations=[
            OrganizationNote(
                slug=org.slug,
                name=org.name,
                url=urls.organization(org.slug),
                website=org.url,
                note=link.note,
                note_html=link.note_html,
            )
            for link, org in organizations
        ],
        read_more=[Link(title=r.title, url=r.url) for r in read_more],
        illustration=illustration,
        introduced_in=introduced_in(term),
        demo_preset=experiment.name,
        experiment=experiment_ref(experiment),
        json_ld=defined_term(base_url, term, list(synonyms)),
    )


def experiment_ref(experiment: Experiment) -> ExperimentRef:
    """An experiment as a page names it: its claims, and the API URL of its default run."""
    return ExperimentRef(
        name=experiment.name,
        title=experiment.title,
        family=experiment.family,
        description=experiment.description,
        citation=experiment.citation,
        claims=[ExperimentClaim(id=c.id, statement=c.statement) for c in experiment.claims],
        api_url=urls.demo_result(experiment.name),
    )
