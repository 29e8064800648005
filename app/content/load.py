"""Write a Corpus to the database in ONE transaction, and load data/ at start-up when the
database does not match it."""

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, text
from sqlalchemy import inspect as sa_inspect
from sqlmodel import Session, SQLModel, select

from app import search
from app.content.corpus import Corpus
from app.content.markdown import plain_text
from app.content.problems import ContentError
from app.content.read import read_corpus
from app.content.version import SCHEMA_VERSION, fingerprint
from app.models import (
    Category,
    Mention,
    Meta,
    Organization,
    ReadMore,
    RelatedTerm,
    Synonym,
    Term,
    TermOrganization,
)
from app.text import index_letter, slugify

# Held for the length of a load on PostgreSQL: one loader at a time (replicas starting
# together), any key the app uses for nothing else.
LOAD_LOCK_KEY = 7171


def _terms(corpus: Corpus) -> list[Term]:
    rows = []
    for slug, term in sorted(corpus.terms.items()):
        sections = corpus.rendered[slug].sections
        illustration = term.illustration
        source = term.introduced_in
        rows.append(
            Term(
                slug=slug,
                title=term.title,
                letter=index_letter(term.title),
                category_slug=term.category,
                summary=term.summary,
                definition=term.definition,
                definition_html=sections["definition"].html,
                background=term.background,
                background_html=sections["background"].html,
                usage_note=term.usage_note,
                usage_note_html=sections["usage_note"].html,
                formula=term.formula,
                formula_mathml=corpus.rendered[slug].formula_mathml,
                demo_preset=term.demo,
                illustration_file=illustration.file if illustration else None,
                illustration_alt=illustration.alt if illustration else None,
                illustration_caption=illustration.caption if illustration else None,
                introduced_title=source.title if source else None,
                introduced_authors=source.authors if source else None,
                introduced_year=source.year if source else None,
                introduced_url=source.link if source else None,
                introduced_id=source.identifier if source else None,
            )
        )
    return rows


def _term_relations(corpus: Corpus) -> list[SQLModel]:
    """The rows that hang off terms: mentions, synonyms, related, organizations, links."""
    rows: list[SQLModel] = []
    for slug, term in sorted(corpus.terms.items()):
        rendered = corpus.rendered[slug]
        rows += [Mention(source_slug=slug, target_slug=t) for t in sorted(rendered.mentions(slug))]
        rows += [
            Synonym(term_slug=slug, name=synonym, slug=slugify(synonym), position=position)
            for position, synonym in enumerate(term.synonyms)
        ]
        rows += [
            RelatedTerm(term_slug=slug, related_slug=related, position=position)
            for position, related in enumerate(term.related)
        ]
        rows += [
            TermOrganization(
                term_slug=slug,
                organization_slug=org.key,
                note=org.note,
                note_html=note.html,
                position=position,
            )
            for position, (org, note) in enumerate(
                zip(term.organizations, rendered.notes, strict=True)
            )
        ]
        rows += [
            ReadMore(term_slug=slug, title=link.title, url=link.url, position=position)
            for position, link in enumerate(term.read_more)
        ]
    return rows


# Tables a content reload keeps: what workers computed, not what data/ holds.
SHARED_TABLES = ("democache", "lmweights")


def _content_tables() -> list[Any]:
    """Content tables, children first (the order rows must be deleted in)."""
    return [t for t in reversed(SQLModel.metadata.sorted_tables) if t.name not in SHARED_TABLES]


def load_corpus(engine: Engine, corpus: Corpus) -> None:
    """Replace the database content with the corpus in ONE transaction.

    Rows are deleted and inserted rather than tables dropped, so on either backend readers
    keep reading the old glossary (MVCC / WAL snapshots) until the commit, then see the new
    one. Only a schema change rebuilds the tables, still inside the transaction.
    """
    with Session(engine) as session:
        connection = session.connection()
        if connection.dialect.name == "postgresql":
            connection.execute(text(f"SELECT pg_advisory_xact_lock({LOAD_LOCK_KEY})"))
        stored = None
        if sa_inspect(connection).has_table("meta"):
            stored = connection.execute(
                text("SELECT value FROM meta WHERE key = 'schema'")
            ).scalar()
        if stored != SCHEMA_VERSION:
            SQLModel.metadata.drop_all(connection)
            SQLModel.metadata.create_all(connection)
        else:
            for table in _content_tables():
                connection.execute(table.delete())
        for position, (slug, category) in enumerate(corpus.categories.items()):
            session.add(Category(slug=slug, position=position, **category.model_dump()))
        for slug, org in corpus.organizations.items():
            session.add(Organization(slug=slug, **org.model_dump()))
        session.flush()
        # terms before the rows that reference them (flush order across tables is not)
        session.add_all(_terms(corpus))
        session.flush()
        session.add_all(_term_relations(corpus))
        session.flush()
        # The search index is replaced on every load, in this transaction: its tables too
        # keep their rows on PostgreSQL, so readers are never held up (see app.search).
        search.build_index(connection, corpus_documents(corpus))
        session.add(Meta(key="schema", value=SCHEMA_VERSION))
        session.add(Meta(key="fingerprint", value=corpus.fingerprint))
        session.add(Meta(key="loaded_at", value=datetime.now(UTC).isoformat()))
        session.commit()
    search.after_load(engine)


def corpus_documents(corpus: Corpus) -> list[search.Document]:
    """What the search index holds for each term."""
    return [
        search.Document(
            slug=slug,
            title=term.title,
            synonyms=list(term.synonyms),
            summary=term.summary,
            body=plain_text([term.definition, term.background, term.usage_note]),
            category=term.category,
        )
        for slug, term in sorted(corpus.terms.items())
    ]


def stored_fingerprint(engine: Engine) -> str | None:
    """The fingerprint of the content in the database, or None when there is none."""
    try:
        with Session(engine) as session:
            meta = session.exec(select(Meta).where(Meta.key == "fingerprint")).first()
            return meta.value if meta else None
    except Exception:  # no tables yet, or an unreadable file: either way, not loaded
        return None


def ensure_loaded(engine: Engine, data_dir: Path) -> str:
    """Load data/ when the database is missing or does not match the files (start-up).

    Returns what happened. When the files are invalid but an older glossary is loaded, the
    old one keeps serving; with nothing loaded at all, the ContentError propagates.
    """
    current = fingerprint(data_dir)
    stored = stored_fingerprint(engine)
    if stored == current:
        return "up to date"
    try:
        corpus = read_corpus(data_dir)
    except ContentError:
        if stored is None:
            raise
        return "stale: data/ has errors, serving the previously loaded glossary"
    load_corpus(engine, corpus)
    return "loaded"
