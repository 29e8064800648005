"""Text two entries share: a sentence, or a run of eight words. Either means one entry was
written from another (or both from one source), which CONTENT.md forbids. Quoted titles
code and parenthesized citations are left out: citing the same paper twice is not copying."""

import re
from collections.abc import Iterator

from app.content.corpus import Corpus
from app.content.markdown import plain_text
from app.content.problems import Problem

RUN_WORDS = 8
# A shared sentence shorter than a run still counts from this many words ("It is used.")
SENTENCE_MIN_WORDS = 5
SECTIONS = ("summary", "definition", "background", "usage_note")

_QUOTED = re.compile(r'"[^"\n]*"|“[^”\n]*”|`[^`\n]*`')
# "(Wei et al., 2022)": a citation is a pointer, not prose
_CITATION = re.compile(r"\([^()]*\b(?:1[6-9]|20)\d\d[a-z]?\)")
_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|\n\s*\n")


def _words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def _passages(corpus: Corpus, slug: str) -> Iterator[tuple[str, str]]:
    term = corpus.terms[slug]
    for section in SECTIONS:
        yield section, getattr(term, section)
    for index, org in enumerate(term.organizations):
        yield f"organizations[{index}].note", org.note


def overlap_problems(corpus: Corpus) -> list[Problem]:
    """One problem per pair of entries (and section) that share a run or a sentence."""
    first_seen: dict[tuple[str, ...], tuple[str, str]] = {}
    found: dict[tuple[str, str, str, str], str] = {}
    for slug in sorted(corpus.terms):
        for section, markdown in _passages(corpus, slug):
            text = _QUOTED.sub(" | ", _CITATION.sub(" | ", markdown))
            text = plain_text([text])
            keys: list[tuple[str, ...]] = []
            for sentence in _SENTENCE_END.split(text):
                for chunk in sentence.split("|"):
                    words = _words(chunk)
                    if len(words) >= SENTENCE_MIN_WORDS:
                        keys.append(("sentence", *words))
                    keys += [
                        tuple(words[i : i + RUN_WORDS]) for i in range(len(words) - RUN_WORDS + 1)
                    ]
            for key in keys:
                owner = first_seen.setdefault(key, (slug, section))
                if owner[0] != slug:
                    pair = (owner[0], owner[1], slug, section)
                    shown = " ".join(key[1:] if key[0] == "sentence" else key)
                    found.setdefault(pair, shown)
    return [
        Problem(
            f"terms/{slug}.toml",
            section,
            f"shares {shown!r} with terms/{other}.toml ({other_section}); write it afresh",
        )
        for (other, other_section, slug, section), shown in sorted(found.items())
    ]
