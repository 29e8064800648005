"""Experiment cards for other sites: /embed/demo/{preset} (a page that may be framed) and
/oembed, which tells a consumer how to frame one (see app/glossary/embed.py)."""

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from app.db import SessionDep
from app.glossary.embed import LOCK, OEmbed, build_card, build_oembed
from app.templating import render
from app.views import ErrorBody

router = APIRouter(tags=["embed"])

_PAGE = {"text/html": {"schema": {"type": "string"}}}
PAGE_ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"description": "No such experiment (an HTML page)", "content": _PAGE},
    422: {"description": "A parameter or lock name is invalid (an HTML page)", "content": _PAGE},
}
OEMBED_ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorBody, "description": "The URL is not one of ours, or has no experiment"},
    422: {"model": ErrorBody, "description": "url is missing or not absolute, or a bad value"},
    501: {"model": ErrorBody, "description": "format=xml: this provider answers in JSON only"},
}


class CardQuery(BaseModel):
    """?lock= names the controls a reader may not change; the experiment's own parameters
    (depth=, lr=, seed=...; see GET /api/demo/presets) are further query parameters."""

    model_config = ConfigDict(extra="allow")

    lock: str | None = Field(
        None,
        max_length=500,
        description="'all', or parameter names separated by commas, e.g. depth,width",
    )


@router.get(
    "/embed/demo/{preset}",
    response_class=HTMLResponse,
    responses={200: {"description": "The experiment card"}, **PAGE_ERRORS},
)
def embed_demo(
    request: Request,
    preset: str,
    query: Annotated[CardQuery, Query()],
    session: SessionDep,
) -> Response:
    """One experiment's panel alone, for an <iframe> on another site: starting values from
    the query, the locked controls disabled, and a link to its term page."""
    raw = {name: str(value) for name, value in (query.model_extra or {}).items()}
    if query.lock is not None:
        raw[LOCK] = query.lock
    view = build_card(session, preset, raw)
    return render(request, "embed_demo.html", {"view": view})


@router.get("/oembed", response_model=OEmbed, responses=OEMBED_ERRORS)
def oembed(
    request: Request,
    session: SessionDep,
    url: Annotated[
        str,
        Query(
            max_length=2000,
            pattern=r"^https?://\S+$",
            description="A term page with an experiment, or an /embed/demo/ card, absolute",
        ),
    ],
    format: Annotated[  # noqa: A002  (oEmbed's name for it)
        str,
        Query(
            max_length=20,
            description="json (xml is answered 501, as oEmbed says)",
            json_schema_extra={"enum": ["json"]},
        ),
    ] = "json",
    maxwidth: Annotated[int | None, Query(ge=1, le=100_000)] = None,
    maxheight: Annotated[int | None, Query(ge=1, le=100_000)] = None,
) -> OEmbed:
    """oEmbed 1.0 for our experiment cards: a rich answer whose html frames the card."""
    if format == "xml":
        raise HTTPException(501, "Only format=json is available.")
    if format != "json":
        raise HTTPException(422, f"format must be json, got {format!r}.")
    return build_oembed(session, str(request.base_url), url, maxwidth, maxheight)
