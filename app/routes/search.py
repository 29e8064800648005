"""Search: the /search page and its JSON twin /api/search, autocomplete (/api/suggest, in the
OpenSearch suggestions format) and the OpenSearch description (/opensearch.xml)."""

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.responses import RedirectResponse as Redirect

from app import search
from app.db import SessionDep
from app.glossary import build_search, term_url
from app.routes.api import ERRORS
from app.routes.pages import render
from app.views import SearchView, Suggestions

pages = APIRouter(include_in_schema=False)
api = APIRouter(prefix="/api", tags=["search"], responses=ERRORS)

QueryText = Annotated[
    # 2,000 characters: 10,000 non-ASCII ones percent-encode past uvicorn's request-line
    # limit, which would answer a bare 400 before the app could give a JSON 422.
    str, Query(max_length=2_000, description="Free text: words, a name, a prefix, typos")
]
Limit = Annotated[int, Query(ge=1, le=100)]
Offset = Annotated[int, Query(ge=0, le=10_000)]
Category = Annotated[str | None, Query(max_length=100, description="A category slug")]


class SuggestionsResponse(JSONResponse):
    media_type = "application/x-suggestions+json"


@pages.get("/search", response_class=HTMLResponse)
def read_search(
    request: Request,
    session: SessionDep,
    q: QueryText = "",
    limit: Limit = 20,
    offset: Offset = 0,
    category: Category = None,
    go: bool = False,
) -> Response:
    """Search results; with go=1 an exact title or synonym jumps straight to its entry."""
    view = build_search(session, q, limit=limit, offset=offset, category=category or None)
    if go and view.hits and view.hits[0].exact:
        return Redirect(view.hits[0].url, status_code=301)
    alternate = "/api/search" + (f"?{request.url.query}" if request.url.query else "")
    return render(request, "search.html", view, alternate)


@api.get("/search", response_model=SearchView)
def search_terms(
    session: SessionDep,
    q: QueryText = "",
    limit: Limit = 20,
    offset: Offset = 0,
    category: Category = None,
) -> SearchView:
    """Ranked search over titles, synonyms, summaries and text, typo-tolerant, highlighted."""
    return build_search(session, q, limit=limit, offset=offset, category=category or None)


@api.get(
    "/suggest",
    response_model=Suggestions,
    # Declared here rather than as response_class, which would also relabel the shared
    # JSON error responses (422) with this media type.
    responses={
        200: {
            "content": {
                SuggestionsResponse.media_type: {
                    "schema": {"$ref": "#/components/schemas/Suggestions"}
                }
            }
        }
    },
)
def suggest_terms(
    request: Request,
    session: SessionDep,
    q: QueryText = "",
    limit: Annotated[int, Query(ge=1, le=20)] = 8,
) -> Response:
    """Autocomplete as OpenSearch suggestions: [query, names, entry titles, entry URLs]."""
    base = str(request.base_url).rstrip("/")
    found = search.suggest(session, q, limit=limit)
    suggestions = Suggestions(
        (
            q,
            [s.name for s in found],
            [s.title for s in found],
            [base + term_url(s.slug) for s in found],
        )
    )
    return SuggestionsResponse(suggestions.model_dump(mode="json"))


@pages.get("/opensearch.xml")
def read_opensearch(request: Request) -> Response:
    """The OpenSearch description, so browsers offer the glossary as a search engine."""
    templates = request.app.state.templates
    return templates.TemplateResponse(  # type: ignore[no-any-return]
        request,
        "opensearch.xml",
        {"base": str(request.base_url).rstrip("/")},
        media_type="application/opensearchdescription+xml; charset=utf-8",
    )
