"""The storage and matching layer the search algorithm runs on, one implementation per
database: every statement search runs goes through a Store. A store is made per call for
the caller's connection (and transaction) and holds nothing else."""

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, Engine

from app.search.model import IndexRows, Term

# (doc id, slug, title, synonyms as JSON, summary, body, category)
DocRow = tuple[int, str, str, str, str, str, str]
# (folded name, slug, title, summary, category)
NameRow = tuple[str, str, str, str, str]


class Store(ABC):
    """Index tables and the queries over them, for one connection."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        """Rows of one statement, run on the connection's own DB-API connection (and
        transaction): a search runs a dozen small statements, and SQLAlchemy's
        per-statement work would cost as much as the database's."""
        driver = self.conn.connection.driver_connection
        cursor = driver.execute(sql, tuple(params))  # type: ignore[union-attr]
        try:
            return cursor.fetchall()  # type: ignore[no-any-return]
        finally:
            cursor.close()

    # ------------------------------------------------------------ the index's life

    @abstractmethod
    def drop(self) -> None:
        """Remove every index table."""

    @abstractmethod
    def build(self, index: IndexRows) -> None:
        """Replace the index (or create it) with these rows, in the caller's transaction."""

    @classmethod
    @abstractmethod
    def after_load(cls, engine: Engine) -> None:
        """Housekeeping once the load that built the index has committed."""

    # ------------------------------------------------------------ vocabulary

    @abstractmethod
    def indexed(self, words: Sequence[str]) -> set[str]:
        """The words the index holds whole."""

    @abstractmethod
    def words_starting(self, prefix: str, limit: int) -> list[str]:
        """Indexed words starting with prefix, in order, at most limit; joined names whose
        first word already starts with it (head >= len(prefix)) are left out."""

    @abstractmethod
    def deletion_candidates(self, keys: Sequence[str]) -> list[tuple[str, int]]:
        """(word, frequency) of vocabulary words sharing a SymSpell deletion key."""

    # ------------------------------------------------------------ names and documents

    @abstractmethod
    def documents(self, ids: Sequence[int]) -> list[DocRow]:
        """The documents with these ids, in any order."""

    @abstractmethod
    def exact_names(
        self, folded: Sequence[str], compacted: Sequence[str], category: str | None
    ) -> list[tuple[int, str, int]]:
        """(doc id, name, is title) of names whose folded or compact form is listed: titles
        first, then shorter names, then in name id order."""

    @abstractmethod
    def names_by_key(self, key: str, is_title: bool, limit: int) -> list[tuple[int, str]]:
        """(doc id, name) of names starting with a 2-4 letter key (folded or compact),
        shortest first, then in name id order."""

    @abstractmethod
    def names_from(
        self, column: str, value: str, is_title: bool, limit: int
    ) -> list[tuple[int, str, int, int]]:
        """(doc id, name, length of its compact form, name id) of up to limit names whose
        `column` ("folded" or "compact") starts with value, in any order."""

    # ------------------------------------------------------------ matching

    @abstractmethod
    def count(
        self, terms: Sequence[Term], category: str | None, ids: Sequence[int]
    ) -> tuple[int, int]:
        """How many documents hold every term anywhere, up to MAX_TOTAL + 1, and how many
        of `ids` are among those."""

    @abstractmethod
    def ranked(
        self,
        tier: str,
        terms: Sequence[Term],
        category: str | None,
        count: int,
        total: int | None = None,
    ) -> list[tuple[int, float]]:
        """The `count` best documents of one bucket as (id, relevance), best first (then by
        id); relevance is >= 0, higher is better. `total`, when known, bounds the bucket's
        matches; otherwise, past RANK_WINDOW[tier] matches only the first ones by id are
        ranked."""

    @abstractmethod
    def closest_names(self, wanted: str, grams: Sequence[str]) -> list[NameRow]:
        """Up to CLOSEST_CANDIDATES names most like the folded text, with their documents:
        names holding any of its trigrams `grams` (the caller keeps only those)."""


def store_class(dialect: str) -> type[Store]:
    """The store for a database, by SQLAlchemy dialect name."""
    if dialect == "sqlite":
        from app.search.sqlite import SQLiteStore

        return SQLiteStore
    if dialect == "postgresql":
        from app.search.postgres import PostgresStore

        return PostgresStore
    raise NotImplementedError(f"search has no store for {dialect}")


def store_for(conn: Connection) -> Store:
    """The store for the connection's database."""
    return store_class(conn.dialect.name)(conn)
