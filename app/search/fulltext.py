"""What each database does its own way, and nothing else: the full-text tables (the buckets,
the name trigrams), matching and ranking a query in them, the fuzzy name lookup, and the
fastest way to bulk-write rows. app.search.sqlite and app.search.postgres implement it;
app.search.backend picks one."""

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, Engine, Table

from app.search.model import RANK_WINDOW, IndexRows, Term


class FullText(ABC):
    """The full-text half of the index, for one connection and its transaction."""

    tables: tuple[str, ...]  # every table it creates

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        """Rows of one statement in the database's own SQL (positional parameters), run on
        the connection's DB-API connection, in its transaction: SQLAlchemy's work per
        statement would cost as much as the database's."""
        driver = self.conn.connection.driver_connection
        cursor = driver.execute(sql, tuple(params))  # type: ignore[union-attr]
        try:
            return cursor.fetchall()  # type: ignore[no-any-return]
        finally:
            cursor.close()

    # ------------------------------------------------------------ building

    @abstractmethod
    def write(self, table: Table, rows: Sequence[Sequence[Any]]) -> None:
        """Append rows (in column order) to a plain table: the index holds a hundred
        thousand rows for a hundred documents, and one INSERT per row would take seconds."""

    @abstractmethod
    def create(self) -> None:
        """Create the full-text tables, empty."""

    @abstractmethod
    def clear(self) -> None:
        """Empty the full-text tables, keeping them (readers keep the old rows until the
        load commits)."""

    @abstractmethod
    def fill(self, index: IndexRows, fresh: bool) -> None:
        """Write the full-text rows; the plain tables are already written. fresh: the tables
        were created in this transaction."""

    def drop(self) -> None:
        """Remove the full-text tables."""
        for table in self.tables:
            self.conn.exec_driver_sql(f"DROP TABLE IF EXISTS {table}")

    @classmethod
    @abstractmethod
    def after_load(cls, engine: Engine) -> None:
        """Housekeeping once the load that built the index has committed."""

    # ------------------------------------------------------------ matching

    @abstractmethod
    def count(
        self, terms: Sequence[Term], category: str | None, ids: Sequence[int]
    ) -> tuple[int, int]:
        """How many documents hold every term anywhere, up to MAX_TOTAL + 1, and how many
        of `ids` are among those."""

    @abstractmethod
    def nth_match(
        self, tier: str, terms: Sequence[Term], category: str | None, n: int
    ) -> int | None:
        """The id of the bucket's n-th match (from 0) in id order; None past the last."""

    @abstractmethod
    def rank(
        self,
        tier: str,
        terms: Sequence[Term],
        category: str | None,
        count: int,
        below: int | None,
    ) -> list[tuple[int, float]]:
        """The `count` best matches of one bucket with ids below `below` (when given) as
        (id, relevance), best first, then by id; relevance is >= 0, higher is better."""

    def ranked(
        self,
        tier: str,
        terms: Sequence[Term],
        category: str | None,
        count: int,
        total: int | None = None,
    ) -> list[tuple[int, float]]:
        """The `count` best documents of one bucket. Past RANK_WINDOW[tier] matches only the
        first ones by id are ranked; `total`, when known, bounds the matches and may save
        looking for where the window ends."""
        window = RANK_WINDOW[tier]
        below = (
            None
            if total is not None and total <= window
            else self.nth_match(tier, terms, category, window)
        )
        return self.rank(tier, terms, category, count, below)

    # ------------------------------------------------------------ did you mean

    @abstractmethod
    def similar_names(self, wanted: str, grams: Sequence[str], limit: int) -> list[int]:
        """Ids of up to limit names most like the folded text, best first, among (at least)
        the names holding one of its trigrams `grams`."""
