"""Small text helpers shared by the loader, search and pages."""

import re
import unicodedata


def fold(value: str) -> str:
    """Lower-case, strip diacritics, and collapse punctuation/space runs to one space."""
    decomposed = unicodedata.normalize("NFKD", value)
    ascii_only = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return re.sub(r"[^0-9a-z]+", " ", ascii_only.lower()).strip()


def slugify(value: str) -> str:
    """URL slug of a title or synonym: 'Layer-Norm (LN)' -> 'layer-norm-ln'."""
    return fold(value).replace(" ", "-")


def index_letter(title: str) -> str:
    """The A-Z index letter of a title: its first letter, or '#' for digits and symbols."""
    folded = fold(title)
    first = folded[:1].upper()
    return first if first.isalpha() else "#"
