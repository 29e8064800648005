"""JSON routes under /api: the same view models the pages render."""

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request

from app.db import SessionDep
from app.glossary import (
    build_category,
    build_category_list,
    build_glossary,
    build_home,
    build_organization,
    build_organization_list,
    build_term,
    build_term_list,
)
from app.views import (
    CategoryList,
    CategoryView,
    DefinedTermSet,
    ErrorBody,
    HomeView,
    OrganizationList,
    OrganizationView,
    TermList,
    TermView,
)

ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorBody, "description": "No such resource"},
    422: {"model": ErrorBody, "description": "Invalid parameter"},
}
router = APIRouter(prefix="/api", tags=["glossary"], responses=ERRORS)


@router.get("/home", response_model=HomeView)
def read_home(request: Request, session: SessionDep) -> HomeView:
    """What the home page shows: counts, categories, letters, the featured term."""
    return build_home(session, request.app.state.settings.featured_term)


@router.get("/terms", response_model=TermList)
def list_terms(
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
    category: Annotated[str | None, Query(max_length=100)] = None,
    letter: Annotated[str | None, Query(pattern="^[A-Za-z#]$")] = None,
) -> TermList:
    """Terms in A-Z order, paged, optionally filtered by category and first letter."""
    return build_term_list(session, category=category, letter=letter, limit=limit, offset=offset)


@router.get(
    "/terms/{slug}",
    response_model=TermView,
    responses={301: {"description": "A synonym or non-canonical slug; follow Location"}},
)
def read_term(request: Request, slug: str, session: SessionDep) -> TermView:
    """One term with every section and relation."""
    return build_term(session, slug, str(request.base_url))


@router.get("/categories", response_model=CategoryList)
def list_categories(session: SessionDep) -> CategoryList:
    """Every category with its term count."""
    return build_category_list(session)


@router.get("/categories/{slug}", response_model=CategoryView)
def read_category(slug: str, session: SessionDep) -> CategoryView:
    """One category and its terms."""
    return build_category(session, slug)


@router.get("/organizations", response_model=OrganizationList)
def list_organizations(session: SessionDep) -> OrganizationList:
    """Every organization with the number of terms it has a note on."""
    return build_organization_list(session)


@router.get("/organizations/{slug}", response_model=OrganizationView)
def read_organization(slug: str, session: SessionDep) -> OrganizationView:
    """One organization and its per-term notes."""
    return build_organization(session, slug)


@router.get("/glossary", response_model=DefinedTermSet, response_model_by_alias=True)
def read_glossary(request: Request, session: SessionDep) -> DefinedTermSet:
    """The whole glossary as a schema.org JSON-LD DefinedTermSet."""
    return build_glossary(session, str(request.base_url))
