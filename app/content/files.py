"""The shape of each file under data/ (CONTENT.md): Pydantic models that reject unknown
fields, so a typo in a field name is a problem, not a silently empty section."""

import re

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

SLUG_PATTERN = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
# new-style "1512.03385", or old-style "cs/9905014"
ARXIV_PATTERN = r"^\d{4}\.\d{4,5}$|^[a-z-]+(\.[A-Z]{2})?/\d{7}$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


def _https(url: str) -> str:
    if not re.match(r"^https://[^\s/]+\.[^\s]+$", url):
        raise ValueError("must be an https:// URL")
    return url


def _optional_https(url: str | None) -> str | None:
    return None if url is None else _https(url)


class CategoryFile(_Strict):
    """One table of data/categories.toml."""

    title: str = Field(min_length=1, max_length=60)
    description: str = Field(min_length=1, max_length=300)


class OrganizationFile(_Strict):
    """One table of data/organizations.toml."""

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


class IntroducedInFile(_Strict):
    """The paper (or book, or report) that introduced the idea. `year` is the year of first
    public release: the arXiv or publication year, whichever came first."""

    title: str = Field(min_length=3, max_length=300)
    authors: str = Field(min_length=2, max_length=300)
    year: int = Field(ge=1700, le=2100)
    arxiv: str | None = Field(default=None, pattern=ARXIV_PATTERN)
    doi: str | None = Field(default=None, pattern=r"^10\.\d{4,9}/\S+$")
    url: str | None = None

    _check_url = field_validator("url")(_optional_https)

    @model_validator(mode="after")
    def _one_locator_and_a_consistent_year(self) -> "IntroducedInFile":
        if not (self.arxiv or self.doi or self.url):
            raise ValueError("needs an arxiv id, a doi or a url")
        if self.arxiv and re.match(r"^\d{4}\.", self.arxiv):
            posted = 2000 + int(self.arxiv[:2])
            if self.year > posted:
                raise ValueError(
                    f"year {self.year} is after its arXiv posting ({posted}); the year is that "
                    "of first public release"
                )
        return self

    @property
    def link(self) -> str:
        """Where a reader finds it: the arXiv abstract, the DOI resolver, or the URL given."""
        if self.arxiv:
            return f"https://arxiv.org/abs/{self.arxiv}"
        if self.doi:
            return f"https://doi.org/{self.doi}"
        assert self.url is not None  # the validator requires one of the three
        return self.url

    @property
    def identifier(self) -> str | None:
        if self.arxiv:
            return f"arXiv:{self.arxiv}"
        return f"doi:{self.doi}" if self.doi else None


class TermOrganizationFile(_Strict):
    key: str
    note: str = Field(min_length=10, max_length=500)


class TermFile(_Strict):
    """One file data/terms/<slug>.toml."""

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
    introduced_in: IntroducedInFile | None = None
    read_more: list[LinkFile] = []
    organizations: list[TermOrganizationFile] = []

    @field_validator("synonyms")
    @classmethod
    def _non_blank_synonyms(cls, values: list[str]) -> list[str]:
        if any(not value.strip() for value in values):
            raise ValueError("synonyms must not be blank")
        return [value.strip() for value in values]
