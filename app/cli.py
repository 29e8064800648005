"""The `glossary` command: load, check, backup, serve, worker, mcp."""

import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from app.config import Settings, get_settings

if TYPE_CHECKING:  # the content modules are imported by the commands that need them
    from app.content import Corpus

app = typer.Typer(
    help="Glossary Lab: load and check content, run the server.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)

DataDirOption = Annotated[
    Path | None, typer.Option("--data-dir", help="Content folder (default: GLOSSARY_DATA_DIR).")
]
DatabaseOption = Annotated[
    str | None, typer.Option("--database-url", help="Default: GLOSSARY_DATABASE_URL.")
]


def _settings(data_dir: Path | None, database_url: str | None) -> Settings:
    overrides: dict[str, object] = {}
    if data_dir is not None:
        overrides["data_dir"] = data_dir
    if database_url is not None:
        overrides["database_url"] = database_url
    return get_settings().model_copy(update=overrides)


def _safe(database_url: str) -> str:
    """The URL without its password, for messages."""
    from sqlalchemy.engine import make_url

    return make_url(database_url).render_as_string(hide_password=True)


def _validate(settings: Settings) -> "Corpus":
    from app.content import ContentError, describe, read_corpus

    try:
        return read_corpus(settings.data_dir)
    except ContentError as exc:
        typer.echo(describe(exc.problems), err=True)
        typer.echo(f"{len(exc.problems)} problem(s) found in {settings.data_dir}/", err=True)
        raise typer.Exit(code=1) from None


@app.command()
def check(data_dir: DataDirOption = None) -> None:
    """Validate every file under data/ without writing anything."""
    from app.content import describe
    from app.content.checks import experiment_problems
    from app.content.overlap import overlap_problems

    settings = _settings(data_dir, None)
    corpus = _validate(settings)
    # Both need the whole real corpus (the small corpora of tests lack experiments' terms
    # and repeat their filler text), so they run here and in the corpus test, not on load.
    problems = experiment_problems(corpus) + overlap_problems(corpus)
    if problems:
        typer.echo(describe(problems), err=True)
        typer.echo(f"{len(problems)} problem(s) found", err=True)
        raise typer.Exit(code=1)
    counts = ", ".join(f"{n} {what}" for what, n in corpus.counts().items())
    typer.echo(f"ok: {counts}")


@app.command()
def load(data_dir: DataDirOption = None, database_url: DatabaseOption = None) -> None:
    """Validate data/ and replace the database content in one transaction."""
    from app.content import load_corpus
    from app.db import make_engine, verify_pragmas

    settings = _settings(data_dir, database_url)
    corpus = _validate(settings)
    engine = make_engine(settings.database_url)
    try:
        verify_pragmas(engine)
        load_corpus(engine, corpus)
    except SQLAlchemyError as exc:
        reason = str(exc.orig if isinstance(exc, DBAPIError) else exc).splitlines()[0]
        typer.echo(f"cannot load into {_safe(settings.database_url)}: {reason}", err=True)
        typer.echo("nothing was changed (the load is one transaction)", err=True)
        raise typer.Exit(code=1) from None
    finally:
        engine.dispose()
    counts = ", ".join(f"{n} {what}" for what, n in corpus.counts().items())
    typer.echo(f"loaded {counts} into {_safe(settings.database_url)}")


@app.command()
def backup(
    path: Annotated[Path, typer.Argument(help="File to write the copy to (replaced if present).")],
    database_url: DatabaseOption = None,
) -> None:
    """Copy the live SQLite database to PATH (online backup API), then check the copy."""
    from app.db import DatabaseError, backup_sqlite, sqlite_path

    settings = _settings(None, database_url)
    try:
        counts = backup_sqlite(settings.database_url, path)
    except DatabaseError as exc:
        typer.echo(f"backup failed: {exc}", err=True)
        raise typer.Exit(code=1) from None
    rows = sum(counts.values())
    typer.echo(
        f"backed up {sqlite_path(settings.database_url)} to {path}: integrity_check ok, "
        f"{len(counts)} tables, {rows} rows ({counts.get('term', 0)} terms)"
    )


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Default: GLOSSARY_HOST.")] = None,
    port: Annotated[int | None, typer.Option(help="Default: GLOSSARY_PORT.")] = None,
    workers: Annotated[int, typer.Option(min=1, help="Worker processes.")] = 1,
) -> None:
    """Run the web server; builds the database first when it is missing or stale."""
    import uvicorn

    from app.content import ContentError, describe, ensure_loaded
    from app.db import make_engine, verify_pragmas

    settings = get_settings()
    if settings.build_on_start:
        # Load once here, not in each worker, then tell the workers not to.
        engine = make_engine(settings.database_url)
        try:
            verify_pragmas(engine)
            typer.echo(f"content: {ensure_loaded(engine, settings.data_dir)}")
        except ContentError as exc:
            typer.echo(describe(exc.problems), err=True)
            raise typer.Exit(code=1) from None
        finally:
            engine.dispose()
        os.environ["GLOSSARY_BUILD_ON_START"] = "false"
    if workers > 1 and settings.demo_workers == "auto":
        # each web process starts its own demo workers: share the cores out between them
        share = max(1, ((os.cpu_count() or 1) - 1) // workers)
        os.environ["GLOSSARY_DEMO_WORKERS"] = str(share)
    uvicorn.run(
        "app.main:app",
        host=host or settings.host,
        port=port or settings.port,
        workers=workers,
        # Forwarded headers count only from the proxies the operator named: anyone can send
        # X-Forwarded-For, and the demo's per-client cap trusts the address uvicorn reports.
        proxy_headers=bool(settings.proxies()),
        forwarded_allow_ips=",".join(settings.proxies()) or None,
        log_level="info",
    )


@app.command()
def mcp(database_url: DatabaseOption = None) -> None:
    """Serve the MCP server on stdin/stdout (for an agent that starts it as a process);
    builds the database first when it is missing or stale, as `serve` does."""
    import asyncio

    from app.agents.over_stdio import serve as serve_mcp
    from app.content import ContentError, describe, ensure_loaded
    from app.db import make_engine, verify_pragmas

    settings = _settings(None, database_url)
    if settings.build_on_start:
        engine = make_engine(settings.database_url)
        try:
            verify_pragmas(engine)
            # stderr: stdout carries the protocol
            typer.echo(f"content: {ensure_loaded(engine, settings.data_dir)}", err=True)
        except ContentError as exc:
            typer.echo(describe(exc.problems), err=True)
            raise typer.Exit(code=1) from None
        finally:
            engine.dispose()
    try:
        asyncio.run(serve_mcp(settings))
    except KeyboardInterrupt:
        pass


@app.command()
def ping(
    wait: Annotated[float, typer.Option(min=0, help="Keep trying for this many seconds.")] = 0,
    database_url: DatabaseOption = None,
) -> None:
    """Exit 0 when the database answers (for container start-up and health scripts)."""
    import time

    from app.db import make_engine, verify_pragmas

    settings = _settings(None, database_url)
    deadline = time.monotonic() + wait
    while True:
        engine = make_engine(settings.database_url)
        try:
            verify_pragmas(engine)
            typer.echo(f"ok: {_safe(settings.database_url)} answers")
            return
        except SQLAlchemyError as exc:
            if time.monotonic() >= deadline:
                reason = str(exc.orig if isinstance(exc, DBAPIError) else exc).splitlines()[0]
                typer.echo(f"{_safe(settings.database_url)} does not answer: {reason}", err=True)
                raise typer.Exit(code=1) from None
        finally:
            engine.dispose()
        time.sleep(0.5)


@app.command()
def worker(
    workers: Annotated[
        int | None,
        typer.Option(
            "--workers", min=1, help="Worker processes (default: GLOSSARY_DEMO_WORKERS, auto)."
        ),
    ] = None,
    database_url: DatabaseOption = None,
) -> None:
    """Run demo workers that take runs from PostgreSQL's queue (on any machine that can
    reach the database). On the embedded SQLite default `glossary serve` starts its own."""
    import asyncio

    from app.db import is_sqlite

    settings = _settings(None, database_url)
    if is_sqlite(settings.database_url):
        typer.echo(
            "glossary worker needs PostgreSQL (GLOSSARY_DATABASE_URL=postgresql+psycopg://...): "
            "with the embedded SQLite default, `glossary serve` starts its demo workers itself.",
            err=True,
        )
        raise typer.Exit(code=2)
    from app.demo.queue_worker import serve as serve_queue

    count = workers or max(1, settings.worker_count())
    typer.echo(f"demo workers: {count} on {_safe(settings.database_url)}, queue 'demo'")
    try:
        asyncio.run(serve_queue(settings, count))
    except KeyboardInterrupt:
        pass
