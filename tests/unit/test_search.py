"""Search engine: the relevance table over the real corpus, typo machinery against rapidfuzz's
edit distance, highlighting, and the index's life inside the load transaction."""

import re
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from markupsafe import Markup
from rapidfuzz.distance import OSA
from sqlalchemy import Connection, Engine, create_engine, inspect, text
from sqlmodel import Session

from app import content, db, search
from app.glossary import build_search
from app.search import postgres
from app.search.backend import fulltext_for
from tests.conftest import POSTGRES_ADMIN_URL, fresh_database_url

ROOT = Path(__file__).resolve().parent.parent.parent

RELEVANCE_DIR = ROOT / "tests" / "relevance"


def relevance_table(path: Path) -> list[tuple[str, str]]:
    """(query, the entry that must rank first), one per line of a tests/relevance/*.tsv:
    what people type (plurals, inflections, synonyms, abbreviations, prefixes, typos)."""
    rows = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if line.strip() and not line.startswith("#"):
            query, sep, slug = line.partition("\t")
            assert sep and query.strip() and slug.strip(), f"{path.name}:{number}: {line!r}"
            rows.append((query.strip(), slug.strip()))
    return rows


RELEVANCE = [row for p in sorted(RELEVANCE_DIR.glob("*.tsv")) for row in relevance_table(p)]


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    """The real corpus loaded by the real loader; searched through a read-only engine, as
    the web process does (PRAGMA query_only, or default_transaction_read_only)."""
    url = fresh_database_url(tmp_path_factory.mktemp("search"))
    writer = db.make_engine(url)
    content.load_corpus(writer, content.read_corpus(ROOT / "data"))
    writer.dispose()
    reader = db.make_engine(url, read_only=True)
    yield reader
    reader.dispose()


@pytest.fixture
def session(engine: Engine) -> Iterator[Session]:
    with Session(engine) as session:
        yield session


@pytest.mark.parametrize(("query", "expected"), RELEVANCE, ids=[q for q, _ in RELEVANCE])
def test_relevance(session: Session, query: str, expected: str) -> None:
    view = build_search(session, query, limit=5)
    ranked = [hit.slug for hit in view.hits]
    assert ranked and ranked[0] == expected, (query, ranked, view.corrected_query)


def test_exact_title_or_synonym_always_ranks_first(session: Session) -> None:
    names = (
        session.connection()
        .execute(
            text("SELECT d.slug, n.name FROM search_name n JOIN search_doc d ON d.id = n.doc_id")
        )
        .all()
    )
    assert len(names) > 150
    for slug, name in names:
        hits = search.search(session, name, limit=3).hits
        firsts = {h.slug for h in hits if h.exact}
        assert hits[0].exact and slug in firsts, (name, [h.slug for h in hits])


def test_hit_fields(session: Session) -> None:
    results = search.search(session, "skip connection")
    hit = results.hits[0]
    assert (hit.slug, hit.exact, hit.matched_field, hit.matched_synonym) == (
        "residual-connection",
        True,
        "synonyms",
        "Skip connection",
    )
    assert hit.title_html == "Residual <mark>Connection</mark>"
    title_hit = search.search(session, "residual connection").hits[0]
    assert (title_hit.matched_field, title_hit.matched_synonym) == ("title", None)
    body_only = [h for h in search.search(session, "saxe").hits if h.matched_field == "body"]
    assert body_only and "<mark>Saxe</mark>" in body_only[0].snippet_html


def test_scores_follow_the_order(session: Session) -> None:
    for query in ("attention", "resid", "atention", "gradient descent", "layer norm"):
        scores = [hit.score for hit in search.search(session, query, limit=50).hits]
        assert scores == sorted(scores, reverse=True), query


def test_typo_matching_stops_at_the_first_level_that_finds_something(session: Session) -> None:
    exact = search.search(session, "attention")
    assert exact.corrected_query is None
    assert all(h.slug for h in exact.hits)
    corrected = search.search(session, "atention")
    assert corrected.corrected_query == "attention"
    assert corrected.total == exact.total  # no extra junk from other corrections


