"""Experiment cards other sites frame (/embed/demo/{preset}) and their oEmbed answers.

A card is one experiment's panel with its settings taken from the query, some controls
locked (`lock=all` or `lock=depth,width`, as course authors fix what their readers may
change) and a credit to the term page it belongs to. The page and oEmbed share
`build_card`, so an oEmbed answer only ever frames a card that renders.
"""

from collections.abc import Mapping
from typing import Literal
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit

from markupsafe import escape
from pydantic import BaseModel, Field
from sqlmodel import Session, col, select

from app import urls
from app.demo.catalog import EXPERIMENTS, resolve
from app.demo.errors import DemoInputError
from app.demo.experiment import Experiment
from app.demo.params import describe_all
from app.glossary.jsonld import SITE_NAME
from app.glossary.shared import NotFound
from app.glossary.terms import canonical_slug, experiment_ref
from app.models import Term
from app.views import ExperimentRef, TermView

LOCK = "lock"  # the query parameter naming the locked controls
LOCK_ALL = "all"
CARD_WIDTH, CARD_HEIGHT = 640, 480  # the iframe's size when the consumer sets no maximum
CACHE_AGE_S = 86_400  # a card's markup changes only with the content


class CardSetting(BaseModel):
    name: str
    value: str
    locked: bool


class Credit(BaseModel):
    """The term page a card links back to (the home page when no entry names it)."""

    title: str
    url: str


class EmbedView(BaseModel):
    """What /embed/demo/{preset} renders: the panel, its starting settings and locks."""

    experiment: ExperimentRef
    settings: list[CardSetting] = Field(description="Every parameter's starting value")
    query: str = Field(description="The values that differ from the defaults, as a query")
    locked: list[str] = Field(description="Parameters the reader may not change")
    credit: Credit
    url: str = Field(description="The card's canonical path")


class OEmbed(BaseModel):
    """An oEmbed 1.0 answer of type rich: an <iframe> of the experiment card."""

    version: Literal["1.0"] = "1.0"
    type: Literal["rich"] = "rich"
    provider_name: str = SITE_NAME
    provider_url: str
    title: str
    html: str = Field(description="An <iframe> of the card, its attributes escaped")
    width: int
    height: int
    cache_age: int = CACHE_AGE_S


def own_experiment(slug: str, preset: str | None) -> Experiment | None:
    """The experiment a term's page opens on when it illustrates that term (content checks
    guarantee it for every entry's `demo`); None for a page that only shows the default."""
    experiment = EXPERIMENTS.get(preset or "")
    return experiment if experiment is not None and slug in experiment.terms else None


def parse_lock(experiment: Experiment, lock: str | None) -> list[str]:
    """The parameters `lock` names, in display order; DemoInputError for an unknown name."""
    names = [p["name"] for p in describe_all(experiment.params)]
    asked = [part.strip() for part in (lock or "").split(",") if part.strip()]
    if LOCK_ALL in asked:
        return names
    unknown = [name for name in asked if name not in names]
    if unknown:
        raise DemoInputError(
            LOCK,
            f"lock names {', '.join(unknown)}, which experiment {experiment.name!r} does not "
            f"have; use 'all' or some of: {', '.join(names)}",
        )
    return [name for name in names if name in asked]


def build_card(session: Session, preset: str, query: Mapping[str, str]) -> EmbedView:
    """The card for `preset` with the query's parameters (validated as /api/demo does) and
    locks: NotFound for an unknown experiment, DemoInputError for a bad value."""
    if preset not in EXPERIMENTS:
        raise NotFound(f"No experiment {preset!r}; GET {urls.demo_catalog()} lists them.")
    raw = {name: value for name, value in query.items() if name != LOCK}
    experiment, params = resolve(preset, raw)
    locked = parse_lock(experiment, query.get(LOCK))
    values = params.canonical()
    defaults = experiment.params().canonical()
    changed = {name: str(value) for name, value in values.items() if value != defaults[name]}
    settings = [
        CardSetting(name=p["name"], value=str(values[p["name"]]), locked=p["name"] in locked)
        for p in describe_all(experiment.params)
    ]
    lock = LOCK_ALL if len(locked) == len(settings) else ",".join(locked) or None
    return EmbedView(
        experiment=experiment_ref(experiment),
        settings=settings,
        query=urlencode(changed),
        locked=locked,
        credit=credit(session, experiment),
        url=urls.embed_demo(preset, {**changed, LOCK: lock}),
    )


def credit(session: Session, experiment: Experiment) -> Credit:
    """The entry whose page opens on this experiment, else the first entry it illustrates."""
    terms = session.exec(select(Term).where(col(Term.slug).in_(experiment.terms))).all()
    ranked = sorted(
        terms,
        key=lambda t: (t.demo_preset != experiment.name, experiment.terms.index(t.slug)),
    )
    if not ranked:  # a corpus without its entries (the small test corpora)
        return Credit(title=SITE_NAME, url=urls.home())
    return Credit(title=ranked[0].title, url=urls.term(ranked[0].slug))


def card_for_url(session: Session, base_url: str, url: str) -> EmbedView:
    """The card an absolute URL of ours stands for: a card's own URL, or a term page that
    has an experiment (with the parameters of its permalink). NotFound for anything else."""
    try:
        parts = urlsplit(url)
    except ValueError as error:  # a malformed host, e.g. an unclosed IPv6 bracket
        raise NotFound(f"{url} is not a URL of this site.") from error
    ours = urlsplit(base_url)
    if parts.netloc.lower() != ours.netloc.lower():
        raise NotFound(f"{url} is not a page of this site ({ours.netloc}).")
    query = dict(parse_qsl(parts.query))
    segments = parts.path.split("/")
    if len(segments) == 4 and segments[:3] == ["", "embed", "demo"]:
        return build_card(session, unquote(segments[3]), query)
    if len(segments) == 3 and segments[1] == "terms" and segments[2]:
        slug = canonical_slug(session, unquote(segments[2]))
        term = session.get(Term, slug)
        experiment = own_experiment(slug, term.demo_preset if term else None)
        if experiment is None:
            raise NotFound(f"The entry {slug!r} has no experiment of its own to embed.")
        # a term page's permalink names another experiment with demo=, as the panel does
        return build_card(session, query.pop("demo", experiment.name), query)
    raise NotFound(f"Nothing at {parts.path} can be embedded: give a term page or a card.")


def build_oembed(
    session: Session, base_url: str, url: str, maxwidth: int | None, maxheight: int | None
) -> OEmbed:
    """The oEmbed answer for `url`: its card in an iframe no larger than the maxima."""
    card = card_for_url(session, base_url, url)
    width = min(CARD_WIDTH, maxwidth or CARD_WIDTH)
    height = min(CARD_HEIGHT, maxheight or CARD_HEIGHT)
    title = f"{card.experiment.title} · {SITE_NAME}"
    html = (
        f'<iframe src="{escape(urls.absolute(base_url, card.url))}" width="{width}" '
        f'height="{height}" title="{escape(title)}" loading="lazy"></iframe>'
    )
    return OEmbed(
        provider_url=urls.absolute(base_url, urls.home()),
        title=title,
        html=html,
        width=width,
        height=height,
    )


def oembed_discovery(view: TermView) -> str | None:
    """The absolute oEmbed URL a term page links to in its head, or None when the page has
    no experiment of its own (a Jinja global for term.html)."""
    if own_experiment(view.slug, view.demo_preset) is None:
        return None
    page = str(view.json_ld["url"])  # the page's absolute URL
    origin = urlsplit(page)
    return urls.absolute(f"{origin.scheme}://{origin.netloc}", urls.oembed(page))
