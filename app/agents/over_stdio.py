"""`glossary mcp`: the MCP server over stdin/stdout, for an agent that starts it as a process.

It reads the database read-only, as the web server does, and runs experiments on its own
worker processes (app/demo/setup.py), every run counted as the one client "mcp-stdio". The
workers start in the server's lifespan, after the SDK has pointed fd 1 at stderr: a child's
stray output then cannot corrupt the protocol on stdout.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from app import db
from app.agents.server import Sources, build_server
from app.config import Settings
from app.demo.setup import build_runner


async def serve(settings: Settings) -> None:
    """Serve until the client closes stdin; then stop the workers and close the database."""
    engine = db.make_engine(settings.database_url, read_only=True)
    db.verify_pragmas(engine)
    runner = build_runner(settings)

    @asynccontextmanager
    async def workers(_: Any) -> AsyncIterator[dict[str, Any]]:
        await runner.start()
        try:
            yield {}
        finally:
            await runner.aclose()

    sources = Sources(
        engine=lambda: engine,
        runner=lambda: runner,
        base_url=f"http://{settings.host}:{settings.port}/",
    )
    try:
        await build_server(sources, lifespan=workers).run_stdio_async()
    finally:
        engine.dispose()
