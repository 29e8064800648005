"""What every search module shares: tuning constants, data shapes, and the query term (a
word and what may stand for it at the current typo level)."""

from dataclasses import dataclass, field

MAX_QUERY_CHARS = 400  # folding more is wasted work: only MAX_QUERY_WORDS words are used
MAX_QUERY_WORDS = 12
MAX_WORD_CHARS = 40  # longer "words" are matched as typed, never corrected
PREFIX_MIN_CHARS = 2
SUGGEST_MIN_CHARS = 2
PREFIX_KEYS = range(2, 5)  # prefix lengths search_name_prefix holds
PREFIX_SCAN = 2_000  # names starting with a longer prefix looked at, at most
# SymSpell: deletions are generated from a word's first PREFIX_KEY letters only, which keeps
# the table small; candidates are then checked against the whole word.
PREFIX_KEY = 7
MAX_ALTERNATIVES = 8  # typo corrections kept per query word (fewest edits, most frequent)
MAX_COMBINATIONS = 64  # corrected queries looked up as exact names
MAX_TOTAL = 10_000  # matches are counted up to here (the API pages no further); then "10000+"
MAX_EXPANSIONS = 128  # a prefix with at most this many words is matched as their OR
# A prefix of up to this many letters is matched as a prefix, never as the OR of its words:
# FTS5 keeps its own index of 2- and 3-letter prefixes (prefix='2 3'), and their words are
# too many anyway. Both backends follow it, so they match the same documents.
PREFIX_INDEX_MAX = 3
# Ranking every match of an expression costs: a word found in most of 100,000 bodies would
# cost ~80 ms in bm25. Each bucket ranks only its first RANK_WINDOW matches (in id order)
# beyond that.
RANK_WINDOW = {"title": 20_000, "names": 20_000, "head": 5_000, "full": 2_000}
# Column weights: title and synonyms far above summary, summary above the long text.
COLUMN_WEIGHTS = {"title": 10.0, "synonyms": 8.0, "joined": 6.0, "summary": 3.0, "body": 1.0}
# The buckets in rank order: every word in the title; in the title and synonyms; in those and
# the summary; anywhere. Each is an index of its own holding these columns; "title" is the
# names index restricted to its title column.
TIER_COLUMNS = {
    "title": ("title", "synonyms", "joined"),
    "names": ("title", "synonyms", "joined"),
    "head": ("title", "synonyms", "joined", "summary"),
    "full": ("title", "synonyms", "joined", "summary", "body"),
}
TIERS = tuple(TIER_COLUMNS)
# Scores only order the hits; the buckets are far enough apart that the in-bucket relevance
# (squashed to [0, 40)) never crosses them.
BUCKET_SCORE = {
    "exact_title": 1000.0,
    "exact_synonym": 950.0,
    "corrected": 850.0,
    "title": 700.0,
    "names": 550.0,
    # an entry's abbreviation inside a longer query: "MMLU benchmark" finds MMLU before the
    # entries that mention it, "grad clip" still finds Grad clipping (names) before CLIP
    "abbreviation": 500.0,
    "head": 400.0,
    "full": 250.0,
}
LEVEL_PENALTY = 50.0
SNIPPET_CHARS = 220
CLOSEST_WINDOW = 4_000  # "did you mean" ranks names sharing trigrams among this many
CLOSEST_CANDIDATES = 100  # names "did you mean" scores with difflib, at most


# ---------------------------------------------------------------- data shapes


@dataclass
class Document:
    """One term as the index sees it."""

    slug: str
    title: str
    synonyms: list[str]
    summary: str
    body: str
    category: str


@dataclass
class Hit:
    slug: str
    title: str
    summary: str
    category: str
    score: float
    matched_field: str
    matched_synonym: str | None = None
    exact: bool = False
    title_html: str = ""
    snippet_html: str = ""


@dataclass
class Results:
    query: str
    total: int
    hits: list[Hit] = field(default_factory=list)
    corrected_query: str | None = None
    total_exact: bool = True  # False: more than MAX_TOTAL match, and total is MAX_TOTAL


@dataclass
class Suggestion:
    """One autocomplete entry: the name that matched (a title or a synonym) and its term."""

    name: str
    title: str
    slug: str
    exact: bool


@dataclass(frozen=True)
class Entry:
    """A term as "did you mean" lists it."""

    slug: str
    title: str
    summary: str
    category: str


@dataclass(frozen=True)
class Alternative:
    """A typo correction of a query word: a whole vocabulary word, or a corrected prefix."""

    token: str
    prefix: bool
    distance: int
    freq: int
    completions: tuple[str, ...] | None = None  # see Term.completions


@dataclass(frozen=True)
class Term:
    """One query word and what may stand for it at the current typo level."""

    word: str
    prefix: bool
    alternatives: tuple[Alternative, ...] = ()
    # A prefix's indexed words, when there are few: FTS5 merges every doclist of a prefix
    # query up front ("model"* costs 15 ms at 100,000 entries), an OR of words is lazy.
    completions: tuple[str, ...] | None = None
    known: bool = True  # the index holds the word (or, for a prefix, a word it starts)

    @property
    def dead(self) -> bool:
        """Matches nothing: unknown, with no correction."""
        return not self.known and not self.alternatives

    def matches(self, token: str) -> bool:
        if token == self.word or (self.prefix and token.startswith(self.word)):
            return True
        return any(
            token == alt.token or (alt.prefix and token.startswith(alt.token))
            for alt in self.alternatives
        )

    def options(self) -> list[tuple[str, bool]]:
        """What the term matches, as (token, is a prefix), any one of them sufficing: the
        word, its completions when listed, and its corrections. A prefix listed with no
        completions keeps its word as a whole word, which matches nothing new."""
        found = _options(self.word, self.prefix, self.completions)
        for alt in self.alternatives:
            found += _options(alt.token, alt.prefix, alt.completions)
        return list(dict.fromkeys(found))


def _options(
    token: str, prefix: bool, completions: tuple[str, ...] | None
) -> list[tuple[str, bool]]:
    if not prefix:
        return [(token, False)]
    if completions is None:
        return [(token, True)]
    return [(word, False) for word in completions] or [(token, False)]


@dataclass
class IndexRows:
    """Everything the index holds, computed once from the documents (build.index_rows).
    Ids start at 1 and follow the list order (a document's id is its position + 1)."""

    # (id, slug, title, synonyms as JSON, summary, body, category)
    docs: list[tuple[int, str, str, str, str, str, str]]
    # (id, doc id, name, is title, folded, compact): every title and synonym
    names: list[tuple[int, int, str, int, str, str]]
    # (key, is title, length of the compact name, name id): names by their first letters
    prefixes: list[tuple[str, int, int, int]]
    # (doc id, title, synonyms, joined, summary, body), folded: what the buckets match
    fields: list[tuple[int, str, str, str, str, str]]
    # (id, word, documents holding it, head): every indexed word
    vocab: list[tuple[int, str, int, int]]
    # (deletion key, word id): the SymSpell table
    deletes: list[tuple[str, int]]
