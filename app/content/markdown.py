"""Markdown for entry text: CommonMark with raw HTML off and [[slug]] / [[slug|text]] links."""

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from markdown_it import MarkdownIt
from markdown_it.rules_inline import StateInline

from app import urls

WIKILINK = re.compile(r"\[\[([a-z0-9-]+)(?:\|([^\]\n|]+))?\]\]")

SlugLookup = Callable[[str], str | None]
"""Maps a linked slug to the linked term's title, or None when no such term exists."""


def _wikilink_rule(state: StateInline, silent: bool) -> bool:
    match = WIKILINK.match(state.src, state.pos)
    if match is None:
        return False
    if not silent:
        slug, text = match.group(1), match.group(2)
        title = state.env["lookup"](slug)
        state.env["links"].append(slug)
        if title is None:
            state.env["unknown"].append(slug)
        open_token = state.push("link_open", "a", 1)
        open_token.attrs = {"href": urls.term(slug), "class": "term-link"}
        label = state.push("text", "", 0)
        label.content = (text or title or slug).strip()
        state.push("link_close", "a", -1)
    state.pos = match.end()
    return True


def _renderer() -> MarkdownIt:
    md = MarkdownIt("commonmark", {"html": False, "typographer": True})
    md.enable(["replacements", "smartquotes"])
    md.inline.ruler.before("link", "wikilink", _wikilink_rule)
    return md


_RENDERER = _renderer()
_HTML_DETECTOR = MarkdownIt("commonmark", {"html": True})


@dataclass(frozen=True)
class RenderedMarkdown:
    """HTML plus the slugs the text links to, and which of them are unknown."""

    html: str
    links: list[str]
    unknown: list[str]


def render(text: str, lookup: SlugLookup, *, inline: bool = False) -> RenderedMarkdown:
    """Render entry Markdown; raw HTML is escaped, [[slug]] links resolved through lookup.
    inline: one paragraph's worth without the <p> wrapper (organization notes)."""
    links: list[str] = []
    unknown: list[str] = []
    env = {"lookup": lookup, "links": links, "unknown": unknown}
    html = _RENDERER.renderInline(text, env) if inline else _RENDERER.render(text, env)
    return RenderedMarkdown(str(html), links, unknown)


def raw_html_fragments(text: str) -> list[str]:
    """The raw HTML a CommonMark parser with HTML on would pass through (none is allowed)."""
    found: list[str] = []
    for token in _HTML_DETECTOR.parse(text):
        if token.type == "html_block":
            found.append(token.content.strip())
        for child in token.children or []:
            if child.type == "html_inline":
                found.append(child.content)
    return found


def word_count(text: str) -> int:
    """Words as a reader counts them: whitespace-separated, link syntax not counted twice."""
    return len(WIKILINK.sub(lambda m: m.group(2) or m.group(1), text).split())


def plain_text(fragments: Iterable[str]) -> str:
    """Markdown sources joined as plain text, for search indexing and descriptions."""
    joined = " ".join(fragments)
    joined = WIKILINK.sub(lambda m: m.group(2) or m.group(1).replace("-", " "), joined)
    return re.sub(r"[`*_#>\[\]()]", " ", joined)
