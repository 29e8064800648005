"""ETag / Cache-Control for GET responses, and an in-memory cache of rendered responses
that lives until the content is reloaded (the database is read-only to this process, so a
rendered page can only change when the content version does)."""

import hashlib
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

# Paths whose answers are not a function of the content alone.
UNCACHED_PREFIXES = ("/api/demo", "/healthz", "/static/")
MAX_ENTRIES = 2048


@dataclass
class Stored:
    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes
    etag: bytes


def etag_for(body: bytes) -> bytes:
    return b'"' + hashlib.blake2b(body, digest_size=12).hexdigest().encode() + b'"'


def _matches(if_none_match: str | None, etag: bytes) -> bool:
    if not if_none_match:
        return False
    wanted = etag.decode()
    return any(tag.strip().removeprefix("W/") in (wanted, "*") for tag in if_none_match.split(","))


class CachingMiddleware:
    """Adds ETag and Cache-Control to buffered GET 200 responses, answers If-None-Match with
    304, and serves repeated GETs of content pages from memory."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        version: Callable[[], object],
        enabled: bool,
        max_age: int,
    ) -> None:
        self.app = app
        self.version = version
        self.enabled = enabled
        self.cache_control = f"public, max-age={max_age}".encode()
        self.entries: OrderedDict[tuple[object, ...], Stored] = OrderedDict()
        self.stamp: object = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in ("GET", "HEAD"):
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        if path.startswith("/static/"):
            versioned = b"v=" in scope.get("query_string", b"")
            await self.app(scope, receive, self._static_headers(send, versioned))
            return
        headers = Headers(scope=scope)
        storable = self.enabled and not path.startswith(UNCACHED_PREFIXES)
        key = (scope["method"], path, scope.get("query_string", b""), headers.get("host"))
        if storable:
            stamp = self.version()
            if stamp != self.stamp:
                self.entries.clear()
                self.stamp = stamp
            stored = self.entries.get(key)
            if stored is not None:
                self.entries.move_to_end(key)
                await self._replay(stored, headers, send)
                return

        start: Message | None = None
        chunks: list[bytes] = []
        passthrough = False

        async def buffer(message: Message) -> None:
            nonlocal start, passthrough
            if message["type"] == "http.response.start":
                content_type = Headers(raw=message.get("headers", [])).get("content-type", "")
                if message["status"] != 200 or content_type.startswith("text/event-stream"):
                    passthrough = True
                    await send(message)
                else:
                    start = message
            elif message["type"] == "http.response.body" and not passthrough:
                chunks.append(message.get("body", b""))
                if not message.get("more_body", False):
                    assert start is not None
                    await self._finish(
                        start, b"".join(chunks), key if storable else None, headers, send
                    )
            else:
                await send(message)

        await self.app(scope, receive, buffer)

    async def _finish(
        self,
        start: Message,
        body: bytes,
        key: tuple[object, ...] | None,
        request_headers: Headers,
        send: Send,
    ) -> None:
        etag = etag_for(body)
        response_headers = [
            (name, value)
            for name, value in start.get("headers", [])
            if name.lower() not in (b"etag", b"content-length")
        ]
        if not any(name.lower() == b"cache-control" for name, _ in response_headers):
            response_headers.append((b"cache-control", self.cache_control))
        stored = Stored(200, response_headers, body, etag)
        if key is not None and not any(n.lower() == b"set-cookie" for n, _ in response_headers):
            self.entries[key] = stored
            while len(self.entries) > MAX_ENTRIES:
                self.entries.popitem(last=False)
        await self._replay(stored, request_headers, send)

    async def _replay(self, stored: Stored, request_headers: Headers, send: Send) -> None:
        headers = [*stored.headers, (b"etag", stored.etag)]
        if _matches(request_headers.get("if-none-match"), stored.etag):
            headers = [(n, v) for n, v in headers if n.lower() != b"content-type"]
            await send({"type": "http.response.start", "status": 304, "headers": headers})
            await send({"type": "http.response.body", "body": b""})
            return
        headers.append((b"content-length", str(len(stored.body)).encode()))
        await send({"type": "http.response.start", "status": stored.status, "headers": headers})
        await send({"type": "http.response.body", "body": stored.body})

    def _static_headers(self, send: Send, versioned: bool) -> Send:
        # static_url() puts a content hash in ?v=, so such a URL names one version for ever.
        value = b"public, max-age=31536000, immutable" if versioned else b"public, max-age=3600"

        async def add_cache_control(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [
                    *message.get("headers", []),
                    (b"cache-control", value),
                ]
            await send(message)

        return add_cache_control
