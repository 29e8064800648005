"""What a script of a language-model experiment adds (no torch here): the model, trained in
the script as the server's worker trains it.

The weights are not in the web process, but everything they come from is: the glossary's
text (carried in the script, as script.py already carries it for byte-pair encoding), the
model's and the training's code (bundled like any engine) and the spec the server trains
(Settings.lm_size). Training is deterministic on the CPU for one torch version (one thread,
a fixed seed), so the script's weights are the server's, bit for bit; the script prints
their hash beside the one the server reported, so a reader sees that they are.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

from app.content import read_corpus
from app.demo.lm.text import DATA_DIR, glossary_text, read_text

CONFIG_MODULE = "app.demo.lm.config"
TRAIN = ("app.demo.lm.training", "train")
SPEC_NAMES = {"full": "FULL", "tiny": "TINY"}  # Settings.lm_size -> its LMSpec in config.py


@dataclass(frozen=True)
class ServerModel:
    """The server's language model, as the web process knows it (its settings, what its
    workers report)."""

    size: str  # Settings.lm_size: which spec the workers train
    data_dir: Path  # the entries the workers train on
    weights_hash: str | None = None  # once a worker reports the model ready


def spec_root(model: ServerModel) -> tuple[str, str]:
    return (CONFIG_MODULE, SPEC_NAMES[model.size])


def unreproducible(model: ServerModel | None) -> str | None:
    """Why a script cannot train the server's model (None: it can)."""
    if model is None:
        return "this server runs no language model"
    if model.size not in SPEC_NAMES:  # pragma: no cover - Settings allows only these
        return f"the server's language model size {model.size!r} is unknown here"
    if _text_digest(model.data_dir.resolve()) != glossary_text().digest:
        return (
            "the server's language model learns the entries under its data folder, which differ "
            "from the glossary the experiments read: a script carries only the latter"
        )
    return None


@functools.cache
def _text_digest(data_dir: Path) -> str:
    """The digest of the text the workers train on (lm/service.py reads it the same way)."""
    if data_dir == DATA_DIR.resolve():
        return glossary_text().digest
    return read_text(data_dir).digest


# The entries' formulas, as adaptation_lora.formula_text reads them from read_corpus: the
# script carries the title and formula of every entry that has one, in read_corpus's place.
CORPUS = '''def read_corpus(data_dir: object) -> object:
    """The glossary's entries that have a formula (slug, title, formula), carried in this
    file instead of read from the server's data folder."""
    from types import SimpleNamespace

    rows = [
{rows}
    ]
    terms = {{slug: SimpleNamespace(title=title, formula=formula) for slug, title, formula in rows}}
    return SimpleNamespace(terms=terms)'''
NO_DATA_DIR = "DATA_DIR = None  # the entries are carried in this file (read_corpus), not read"


@functools.cache
def formulas_corpus() -> str:
    terms = read_corpus(DATA_DIR).terms
    rows = [(slug, terms[slug].title, terms[slug].formula) for slug in sorted(terms)]
    return CORPUS.format(rows="\n".join(f"        {row!r}," for row in rows if row[2]))


def no_data_dir() -> str:
    return NO_DATA_DIR


def describe(model: ServerModel) -> str:
    """The header's paragraph about the model."""
    known = (
        f"the server's weights have the hash {model.weights_hash}"
        if model.weights_hash
        else "the server had not finished training its own when this script was made"
    )
    return (
        f"\nThe experiment runs on the glossary's language model ({model.size} size). Its "
        "weights are not\nin this file: main() first trains the model as the server's worker "
        "does (the glossary's text,\ncarried below; the same code, seed and single CPU "
        f"thread), and prints the weights' hash:\n{known} (SERVER_WEIGHTS).\n"
    )
