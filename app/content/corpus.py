"""The Corpus: everything under data/, parsed, rendered and (once read_corpus returns it)
valid."""

from dataclasses import dataclass, field

from app.content.files import CategoryFile, OrganizationFile, TermFile
from app.content.render import RenderedTerm


@dataclass
class Corpus:
    categories: dict[str, CategoryFile] = field(default_factory=dict)
    organizations: dict[str, OrganizationFile] = field(default_factory=dict)
    terms: dict[str, TermFile] = field(default_factory=dict)
    # each term's Markdown and formula, rendered once (app/content/render.py)
    rendered: dict[str, RenderedTerm] = field(default_factory=dict)
    # slugs whose file exists but failed its own validation (reported once, not as unknown)
    broken_slugs: set[str] = field(default_factory=set)
    fingerprint: str = ""

    def counts(self) -> dict[str, int]:
        """What the CLI reports after a check or load."""
        return {
            "terms": len(self.terms),
            "categories": len(self.categories),
            "organizations": len(self.organizations),
            "illustrations": sum(1 for t in self.terms.values() if t.illustration),
            "with the paper that introduced them": sum(
                1 for t in self.terms.values() if t.introduced_in
            ),
        }
