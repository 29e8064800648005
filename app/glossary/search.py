"""The search page's view from app.search's results, and "did you mean" (also on 404s)."""

from sqlmodel import Session

from app import search, urls
from app.views import SearchHit, SearchView, TermRef


def build_search(
    session: Session, query: str, *, limit: int = 20, offset: int = 0, category: str | None = None
) -> SearchView:
    results = search.search(session, query, limit=limit, offset=offset, category=category)
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
                url=urls.term(h.slug),
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


def closest_terms(session: Session, text: str, count: int = 5) -> list[TermRef]:
    """Terms whose title or synonym is closest to text, typo-tolerant; for a path, to its
    last segment (a 404's "were you looking for")."""
    return [
        TermRef(
            slug=e.slug,
            title=e.title,
            summary=e.summary,
            category=e.category,
            url=urls.term(e.slug),
        )
        for e in search.closest(session, text.rsplit("/", 1)[-1], count)
    ]