def test_typo_budgets(session: Session) -> None:
    assert [search.typo_budget(w) for w in ("abc", "abcd", "abcdefg", "abcdefgh")] == [0, 1, 1, 2]
    assert search.search(session, "atenton").hits == []  # 7 letters, two edits: too many
    assert search.search(session, "attnetino").hits[0].slug == "attention"  # 9 letters, two
    assert search.search(session, "adma").hits[0].slug == "adam"  # transposition is one edit
    assert search.search(session, "lsm").hits == []  # 3 letters: no edits


def test_pagination_and_total(session: Session) -> None:
    whole = search.search(session, "gradient", limit=500)
    assert whole.total == len(whole.hits) > 10
    pages = [search.search(session, "gradient", limit=5, offset=o) for o in range(0, 15, 5)]
    assert [h.slug for p in pages for h in p.hits] == [h.slug for h in whole.hits[:15]]
    assert {p.total for p in pages} == {whole.total}


def test_total_counts_every_hit(session: Session) -> None:
    checked = 0
    for query, _ in RELEVANCE:
        results = search.search(session, query, limit=200)
        if results.total <= 200:
            assert results.total == len(results.hits), (query, results.total, len(results.hits))
            checked += 1
    assert checked > len(RELEVANCE) // 2


def test_category_filter(session: Session) -> None:
    everything = search.search(session, "gradient", limit=100)
    some = search.search(session, "gradient", limit=100, category="training-optimization")
    assert 0 < some.total < everything.total
    assert {h.category for h in some.hits} == {"training-optimization"}
    assert search.search(session, "gradient", category="no-such-category").total == 0


def test_suggestions(session: Session) -> None:
    def names(query: str) -> list[str]:
        return [s.name for s in search.suggest(session, query)]

    assert names("r") == []
    assert names("re")[:3] == ["ReLU", "ResNet", "Reranking"]  # titles, shortest first
    assert names("resid")[0] == "Residual Connection"
    assert names("skip conn") == ["Skip connection"]
    assert names("skip conection") == ["Skip connection"]  # typo tolerance
    assert names("layer-norm")[0] == "LayerNorm"  # exact synonym first
    # titles starting with the word first, then titles holding it
    assert names("norm")[0] == "Normalizing Flow"
    assert {"Batch Normalization", "Layer Normalization"} <= set(names("norm"))
    assert len(search.suggest(session, "a", limit=3)) == 0
    assert len(search.suggest(session, "at", limit=3)) == 3


def test_did_you_mean(session: Session) -> None:
    assert search.search(session, "attentionxyzq").total == 0
    assert search.closest(session, "attentionxyzq")[0].slug == "attention"
    assert search.closest(session, "/terms/residual-conection")[0].slug == "residual-connection"
    assert search.closest(session, "zz") == []
    view = build_search(session, "attentionxyzq")
    assert view.did_you_mean and view.did_you_mean[0].url == "/terms/attention"


# ---------------------------------------------------------------- query safety

HOSTILE = [
    '"',
    '""',
    "*",
    "NEAR(a b)",
    "a AND b OR NOT c",
    "(((",
    ")",
    "title:x",
    "-x",
    "^x",
    "x\x00y",
    "🙂",
    "🙂 attention",
    "a" * 10_000,
    "",
    "   ",
    "{title}: x",
    "'; DROP TABLE x",
    "\\",
    "%",
    "_",
    "NOT",
    "AND",
    "resid*",
    '"skip connection"',
    "x:y:z",
    "[a-z]",
]


@pytest.mark.parametrize("query", HOSTILE, ids=range(len(HOSTILE)))
def test_operators_are_plain_words(session: Session, query: str) -> None:
    results = search.search(session, query)
    assert results.total >= len(results.hits)
    search.suggest(session, query)
    search.closest(session, query)


