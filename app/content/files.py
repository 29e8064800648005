"""The shape of each file under data/ (CONTENT.md): Pydantic models that reject unknown
fields, so a typo in a field name is a problem, not a silently empty section."""

import re

from pydantic import BaseModel, ConfigDict, Field, field_validator

SLUG_PATTERN = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


def _https(url: str) -> str:
    if not re.match(r"^https://[^\s/]+\.[^\s]+$", url):
        raise ValueError("must be an https:// URL")
    return url


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
    read_more: list[LinkFile] = []
    organizations: list[TermOrganizationFile] = []

    @field_validator("synonyms")
    @classmethod
    def _non_blank_synonyms(cls, values: list[str]) -> list[str]:
        if any(not value.strip() for value in values):
            raise ValueError("synonyms must not be blank")
        return [value.strip() for value in values]
