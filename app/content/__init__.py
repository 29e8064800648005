"""The content under data/, the source of truth, into the database.

    read_corpus(data_dir)       files.py     each file against its schema
                                render.py    Markdown and formulas, rendered once
                                checks.py    what spans files (references, names, bounds)
                                -> a valid Corpus, or ContentError listing every Problem
    load_corpus(engine, corpus) load.py      the database content replaced in ONE transaction
    ensure_loaded(...)          load.py      at start-up: load when data/ changed (version.py)

A bad file loads nothing, and each problem names its file, field and reason.
"""

from app.content.corpus import Corpus
from app.content.load import ensure_loaded, load_corpus
from app.content.problems import ContentError, Problem, describe
from app.content.read import read_corpus

__all__ = [
    "ContentError",
    "Corpus",
    "Problem",
    "describe",
    "ensure_loaded",
    "load_corpus",
    "read_corpus",
]