def test_operator_words_match_as_words(session: Session) -> None:
    # "not", "and", "near" are words people type; they match text, never act as operators
    assert search.search(session, "NOT").total == search.search(session, "not").total > 0
    assert search.search(session, '"skip connection"').hits[0].slug == "residual-connection"


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=60))
def test_match_expression_is_always_valid_fts5(query: str) -> None:
    expression = search.match_expression(search.parse_query(query))
    if expression is None:
        assert not search.query_words(query)
        return
    assert re.fullmatch(r'[ ()"*0-9a-zOR ANDR]+', expression), expression
    with sqlite3.connect(":memory:") as conn:
        conn.execute("CREATE VIRTUAL TABLE t USING fts5(x, tokenize='ascii')")
        conn.execute("INSERT INTO t VALUES ('some words')")
        conn.execute("SELECT count(*) FROM t WHERE t MATCH ?", (expression,)).fetchall()


@pytest.fixture(scope="module")
def postgres_admin() -> Iterator[Connection | None]:
    """A connection to the test PostgreSQL server, when this run has one."""
    if not POSTGRES_ADMIN_URL:
        yield None
        return
    engine = create_engine(POSTGRES_ADMIN_URL)
    with engine.connect() as conn:
        yield conn
    engine.dispose()


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=60))
def test_tsquery_is_always_valid(postgres_admin: Connection | None, query: str) -> None:
    terms = search.parse_query(query)
    if not terms:
        return
    queries = [postgres.tsquery(terms), *(postgres.term_query(term) for term in terms)]
    for text_query in queries:
        assert re.fullmatch(r"[ ()'*:&|0-9a-z]+", text_query), text_query
    if postgres_admin is not None:
        for text_query in queries:
            postgres_admin.exec_driver_sql(
                "SELECT to_tsvector('simple', 'some words') @@ %s::tsquery", (text_query,)
            ).all()


# ---------------------------------------------------------------- typo machinery


def reference_osa(a: str, b: str) -> int:
    """Optimal string alignment distance from rapidfuzz, not from our code."""
    return int(OSA.distance(a, b))


short_words = st.text(alphabet="abcde", min_size=0, max_size=11)


@settings(max_examples=500, deadline=None)
@given(short_words, short_words, st.integers(0, 3))
def test_osa_distance_matches_the_reference(a: str, b: str, limit: int) -> None:
    expected = reference_osa(a, b)
    assert search.osa_distance(a, b, limit) == min(expected, limit + 1)
    prefix = min(reference_osa(a, b[:j]) for j in range(len(b) + 1))
    assert search.osa_distance(a, b, limit, prefix=True) == min(prefix, limit + 1)


@st.composite
def typo_pairs(draw: st.DrawFn) -> tuple[str, str]:
    """A vocabulary word and a query at most two random edits away."""
    word = draw(st.text(alphabet="abcdefgh", min_size=3, max_size=14))
    typed = word
    for _ in range(draw(st.integers(0, 2))):
        op = draw(st.sampled_from(["insert", "delete", "substitute", "transpose"]))
        i = draw(st.integers(0, max(0, len(typed) - 1)))
        letter = draw(st.sampled_from("abcdefgh"))
        if op == "insert":
            typed = typed[:i] + letter + typed[i:]
        elif op == "delete" and len(typed) > 1:
            typed = typed[:i] + typed[i + 1 :]
        elif op == "substitute" and typed:
            typed = typed[:i] + letter + typed[i + 1 :]
        elif op == "transpose" and i + 1 < len(typed):
            typed = typed[:i] + typed[i + 1] + typed[i] + typed[i + 2 :]
    return word, typed


@settings(max_examples=1000, deadline=None)
@given(typo_pairs())
def test_deletion_table_never_misses_a_word_within_budget(pair: tuple[str, str]) -> None:
    """SymSpell on 7-letter prefixes: a vocabulary word within the query's budget always
    shares a deletion key with it, so the candidate gathering loses nothing."""
    word, typed = pair
    budget = search.typo_budget(typed)
    if reference_osa(typed, word) <= budget and search.delete_depth(word):
        stored = search.deletes(word, search.delete_depth(word))
        assert search.deletes(typed, budget) & stored, (word, typed)


