"""The application factory: `uvicorn app.main:app` or `glossary serve`."""

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from app import db
from app.agents import over_http as mcp_http
from app.config import Settings, get_settings
from app.content import ensure_loaded
from app.errors import install_error_handlers
from app.glossary.embed import oembed_discovery
from app.middleware.caching import CachingMiddleware
from app.middleware.head import HeadMiddleware
from app.middleware.security import SecurityMiddleware
from app.routes import (
    demo,
    docs,
    embed_demo,
    embed_term,
    exports,
    glossary,
    health,
    search,
    summary,
)
from app.templating import STATIC_DIR, make_templates

log = logging.getLogger("glossary")


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the app; the database is opened (and built if stale) in the lifespan."""
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if settings.build_on_start:
            writer = db.make_engine(settings.database_url)
            db.verify_pragmas(writer)
            outcome = ensure_loaded(writer, settings.data_dir)
            writer.dispose()
            log.info("content: %s", outcome)
        engine = db.make_engine(settings.database_url, read_only=True)
        db.verify_pragmas(engine)
        app.state.engine = engine
        runner = await demo.start_runner(app, settings)
        try:
            async with mcp_http.sessions(app):  # /mcp's sessions end before the runner
                yield
        finally:
            await runner.aclose()
            engine.dispose()

    app = FastAPI(
        title="Glossary Lab",
        summary="A machine-learning glossary with a live experiment on every page.",
        version="0.1.0",
        lifespan=lifespan,
        docs_url=None,  # served by pages with vendored assets (the CSP forbids CDNs)
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.templates = make_templates()
    # term.html links its experiment card's oEmbed (app/glossary/embed.py)
    app.state.templates.env.globals["oembed_discovery"] = oembed_discovery
    install_error_handlers(app)
    # Before glossary: /terms/{slug}.md would otherwise reach the page route /terms/{slug}.
    app.include_router(exports.router)
    app.include_router(glossary.router)
    app.include_router(summary.router)
    app.include_router(embed_term.router)
    app.include_router(embed_demo.router)
    app.include_router(search.router)
    app.include_router(demo.router)
    demo.install_demo_error_handlers(app)
    app.include_router(health.router)
    app.include_router(docs.router)
    mcp_http.install(app, settings)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    app.add_middleware(
        CachingMiddleware,
        version=db.ContentVersion(settings.database_url, lambda: app.state.engine),
        enabled=settings.response_cache,
        max_age=settings.cache_max_age,
    )
    app.add_middleware(HeadMiddleware)
    app.add_middleware(
        SecurityMiddleware,
        max_body_bytes=settings.max_body_bytes,
        hsts_max_age=settings.hsts_max_age,
    )
    return app


app = create_app()
