"""Security headers, the request-body limit, and the error handlers that make sure no
traceback or SQL text ever reaches a client."""

import json
import logging
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from sqlmodel import Session
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.glossary import Moved, NotFound, build_not_found
from app.views import ErrorBody, TermRef

log = logging.getLogger("glossary")

CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "font-src 'self'",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "frame-ancestors 'none'",
        "form-action 'self'",
    ]
)
TEXT_TYPES = (b"text/", b"application/javascript", b"image/svg+xml", b"application/xml")


def is_api(path: str) -> bool:
    return path == "/api" or path.startswith("/api/")


def security_headers(hsts_max_age: int) -> list[tuple[bytes, bytes]]:
    headers = [
        (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
        (b"x-content-type-options", b"nosniff"),
        (b"referrer-policy", b"strict-origin-when-cross-origin"),
        (b"x-frame-options", b"DENY"),
        (b"cross-origin-opener-policy", b"same-origin"),
        (b"permissions-policy", b"camera=(), microphone=(), geolocation=(), interest-cohort=()"),
    ]
    if hsts_max_age:
        headers.append(
            (b"strict-transport-security", f"max-age={hsts_max_age}; includeSubDomains".encode())
        )
    return headers


def error_response(request: Request, status: int, message: str, details: Any = None) -> Response:
    """The one JSON error shape for /api, a friendly page elsewhere."""
    if is_api(request.url.path):
        body = ErrorBody(status=status, message=message, details=details)
        return JSONResponse(body.model_dump(), status_code=status)
    suggestions: list[TermRef] = []
    if status == 404:
        try:
            with Session(request.app.state.engine) as session:
                suggestions = build_not_found(session, request.url.path).suggestions
        except Exception:  # the 404 page must render even when the database cannot
            log.exception("could not compute 404 suggestions")
    templates = request.app.state.templates
    return templates.TemplateResponse(  # type: ignore[no-any-return]
        request,
        "error.html",
        {"status": status, "message": message, "suggestions": suggestions},
        status_code=status,
    )


def _validation_message(exc: RequestValidationError) -> tuple[str, list[dict[str, Any]]]:
    details = [
        {"location": ".".join(str(p) for p in err["loc"]), "message": err["msg"]}
        for err in exc.errors()
    ]
    first = details[0] if details else {"location": "request", "message": "invalid"}
    return f"Invalid {first['location']}: {first['message']}", details


def install_error_handlers(app: FastAPI) -> None:
    async def on_not_found(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, NotFound)
        return error_response(request, 404, exc.message)

    async def on_moved(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, Moved)
        location = exc.location
        if is_api(request.url.path):
            location = "/api" + location
        if request.url.query:
            location += "?" + request.url.query
        return RedirectResponse(location, status_code=301)

    async def on_http(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException | HTTPException)
        message = exc.detail if isinstance(exc.detail, str) else "Request failed"
        if exc.status_code == 404 and exc.detail == "Not Found":
            message = f"Nothing lives at {request.url.path}."
        response = error_response(request, exc.status_code, message)
        response.headers.update(getattr(exc, "headers", None) or {})
        return response

    async def on_invalid(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        message, details = _validation_message(exc)
        return error_response(request, 422, message, details)

    app.add_exception_handler(NotFound, on_not_found)
    app.add_exception_handler(Moved, on_moved)
    app.add_exception_handler(StarletteHTTPException, on_http)
    app.add_exception_handler(RequestValidationError, on_invalid)


def _replay_body(body: bytes, receive: Receive) -> Receive:
    """A receive() that yields an already-read body once, then defers to the real one."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


class SecurityMiddleware:
    """Outermost layer: adds security headers to every response, enforces the body limit,
    and turns any unhandled exception into a generic 500 (logged, never shown)."""

    def __init__(self, app: ASGIApp, *, max_body_bytes: int, hsts_max_age: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.headers = security_headers(hsts_max_age)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        declared = request.headers.get("content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_body_bytes):
            await self._send_error(scope, receive, send, 413)
            return

        started = False
        body_receive = receive
        if declared is None and "chunked" in request.headers.get("transfer-encoding", ""):
            # No declared length: read the body here (it is small or refused), so the limit
            # holds even for routes that never read their body.
            chunks: list[bytes] = []
            size = 0
            while True:
                message = await receive()
                if message["type"] != "http.request":
                    break
                chunks.append(message.get("body", b""))
                size += len(chunks[-1])
                if size > self.max_body_bytes:
                    await self._send_error(scope, receive, send, 413)
                    return
                if not message.get("more_body", False):
                    break
            body_receive = _replay_body(b"".join(chunks), receive)

        async def send_with_headers(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                message["headers"] = self._with_headers(message.get("headers", []))
            await send(message)

        try:
            await self.app(scope, body_receive, send_with_headers)
        except Exception:
            log.exception("unhandled error on %s %s", scope.get("method"), scope.get("path"))
            if not started:
                await self._send_error(scope, receive, send, 500)

    def _with_headers(self, headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
        present = {name.lower() for name, _ in headers}
        out = []
        for name, value in headers:
            if name.lower() == b"content-type" and value.startswith(TEXT_TYPES):
                if b"charset" not in value:
                    value += b"; charset=utf-8"
            out.append((name, value))
        out += [(name, value) for name, value in self.headers if name not in present]
        return out

    async def _send_error(self, scope: Scope, receive: Receive, send: Send, status: int) -> None:
        messages = {
            413: f"Request body is larger than the limit of {self.max_body_bytes} bytes.",
            500: "Something went wrong on our side. The error has been logged.",
        }
        request = Request(scope, receive)
        try:
            response = error_response(request, status, messages[status])
        except Exception:  # even the error page failed: plain JSON, still no details
            response = Response(
                json.dumps({"status": status, "message": messages[status], "details": None}),
                status_code=status,
                media_type="application/json",
            )

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = self._with_headers(message.get("headers", []))
            await send(message)

        await response(scope, receive, send_with_headers)
