"""The real corpus under data/: it validates, and it has the breadth the glossary promises."""

from collections import Counter
from pathlib import Path

from app.content import read_corpus

DATA = Path(__file__).resolve().parents[2] / "data"


def test_corpus_passes_and_has_the_promised_breadth() -> None:
    corpus = read_corpus(DATA)  # raises ContentError listing every problem
    assert len(corpus.terms) >= 80
    per_category = Counter(term.category for term in corpus.terms.values())
    assert per_category["model-architecture"] >= 20
    assert per_category["training-optimization"] >= 15
    assert per_category["prompting"] >= 15
    for category in ("inference-deployment", "data-tokenization", "evaluation-safety"):
        assert per_category[category] >= 5, category
    assert len(corpus.organizations) >= 12
    illustrated = [t for t in corpus.terms.values() if t.illustration]
    assert len(illustrated) >= 15


def test_abbreviations_people_type_are_synonyms() -> None:
    corpus = read_corpus(DATA)
    synonyms = {s.lower(): slug for slug, t in corpus.terms.items() for s in t.synonyms}
    expected = {
        "ln": "layer-normalization",
        "bn": "batch-normalization",
        "moe": "mixture-of-experts",
        "rag": "retrieval-augmented-generation",
        "cot": "chain-of-thought-prompting",
        "sgd": "stochastic-gradient-descent",
        "skip connection": "residual-connection",
    }
    for abbreviation, slug in expected.items():
        assert synonyms.get(abbreviation) == slug, abbreviation


def test_every_organization_is_used_with_specific_notes() -> None:
    corpus = read_corpus(DATA)
    used = Counter(org.key for t in corpus.terms.values() for org in t.organizations)
    assert set(used) == set(corpus.organizations), set(corpus.organizations) - set(used)
    notes = [org.note for t in corpus.terms.values() for org in t.organizations]
    assert len(notes) == len(set(notes)), "an organization note is copied between entries"


def test_most_architecture_and_training_terms_open_on_their_own_experiment() -> None:
    """Issue 11: at least 30 of these entries name an experiment whose terms include them
    (not residual-vs-plain, except the entry it is about), and every term an experiment
    names exists."""
    from app.demo.catalog import DEFAULT_EXPERIMENT, EXPERIMENTS, unknown_terms

    corpus = read_corpus(DATA)
    assert unknown_terms(set(corpus.terms)) == []
    core = {
        slug: term
        for slug, term in corpus.terms.items()
        if term.category in ("model-architecture", "training-optimization")
    }
    assert len(core) >= 40
    own = [
        slug
        for slug, term in core.items()
        if term.demo is not None
        and slug in EXPERIMENTS[term.demo].terms
        and (term.demo != DEFAULT_EXPERIMENT or slug == "residual-connection")
    ]
    assert len(own) >= 30, sorted(set(core) - set(own))
