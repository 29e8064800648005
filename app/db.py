"""Engines for SQLite or PostgreSQL, SQLite's connection pragmas, the per-request session,
the content version the response cache follows, and SQLite's online backup."""

import os
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import closing
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, Request
from sqlalchemy import Engine, event
from sqlalchemy.engine import make_url
from sqlmodel import Session, create_engine, text

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


def is_sqlite(database_url: str) -> bool:
    return make_url(database_url).get_backend_name() == "sqlite"


def make_engine(database_url: str, *, read_only: bool = False) -> Engine:
    """An engine for the URL's backend; read_only makes any write fail loudly."""
    if not is_sqlite(database_url):
        return _postgres_engine(database_url, read_only=read_only)
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

    # pysqlite would start transactions only before DML, leaving DDL outside them; take
    # control so that a load (schema and rows) is one transaction.
    @event.listens_for(engine, "connect")
    def _no_implicit_transactions(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None

    @event.listens_for(engine, "begin")
    def _begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")

    return engine


def _postgres_engine(database_url: str, *, read_only: bool) -> Engine:
    options = "-c default_transaction_read_only=on" if read_only else ""
    return create_engine(
        database_url,
        pool_pre_ping=True,
        pool_size=10,
        max_overflow=10,
        connect_args={"options": options} if options else {},
        # A reader sees one snapshot per request, as SQLite's WAL readers do: a page's (or a
        # search's) statements never mix the glossary before and after a load's commit.
        **({"isolation_level": "REPEATABLE READ"} if read_only else {}),
    )


def connection_pragmas(engine: Engine) -> dict[str, Any]:
    """The pragmas a fresh connection actually has (journal_mode, busy_timeout, foreign_keys)."""
    with engine.connect() as conn:
        return {
            name: conn.execute(text(f"PRAGMA {name}")).scalar()
            for name in ("journal_mode", "busy_timeout", "foreign_keys", "query_only")
        }


def verify_pragmas(engine: Engine) -> None:
    """Fail fast when SQLite silently ignored a pragma (e.g. WAL on a read-only medium);
    for PostgreSQL, that the server answers."""
    if engine.dialect.name != "sqlite":
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        return
    pragmas = connection_pragmas(engine)
    if str(pragmas["journal_mode"]).lower() != "wal":
        raise DatabaseError(f"journal_mode is {pragmas['journal_mode']!r}, expected 'wal'")
    if int(pragmas["busy_timeout"]) < BUSY_TIMEOUT_MS:
        raise DatabaseError(f"busy_timeout is {pragmas['busy_timeout']}, expected >= 5000")
    if int(pragmas["foreign_keys"]) != 1:
        raise DatabaseError("foreign_keys is off")


def sqlite_file_stamp(path: Path) -> tuple[int, ...]:
    """Sizes and mtimes of a SQLite file and its WAL: a load rewrites one of them."""
    stamp: list[int] = []
    for candidate in (path, path.with_name(path.name + "-wal")):
        try:
            info = candidate.stat()
        except FileNotFoundError:
            stamp += [0, 0]
        else:
            stamp += [info.st_mtime_ns, info.st_size]
    return tuple(stamp)


class ContentVersion:
    """Changes whenever the content is reloaded; cheap enough to call on every request.

    SQLite: a stat of the file and its WAL, no query. Other backends: the stored load time,
    read at most once per `ttl_s` (a reload shows within that delay).
    """

    def __init__(self, database_url: str, engine: Callable[[], Engine], ttl_s: float = 1.0):
        self.path = sqlite_path(database_url)
        self.engine = engine
        self.ttl_s = ttl_s
        self._value: object = None
        self._checked = -ttl_s

    def __call__(self) -> object:
        if self.path is not None:
            return sqlite_file_stamp(self.path)
        now = time.monotonic()
        if now - self._checked >= self.ttl_s:
            self._checked = now
            try:
                with self.engine().connect() as conn:
                    self._value = conn.execute(
                        text("SELECT value FROM meta WHERE key = 'loaded_at'")
                    ).scalar()
            except Exception:  # unknown state: a fresh object never equals the cached one
                self._value = object()
        return self._value


def table_counts(connection: sqlite3.Connection) -> dict[str, int]:
    """Rows in every table of a SQLite database (search index tables included)."""
    names = [
        row[0]
        for row in connection.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' "
            "ORDER BY name"
        )
    ]
    return {
        name: int(connection.execute(f'SELECT count(*) FROM "{name}"').fetchone()[0])  # noqa: S608
        for name in names
    }


def backup_sqlite(database_url: str, target: Path) -> dict[str, int]:
    """Copy a live SQLite database to `target` with SQLite's online backup API.

    The copy is taken in one step, so it is one consistent snapshot even while the server
    reads and a loader writes (WAL: neither blocks the other). It is written next to
    `target` under a temporary name, checked with PRAGMA integrity_check, switched to a
    rollback journal (one self-contained file) and only then renamed to `target`: a failed
    backup leaves no partial file behind. Returns the copy's row count per table; raises
    DatabaseError with a message naming the path that failed.
    """
    source = sqlite_path(database_url)
    if source is None:
        raise DatabaseError(f"backup needs a SQLite database file, not {database_url}")
    if not source.is_file():
        raise DatabaseError(f"no database at {source}")
    if target.is_dir():
        raise DatabaseError(f"{target} is a directory; give the path of the file to write")
    if target.exists() and target.resolve() == source.resolve():
        raise DatabaseError(f"{target} is the database itself")
    partial = target.with_name(f".{target.name}.partial-{os.getpid()}")
    try:
        with closing(sqlite3.connect(source)) as src, closing(sqlite3.connect(partial)) as dst:
            src.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
            src.execute("PRAGMA query_only=ON")
            src.backup(dst)
            dst.execute("PRAGMA journal_mode=DELETE")
            problems = [row[0] for row in dst.execute("PRAGMA integrity_check")]
            if problems != ["ok"]:
                raise DatabaseError(f"the copy of {source} fails integrity_check: {problems[:3]}")
            counts = table_counts(dst)
        os.replace(partial, target)
    except sqlite3.Error as exc:
        raise DatabaseError(f"cannot back up {source} to {target}: {exc}") from exc
    except OSError as exc:
        raise DatabaseError(f"cannot write {target}: {exc.strerror or exc}") from exc
    finally:
        for leftover in (partial, partial.with_name(partial.name + "-journal")):
            leftover.unlink(missing_ok=True)
    return counts


def get_session(request: Request) -> Iterator[Session]:
    """One session per request on the app's read-only engine."""
    with Session(request.app.state.engine) as session:
        yield session


SessionDep = Annotated[Session, Depends(get_session)]
