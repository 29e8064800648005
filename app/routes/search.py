"""Search: the /search page, its JSON twin /api/search."""

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, Response
from fastapi.responses import RedirectResponse as Redirect

from app.db import SessionDep
from app.glossary import build_search, exact_names
from app.routes.api import ERRORS
from app.routes.pages import render
from app.text import fold
from app.views import SearchView

pages = APIRouter(include_in_schema=False)
api = APIRouter(prefix="/api", tags=["search"], responses=ERRORS)


@pages.get("/search", response_class=HTMLResponse)
def read_search(
    request: Request,
    session: SessionDep,
    q: Annotated[str, Query(max_length=10_000)] = "",
    category: Annotated[str | None, Query(max_length=100)] = None,
    go: bool = False,
) -> Response:
    """Search results; with go=1 an exact title or synonym jumps straight to its entry."""
    view = build_search(session, q, category=category or None)
    if go and view.hits and fold(q) in exact_names(view.hits[0]):
        return Redirect(view.hits[0].url, status_code=301)
    alternate = "/api/search" + (f"?{request.url.query}" if request.url.query else "")
    return render(request, "search.html", view, alternate)



@api.get("/search", response_model=SearchView)
def search_terms(
    session: SessionDep,
    q: Annotated[str, Query(max_length=10_000)] = "",
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    offset: Annotated[int, Query(ge=0, le=10_000)] = 0,
    category: Annotated[str | None, Query(max_length=100)] = None,
) -> SearchView:
    """Ranked search over titles, synonyms, summaries and text."""
    return build_search(session, q, limit=limit, offset=offset, category=category)
