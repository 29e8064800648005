"""Search: the /search page and its JSON twin /api/search, autocomplete (/api/suggest, in the
OpenSearch suggestions format) and the OpenSearch description (/opensearch.xml)."""

from typing import Annotated

from fastapi import Query, Request
from fastapi.responses import JSONResponse, Response

from app import search, urls
from app.db import SessionDep
from app.errors import API_ERRORS
from app.glossary import build_search
from app.routes.twins import Moved, TwinRouter
from app.templating import render
from app.views import SearchView, Suggestions

router = TwinRouter(tags=["search"], responses=API_ERRORS)

QueryText = Annotated[
    # 2,000 characters: 10,000 non-ASCII ones percent-encode past uvicorn's request-line
    # limit, which would answer a bare 400 before the app could give a JSON 422.
    str, Query(max_length=2_000, description="Free text: words, a name, a prefix, typos")
]
Limit = Annotated[int, Query(ge=1, le=100)]
Offset = Annotated[int, Query(ge=0, le=10_000)]
Category = Annotated[str | None, Query(max_length=100, description="A category slug")]
# The search forms' "go": an exact title or synonym jumps straight to its entry. Left out of
# the API's schema: a client asking for results wants results, not a redirect.
Go = Annotated[bool, Query(include_in_schema=False)]


class SuggestionsResponse(JSONResponse):
    media_type = "application/x-suggestions+json"


@router.twin("/search", template="search.html", response_model=SearchView)
def search_terms(
    session: SessionDep,
    q: QueryText = "",
    limit: Limit = 20,
    offset: Offset = 0,
    category: Category = None,
    go: Go = False,
) -> SearchView | Moved:
    """Ranked search over titles, synonyms, summaries and text, typo-tolerant, highlighted."""
    view = build_search(session, q, limit=limit, offset=offset, category=category or None)
    if go and view.hits and view.hits[0].exact:
        return Moved(view.hits[0].url)
    return view


@router.get(
    "/api/suggest",
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
    base = str(request.base_url)
    found = search.suggest(session, q, limit=limit)
    suggestions = Suggestions(
        (
            q,
            [s.name for s in found],
            [s.title for s in found],
            [urls.absolute(base, urls.term(s.slug)) for s in found],
        )
    )
    return SuggestionsResponse(suggestions.model_dump(mode="json"))


@router.get("/opensearch.xml", include_in_schema=False)
def read_opensearch(request: Request) -> Response:
    """The OpenSearch description, so browsers offer the glossary as a search engine."""
    return render(
        request,
        "opensearch.xml",
        {"base": str(request.base_url).rstrip("/")},
        media_type="application/opensearchdescription+xml; charset=utf-8",
    )
