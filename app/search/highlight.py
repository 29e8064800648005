"""Highlighting: the words a query matched, found in display text the way the index folds it,
wrapped in <mark> with everything else HTML-escaped."""

import re
from collections.abc import Iterator, Sequence

from markupsafe import Markup, escape

from app.search.model import SNIPPET_CHARS, Term
from app.text import fold


class Highlighter:
    """Finds the words a query matched in display text, folded the way the index folds it.

    One regular expression does the work in C: a run of letters and digits matches when it
    starts with a prefix term or equals a whole-word term, ignoring case; runs holding
    non-ASCII letters ("naïve") are folded and checked in Python.
    """

    def __init__(self, terms: Sequence[Term]) -> None:
        self.terms = tuple(terms)
        prefixes = {t.word for t in terms if t.prefix}
        prefixes |= {a.token for t in terms for a in t.alternatives if a.prefix}
        words = {t.word for t in terms if not t.prefix}
        words |= {a.token for t in terms for a in t.alternatives if not a.prefix}
        options = []
        if prefixes:
            options.append(f"(?:{'|'.join(sorted(prefixes))})[^\\W_]*")
        if words:
            options.append(f"(?:{'|'.join(sorted(words))})(?![^\\W_])")
        hit = f"(?P<hit>{'|'.join(options)})|" if options else ""
        self.pattern = re.compile(
            f"(?<![^\\W_])(?:{hit}(?P<wide>[^\\W_]*[^\\W\\x00-\\x7f][^\\W_]*))",
            re.IGNORECASE,
        )
        self.known: dict[str, bool] = {}

    def matches(self, token: str) -> bool:
        """Whether a folded token is one of the query's words (or starts with a prefix)."""
        found = self.known.get(token)
        if found is None:
            found = self.known[token] = any(term.matches(token) for term in self.terms)
        return found

    def hits(self, text: str) -> Iterator[re.Match[str]]:
        for match in self.pattern.finditer(text):
            if match.group("wide") is None or any(
                self.matches(token) for token in fold(match.group()).split()
            ):
                yield match


def highlight(text: str, highlighter: Highlighter) -> Markup:
    """The text HTML-escaped, with every matching word in <mark>."""
    parts: list[Markup] = []
    last = 0
    for match in highlighter.hits(text):
        parts.append(escape(text[last : match.start()]))
        parts.append(Markup("<mark>%s</mark>") % match.group())
        last = match.end()
    parts.append(escape(text[last:]))
    return Markup("").join(parts)


def excerpt(text: str, highlighter: Highlighter, width: int = SNIPPET_CHARS) -> Markup:
    """A highlighted passage of about `width` characters around the first match."""
    first = next(highlighter.hits(text), None)
    start = 0
    if first is not None:
        start = max(0, first.start() - width // 3)
        space = text.rfind(" ", 0, start)
        start = 0 if space < 0 else space + 1
    end = min(len(text), start + width)
    if end < len(text):
        space = text.rfind(" ", start, end)
        end = space if space > start else end
    body = highlight(text[start:end].strip(), highlighter)
    return Markup("").join(
        [
            Markup("… ") if start > 0 else Markup(""),
            body,
            Markup(" …") if end < len(text) else Markup(""),
        ]
    )
