"""The glossary as a SKOS concept scheme (rdflib), for thesaurus and linked-data tools.

Each entry is a skos:Concept named by its page's absolute URL, with its title as prefLabel,
its synonyms as altLabels, its summary as definition, the usage note as scopeNote, the
background as historyNote, and skos:related for its related terms. Each category is a top
concept of the scheme, broader than its entries. The notes are plain text: SKOS notes are
literals, and a thesaurus tool shows them as they are.

Built per request; the response cache (app/middleware/caching.py) keeps the serialized
answer until the content is reloaded, so it is built once per content version and host.
"""

import json
from datetime import datetime
from html.parser import HTMLParser
from typing import Any

from rdflib import RDF, SKOS, XSD, Graph, Literal, URIRef
from rdflib.namespace import DCTERMS
from sqlmodel import Session, col, select

from app import urls
from app.glossary.jsonld import SITE_DESCRIPTION, SITE_NAME
from app.glossary.status import loaded_at
from app.models import Category, RelatedTerm, Synonym, Term

LANGUAGE = "en"
# The JSON-LD document's context: short property names instead of full IRIs.
JSONLD_CONTEXT = {
    "skos": str(SKOS),
    "dcterms": str(DCTERMS),
    "xsd": str(XSD),
}
# Elements after which the plain text starts a new paragraph.
_BLOCKS = {"p", "li", "ul", "ol", "blockquote", "pre", "h1", "h2", "h3", "h4", "h5", "h6"}


class _TextOf(HTMLParser):
    """The text of rendered entry HTML (entities decoded), paragraphs on their own lines."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []

    def handle_data(self, data: str) -> None:
        self.parts.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag in _BLOCKS:
            self.parts.append("\n\n")


def plain_text(html: str) -> str:
    """Rendered entry HTML as plain text: the words a reader sees, links as their text."""
    parser = _TextOf()
    parser.feed(html)
    parser.close()
    paragraphs = ("".join(parser.parts)).split("\n\n")
    return "\n\n".join(" ".join(p.split()) for p in paragraphs if p.strip())


def _text(value: str) -> Literal:
    return Literal(value, lang=LANGUAGE)


def build_skos(session: Session, base_url: str) -> Graph:
    """Every category and entry as one skos:ConceptScheme (URIs: the absolute page URLs)."""
    graph = Graph()
    graph.bind("skos", SKOS)
    graph.bind("dcterms", DCTERMS)
    scheme = URIRef(urls.absolute(base_url, urls.terms()))
    graph.add((scheme, RDF.type, SKOS.ConceptScheme))
    graph.add((scheme, DCTERMS.title, _text(SITE_NAME)))
    graph.add((scheme, DCTERMS.description, _text(SITE_DESCRIPTION)))
    loaded = loaded_at(session)
    if loaded is not None:
        graph.add((scheme, DCTERMS.modified, Literal(datetime.fromisoformat(loaded))))

    def concept(path: str) -> URIRef:
        return URIRef(urls.absolute(base_url, path))

    for category in session.exec(select(Category).order_by(col(Category.position))).all():
        node = concept(urls.category(category.slug))
        graph.add((node, RDF.type, SKOS.Concept))
        graph.add((node, SKOS.inScheme, scheme))
        graph.add((node, SKOS.topConceptOf, scheme))
        graph.add((scheme, SKOS.hasTopConcept, node))
        graph.add((node, SKOS.prefLabel, _text(category.title)))
        graph.add((node, SKOS.definition, _text(category.description)))

    for term in session.exec(select(Term)).all():
        node = concept(urls.term(term.slug))
        broader = concept(urls.category(term.category_slug))
        graph.add((node, RDF.type, SKOS.Concept))
        graph.add((node, SKOS.inScheme, scheme))
        graph.add((node, SKOS.prefLabel, _text(term.title)))
        graph.add((node, SKOS.definition, _text(term.summary)))
        if term.usage_note.strip():
            graph.add((node, SKOS.scopeNote, _text(plain_text(term.usage_note_html))))
        if term.background.strip():
            graph.add((node, SKOS.historyNote, _text(plain_text(term.background_html))))
        graph.add((node, SKOS.broader, broader))
        graph.add((broader, SKOS.narrower, node))

    for synonym in session.exec(select(Synonym)).all():
        graph.add((concept(urls.term(synonym.term_slug)), SKOS.altLabel, _text(synonym.name)))
    for link in session.exec(select(RelatedTerm)).all():
        graph.add(
            (
                concept(urls.term(link.term_slug)),
                SKOS.related,
                concept(urls.term(link.related_slug)),
            )
        )
    return graph


def skos_turtle(session: Session, base_url: str) -> str:
    return build_skos(session, base_url).serialize(format="turtle")


def skos_jsonld(session: Session, base_url: str) -> str:
    document = json.loads(
        build_skos(session, base_url).serialize(format="json-ld", context=JSONLD_CONTEXT)
    )
    return json.dumps(_in_one_order(document), ensure_ascii=False, separators=(",", ":"))


def _in_one_order(node: Any) -> Any:
    """The document with its arrays sorted. rdflib lists nodes and values in hash order, which
    changes from process to process; these arrays are unordered sets (no @list), so one fixed
    order keeps the bytes, and the ETag, the same for the same content."""
    if isinstance(node, dict):
        return {key: _in_one_order(value) for key, value in sorted(node.items())}
    if isinstance(node, list):
        items = [_in_one_order(value) for value in node]
        return sorted(items, key=lambda value: json.dumps(value, sort_keys=True))
    return node