def test_corrections_come_from_the_index(session: Session) -> None:
    conn = session.connection()
    found = search.corrections(conn, "atention", prefix=False)
    assert (found[0].token, found[0].distance) == ("attention", 1)
    assert all(a.distance <= 2 for a in found)
    assert search.corrections(conn, "abc", prefix=False) == []
    partial = search.corrections(conn, "atenti", prefix=True)  # still typing "attention"
    assert any(a.prefix and "attention".startswith(a.token) for a in partial)


# ---------------------------------------------------------------- highlighting


def highlighter(query: str) -> search.Highlighter:
    return search.Highlighter(search.parse_query(query))


def test_highlight_escapes_content_and_marks_words() -> None:
    html = search.highlight('<b>Resid</b> & "residual" <script>', highlighter("resid"))
    assert isinstance(html, Markup)
    assert html == (
        "&lt;b&gt;<mark>Resid</mark>&lt;/b&gt; &amp; &#34;<mark>residual</mark>&#34; &lt;script&gt;"
    )


def test_highlight_query_markup_cannot_inject() -> None:
    html = search.highlight("a script b mark", highlighter("<script>alert(1)</script> <mark>"))
    assert html == "a <mark>script</mark> b <mark>mark</mark>"
    assert "<" not in re.sub(r"</?mark>", "", str(html))


def test_highlight_folds_like_the_index() -> None:
    assert search.highlight("Naïve Bayes, NAIVE", highlighter("naive")) == (
        "<mark>Naïve</mark> Bayes, <mark>NAIVE</mark>"
    )
    assert search.highlight("Layer-Norm, nor", highlighter("layer norm")) == (
        "<mark>Layer</mark>-<mark>Norm</mark>, nor"
    )
    assert search.highlight("Snake_case x2", highlighter("case x2")) == (
        "Snake_<mark>case</mark> <mark>x2</mark>"
    )


def test_excerpt_is_a_window_around_the_first_match() -> None:
    body = (
        " ".join(f"w{i}" for i in range(200)) + " target " + " ".join("z" * 3 for _ in range(200))
    )
    snippet = search.excerpt(body, highlighter("target"))
    assert snippet.startswith("… ") and snippet.endswith(" …")
    assert "<mark>target</mark>" in snippet
    assert len(re.sub(r"<[^>]+>", "", str(snippet))) <= search.SNIPPET_CHARS + 4
    assert search.excerpt("short text", highlighter("zzz")) == "short text"


# ---------------------------------------------------------------- the index and the load


def search_tables(engine: Engine) -> list[str]:
    with engine.connect() as conn:
        return [t for t in inspect(conn).get_table_names() if t.startswith("search_")]


def test_index_is_built_in_the_load_transaction(tmp_path: Path) -> None:
    url = fresh_database_url(tmp_path)
    writer = db.make_engine(url)
    documents = [search.Document("a-b", "Alpha Beta", ["AB"], "First.", "Body text.", "c")]
    with writer.connect() as conn:
        search.build_index(conn, documents)
        conn.rollback()  # a failed load: nothing of the index survives
    assert search_tables(writer) == []
    with writer.begin() as conn:
        search.drop_index(conn)
        search.build_index(conn, documents)
    with writer.begin() as conn:  # a reload replaces it
        search.drop_index(conn)
        search.build_index(conn, [*documents, search.Document("c", "Gamma", [], "S.", "B.", "c")])
    reader = db.make_engine(url, read_only=True)
    with Session(reader) as session:
        assert [h.slug for h in search.search(session, "alpha beta").hits] == ["a-b"]
        assert search.search(session, "gamma").total == 1
        assert [s.name for s in search.suggest(session, "ab")] == ["AB"]
    with writer.begin() as conn:
        search.drop_index(conn)
    assert search_tables(writer) == []
    writer.dispose()
    reader.dispose()


