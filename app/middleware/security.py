"""The outermost layer: security headers on every response, the request-body limit, and a
generic 500 for any exception nothing else handled (logged, never shown)."""

import functools
import json
import logging
import re

from fastapi import Request
from fastapi.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.errors import error_response

log = logging.getLogger("glossary")

_POLICY = [
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
CONTENT_SECURITY_POLICY = "; ".join(_POLICY)
# Only experiment cards (/embed/demo/*) may be framed by other sites; everything else refuses.
EMBED_PREFIX = "/embed/demo/"
EMBED_SECURITY_POLICY = CONTENT_SECURITY_POLICY.replace(
    "frame-ancestors 'none'", "frame-ancestors *"
)
# What other sites' scripts may read: the <gl-term> module and what it fetches, and oEmbed.
# No credentials are ever allowed, so a wildcard origin is safe here.
CORS_PATHS = re.compile(r"^/(embed/gl-term\.js|api/terms/[^/]+/summary|oembed)$")
TEXT_TYPES = (b"text/", b"application/javascript", b"image/svg+xml", b"application/xml")
MESSAGES = {
    413: "Request body is larger than the limit of {limit} bytes.",
    500: "Something went wrong on our side. The error has been logged.",
}


def security_headers(hsts_max_age: int, path: str = "/") -> tuple[tuple[bytes, bytes], ...]:
    """The headers every response gets, by path: cards may be framed, CORS_PATHS read."""
    return _headers(hsts_max_age, path.startswith(EMBED_PREFIX), bool(CORS_PATHS.match(path)))


@functools.cache
def _headers(hsts_max_age: int, embeddable: bool, cors: bool) -> tuple[tuple[bytes, bytes], ...]:
    """Built once per kind of path (a hot path: every response), not per response."""
    policy = EMBED_SECURITY_POLICY if embeddable else CONTENT_SECURITY_POLICY
    headers = [
        (b"content-security-policy", policy.encode()),
        (b"x-content-type-options", b"nosniff"),
        (b"referrer-policy", b"strict-origin-when-cross-origin"),
        (b"cross-origin-opener-policy", b"same-origin"),
        (b"permissions-policy", b"camera=(), microphone=(), geolocation=(), interest-cohort=()"),
    ]
    if not embeddable:
        headers.append((b"x-frame-options", b"DENY"))
    if cors:
        headers += [
            (b"access-control-allow-origin", b"*"),
            (b"cross-origin-resource-policy", b"cross-origin"),
        ]
    if hsts_max_age:
        headers.append(
            (b"strict-transport-security", f"max-age={hsts_max_age}; includeSubDomains".encode())
        )
    return tuple(headers)


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
    """Adds security headers to every response, enforces the body limit, and turns any
    unhandled exception into a generic 500."""

    def __init__(self, app: ASGIApp, *, max_body_bytes: int, hsts_max_age: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.hsts_max_age = hsts_max_age

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        declared = request.headers.get("content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_body_bytes):
            await self._send_error(scope, receive, send, 413)
            return

        path = scope.get("path", "/")
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
                message["headers"] = self._with_headers(message.get("headers", []), path)
            await send(message)

        try:
            await self.app(scope, body_receive, send_with_headers)
        except Exception:
            log.exception("unhandled error on %s %s", scope.get("method"), scope.get("path"))
            if not started:
                await self._send_error(scope, receive, send, 500)

    def _with_headers(
        self, headers: list[tuple[bytes, bytes]], path: str
    ) -> list[tuple[bytes, bytes]]:
        present = {name.lower() for name, _ in headers}
        out = []
        for name, value in headers:
            if name.lower() == b"content-type" and value.startswith(TEXT_TYPES):
                if b"charset" not in value:
                    value += b"; charset=utf-8"
            out.append((name, value))
        ours = security_headers(self.hsts_max_age, path)
        out += [(name, value) for name, value in ours if name not in present]
        return out

    async def _send_error(self, scope: Scope, receive: Receive, send: Send, status: int) -> None:
        text = MESSAGES[status].format(limit=self.max_body_bytes)
        request = Request(scope, receive)
        try:
            response = error_response(request, status, text)
        except Exception:  # even the error page failed: plain JSON, still no details
            response = Response(
                json.dumps({"status": status, "message": text, "details": None}),
                status_code=status,
                media_type="application/json",
            )

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                path = scope.get("path", "/")
                message["headers"] = self._with_headers(message.get("headers", []), path)
            await send(message)

        await response(scope, receive, send_with_headers)
