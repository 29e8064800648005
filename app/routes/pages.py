"""HTML routes. Each builds its view with the same function as its JSON twin in api.py."""

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import FileResponse, HTMLResponse, Response

from app.db import SessionDep
from app.glossary import (
    NotFound,
    build_category,
    build_category_list,
    build_home,
    build_organization,
    build_organization_list,
    build_term,
    build_term_list,
)

router = APIRouter(include_in_schema=False)
PAGE_LIMIT = 500


def render(request: Request, template: str, view: Any, alternate: str, **extra: Any) -> Response:
    """Render a page from its view model; `alternate` is the URL of its JSON twin."""
    templates = request.app.state.templates
    context = {"view": view, "alternate": alternate, **extra}
    return templates.TemplateResponse(request, template, context)  # type: ignore[no-any-return]


@router.get("/", response_class=HTMLResponse)
def read_home(request: Request, session: SessionDep) -> Response:
    """Home: search, categories, A-Z strip, featured entry."""
    view = build_home(session, request.app.state.settings.featured_term)
    return render(request, "home.html", view, "/api/home")


@router.get("/terms", response_class=HTMLResponse)
def read_term_index(
    request: Request,
    session: SessionDep,
    category: Annotated[str | None, Query(max_length=100)] = None,
) -> Response:
    """The A-Z index, optionally filtered to one category."""
    view = build_term_list(session, category=category or None, limit=PAGE_LIMIT)
    alternate = f"/api/terms?limit={PAGE_LIMIT}" + (f"&category={category}" if category else "")
    return render(request, "terms.html", view, alternate)


@router.get("/terms/{slug}", response_class=HTMLResponse)
def read_term(request: Request, slug: str, session: SessionDep) -> Response:
    """One term with every section, its relations and its live demo."""
    view = build_term(session, slug, str(request.base_url))
    return render(request, "term.html", view, f"/api/terms/{view.slug}")


@router.get("/categories", response_class=HTMLResponse)
def read_category_index(request: Request, session: SessionDep) -> Response:
    """Every category with its term count."""
    return render(request, "categories.html", build_category_list(session), "/api/categories")


@router.get("/categories/{slug}", response_class=HTMLResponse)
def read_category(request: Request, slug: str, session: SessionDep) -> Response:
    """The terms of one category."""
    view = build_category(session, slug)
    return render(request, "category.html", view, f"/api/categories/{slug}")


@router.get("/organizations", response_class=HTMLResponse)
def read_organization_index(request: Request, session: SessionDep) -> Response:
    """Every organization that has a note on some term."""
    view = build_organization_list(session)
    return render(request, "organizations.html", view, "/api/organizations")


@router.get("/organizations/{slug}", response_class=HTMLResponse)
def read_organization(request: Request, slug: str, session: SessionDep) -> Response:
    """One organization and what it did for each term."""
    view = build_organization(session, slug)
    return render(request, "organization.html", view, f"/api/organizations/{slug}")


@router.get("/illustrations/{name}")
def read_illustration(request: Request, name: str) -> Response:
    """An entry's SVG illustration from data/illustrations."""
    folder = (request.app.state.settings.data_dir / "illustrations").resolve()
    path = (folder / name).resolve()
    if path.parent != folder or path.suffix != ".svg" or not path.is_file():
        raise NotFound(f"No illustration {name!r}.")
    return FileResponse(
        path, media_type="image/svg+xml", headers={"cache-control": "public, max-age=3600"}
    )


@router.get("/docs", response_class=HTMLResponse)
def read_api_docs(request: Request) -> Response:
    """Swagger UI over /openapi.json, from vendored files."""
    templates = request.app.state.templates
    return templates.TemplateResponse(request, "docs.html", {})  # type: ignore[no-any-return]