def test_a_reload_leaves_readers_on_their_snapshot(tmp_path: Path) -> None:
    """A load commits while a reader is mid-request: the reader is not blocked and keeps
    seeing the index it started with (SQLite's WAL snapshot; PostgreSQL's MVCC rows read
    in REPEATABLE READ); its next request sees the new one."""
    url = fresh_database_url(tmp_path)
    writer = db.make_engine(url)
    old = [search.Document("a-b", "Alpha Beta", ["AB"], "First.", "Body text.", "c")]
    new = [search.Document("g", "Gamma", [], "Second.", "Other text.", "c")]
    with writer.begin() as conn:
        search.build_index(conn, old)
    reader = db.make_engine(url, read_only=True)
    with Session(reader) as session:
        assert search.search(session, "alpha").total == 1
        with writer.begin() as conn:
            if conn.dialect.name == "postgresql":  # fail rather than wait on the reader
                conn.exec_driver_sql("SET LOCAL lock_timeout = '5s'")
            search.build_index(conn, new)
        assert [h.slug for h in search.search(session, "alpha beta").hits] == ["a-b"]
        assert search.search(session, "gamma").total == 0
    with Session(reader) as session:
        assert search.search(session, "alpha").total == 0
        assert [h.slug for h in search.search(session, "gamma").hits] == ["g"]
    writer.dispose()
    reader.dispose()


@pytest.fixture
def small_index(tmp_path: Path) -> Iterator[Callable[[list[search.Document]], Engine]]:
    """Builds a fresh database holding only the given documents' index."""
    engines: list[Engine] = []

    def build(documents: list[search.Document]) -> Engine:
        engine = db.make_engine(fresh_database_url(tmp_path / str(len(engines))))
        engines.append(engine)
        with engine.begin() as conn:
            search.build_index(conn, documents)
        return engine

    yield build
    for engine in engines:
        engine.dispose()


def placed(name: str, column: str, word: str) -> search.Document:
    """A document with `word` in `column`, in place of a filler word: every such document
    has as many words as the others in every column, so only the column differs."""
    fields = {"title": f"{name} fig", "synonyms": "lime sage", "summary": "pear plum date"}
    fields["body"] = "omega kiwi yam"
    filler = {"title": "fig", "synonyms": "lime", "summary": "pear", "body": "kiwi"}[column]
    fields[column] = fields[column].replace(filler, word)
    return search.Document(
        slug=f"{name}-{word}",
        title=fields["title"].capitalize(),
        synonyms=[fields["synonyms"]],
        summary=fields["summary"],
        body=fields["body"],
        category="c",
    )


# (heavier column, lighter column, the word placed in one of them)
WEIGHED = [
    ("title", "synonyms", "zeta"),
    ("synonyms", "summary", "theta"),
    ("summary", "body", "kappa"),
]


def test_column_weights_order_hits_inside_a_bucket(small_index: Callable[..., Engine]) -> None:
    """Two documents in one bucket (a word and "omega", only ever in the body), the same
    but for the column holding the word: the heavier column ranks first."""
    documents = []
    for heavy, light, word in WEIGHED:
        documents += [placed("ann", light, word), placed("bob", heavy, word)]  # light: lower id
    with Session(small_index(documents)) as session:
        for heavy, light, word in WEIGHED:
            hits = search.search(session, f"{word} omega").hits
            assert [h.slug for h in hits] == [f"bob-{word}", f"ann-{word}"], (heavy, light)
            assert {h.matched_field for h in hits} == {"body"}  # both from the same bucket


def test_buckets_rank_title_then_synonyms_then_summary_then_body(
    small_index: Callable[..., Engine],
) -> None:
    columns = ["body", "summary", "synonyms", "title"]  # ids in the reverse of the rank order
    documents = [placed(name, column, "zeta") for name, column in zip("abcd", columns, strict=True)]
    with Session(small_index(documents)) as session:
        hits = search.search(session, "zeta").hits
        assert [(h.slug, h.matched_field) for h in hits] == [
            ("d-zeta", "title"),
            ("c-zeta", "synonyms"),
            ("b-zeta", "summary"),
            ("a-zeta", "body"),
        ]
        assert hits[1].matched_synonym == "zeta sage"


