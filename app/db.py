"""Engine, connection pragmas, sessions and schema. SQLite-only SQL lives here and in
search.py, behind functions, so another backend can be added in these two files."""

from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, Request
from sqlalchemy import Engine, event
from sqlalchemy.engine import make_url
from sqlmodel import Session, SQLModel, create_engine, text

from app import models  # noqa: F401  (registers the tables on SQLModel.metadata)

BUSY_TIMEOUT_MS = 5000


class DatabaseError(RuntimeError):
    """The database is unusable (missing file, wrong pragmas)."""


def sqlite_path(database_url: str) -> Path | None:
    """The file behind a SQLite URL, or None for other backends and in-memory databases."""
    url = make_url(database_url)
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        return None
    return Path(url.database)


def make_engine(database_url: str, *, read_only: bool = False) -> Engine:
    """An engine whose every connection has WAL, a busy timeout and foreign keys on."""
    path = sqlite_path(database_url)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(database_url, connect_args={"check_same_thread": False})

    @event.listens_for(engine, "connect")
    def _set_pragmas(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        if read_only:
            # The web process only reads; make an accidental write fail loudly.
            cursor.execute("PRAGMA query_only=ON")
        cursor.close()

    return engine


def connection_pragmas(engine: Engine) -> dict[str, Any]:
    """The pragmas a fresh connection actually has (journal_mode, busy_timeout, foreign_keys)."""
    with engine.connect() as conn:
        return {
            name: conn.execute(text(f"PRAGMA {name}")).scalar()
            for name in ("journal_mode", "busy_timeout", "foreign_keys", "query_only")
        }


def verify_pragmas(engine: Engine) -> None:
    """Fail fast when SQLite silently ignored a pragma (e.g. WAL on a read-only medium)."""
    pragmas = connection_pragmas(engine)
    if str(pragmas["journal_mode"]).lower() != "wal":
        raise DatabaseError(f"journal_mode is {pragmas['journal_mode']!r}, expected 'wal'")
    if int(pragmas["busy_timeout"]) < BUSY_TIMEOUT_MS:
        raise DatabaseError(f"busy_timeout is {pragmas['busy_timeout']}, expected >= 5000")
    if int(pragmas["foreign_keys"]) != 1:
        raise DatabaseError("foreign_keys is off")


def create_schema(engine: Engine) -> None:
    """Create every table that does not exist yet (idempotent)."""
    SQLModel.metadata.create_all(engine)


def content_version(database_url: str) -> tuple[int, ...]:
    """Changes whenever the content is reloaded; cheap enough to call on every request.

    For SQLite a load rewrites the main file or its WAL, so their sizes and mtimes are a
    version stamp without a query.
    """
    path = sqlite_path(database_url)
    if path is None:
        return (0,)
    stamp: list[int] = []
    for candidate in (path, path.with_name(path.name + "-wal")):
        try:
            info = candidate.stat()
        except FileNotFoundError:
            stamp += [0, 0]
        else:
            stamp += [info.st_mtime_ns, info.st_size]
    return tuple(stamp)


def get_session(request: Request) -> Iterator[Session]:
    """One session per request on the app's read-only engine."""
    with Session(request.app.state.engine) as session:
        yield session


SessionDep = Annotated[Session, Depends(get_session)]
