"""Read data/ into a Corpus: parse each file against its schema, render the Markdown once,
then run the cross-file checks. Every problem is collected before anything is raised."""

import tomllib
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from app.content.checks import cross_check
from app.content.corpus import Corpus
from app.content.files import SLUG_PATTERN, CategoryFile, OrganizationFile, TermFile
from app.content.problems import ContentError, Problem
from app.content.render import render_terms
from app.content.version import fingerprint


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
    """A file of [slug] tables (categories, organizations), each checked against schema."""
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


def _read_terms(corpus: Corpus, data_dir: Path, problems: list[Problem]) -> None:
    terms_dir = data_dir / "terms"
    if not terms_dir.is_dir():
        problems.append(Problem(_relative(terms_dir, data_dir), "(folder)", "folder is missing"))
        return
    for path in sorted(terms_dir.glob("*.toml")):
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


def read_corpus(data_dir: Path) -> Corpus:
    """Read, render and validate data/; raise ContentError listing every problem."""
    problems: list[Problem] = []
    corpus = Corpus(fingerprint=fingerprint(data_dir))
    corpus.categories = _read_tables(data_dir / "categories.toml", data_dir, CategoryFile, problems)
    corpus.organizations = _read_tables(
        data_dir / "organizations.toml", data_dir, OrganizationFile, problems
    )
    _read_terms(corpus, data_dir, problems)
    corpus.rendered = render_terms(corpus.terms, corpus.broken_slugs)
    problems.extend(cross_check(corpus, data_dir))
    if problems:
        raise ContentError(problems)
    return corpus
