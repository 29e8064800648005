"""Every term's Markdown and formula, rendered once per load: the checks read the links and
errors found, the loader writes the HTML and the links (backlinks) to the database."""

from dataclasses import dataclass

from app.content.files import TermFile
from app.content.formula import render_formula
from app.content.markdown import RenderedMarkdown, SlugLookup, render

# The Markdown sections of a term file; the page shows all but the summary as HTML.
SECTIONS = ("summary", "definition", "background", "usage_note")
PAGE_SECTIONS = ("definition", "background", "usage_note")


@dataclass(frozen=True)
class RenderedTerm:
    sections: dict[str, RenderedMarkdown]  # by SECTIONS name
    notes: list[RenderedMarkdown]  # organizations[i].note, inline
    formula_mathml: str | None
    formula_error: str | None  # why the TeX cannot be rendered, when it cannot

    def mentions(self, slug: str) -> set[str]:
        """The other terms the page's text links to (their backlinks)."""
        return {t for s in PAGE_SECTIONS for t in self.sections[s].links if t != slug}


def render_terms(terms: dict[str, TermFile], broken: set[str]) -> dict[str, RenderedTerm]:
    """Render every valid term; `broken` names terms whose file exists but failed its own
    checks (links to them are not reported as unknown: the file's own problem is)."""
    titles = {slug: term.title for slug, term in terms.items()}

    def lookup(slug: str) -> str | None:
        return titles.get(slug) or (slug if slug in broken else None)

    return {slug: _render_term(term, lookup) for slug, term in terms.items()}


def _render_term(term: TermFile, lookup: SlugLookup) -> RenderedTerm:
    mathml = error = None
    if term.formula is not None:
        try:
            mathml = render_formula(term.formula)
        except Exception as exc:  # latex2mathml raises many kinds; all mean "bad TeX"
            error = str(exc)
    return RenderedTerm(
        sections={s: render(getattr(term, s), lookup) for s in SECTIONS},
        notes=[render(org.note, lookup, inline=True) for org in term.organizations],
        formula_mathml=mathml,
        formula_error=error,
    )
