"""One registration serves a resource twice: as an HTML page and as its JSON twin under /api.

    @router.twin("/terms/{slug}", template="term.html", response_model=TermView)
    def read_term(request: Request, slug: str, session: SessionDep) -> TermView | Moved:
        ...

registers GET /terms/{slug}, the page (the template rendered with `view`, and a
<link rel="alternate"> to its twin), and GET /api/terms/{slug}, the same view as JSON (the
operation in the OpenAPI schema, named after the function). The function is the one
builder: FastAPI calls it as a dependency of both routes, so they take the same parameters
and differ only in the format they answer in (Datasette's path_with_format). It returns the
view, or Moved, which both formats answer with a 301.
"""

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import BaseModel

from app import urls
from app.templating import render

Builder = TypeVar("Builder", bound=Callable[..., Any])


@dataclass(frozen=True)
class Moved:
    """The resource lives at another page URL; the JSON twin moves to that page's twin."""

    location: str
    # Whether the request's query string follows (a term's demo permalink parameters do).
    keep_query: bool = False


class TwinRouter(APIRouter):
    """An APIRouter that also registers page + JSON twins (plain routes work as usual)."""

    def twin(
        self,
        path: str,
        *,
        template: str,
        response_model: type[BaseModel],
        page_defaults: dict[str, int] | None = None,
        responses: dict[int | str, dict[str, Any]] | None = None,
    ) -> Callable[[Builder], Builder]:
        """Register `builder` at `path` (the page) and at urls.api(path) (its JSON twin).

        page_defaults: query parameters whose default differs on the page (the A-Z index
        shows every term, the API pages by 50); the page's twin link spells them out, so
        the JSON it points to is the view the page shows.
        """
        defaults = page_defaults or {}

        def register(builder: Builder) -> Builder:
            page_builder = _with_defaults(builder, defaults)

            def read_page(
                request: Request, view: Annotated[Any, Depends(page_builder)]
            ) -> Response:
                if isinstance(view, Moved):
                    return _redirect(request, view.location, view.keep_query)
                alternate = urls.json_twin(request.url.path, request.url.query, defaults)
                return render(request, template, {"view": view, "alternate": alternate})

            def read_json(request: Request, view: Annotated[Any, Depends(builder)]) -> Any:
                if isinstance(view, Moved):
                    return _redirect(request, urls.api(view.location), view.keep_query)
                return view

            name = builder.__name__
            self.add_api_route(
                path,
                read_page,
                methods=["GET"],
                name=f"{name}_page",
                response_class=HTMLResponse,
                include_in_schema=False,
            )
            self.add_api_route(
                urls.api(path),
                read_json,
                methods=["GET"],
                name=name,  # the OpenAPI operation id and summary come from it
                response_model=response_model,
                description=inspect.getdoc(builder),
                responses=responses,
            )
            return builder

        return register


def _redirect(request: Request, location: str, keep_query: bool) -> Response:
    query = request.url.query if keep_query else ""
    return RedirectResponse(urls.with_query(location, query), status_code=301)


def _with_defaults(builder: Builder, defaults: dict[str, int]) -> Callable[..., Any]:
    """The builder with other defaults for some parameters (FastAPI reads parameters and
    their defaults from the signature)."""
    if not defaults:
        return builder
    signature = inspect.signature(builder)
    unknown = set(defaults) - set(signature.parameters)
    if unknown:
        raise TypeError(f"{builder.__name__} has no parameter {sorted(unknown)}")

    def page_builder(*args: Any, **kwargs: Any) -> Any:
        return builder(*args, **kwargs)

    page_builder.__signature__ = signature.replace(  # type: ignore[attr-defined]
        parameters=[
            p.replace(default=defaults.get(p.name, p.default))
            for p in signature.parameters.values()
        ]
    )
    page_builder.__name__ = f"{builder.__name__}_page"
    return page_builder