def test_a_bucket_past_its_window_ranks_only_its_first_matches(
    small_index: Callable[..., Engine], monkeypatch: pytest.MonkeyPatch
) -> None:
    body = "zeta filler filler filler filler filler"
    documents = [search.Document(f"d{i}", f"Doc {i}", [], "Plain.", body, "c") for i in range(6)]
    documents[4].body = "zeta zeta zeta zeta zeta filler"  # id 5, the most relevant
    with Session(small_index(documents)) as session:
        conn = session.connection()
        fulltext = fulltext_for(conn)
        terms = search.prepare(conn, search.parse_query("zeta"))
        assert [i for i, _ in fulltext.ranked("full", terms, None, 10)][:1] == [5]
        monkeypatch.setitem(search.RANK_WINDOW, "full", 3)
        for total in (None, 6):
            assert [i for i, _ in fulltext.ranked("full", terms, None, 10, total)] == [1, 2, 3]
        assert search.search(session, "zeta").total == 6  # counting is not windowed


def test_a_name_typed_with_spaces_it_lacks_is_counted(small_index: Callable[..., Engine]) -> None:
    documents = [search.Document("topk", "Topk", [], "Keep the best.", "Sampling.", "c")]
    with Session(small_index(documents)) as session:
        results = search.search(session, "top k")
        assert [h.slug for h in results.hits] == ["topk"] and results.hits[0].exact
        assert results.total == 1  # the full text holds neither "top" nor "k"


def test_a_reload_replaces_every_row(small_index: Callable[..., Engine]) -> None:
    """A reload (the tables kept, their rows swapped) answers exactly as a first load."""
    old = [
        search.Document(f"old-{n}", f"Old {n}", [f"Shared {n}"], "Shared summary.", "Shared.", "c")
        for n in ("ann", "bob", "cid")
    ]
    new = [search.Document("new", "New Dan", ["Shared Dan"], "Shared summary.", "Shared.", "d")]
    reloaded = small_index(old)
    with reloaded.begin() as conn:
        search.build_index(conn, new)
    fresh = small_index(new)
    for query in ("shared", "shared summary", "sh", "old", "dan", "new dan", "shraed"):
        answers = []
        for engine in (reloaded, fresh):
            with Session(engine) as session:
                answers.append(
                    (
                        search.search(session, query),
                        search.suggest(session, query),
                        search.closest(session, query),
                    )
                )
        assert answers[0] == answers[1], query
    with Session(fresh) as session:
        assert [h.slug for h in search.search(session, "shared").hits] == ["new"]


def test_postgres_vectors_and_queries() -> None:
    """The literals the PostgreSQL full text writes: positions run on across the columns with
    each column's weight class, capped where PostgreSQL caps them; queries quote lexemes."""
    vector = postgres.tsvector([("layer norm", "A"), ("norm", "B"), ("", "C"), ("x y", "D")])
    assert vector == "'layer':1A 'norm':2A,3B 'x':4D 'y':5D"
    long_text = " ".join(["w"] * 20_000) + " late"
    capped = postgres.tsvector([(long_text, "D")])
    assert capped.startswith("'w':1D,2D") and capped.count(",") == 255
    assert capped.endswith("'late':16383D")
    terms = [
        search.Term("grad", True, completions=("gradient", "grads")),
        search.Term("desc", True),
        search.Term("lose", False, (search.Alternative("loss", False, 1, 3),)),
    ]
    assert postgres.tsquery(terms) == "('gradient' | 'grads') & 'desc':* & ('lose' | 'loss')"
    with pytest.raises(AssertionError):
        postgres.tsquery([search.Term("it's", False)])


def test_empty_index(tmp_path: Path) -> None:
    url = fresh_database_url(tmp_path)
    writer = db.make_engine(url)
    with writer.begin() as conn:
        search.build_index(conn, [])
    with Session(writer) as session:
        assert search.search(session, "anything").total == 0
        assert search.suggest(session, "anything") == []
        assert search.closest(session, "anything") == []
    writer.dispose()


@pytest.mark.parametrize(
    ("word", "forms"),
    [
        ("prompts", {"prompt"}),
        ("batches", {"batch"}),
        ("biases", {"bias"}),
        ("caches", {"cache"}),
        ("gpus", {"gpu"}),
        ("probabilities", {"probability"}),
        ("logit", {"logits"}),
        ("law", {"laws"}),
        ("ability", {"abilities"}),
        ("tuned", {"tune", "tuning"}),
        ("tune", {"tuning"}),
        ("tuning", {"tune"}),
    ],
)
def test_word_forms(word: str, forms: set[str]) -> None:
    from app.search.inflection import word_forms

    found = word_forms(word)
    assert found[0] == word and forms <= set(found), found


