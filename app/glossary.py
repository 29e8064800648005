"""Read-side queries that build the view models. Routes call one function per page."""

from collections import Counter
from typing import Any

from sqlalchemy import func
from sqlmodel import Session, col, select

from app import search as search_index
from app.models import (
    Category,
    Mention,
    Meta,
    Organization,
    ReadMore,
    RelatedTerm,
    Synonym,
    Term,
    TermOrganization,
)
from app.text import fold, slugify
from app.views import (
    CategoryList,
    CategoryRef,
    CategorySummary,
    CategoryView,
    DefinedTermSet,
    HomeView,
    Illustration,
    LetterCount,
    Link,
    NotFoundView,
    OrganizationList,
    OrganizationNote,
    OrganizationSummary,
    OrganizationTerm,
    OrganizationView,
    SearchHit,
    SearchView,
    TermList,
    TermRef,
    TermView,
)

SITE_NAME = "Glossary Lab"
SITE_DESCRIPTION = "A machine-learning glossary with a live experiment on every page."
DEFAULT_PRESET = "residual-vs-plain"


class NotFound(Exception):
    """No such thing (the HTML 404 page then offers the closest terms)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class Moved(Exception):
    """The thing lives at another URL (a synonym's slug, a differently-cased slug)."""

    def __init__(self, location: str) -> None:
        super().__init__(location)
        self.location = location


def term_url(slug: str) -> str:
    return f"/terms/{slug}"


def _ref(term: Term) -> TermRef:
    return TermRef(
        slug=term.slug,
        title=term.title,
        summary=term.summary,
        category=term.category_slug,
        url=term_url(term.slug),
    )


def _title_order() -> Any:
    return func.lower(Term.title)


def _category_summaries(session: Session) -> list[CategorySummary]:
    counts = dict(
        session.exec(select(Term.category_slug, func.count()).group_by(Term.category_slug)).all()
    )
    return [
        CategorySummary(
            slug=c.slug,
            title=c.title,
            url=f"/categories/{c.slug}",
            description=c.description,
            term_count=counts.get(c.slug, 0),
        )
        for c in session.exec(select(Category).order_by(col(Category.position))).all()
    ]


def _letters(session: Session) -> list[LetterCount]:
    rows = session.exec(select(Term.letter, func.count()).group_by(Term.letter)).all()
    return [LetterCount(letter=letter, count=count) for letter, count in sorted(rows)]


# ---------------------------------------------------------------- pages


def build_home(session: Session, featured_slug: str) -> HomeView:
    featured = (
        session.get(Term, featured_slug)
        or session.exec(select(Term).order_by(_title_order())).first()
    )
    return HomeView(
        term_count=session.exec(select(func.count()).select_from(Term)).one(),
        categories=_category_summaries(session),
        letters=_letters(session),
        featured=_ref(featured) if featured else None,
    )


def build_term_list(
    session: Session,
    *,
    category: str | None = None,
    letter: str | None = None,
    limit: int = 50,
    offset: int = 0,
) -> TermList:
    categories = _category_summaries(session)
    if category is not None and category not in {c.slug for c in categories}:
        raise NotFound(f"No category {category!r}.")
    query = select(Term)
    if category is not None:
        query = query.where(Term.category_slug == category)
    if letter is not None:
        query = query.where(Term.letter == letter.upper())
    total = session.exec(select(func.count()).select_from(query.subquery())).one()
    items = session.exec(query.order_by(_title_order()).offset(offset).limit(limit)).all()
    return TermList(
        items=[_ref(t) for t in items],
        total=total,
        limit=limit,
        offset=offset,
        category=category,
        letter=letter.upper() if letter else None,
        letters=_letters(session),
        categories=categories,
    )


def canonical_slug(session: Session, slug: str) -> str:
    """The term slug a URL segment names, following synonyms and case; raise if none."""
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
    """The term page's view; raise Moved for a synonym or non-canonical slug."""
    canonical = canonical_slug(session, slug)
    if canonical != slug:
        raise Moved(term_url(canonical))
    term = session.get(Term, slug)
    assert term is not None  # canonical_slug found it
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
        .order_by(_title_order())
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
    absolute = base_url.rstrip("/") + term_url(slug)
    json_ld = {
        "@context": "https://schema.org",
        "@type": "DefinedTerm",
        "@id": absolute,
        "name": term.title,
        "description": term.summary,
        "alternateName": list(synonyms),
        "url": absolute,
        "termCode": slug,
        "inDefinedTermSet": {
            "@type": "DefinedTermSet",
            "@id": base_url.rstrip("/") + "/terms",
            "name": SITE_NAME,
            "url": base_url.rstrip("/") + "/terms",
        },
    }
    illustration = None
    if term.illustration_file:
        illustration = Illustration(
            url=f"/illustrations/{term.illustration_file}",
            alt=term.illustration_alt or "",
            caption=term.illustration_caption or "",
        )
    return TermView(
        slug=slug,
        title=term.title,
        url=term_url(slug),
        category=CategoryRef(
            slug=category.slug, title=category.title, url=f"/categories/{category.slug}"
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
        related=[_ref(t) for t in related],
        backlinks=[_ref(t) for t in backlinks],
        organizations=[
            OrganizationNote(
                slug=org.slug,
                name=org.name,
                url=f"/organizations/{org.slug}",
                website=org.url,
                note=link.note,
                note_html=link.note_html,
            )
            for link, org in organizations
        ],
        read_more=[Link(title=r.title, url=r.url) for r in read_more],
        illustration=illustration,
        demo_preset=term.demo_preset or DEFAULT_PRESET,
        json_ld=json_ld,
    )


def build_category_list(session: Session) -> CategoryList:
    return CategoryList(categories=_category_summaries(session))


def build_category(session: Session, slug: str) -> CategoryView:
    summary = next((c for c in _category_summaries(session) if c.slug == slug), None)
    if summary is None:
        raise NotFound(f"No category {slug!r}.")
    terms = session.exec(
        select(Term).where(Term.category_slug == slug).order_by(_title_order())
    ).all()
    return CategoryView(**summary.model_dump(), terms=[_ref(t) for t in terms])


def _organization_summaries(session: Session) -> list[OrganizationSummary]:
    counts = Counter(session.exec(select(TermOrganization.organization_slug)).all())
    return [
        OrganizationSummary(
            slug=org.slug,
            name=org.name,
            url=f"/organizations/{org.slug}",
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
        .order_by(_title_order())
    ).all()
    return OrganizationView(
        **summary.model_dump(),
        terms=[
            OrganizationTerm(term=_ref(term), note=link.note, note_html=link.note_html)
            for link, term in rows
        ],
    )


def build_glossary(session: Session, base_url: str) -> DefinedTermSet:
    base = base_url.rstrip("/")
    terms = session.exec(select(Term).order_by(_title_order())).all()
    synonyms: dict[str, list[str]] = {}
    for synonym in session.exec(select(Synonym).order_by(col(Synonym.position))).all():
        synonyms.setdefault(synonym.term_slug, []).append(synonym.name)
    return DefinedTermSet(
        id=f"{base}/terms",
        name=SITE_NAME,
        description=SITE_DESCRIPTION,
        url=f"{base}/terms",
        hasDefinedTerm=[
            {
                "@type": "DefinedTerm",
                "@id": f"{base}{term_url(t.slug)}",
                "name": t.title,
                "description": t.summary,
                "alternateName": synonyms.get(t.slug, []),
                "termCode": t.slug,
                "url": f"{base}{term_url(t.slug)}",
                "inDefinedTermSet": f"{base}/terms",
            }
            for t in terms
        ],
    )


def build_search(
    session: Session, query: str, *, limit: int = 20, offset: int = 0, category: str | None = None
) -> SearchView:
    results = search_index.search(session, query, limit=limit, offset=offset, category=category)
    return SearchView(
        query=query,
        total=results.total,
        total_exact=results.total_exact,
        limit=limit,
        offset=offset,
        category=category,
        hits=[
            SearchHit(
                slug=h.slug,
                title=h.title,
                summary=h.summary,
                category=h.category,
                url=term_url(h.slug),
                score=h.score,
                matched_field=h.matched_field,
                matched_synonym=h.matched_synonym,
                exact=h.exact,
                title_html=h.title_html,
                snippet_html=h.snippet_html,
            )
            for h in results.hits
        ],
        corrected_query=results.corrected_query,
        did_you_mean=[] if results.total else closest_terms(session, query),
    )


def exact_names(hit: SearchHit) -> set[str]:
    """Folded names that count as an exact hit: the title, and the synonym that matched."""
    names = {fold(hit.title), fold(hit.slug)}
    if hit.matched_synonym:
        names.add(fold(hit.matched_synonym))
    return names


def closest_terms(session: Session, text: str, count: int = 5) -> list[TermRef]:
    """Terms whose title or synonym is closest to text (typo-tolerant, for 404 and no-hit)."""
    return [
        TermRef(
            slug=e.slug, title=e.title, summary=e.summary, category=e.category, url=term_url(e.slug)
        )
        for e in search_index.closest(session, text.rsplit("/", 1)[-1], count)
    ]


def build_not_found(session: Session, path: str) -> NotFoundView:
    return NotFoundView(path=path, suggestions=closest_terms(session, path))


def term_count(session: Session) -> int:
    return session.exec(select(func.count()).select_from(Term)).one()


def loaded_at(session: Session) -> str | None:
    meta = session.get(Meta, "loaded_at")
    return meta.value if meta else None
