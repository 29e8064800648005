"""Search over the glossary: query parsing, typo tolerance, ranking, highlighting, suggestions
and "did you mean", on SQLite (FTS5) or PostgreSQL (tsvector + pg_trgm).

How a query is answered (Meilisearch/Algolia-style bucket ranking):

1. The query is folded (case, diacritics, punctuation) into at most MAX_QUERY_WORDS words,
   and every word must match (AND). The last word is also a prefix ("resid" finds Residual
   Connection); so is an earlier word the index does not hold whole, or one with few
   completions ("grad desc"). A prefix with few completions is matched as the OR of them.
2. Exact names first: a title or synonym equal to the query, compared folded or with the
   spaces removed ("Layer-Norm", "layer norm" and "layernorm" are one name).
3. Typos, Algolia's "min" strategy: only when the words as typed find nothing, one edit is
   allowed in words of 4-7 letters, then two in words of 8 or more (insert, delete,
   substitute, transpose), each level first for the words the index does not know. The
   corrections are gathered with a SymSpell deletion table over every indexed word and
   checked with an optimal-string-alignment distance.
4. Inside a level the buckets are: names equal to the corrected query, then documents whose
   title holds every word, then title and synonyms, then those and the summary, then the
   whole text. Each bucket is a full-text index of its own, ranked with column weights
   (bm25 on SQLite, ts_rank_cd on PostgreSQL), so the long text is only ranked when the
   earlier buckets do not fill the page. Past RANK_WINDOW matches a bucket ranks a window
   of them, and counting stops at MAX_TOTAL.

Layout. Building: build.py computes the rows and writes them, in the content load's
transaction, to the plain tables (tables.py, the same on every database) and the database's
full-text tables. Querying: query.py turns the words into terms (prefixes, typo levels),
results.py answers search(), autocomplete.py suggest(), did_you_mean.py closest(); they
read the plain tables through lookups.py and the full text through a FullText
(fulltext.py), which backend.py picks by dialect: sqlite.py or postgres.py, the only
modules with SQL of one database. model.py holds the constants and data shapes, typos.py
the edit distances, highlight.py the <mark>ing.
"""

from app.search.autocomplete import suggest
from app.search.build import after_load, build_index, drop_index, index_rows
from app.search.did_you_mean import closest
from app.search.highlight import Highlighter, excerpt, highlight
from app.search.model import (
    BUCKET_SCORE,
    COLUMN_WEIGHTS,
    LEVEL_PENALTY,
    MAX_QUERY_CHARS,
    MAX_QUERY_WORDS,
    MAX_TOTAL,
    MAX_WORD_CHARS,
    RANK_WINDOW,
    SNIPPET_CHARS,
    Alternative,
    Document,
    Entry,
    Hit,
    IndexRows,
    Results,
    Suggestion,
    Term,
)
from app.search.query import compact, corrections, parse_query, prepare, query_words, stages
from app.search.results import search
from app.search.sqlite import match_expression
from app.search.typos import delete_depth, deletes, osa_distance, typo_budget

__all__ = [
    "BUCKET_SCORE",
    "COLUMN_WEIGHTS",
    "LEVEL_PENALTY",
    "MAX_QUERY_CHARS",
    "MAX_QUERY_WORDS",
    "MAX_TOTAL",
    "MAX_WORD_CHARS",
    "RANK_WINDOW",
    "SNIPPET_CHARS",
    "Alternative",
    "Document",
    "Entry",
    "Highlighter",
    "Hit",
    "IndexRows",
    "Results",
    "Suggestion",
    "Term",
    "after_load",
    "build_index",
    "closest",
    "compact",
    "corrections",
    "delete_depth",
    "deletes",
    "drop_index",
    "excerpt",
    "highlight",
    "index_rows",
    "match_expression",
    "osa_distance",
    "parse_query",
    "prepare",
    "query_words",
    "search",
    "stages",
    "suggest",
    "typo_budget",
]
