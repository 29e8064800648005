"""For readers that are language models: each term page as Markdown (/terms/{slug}.md) and
the llmstxt.org index of them (/llms.txt).

The twin keeps the Markdown the entry was written in (data/terms/*.toml), with [[slug]]
links made absolute links to the linked entry's own twin, and its formula as TeX: a model
reads those better than HTML or MathML. Every other link is absolute too, since the text is
often read away from this site.
"""

import re

from sqlmodel import Session, col, select

from app import urls
from app.content.markdown import WIKILINK
from app.glossary.categories import category_summaries
from app.glossary.jsonld import SITE_DESCRIPTION, SITE_NAME
from app.glossary.shared import title_order
from app.glossary.terms import build_term
from app.models import Term
from app.views import TermRef, TermView

# Characters that would end a link destination early unless it is written in <...>.
_UNSAFE_DESTINATION = re.compile(r"[\s()<>]")


def link(text: str, url: str) -> str:
    """A Markdown link; brackets in the text escaped, an awkward URL put in <...>."""
    label = text.replace("\\", "\\\\").replace("[", "\\[").replace("]", "\\]")
    destination = f"<{url}>" if _UNSAFE_DESTINATION.search(url) else url
    return f"[{label}]({destination})"


class _Links:
    """Turns [[slug]] and [[slug|text]] into links to the linked entries' twins."""

    def __init__(self, session: Session, base_url: str, texts: list[str]) -> None:
        slugs = {m.group(1) for text in texts for m in WIKILINK.finditer(text)}
        rows = session.exec(select(Term.slug, Term.title).where(col(Term.slug).in_(slugs))).all()
        self.titles = dict(rows)
        self.base_url = base_url

    def resolve(self, text: str) -> str:
        def replace(match: re.Match[str]) -> str:
            slug, label = match.group(1), match.group(2)
            title = self.titles.get(slug)
            if title is None:  # the content checks reject these; keep the words if one slips
                return (label or slug).strip()
            return link(
                (label or title).strip(), urls.absolute(self.base_url, urls.term_markdown(slug))
            )

        return WIKILINK.sub(replace, text.strip())


def twin_link(ref: TermRef, base_url: str) -> str:
    """A link to another entry's Markdown twin, named by its title."""
    return link(ref.title, urls.absolute(base_url, urls.term_markdown(ref.slug)))


def _quote(text: str) -> str:
    return "\n".join(f"> {line}".rstrip() for line in text.strip().splitlines())


def _facts(view: TermView, base_url: str) -> list[str]:
    """The bullet list under the summary: names, category, origin, the other formats."""
    facts = []
    if view.synonyms:
        facts.append("Also called: " + ", ".join(view.synonyms))
    category_url = urls.absolute(base_url, view.category.url)
    facts.append(f"Category: {link(view.category.title, category_url)}")
    if view.introduced_in is not None:
        work = view.introduced_in
        origin = f"{work.authors}, {work.year}" + (
            f"; {work.identifier}" if work.identifier else ""
        )
        facts.append(f"Introduced in: {link(work.title, work.url)} ({origin})")
    page = urls.absolute(base_url, view.url)
    facts.append(f"This entry as a web page: {page}")
    facts.append(f"This entry as JSON: {urls.absolute(base_url, urls.api(view.url))}")
    return [f"- {fact}" for fact in facts]


def term_markdown(session: Session, slug: str, base_url: str) -> str:
    """A term's page as one Markdown document; `slug` is canonical (see canonical_slug)."""
    view = build_term(session, slug, base_url)
    notes = [org.note for org in view.organizations]
    links = _Links(session, base_url, [view.definition, view.background, view.usage_note, *notes])
    page = urls.absolute(base_url, view.url)
    out = [f"# {view.title}", "", _quote(view.summary), "", *_facts(view, base_url)]
    out += ["", "## Definition", "", links.resolve(view.definition)]
    if view.formula:
        out += ["", "$$", view.formula.strip(), "$$"]
    if view.background.strip():
        out += ["", "## Background", "", links.resolve(view.background)]
    if view.usage_note.strip():
        out += ["", "## How the word is used", "", links.resolve(view.usage_note)]
    experiment = view.experiment
    out += [
        "",
        "## Live experiment",
        "",
        f"{link(experiment.title, page + '#demo')} (`{experiment.name}`): "
        f"{experiment.description.strip()}",
        "",
        "What a run checks, main claim first:",
        "",
        *[f"- {claim.statement}" for claim in experiment.claims],
        "",
        f"Its result as JSON: {urls.absolute(base_url, experiment.api_url)}",
    ]
    if view.organizations:
        out += ["", "## Who works on it", ""]
        out += [
            f"- {link(org.name, urls.absolute(base_url, org.url))}: {links.resolve(org.note)}"
            for org in view.organizations
        ]
    if view.read_more:
        out += ["", "## Read more", ""]
        out += [f"- {link(item.title, item.url)}" for item in view.read_more]
    if view.related:
        out += ["", "## Related terms", ""]
        out += [f"- {twin_link(ref, base_url)}: {ref.summary}" for ref in view.related]
    if view.backlinks:
        out += ["", "## Terms that mention this", ""]
        out += [f"- {twin_link(ref, base_url)}" for ref in view.backlinks]
    return "\n".join(out) + "\n"


def llms_txt(session: Session, base_url: str) -> str:
    """The llmstxt.org index: title, summary, then every entry's twin under its category."""
    terms = session.exec(select(Term).order_by(title_order())).all()

    def absolute(path: str) -> str:
        return urls.absolute(base_url, path)

    out = [
        f"# {SITE_NAME}",
        "",
        f"> {SITE_DESCRIPTION}",
        "",
        f"{len(terms)} entries, each with a definition, its history, how the word is used in "
        "practice and a live PyTorch experiment. Each link below is an entry's Markdown twin; "
        "its web page is the same URL without `.md`, and the same entry as JSON is under "
        f"`/api/terms/`. Search the glossary at {absolute(urls.search())}?q=... "
        "(or its JSON, /api/search?q=...).",
    ]
    for category in category_summaries(session):
        members = [t for t in terms if t.category_slug == category.slug]
        if not members:
            continue
        out += ["", f"## {category.title}", ""]
        out += [
            f"- {link(t.title, absolute(urls.term_markdown(t.slug)))}: {t.summary}" for t in members
        ]
    out += [
        "",
        "## Optional",
        "",
        f"- {link('SKOS concept scheme (Turtle)', absolute(urls.skos_turtle()))}: every entry "
        "with its labels, notes, related terms and category",
        f"- {link('SKOS concept scheme (JSON-LD)', absolute(urls.skos_jsonld()))}: the same",
        f"- {link('schema.org DefinedTermSet', absolute(urls.glossary()))}: every entry as JSON-LD",
        f"- {link('OpenAPI document', absolute(urls.openapi()))}: the JSON API, the live "
        "experiments included",
    ]
    return "\n".join(out) + "\n"
