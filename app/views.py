"""View models: every HTML page renders one of these, and its JSON twin returns the same."""

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, RootModel


class CategoryRef(BaseModel):
    slug: str
    title: str
    url: str


class CategorySummary(CategoryRef):
    description: str
    term_count: int


class LetterCount(BaseModel):
    letter: str
    count: int


class TermRef(BaseModel):
    """A term as it appears in lists: enough to choose it."""

    slug: str
    title: str
    summary: str
    category: str
    url: str


class OrganizationNote(BaseModel):
    slug: str
    name: str
    url: str
    website: str
    note: str = Field(description="Markdown source")
    note_html: str


class Link(BaseModel):
    title: str
    url: str


class Illustration(BaseModel):
    url: str
    alt: str
    caption: str


class IntroducedIn(BaseModel):
    """The paper (or book, or report) that introduced the idea."""

    title: str
    authors: str
    year: int = Field(description="Year of first public release (arXiv or publication)")
    url: str = Field(description="The arXiv abstract, the DOI resolver or the page given")
    identifier: str | None = Field(description='"arXiv:<id>" or "doi:<doi>" when known')


class ExperimentClaim(BaseModel):
    id: str
    statement: str


class ExperimentRef(BaseModel):
    """The live experiment a term page opens on, as the page states it before any run."""

    name: str
    title: str
    family: str
    description: str
    citation: str
    claims: list[ExperimentClaim] = Field(description="What a run checks, main claim first")
    api_url: str = Field(description="Its default result as JSON")


class TermView(BaseModel):
    """Everything on a term page."""

    slug: str
    title: str
    url: str
    category: CategoryRef
    summary: str
    definition: str = Field(description="Markdown source")
    definition_html: str
    background: str
    background_html: str
    usage_note: str
    usage_note_html: str
    formula: str | None = Field(description="TeX source")
    formula_mathml: str | None
    synonyms: list[str]
    related: list[TermRef]
    backlinks: list[TermRef] = Field(description="Terms whose text links to this one")
    organizations: list[OrganizationNote]
    read_more: list[Link]
    illustration: Illustration | None
    introduced_in: IntroducedIn | None
    demo_preset: str = Field(description="The live experiment the page opens on")
    experiment: ExperimentRef
    json_ld: dict[str, Any] = Field(description="schema.org DefinedTerm")


class TermList(BaseModel):
    items: list[TermRef]
    total: int
    limit: int
    offset: int
    category: str | None
    letter: str | None
    letters: list[LetterCount] = Field(description="Every index letter with its term count")
    categories: list[CategorySummary]


class HomeView(BaseModel):
    term_count: int
    categories: list[CategorySummary]
    letters: list[LetterCount]
    featured: TermRef | None


class CategoryView(CategorySummary):
    terms: list[TermRef]


class CategoryList(BaseModel):
    categories: list[CategorySummary]


class OrganizationSummary(BaseModel):
    slug: str
    name: str
    url: str
    website: str
    description: str
    term_count: int


class OrganizationTerm(BaseModel):
    term: TermRef
    note: str = Field(description="Markdown source")
    note_html: str


class OrganizationView(OrganizationSummary):
    terms: list[OrganizationTerm]


class OrganizationList(BaseModel):
    organizations: list[OrganizationSummary]


class SearchHit(BaseModel):
    slug: str
    title: str
    summary: str
    category: str
    url: str
    score: float = Field(description="Higher ranks first; 950 and above is an exact name")
    matched_field: str = Field(description="title, synonyms, summary or body")
    matched_synonym: str | None = Field(description="The synonym that matched, if one did")
    exact: bool = Field(description="The query is this entry's title or one of its synonyms")
    title_html: str = Field(description="The title, HTML-escaped, matches in <mark>")
    snippet_html: str = Field(
        description="The summary, or a passage of the text when only it matched; HTML-escaped, "
        "matches in <mark>"
    )


class SearchView(BaseModel):
    query: str
    total: int
    total_exact: bool = Field(
        description="False when more entries match than are counted (total is then 10,000)"
    )
    limit: int
    offset: int
    category: str | None
    hits: list[SearchHit]
    corrected_query: str | None = Field(
        description="The query as corrected for typos, when only a corrected query matched"
    )
    did_you_mean: list[TermRef] = Field(description="Closest entries when nothing matched")


class Suggestions(RootModel[tuple[str, list[str], list[str], list[str]]]):
    """OpenSearch suggestions: [query, names, their entries' titles, their entries' URLs]."""


class Health(BaseModel):
    status: str = Field(description="ok, degraded (pages serve, the demo cannot), empty or error")
    database: str
    terms: int
    loaded_at: str | None
    demo: dict[str, Any] = Field(
        description="Workers alive and starting, busy, device, queue length, per-worker detail"
    )
    reason: str | None = None


class ErrorBody(BaseModel):
    """The one shape of every /api error."""

    status: int
    message: str
    details: Any = None


class DefinedTermSet(BaseModel):
    """The whole glossary as schema.org JSON-LD."""

    model_config = ConfigDict(populate_by_name=True)

    context: str = Field(default="https://schema.org", alias="@context")
    type: str = Field(default="DefinedTermSet", alias="@type")
    id: str = Field(alias="@id")
    name: str
    description: str
    url: str
    hasDefinedTerm: list[dict[str, Any]]  # noqa: N815  (schema.org property name)


class DemoPreset(BaseModel):
    """A named comparison (its exact fields come from app.demo.catalog)."""

    model_config = ConfigDict(extra="allow")

    name: str
    title: str
    description: str
