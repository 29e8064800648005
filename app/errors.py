"""The error handlers: one JSON shape for every error under /api, a friendly page (with the
closest terms on a 404) everywhere else, and never a traceback or SQL text."""

import logging
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from sqlmodel import Session
from starlette.exceptions import HTTPException as StarletteHTTPException

from app import urls
from app.glossary import NotFound, closest_terms
from app.templating import render
from app.views import ErrorBody, TermRef

log = logging.getLogger("glossary")

# The error responses every glossary and search operation documents in OpenAPI.
API_ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorBody, "description": "No such resource"},
    422: {"model": ErrorBody, "description": "Invalid parameter"},
}


def error_response(request: Request, status: int, message: str, details: Any = None) -> Response:
    """The one JSON error shape for /api, a friendly page elsewhere."""
    if urls.is_api(request.url.path):
        body = ErrorBody(status=status, message=message, details=details)
        return JSONResponse(body.model_dump(), status_code=status)
    suggestions: list[TermRef] = []
    if status == 404:
        try:
            with Session(request.app.state.engine) as session:
                suggestions = closest_terms(session, request.url.path)
        except Exception:  # the 404 page must render even when the database cannot
            log.exception("could not compute 404 suggestions")
    context = {"status": status, "message": message, "suggestions": suggestions}
    return render(request, "error.html", context, status_code=status)


def _validation_message(exc: RequestValidationError) -> tuple[str, list[dict[str, Any]]]:
    details = [
        {"location": ".".join(str(p) for p in err["loc"]), "message": err["msg"]}
        for err in exc.errors()
    ]
    first = details[0] if details else {"location": "request", "message": "invalid"}
    return f"Invalid {first['location']}: {first['message']}", details


async def _on_not_found(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, NotFound)
    return error_response(request, 404, exc.message)


async def _on_http(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException | HTTPException)
    message = exc.detail if isinstance(exc.detail, str) else "Request failed"
    if exc.status_code == 404 and exc.detail == "Not Found":
        message = f"Nothing lives at {request.url.path}."
    response = error_response(request, exc.status_code, message)
    response.headers.update(getattr(exc, "headers", None) or {})
    return response


async def _on_invalid(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    message, details = _validation_message(exc)
    return error_response(request, 422, message, details)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(NotFound, _on_not_found)
    app.add_exception_handler(StarletteHTTPException, _on_http)
    app.add_exception_handler(RequestValidationError, _on_invalid)
