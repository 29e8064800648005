"""/mcp: the MCP server over streamable HTTP, inside the web app.

The route hands requests to the SDK's session manager, which runs inside the app's lifespan
(`sessions`); tools reach the app's database and DemoRunner through app.state, so an agent's
runs share the web demo's cache, cap, queue and budget. The SDK checks Host and Origin
against the hosts this server answers for (against DNS rebinding), and the app's middleware
adds the security headers and the body limit. FastAPI does not describe a mounted ASGI app:
`describe` adds /mcp's operations to the OpenAPI document by hand.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from http import HTTPStatus

from fastapi import FastAPI
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp.server.transport_security import TransportSecuritySettings
from mcp_types import INTERNAL_ERROR, INVALID_REQUEST
from starlette.datastructures import Headers
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.types import Message, Receive, Scope, Send

from app.agents.openapi_mcp import MCP_PATH, describe
from app.agents.server import GlossaryServer, Sources, build_server
from app.config import Settings

LOOPBACK = ("127.0.0.1", "localhost", "[::1]")
SESSION_IDLE_S = 600  # a handshake-era session nobody used for this long is closed
WILDCARD_BINDS = ("0.0.0.0", "::", "")  # noqa: S104 (names compared, nothing bound)
NOT_RUNNING = JSONResponse(
    {
        "jsonrpc": "2.0",
        "id": None,
        "error": {"code": INTERNAL_ERROR, "message": "Not running yet."},
    },
    status_code=503,
)


def transport_security(settings: Settings) -> TransportSecuritySettings:
    """Host (and, when sent, Origin) must name this server: loopback, the host it binds to,
    and the public names the operator lists (GLOSSARY_MCP_ALLOWED_HOSTS)."""
    names = list(LOOPBACK)
    if settings.host not in WILDCARD_BINDS:
        names.append(f"[{settings.host}]" if ":" in settings.host else settings.host)
    names += settings.mcp_hosts()
    hosts: list[str] = []
    for name in dict.fromkeys(names):
        has_port = ":" in name.rsplit("]", 1)[-1]
        hosts += [name] if has_port else [name, f"{name}:*"]  # a bare name: any port
    origins = [f"{scheme}://{h}" for h in hosts for scheme in ("http", "https")]
    return TransportSecuritySettings(
        enable_dns_rebinding_protection=True, allowed_hosts=hosts, allowed_origins=origins
    )


class Endpoint:
    """The ASGI app at /mcp: the session manager the lifespan started."""

    def __init__(self, app: FastAPI) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        manager: StreamableHTTPSessionManager | None = getattr(self.app.state, "mcp_sessions", None)
        if manager is None:  # served outside the lifespan (it starts and stops with the app)
            await NOT_RUNNING(scope, receive, send)
            return
        await manager.handle_request(scope, receive, as_json_rpc_errors(send))


def as_json_rpc_errors(send: Send) -> Send:
    """The SDK refuses some requests (Host, Content-Type, Accept, method) with a bare-text
    or empty body and no Content-Type: give those a JSON-RPC error body, /mcp's one error
    shape, so a client can always read why."""
    start: Message | None = None
    chunks: list[bytes] = []

    async def wrapped(message: Message) -> None:
        nonlocal start
        if message["type"] == "http.response.start":
            headers = Headers(raw=message.get("headers", []))
            if message["status"] >= 400 and "content-type" not in headers:
                start = message
                return
        elif start is not None and message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                status = start["status"]
                text = b"".join(chunks).decode(errors="replace").strip()
                error = {"code": INVALID_REQUEST, "message": text or HTTPStatus(status).phrase}
                body = json.dumps({"jsonrpc": "2.0", "id": None, "error": error}).encode()
                kept = [
                    (name, value)
                    for name, value in start.get("headers", [])
                    if name.lower() != b"content-length"
                ]
                kept += [
                    (b"content-type", b"application/json"),
                    (b"content-length", b"%d" % len(body)),
                ]
                await send({**start, "headers": kept})
                await send({"type": "http.response.body", "body": body})
            return
        await send(message)

    return wrapped


def install(app: FastAPI, settings: Settings) -> GlossaryServer:
    """Build the server on the app's database and runner, route /mcp to it, document it."""
    server = build_server(
        Sources(
            engine=lambda: app.state.engine,
            runner=lambda: app.state.demo_runner,
            base_url=f"http://{settings.host}:{settings.port}/",
            proxies=settings.proxies,
        )
    )
    app.state.mcp_server = server
    app.router.routes.append(Route(MCP_PATH, Endpoint(app), include_in_schema=False))
    describe(app)
    return server


@asynccontextmanager
async def sessions(app: FastAPI) -> AsyncIterator[None]:
    """Run /mcp's session manager for the lifespan of the app (a fresh one per start: the
    SDK's manager runs only once)."""
    server: GlossaryServer = app.state.mcp_server
    settings: Settings = app.state.settings
    # Builds the session manager; the Starlette app it returns is not used (the app routes /mcp).
    server.streamable_http_app(
        streamable_http_path=MCP_PATH,
        transport_security=transport_security(settings),
        max_request_body_size=settings.max_body_bytes,
        max_sessions=settings.mcp_max_sessions,
        session_idle_timeout=SESSION_IDLE_S,
    )
    manager = server.session_manager
    async with manager.run():
        app.state.mcp_sessions = manager
        try:
            yield
        finally:
            app.state.mcp_sessions = None
