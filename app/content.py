"""Read and validate the content under data/, and load it into the database in one
transaction. Validation collects every problem (file, field, reason) before anything is
written, so a bad file loads nothing."""

import hashlib
import re
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from sqlalchemy import Engine, text
from sqlalchemy import inspect as sa_inspect
from sqlmodel import Session, SQLModel, select

from app import markdown, search
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
from app.text import fold, index_letter, slugify

# Bump when loading or rendering changes, so existing databases are reloaded on start.
LOADER_VERSION = "6"
# Bump when a table changes shape: the next load rebuilds the tables.
SCHEMA_VERSION = "2"
SLUG_PATTERN = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
# Inclusive word bounds per section (CONTENT.md).
WORD_BOUNDS = {
    "summary": (3, 40),
    "definition": (60, 150),
    "background": (80, 200),
    "usage_note": (30, 80),
}
RELATED_BOUNDS = (3, 8)


@dataclass(frozen=True, order=True)
class Problem:
    """One thing wrong with the content, precise enough to fix without guessing."""

    file: str
    field: str
    reason: str

    def __str__(self) -> str:
        return f"{self.file}: {self.field}: {self.reason}"


class ContentError(Exception):
    """The content failed validation; `problems` lists every issue found."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = sorted(problems)
        super().__init__(f"{len(problems)} problem(s) in content")


# ---------------------------------------------------------------- file schemas


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


def _https(url: str) -> str:
    if not re.match(r"^https://[^\s/]+\.[^\s]+$", url):
        raise ValueError("must be an https:// URL")
    return url


class CategoryFile(_Strict):
    title: str = Field(min_length=1, max_length=60)
    description: str = Field(min_length=1, max_length=300)


class OrganizationFile(_Strict):
    name: str = Field(min_length=1, max_length=80)
    url: str
    description: str = Field(min_length=1, max_length=300)

    _check_url = field_validator("url")(_https)


class IllustrationFile(_Strict):
    file: str = Field(pattern=r"^[a-z0-9-]+\.svg$")
    alt: str = Field(min_length=10, max_length=800)
    caption: str = Field(min_length=1, max_length=300)


class LinkFile(_Strict):
    title: str = Field(min_length=1, max_length=200)
    url: str

    _check_url = field_validator("url")(_https)


class TermOrganizationFile(_Strict):
    key: str
    note: str = Field(min_length=10, max_length=500)


class TermFile(_Strict):
    title: str = Field(min_length=1, max_length=80)
    category: str
    summary: str
    definition: str
    background: str
    usage_note: str
    formula: str | None = None
    synonyms: list[str] = []
    related: list[str]
    # related slug -> why that entry need not link back (otherwise links must be mutual)
    one_way_related: dict[str, str] = {}
    demo: str | None = None
    illustration: IllustrationFile | None = None
    read_more: list[LinkFile] = []
    organizations: list[TermOrganizationFile] = []

    @field_validator("synonyms")
    @classmethod
    def _non_blank_synonyms(cls, values: list[str]) -> list[str]:
        if any(not value.strip() for value in values):
            raise ValueError("synonyms must not be blank")
        return [value.strip() for value in values]


# ---------------------------------------------------------------- reading


@dataclass
class Corpus:
    """Everything under data/, validated."""

    categories: dict[str, CategoryFile] = field(default_factory=dict)
    organizations: dict[str, OrganizationFile] = field(default_factory=dict)
    terms: dict[str, TermFile] = field(default_factory=dict)
    # slugs whose file exists but failed its own validation (reported once, not as unknown)
    broken_slugs: set[str] = field(default_factory=set)
    fingerprint: str = ""


def _relative(path: Path, root: Path) -> str:
    try:
        return str(path.relative_to(root.parent))
    except ValueError:
        return str(path)


def _read_toml(path: Path, root: Path, problems: list[Problem]) -> dict[str, Any] | None:
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except tomllib.TOMLDecodeError as exc:
        problems.append(Problem(_relative(path, root), "(file)", f"invalid TOML: {exc}"))
    except OSError as exc:
        problems.append(Problem(_relative(path, root), "(file)", f"cannot read: {exc.strerror}"))
    return None


def _pydantic_problems(name: str, prefix: str, exc: ValidationError) -> list[Problem]:
    out = []
    for error in exc.errors():
        location = ".".join(str(part) for part in error["loc"])
        where = f"{prefix}.{location}" if prefix and location else prefix or location
        reason = "missing required field" if error["type"] == "missing" else error["msg"]
        if error["type"] == "extra_forbidden":
            reason = "unknown field"
        out.append(Problem(name, where or "(file)", reason))
    return out


def _read_tables(
    path: Path, root: Path, schema: type[BaseModel], problems: list[Problem]
) -> dict[str, Any]:
    name = _relative(path, root)
    if not path.exists():
        problems.append(Problem(name, "(file)", "file is missing"))
        return {}
    raw = _read_toml(path, root, problems)
    parsed: dict[str, Any] = {}
    for key, value in (raw or {}).items():
        if not SLUG_PATTERN.match(key):
            problems.append(Problem(name, key, "key must be a lowercase-hyphenated slug"))
            continue
        if not isinstance(value, dict):
            problems.append(Problem(name, key, "must be a table"))
            continue
        try:
            parsed[key] = schema.model_validate(value)
        except ValidationError as exc:
            problems.extend(_pydantic_problems(name, key, exc))
    return parsed


def data_files(data_dir: Path) -> list[Path]:
    """Every file whose content feeds the database, in a stable order."""
    files = [data_dir / "categories.toml", data_dir / "organizations.toml"]
    files += sorted((data_dir / "terms").glob("*.toml"))
    files += sorted((data_dir / "illustrations").glob("*.svg"))
    return files


def fingerprint(data_dir: Path) -> str:
    """Hash of the loader version and every data file: changes whenever a reload is due."""
    digest = hashlib.sha256(LOADER_VERSION.encode())
    for path in data_files(data_dir):
        if path.exists():
            digest.update(str(path.relative_to(data_dir)).encode() + b"\0")
            digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()


def read_corpus(data_dir: Path) -> Corpus:
    """Read and validate data/; raise ContentError listing every problem."""
    problems: list[Problem] = []
    corpus = Corpus(fingerprint=fingerprint(data_dir))
    corpus.categories = _read_tables(data_dir / "categories.toml", data_dir, CategoryFile, problems)
    corpus.organizations = _read_tables(
        data_dir / "organizations.toml", data_dir, OrganizationFile, problems
    )
    terms_dir = data_dir / "terms"
    if not terms_dir.is_dir():
        problems.append(Problem(_relative(terms_dir, data_dir), "(folder)", "folder is missing"))
    for path in sorted(terms_dir.glob("*.toml")) if terms_dir.is_dir() else []:
        name = _relative(path, data_dir)
        slug = path.stem
        if not SLUG_PATTERN.match(slug):
            reason = "must be <lowercase-hyphenated-slug>.toml"
            problems.append(Problem(name, "(file name)", reason))
            continue
        raw = _read_toml(path, data_dir, problems)
        if raw is None:
            corpus.broken_slugs.add(slug)
            continue
        try:
            corpus.terms[slug] = TermFile.model_validate(raw)
        except ValidationError as exc:
            problems.extend(_pydantic_problems(name, "", exc))
            corpus.broken_slugs.add(slug)
    problems.extend(cross_check(corpus, data_dir))
    if problems:
        raise ContentError(problems)
    return corpus


# ---------------------------------------------------------------- cross-file checks


def _known_presets() -> set[str]:
    from app.demo.presets import PRESETS  # torch-free module

    return set(PRESETS)


def _svg_problems(path: Path) -> list[str]:
    """Illustrations are shown as images; still refuse anything active or external."""
    try:
        root = ElementTree.parse(path).getroot()  # noqa: S314  (our own reviewed files)
    except ElementTree.ParseError as exc:
        return [f"not well-formed SVG: {exc}"]
    reasons = []
    if not root.tag.endswith("svg"):
        reasons.append("root element is not <svg>")
    for element in root.iter():
        tag = element.tag.rsplit("}", 1)[-1]
        if tag in {"script", "foreignObject", "image", "iframe"}:
            reasons.append(f"<{tag}> is not allowed")
        for attr, value in element.attrib.items():
            name = attr.rsplit("}", 1)[-1]
            if name.startswith("on"):
                reasons.append(f"event attribute {name} is not allowed")
            if name == "href" and not value.startswith("#"):
                reasons.append("external references are not allowed")
    return reasons


def _check_markdown(name: str, section: str, text: str, slugs: set[str]) -> list[Problem]:
    problems = [
        Problem(name, section, f"raw HTML is not allowed: {fragment[:40]!r}")
        for fragment in markdown.raw_html_fragments(text)
    ]
    rendered = markdown.render(text, lambda slug: slug if slug in slugs else None)
    problems += [Problem(name, section, f"links to unknown term [[{s}]]") for s in rendered.unknown]
    return problems


def _check_formula(name: str, formula: str) -> list[Problem]:
    try:
        render_formula(formula)
    except Exception as exc:  # latex2mathml raises many kinds; all mean "bad TeX"
        return [Problem(name, "formula", f"cannot be rendered as math: {exc}")]
    return []


def cross_check(corpus: Corpus, data_dir: Path) -> list[Problem]:
    """Checks that span files: references resolve, names are unique, lengths in bounds."""
    problems: list[Problem] = []
    slugs = set(corpus.terms) | corpus.broken_slugs
    presets = _known_presets()
    # folded name -> (file, what) for every title and synonym, to find clashes
    names: dict[str, str] = {}
    file_of = {slug: f"{data_dir.name}/terms/{slug}.toml" for slug in slugs}
    url_slugs = dict(file_of)
    for slug in sorted(corpus.terms):
        names.setdefault(fold(corpus.terms[slug].title), f"title of {file_of[slug]}")

    for slug, term in sorted(corpus.terms.items()):
        name = file_of[slug]
        if term.category not in corpus.categories:
            problems.append(Problem(name, "category", f"unknown category {term.category!r}"))
        title_owner = names.get(fold(term.title))
        if title_owner and title_owner != f"title of {name}":
            problems.append(Problem(name, "title", f"duplicates the {title_owner}"))
        for section, (low, high) in WORD_BOUNDS.items():
            words = markdown.word_count(getattr(term, section))
            if not low <= words <= high:
                problems.append(Problem(name, section, f"has {words} words; allowed {low}-{high}"))
        for section in ("summary", "definition", "background", "usage_note"):
            problems += _check_markdown(name, section, getattr(term, section), slugs)
        for index, org in enumerate(term.organizations):
            problems += _check_markdown(name, f"organizations[{index}].note", org.note, slugs)
        if term.formula is not None:
            problems += _check_formula(name, term.formula)

        for index, synonym in enumerate(term.synonyms):
            where = f"synonyms[{index}]"
            folded = fold(synonym)
            if not folded:
                problems.append(Problem(name, where, "has no letters or digits"))
                continue
            if folded == fold(term.title):
                problems.append(Problem(name, where, "repeats the entry's own title"))
                continue
            owner = names.get(folded)
            if owner is not None:
                problems.append(Problem(name, where, f"duplicate synonym {synonym!r}: {owner}"))
                continue
            names[folded] = f"synonym of {name}"
            synonym_slug = slugify(synonym)
            slug_owner = url_slugs.get(synonym_slug)
            if slug_owner is not None and slug_owner != name:
                problems.append(
                    Problem(name, where, f"URL /terms/{synonym_slug} is already {slug_owner}")
                )
            url_slugs.setdefault(synonym_slug, name)

        low, high = RELATED_BOUNDS
        if not low <= len(term.related) <= high:
            problems.append(
                Problem(name, "related", f"has {len(term.related)} terms; allowed {low}-{high}")
            )
        if len(set(term.related)) != len(term.related):
            problems.append(Problem(name, "related", "lists a term twice"))
        for index, related in enumerate(term.related):
            where = f"related[{index}]"
            if related == slug:
                problems.append(Problem(name, where, "an entry cannot relate to itself"))
            elif related not in slugs:
                problems.append(Problem(name, where, f"unknown term {related!r}"))
            elif related in corpus.broken_slugs:
                continue
            elif slug not in corpus.terms[related].related and related not in term.one_way_related:
                problems.append(
                    Problem(
                        name,
                        where,
                        f"{related!r} does not link back; add {slug!r} to its related list "
                        "or explain in one_way_related",
                    )
                )
        for one_way in term.one_way_related:
            if one_way not in term.related:
                problems.append(Problem(name, f"one_way_related.{one_way}", "is not in related"))

        if term.demo is not None and term.demo not in presets:
            problems.append(
                Problem(name, "demo", f"unknown preset {term.demo!r}; known: {sorted(presets)}")
            )
        seen_orgs: set[str] = set()
        for index, org in enumerate(term.organizations):
            where = f"organizations[{index}].key"
            if org.key not in corpus.organizations:
                problems.append(Problem(name, where, f"unknown organization {org.key!r}"))
            if org.key in seen_orgs:
                problems.append(Problem(name, where, f"organization {org.key!r} listed twice"))
            seen_orgs.add(org.key)
        if term.illustration is not None:
            svg = data_dir / "illustrations" / term.illustration.file
            if not svg.is_file():
                problems.append(
                    Problem(name, "illustration.file", f"no such file illustrations/{svg.name}")
                )
            else:
                problems += [
                    Problem(name, "illustration.file", reason) for reason in _svg_problems(svg)
                ]
    return problems


MATHML_NS = "http://www.w3.org/1998/Math/MathML"
MATHML_TAGS = frozenset(
    "math semantics annotation mrow mi mn mo ms mtext mspace msub msup msubsup mfrac msqrt "
    "mroot mover munder munderover mtable mtr mtd mlabeledtr mstyle mpadded mphantom menclose "
    "merror mmultiscripts mprescripts none".split()
)


def render_formula(tex: str) -> str:
    """TeX to MathML, rendered natively by browsers: no script, no inline style.

    The converter passes some text through verbatim (e.g. inside \\text{}), so its output is
    parsed and re-serialized, and anything that is not plain MathML is refused.
    """
    from latex2mathml.converter import convert

    root = ElementTree.fromstring(str(convert(tex, display="block")))  # noqa: S314
    for element in root.iter():
        namespace, _, tag = element.tag.rpartition("}")
        if namespace.lstrip("{") != MATHML_NS or tag not in MATHML_TAGS:
            raise ValueError(f"<{tag}> is not MathML")
        for attr in list(element.attrib):
            if attr.startswith("on") or attr in ("style", "href") or ":" in attr:
                raise ValueError(f"attribute {attr!r} is not allowed in a formula")
    ElementTree.register_namespace("", MATHML_NS)
    return ElementTree.tostring(root, encoding="unicode")


# ---------------------------------------------------------------- loading


def _term_rows(corpus: Corpus) -> Iterable[SQLModel]:
    titles = {slug: term.title for slug, term in corpus.terms.items()}
    for slug, term in sorted(corpus.terms.items()):
        rendered = {
            section: markdown.render(getattr(term, section), titles.get)
            for section in ("definition", "background", "usage_note")
        }
        illustration = term.illustration
        yield Term(
            slug=slug,
            title=term.title,
            letter=index_letter(term.title),
            category_slug=term.category,
            summary=term.summary,
            definition=term.definition,
            definition_html=rendered["definition"].html,
            background=term.background,
            background_html=rendered["background"].html,
            usage_note=term.usage_note,
            usage_note_html=rendered["usage_note"].html,
            formula=term.formula,
            formula_mathml=render_formula(term.formula) if term.formula else None,
            demo_preset=term.demo,
            illustration_file=illustration.file if illustration else None,
            illustration_alt=illustration.alt if illustration else None,
            illustration_caption=illustration.caption if illustration else None,
        )
        linked = {target for r in rendered.values() for target in r.links if target != slug}
        for target in sorted(linked):
            yield Mention(source_slug=slug, target_slug=target)
        for position, synonym in enumerate(term.synonyms):
            yield Synonym(term_slug=slug, name=synonym, slug=slugify(synonym), position=position)
        for position, related in enumerate(term.related):
            yield RelatedTerm(term_slug=slug, related_slug=related, position=position)
        for position, org in enumerate(term.organizations):
            yield TermOrganization(
                term_slug=slug,
                organization_slug=org.key,
                note=org.note,
                note_html=markdown.render_inline(org.note, titles.get),
                position=position,
            )
        for position, link in enumerate(term.read_more):
            yield ReadMore(term_slug=slug, title=link.title, url=link.url, position=position)


def _content_tables() -> list[Any]:
    """Content tables, children first (the order rows must be deleted in)."""
    return [t for t in reversed(SQLModel.metadata.sorted_tables) if t.name != "democache"]


def load_corpus(engine: Engine, corpus: Corpus) -> None:
    """Replace the database content with the corpus in ONE transaction.

    Rows are deleted and inserted rather than tables dropped, so on either backend readers
    keep reading the old glossary (MVCC / WAL snapshots) until the commit, then see the new
    one. Only a schema change rebuilds the tables, still inside the transaction.
    """
    with Session(engine) as session:
        connection = session.connection()
        if connection.dialect.name == "postgresql":
            # one loader at a time (e.g. several replicas starting together)
            connection.execute(text("SELECT pg_advisory_xact_lock(7171)"))
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
        terms = [row for row in _term_rows(corpus) if isinstance(row, Term)]
        session.add_all(terms)
        session.flush()
        session.add_all(row for row in _term_rows(corpus) if not isinstance(row, Term))
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
            body=markdown.plain_text([term.definition, term.background, term.usage_note]),
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


def summary_counts(corpus: Corpus) -> dict[str, int]:
    """Counts printed by the CLI after a check or load."""
    return {
        "terms": len(corpus.terms),
        "categories": len(corpus.categories),
        "organizations": len(corpus.organizations),
        "illustrations": sum(1 for t in corpus.terms.values() if t.illustration),
    }


def describe(problems: list[Problem]) -> str:
    """Human-readable list of problems, one per line."""
    return "\n".join(str(problem) for problem in problems)


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
