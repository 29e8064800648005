"""Which full-text implementation a database gets, by its SQLAlchemy dialect name."""

from sqlalchemy import Connection

from app.search.fulltext import FullText
from app.search.postgres import PostgresFullText
from app.search.sqlite import SQLiteFullText

FULLTEXT: dict[str, type[FullText]] = {
    "sqlite": SQLiteFullText,
    "postgresql": PostgresFullText,
}


def fulltext_class(dialect: str) -> type[FullText]:
    """The full-text implementation for a database."""
    try:
        return FULLTEXT[dialect]
    except KeyError:
        raise NotImplementedError(f"search has no full-text implementation for {dialect}") from None


def fulltext_for(conn: Connection) -> FullText:
    """The full-text implementation for the connection's database, on that connection."""
    return fulltext_class(conn.dialect.name)(conn)
