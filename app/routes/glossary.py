"""The glossary's pages and their JSON twins: home, the A-Z index, terms, categories and
organizations; plus the whole glossary as JSON-LD and the entries' illustrations."""

from typing import Annotated

from fastapi import Query, Request
from fastapi.responses import FileResponse, Response

from app import urls
from app.db import SessionDep
from app.errors import API_ERRORS
from app.glossary import (
    NotFound,
    build_category,
    build_category_list,
    build_glossary,
    build_home,
    build_organization,
    build_organization_list,
    build_term,
    build_term_list,
    canonical_slug,
)
from app.routes.twins import Moved, TwinRouter
from app.views import (
    CategoryList,
    CategoryView,
    DefinedTermSet,
    HomeView,
    OrganizationList,
    OrganizationView,
    TermList,
    TermView,
)

router = TwinRouter(tags=["glossary"], responses=API_ERRORS)
# The A-Z page shows every term (the API's limit allows it); the API pages by 50.
INDEX_LIMIT = 500


@router.twin("/", template="home.html", response_model=HomeView)
def read_home(request: Request, session: SessionDep) -> HomeView:
    """What the home page shows: counts, categories, letters, the featured term."""
    return build_home(session, request.app.state.settings.featured_term)


@router.twin(
    "/terms",
    template="terms.html",
    response_model=TermList,
    page_defaults={"limit": INDEX_LIMIT},
)
def list_terms(
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=INDEX_LIMIT)] = 50,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
    category: Annotated[str | None, Query(max_length=100)] = None,
    letter: Annotated[str | None, Query(pattern="^[A-Za-z#]$")] = None,
) -> TermList:
    """Terms in A-Z order, paged, optionally filtered by category and first letter."""
    # category= (the index's "All categories") means no filter
    return build_term_list(
        session, category=category or None, letter=letter, limit=limit, offset=offset
    )


@router.twin(
    "/terms/{slug}",
    template="term.html",
    response_model=TermView,
    responses={301: {"description": "A synonym or non-canonical slug; follow Location"}},
)
def read_term(request: Request, slug: str, session: SessionDep) -> TermView | Moved:
    """One term with every section and relation."""
    canonical = canonical_slug(session, slug)
    if canonical != slug:
        # A synonym's or a differently-spelled slug: one URL per term, and a demo
        # permalink's parameters ride along.
        return Moved(urls.term(canonical), keep_query=True)
    return build_term(session, slug, str(request.base_url))


@router.twin("/categories", template="categories.html", response_model=CategoryList)
def list_categories(session: SessionDep) -> CategoryList:
    """Every category with its term count."""
    return build_category_list(session)


@router.twin("/categories/{slug}", template="category.html", response_model=CategoryView)
def read_category(slug: str, session: SessionDep) -> CategoryView:
    """One category and its terms."""
    return build_category(session, slug)


@router.twin("/organizations", template="organizations.html", response_model=OrganizationList)
def list_organizations(session: SessionDep) -> OrganizationList:
    """Every organization with the number of terms it has a note on."""
    return build_organization_list(session)


@router.twin("/organizations/{slug}", template="organization.html", response_model=OrganizationView)
def read_organization(slug: str, session: SessionDep) -> OrganizationView:
    """One organization and its per-term notes."""
    return build_organization(session, slug)


@router.get("/api/glossary", response_model=DefinedTermSet, response_model_by_alias=True)
def read_glossary(request: Request, session: SessionDep) -> DefinedTermSet:
    """The whole glossary as a schema.org JSON-LD DefinedTermSet."""
    return build_glossary(session, str(request.base_url))


@router.get("/illustrations/{name}", include_in_schema=False)
def read_illustration(request: Request, name: str) -> Response:
    """An entry's SVG illustration from data/illustrations."""
    folder = (request.app.state.settings.data_dir / "illustrations").resolve()
    path = (folder / name).resolve()
    if path.parent != folder or path.suffix != ".svg" or not path.is_file():
        raise NotFound(f"No illustration {name!r}.")
    return FileResponse(
        path, media_type="image/svg+xml", headers={"cache-control": "public, max-age=3600"}
    )