def test_short_and_unpluralizable_words_keep_their_form() -> None:
    from app.search.inflection import name_variants, word_forms

    assert word_forms("is") == ["is"] and word_forms("gpt4") == ["gpt4"]
    assert word_forms("loss") == ["loss", "losses"]
    variants = name_variants(["system", "prompts"])
    assert "system prompt" in variants and "system prompts" not in variants


def test_abbreviations() -> None:
    from app.search.inflection import is_abbreviation

    assert all(map(is_abbreviation, ["MMLU", "LoRA", "GPT-4", "BN"]))
    assert not any(map(is_abbreviation, ["Adam", "Transformer", "Layer Norm", "KV cache"]))


def test_the_relevance_table_covers_the_glossary() -> None:
    """Issue 14: at least 300 queries beyond the first table, and each names a real entry."""
    added = len(RELEVANCE) - len(relevance_table(RELEVANCE_DIR / "core.tsv"))
    assert added >= 300, added
    slugs = {p.stem for p in (ROOT / "data" / "terms").glob("*.toml")}
    assert {slug for _, slug in RELEVANCE} <= slugs


def doc(slug: str, title: str, synonyms: list[str], summary: str, body: str) -> search.Document:
    return search.Document(
        slug=slug, title=title, synonyms=synonyms, summary=summary, body=body, category="c"
    )


def test_inflected_names_rank_first(small_index: Callable[..., Engine]) -> None:
    documents = [
        doc("system-prompt", "System Prompt", ["System message"], "instructions", "rules"),
        doc("prompts", "Prompt Injection", [], "system prompts get attacked", "system prompts"),
    ]
    with Session(small_index(documents)) as session:
        hits = search.search(session, "system prompts").hits
        assert [h.slug for h in hits] == ["system-prompt", "prompts"]
        assert hits[0].exact and hits[0].matched_field == "title"
        assert search.search(session, "system messages").hits[0].matched_synonym == (
            "System message"
        )


def test_an_abbreviation_in_a_longer_query_ranks_after_whole_names(
    small_index: Callable[..., Engine],
) -> None:
    """Its entry comes before entries that merely mention it, and after an entry whose
    names hold every word of the query ("grad clip" is not CLIP)."""
    documents = [
        doc("benchmark", "Evaluation Benchmark", ["Benchmark"], "MMLU is one", "mmlu mmlu"),
        doc("mmlu", "MMLU", ["Massive Multitask"], "a test set of questions", "subjects"),
        doc("clipping", "Gradient Clipping", ["Grad clipping"], "caps the norm", "norms"),
        doc("clip", "CLIP", ["Contrastive pairs"], "images and text", "grad students"),
    ]
    with Session(small_index(documents)) as session:
        ranked = [h.slug for h in search.search(session, "MMLU benchmark").hits]
        assert ranked == ["mmlu", "benchmark"]
        assert search.search(session, "MMLU benchmark").hits[0].matched_field == "title"
        assert [h.slug for h in search.search(session, "grad clip").hits][:2] == [
            "clipping",
            "clip",
        ]
        one = search.search(session, "MMLU benchmark", limit=1)
        assert [h.slug for h in one.hits] == ["mmlu"] and one.total == 2


def test_a_name_one_typo_away_beats_words_found_only_in_texts(
    small_index: Callable[..., Engine],
) -> None:
    documents = [
        doc("loss-function", "Loss Function", ["Cost function"], "what training lowers", "x"),
        doc("chunking", "Chunking", [], "splitting", "pieces lose context a function of size"),
    ]
    with Session(small_index(documents)) as session:
        found = search.search(session, "lose function")
        assert [h.slug for h in found.hits][0] == "loss-function"
        assert found.corrected_query == "loss function"
        # one word found in a text is taken as typed, even a typo away from a name
        assert [h.slug for h in search.search(session, "lose").hits] == ["chunking"]
