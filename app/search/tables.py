"""The index's plain tables, declared once for every database (the full-text tables are the
dialects' own: app.search.sqlite, app.search.postgres)."""

from sqlalchemy import Column, Integer, MetaData, Table, Text

metadata = MetaData()

# Text compared by byte (ranges, prefixes): SQLite's default collation does; PostgreSQL's
# would sort by locale rules.
Bytewise = Text().with_variant(Text(collation="C"), "postgresql")

# What the index's layout is, so a reload knows whether it can swap rows or must recreate.
meta = Table(
    "search_meta",
    metadata,
    Column("key", Text, primary_key=True),
    Column("value", Text, nullable=False),
)

# id = the document's position in the load + 1; the full-text rows use the same id.
doc = Table(
    "search_doc",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("slug", Text, nullable=False, unique=True),
    Column("title", Text, nullable=False),
    Column("synonyms", Text, nullable=False),  # JSON list
    Column("summary", Text, nullable=False),
    Column("body", Text, nullable=False),
    Column("category", Text, nullable=False, index=True),
)

# Every title and synonym, folded two ways, for exact names, suggestions, did-you-mean.
name = Table(
    "search_name",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("doc_id", Integer, nullable=False),  # search_doc.id
    Column("name", Text, nullable=False),
    Column("is_title", Integer, nullable=False),
    Column("folded", Bytewise, nullable=False, index=True),
    Column("compact", Bytewise, nullable=False, index=True),
)

# Autocomplete on a few letters: names by their first 2-4 letters, shortest first, from the
# primary key alone (a range scan sorted by length costs 10 ms at 100,000 entries).
name_prefix = Table(
    "search_name_prefix",
    metadata,
    Column("key", Bytewise, primary_key=True),
    Column("is_title", Integer, primary_key=True),
    Column("length", Integer, primary_key=True),  # of the compact name
    Column("name_id", Integer, primary_key=True),  # search_name.id
    sqlite_with_rowid=False,
)

# Every indexed word, for completions and typo corrections. `head` is 0 for a word of the
# text; for a joined name ("layernormalization") it is the length of its first word.
vocab = Table(
    "search_vocab",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("word", Bytewise, nullable=False, unique=True),
    Column("freq", Integer, nullable=False),  # documents holding the word
    Column("head", Integer, nullable=False),
)

# The SymSpell deletions of the words typo corrections may lead to.
vocab_delete = Table(
    "search_vocab_delete",
    metadata,
    Column("key", Bytewise, primary_key=True),
    Column("word_id", Integer, primary_key=True),  # search_vocab.id
    sqlite_with_rowid=False,
)

# No foreign keys: the index is written whole by one function, and checking a million
# deletion rows against the vocabulary would slow every load for nothing.
TABLES = tuple(metadata.tables.values())
