"""The MCP server: four tools and every entry as a resource, the same for both transports.

The tools are the API's own builders (app/glossary, app/search, the demo catalog and runner):
an agent gets the JSON a browser's /api/... request would. Where the database and the runner
come from, and who the caller is, is the transport's business (`Sources`).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Annotated, Any

import anyio.to_thread
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ResourceNotFoundError, ToolError
from mcp_types import Resource as MCPResource
from mcp_types import ToolAnnotations
from pydantic import Field
from sqlalchemy import Engine
from sqlmodel import Session, col, select
from starlette.requests import HTTPConnection

from app.agents.experiments import run_through
from app.demo.catalog import catalog
from app.demo.fairness import client_of
from app.demo.runner import DemoRunner
from app.glossary import build_search
from app.glossary.shared import NotFound
from app.glossary.terms import build_term, canonical_slug
from app.models import Term

Lifespan = Callable[[MCPServer[Any]], AbstractAsyncContextManager[Any]]
TERM_URI = "glossary://terms/{slug}"
STDIO_CLIENT = "mcp-stdio"  # every run a stdio session asks for counts as this one client
INSTRUCTIONS = (
    "A machine-learning glossary with a live PyTorch experiment behind many entries. "
    "search_terms finds entries (typo-tolerant), get_term returns one in full, "
    "list_experiments lists the experiments with their parameters and bounds, and "
    "run_experiment runs one on the server's workers and says which published claims held."
)


@dataclass(frozen=True)
class Sources:
    """What the tools read and run, looked up at call time (the web app sets its database and
    runner in its lifespan, after the server is built)."""

    engine: Callable[[], Engine]
    runner: Callable[[], DemoRunner]
    base_url: str  # absolute links, where the caller's request gives none (stdio)
    proxies: Callable[[], list[str]] = list


def term_uri(slug: str) -> str:
    return TERM_URI.replace("{slug}", slug)


class GlossaryServer(MCPServer):
    """MCPServer whose resource list is the database's entries, read when asked (the content
    can be reloaded under a running server)."""

    def __init__(self, sources: Sources, lifespan: Lifespan | None = None) -> None:
        # MCPServer() calls logging.basicConfig (a rich handler on the root logger): the
        # process's logging is the app's and uvicorn's business, so it is put back as it was.
        root = logging.getLogger()
        handlers, level = list(root.handlers), root.level
        super().__init__(
            "glossary-lab",
            title="Glossary Lab",
            instructions=INSTRUCTIONS,
            version="0.1.0",
            log_level="WARNING",
            lifespan=lifespan,
        )
        root.handlers[:] = handlers
        root.setLevel(level)
        self.sources = sources

    async def list_resources(self) -> list[MCPResource]:
        def rows() -> list[tuple[str, str, str]]:
            with Session(self.sources.engine()) as session:
                query = select(Term.slug, Term.title, Term.summary).order_by(col(Term.slug))
                return [(slug, title, summary) for slug, title, summary in session.exec(query)]

        return [
            MCPResource(
                uri=term_uri(slug),
                name=slug,
                title=title,
                description=summary,
                mime_type="application/json",
            )
            for slug, title, summary in await anyio.to_thread.run_sync(rows)
        ]


def caller(ctx: Context, sources: Sources) -> tuple[str, str]:
    """(client, base URL): the peer address and the request's origin over HTTP; the fixed
    stdio client and the configured base otherwise."""
    request = ctx.request_context.request  # the Starlette request over HTTP, None on stdio
    if isinstance(request, HTTPConnection):
        return client_of(request, sources.proxies()), str(request.base_url)
    return STDIO_CLIENT, sources.base_url


def term_json(sources: Sources, slug: str, base_url: str) -> dict[str, Any]:
    """The JSON twin of /terms/{slug}; a synonym or another spelling gives the canonical entry."""
    with Session(sources.engine()) as session:
        try:
            view = build_term(session, canonical_slug(session, slug), base_url)
        except NotFound as exc:
            raise ToolError(str(exc)) from None
    return view.model_dump(mode="json")


def build_server(sources: Sources, lifespan: Lifespan | None = None) -> GlossaryServer:
    """The server with its tools and the term resource template; `lifespan` runs while a
    transport serves it (stdio starts its workers there, once stdout is the protocol's)."""
    server = GlossaryServer(sources, lifespan)
    read_only = ToolAnnotations(read_only_hint=True, open_world_hint=False)

    @server.tool(annotations=read_only)
    def search_terms(
        query: Annotated[
            str,
            Field(
                max_length=2_000,
                description="Free text: words, a name, an abbreviation or a prefix; typos are "
                "tolerated",
            ),
        ],
        limit: Annotated[int, Field(ge=1, le=100, description="How many hits at most")] = 10,
    ) -> dict[str, Any]:
        """Search the glossary's entries (titles, synonyms, summaries, text), ranked as on the
        site's search page; each hit has its slug for get_term."""
        with Session(sources.engine()) as session:
            return build_search(session, query, limit=limit).model_dump(mode="json")

    @server.tool(annotations=read_only)
    def get_term(
        slug: Annotated[
            str,
            Field(
                min_length=1,
                max_length=200,
                description="The entry's slug (e.g. residual-connection); a synonym's slug "
                "(skip-connection) gives its entry",
            ),
        ],
        ctx: Context,
    ) -> dict[str, Any]:
        """One entry in full: definition, background, usage note, formula, synonyms, related
        entries, organizations' notes, further reading and its experiment."""
        return term_json(sources, slug, caller(ctx, sources)[1])

    @server.tool(annotations=read_only)
    def list_experiments() -> dict[str, Any]:
        """Every live experiment: its terms, variants, parameters with defaults and bounds,
        the claims it checks, and this server's compute budget."""
        experiments = catalog()
        return {"count": len(experiments), "experiments": experiments}

    # Changes nothing, and the same config gives the same numbers (seeded, cached).
    @server.tool(annotations=read_only.model_copy(update={"idempotent_hint": True}))
    async def run_experiment(
        preset: Annotated[
            str,
            Field(
                min_length=1,
                max_length=100,
                description="The experiment's name, from list_experiments (e.g. residual-vs-plain)",
            ),
        ],
        ctx: Context,
        params: Annotated[
            dict[str, str | int | float | bool] | None,
            Field(
                description='Its parameters by name (e.g. {"depth": 8, "seed": 1}); '
                "left out ones take their defaults. Bounds: list_experiments",
            ),
        ] = None,
    ) -> dict[str, Any]:
        """Run one experiment on the server's demo workers (or answer from the cache, or join
        the same run in flight) and return its numbers: each variant's measures and each
        claim with whether it held. Progress is reported while it trains. Runs share the
        web demo's queue: a client may have only a few queued or running at once."""
        client = caller(ctx, sources)[0]
        return await run_through(sources.runner(), preset, params or {}, client, ctx)

    @server.resource(
        TERM_URI,
        name="term",
        title="A glossary entry",
        description="One entry as the JSON twin of its page (a synonym's slug gives its entry)",
        mime_type="application/json",
    )
    def read_term(slug: str, ctx: Context) -> str:
        try:
            return json.dumps(term_json(sources, slug, caller(ctx, sources)[1]))
        except ToolError as exc:
            raise ResourceNotFoundError(str(exc)) from None

    return server
