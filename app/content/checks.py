"""Checks that span files: references resolve, names are unique, lengths are in bounds,
links go both ways, illustrations are inert. Every problem is collected, none raised."""

from pathlib import Path
from typing import TYPE_CHECKING
from xml.etree import ElementTree

from app.content.corpus import Corpus
from app.content.files import TermFile
from app.content.markdown import raw_html_fragments, word_count
from app.content.problems import Problem
from app.content.render import SECTIONS
from app.text import fold, slugify

if TYPE_CHECKING:
    from app.demo.experiment import Experiment

# Inclusive word bounds per section (CONTENT.md).
WORD_BOUNDS = {
    "summary": (3, 40),
    "definition": (60, 150),
    "background": (80, 200),
    "usage_note": (30, 80),
}
RELATED_BOUNDS = (3, 8)


def _known_presets() -> "dict[str, Experiment]":
    from app.demo.catalog import EXPERIMENTS  # torch-free module

    return EXPERIMENTS


def experiment_problems(corpus: Corpus) -> list[Problem]:
    """Experiments naming a term the glossary lacks (checked by `glossary check` on the real
    content; the small corpora tests load do not carry every term an experiment names)."""
    from app.demo.catalog import EXPERIMENTS, unknown_terms

    return [
        Problem(
            f"app/demo/families/{EXPERIMENTS[name].family.replace('-', '_')}.py",
            f"{name}.terms",
            f"unknown term {slug!r}",
        )
        for name, slug in unknown_terms(set(corpus.terms))
    ]


def svg_problems(path: Path) -> list[str]:
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


def _markdown_problems(name: str, section: str, text: str, unknown: list[str]) -> list[Problem]:
    problems = [
        Problem(name, section, f"raw HTML is not allowed: {fragment[:40]!r}")
        for fragment in raw_html_fragments(text)
    ]
    problems += [Problem(name, section, f"links to unknown term [[{s}]]") for s in unknown]
    return problems


def cross_check(corpus: Corpus, data_dir: Path) -> list[Problem]:
    """Every problem that needs more than one file to see, or the rendered text."""
    problems: list[Problem] = []
    terms = corpus.terms
    slugs = set(terms) | corpus.broken_slugs
    presets = _known_presets()
    # folded name -> (file, what) for every title and synonym, to find clashes
    names: dict[str, str] = {}
    file_of = {slug: f"{data_dir.name}/terms/{slug}.toml" for slug in slugs}
    url_slugs = dict(file_of)
    for slug in sorted(terms):
        names.setdefault(fold(terms[slug].title), f"title of {file_of[slug]}")

    for slug, term in sorted(terms.items()):
        name = file_of[slug]
        out = corpus.rendered[slug]
        if term.category not in corpus.categories:
            problems.append(Problem(name, "category", f"unknown category {term.category!r}"))
        title_owner = names.get(fold(term.title))
        if title_owner and title_owner != f"title of {name}":
            problems.append(Problem(name, "title", f"duplicates the {title_owner}"))
        for section, (low, high) in WORD_BOUNDS.items():
            words = word_count(getattr(term, section))
            if not low <= words <= high:
                problems.append(Problem(name, section, f"has {words} words; allowed {low}-{high}"))
        for section in SECTIONS:
            problems += _markdown_problems(
                name, section, getattr(term, section), out.sections[section].unknown
            )
        for index, (org, note) in enumerate(zip(term.organizations, out.notes, strict=True)):
            problems += _markdown_problems(
                name, f"organizations[{index}].note", org.note, note.unknown
            )
        if out.formula_error is not None:
            problems.append(
                Problem(name, "formula", f"cannot be rendered as math: {out.formula_error}")
            )

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

        problems += _related_problems(name, slug, term, terms, slugs, corpus.broken_slugs)

        if term.demo is not None and term.demo not in presets:
            problems.append(
                Problem(name, "demo", f"unknown experiment {term.demo!r}; known: {sorted(presets)}")
            )
        elif term.demo is not None and slug not in presets[term.demo].terms:
            problems.append(
                Problem(
                    name, "demo", f"experiment {term.demo!r} does not list {slug!r} in its terms"
                )
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
                    Problem(name, "illustration.file", reason) for reason in svg_problems(svg)
                ]
    return problems


def _related_problems(
    name: str,
    slug: str,
    term: TermFile,
    terms: dict[str, TermFile],
    slugs: set[str],
    broken_slugs: set[str],
) -> list[Problem]:
    """Related terms: 3-8 of them, known, not itself, and linking back unless explained."""
    problems = []
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
        elif related in broken_slugs:
            continue
        elif slug not in terms[related].related and related not in term.one_way_related:
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
    return problems
