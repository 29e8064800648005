"""Print the README's table of experiments from the catalog (one row each: family, name,
terms, the main claim with its bound and citation, the counterfactual).

    .venv/bin/python scripts/experiments_table.py
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.demo.catalog import EXPERIMENTS  # noqa: E402


def main() -> None:
    print("| family | experiment | terms | main claim (checked in every run) | counterfactual |")
    print("|---|---|---|---|---|")
    for e in EXPERIMENTS.values():
        claim = e.claims[0]
        cite = claim.citation or e.citation
        terms = ", ".join(e.terms)
        counter = ", ".join(f"{k}={v}" for k, v in e.counterfactual.items())
        cells = [e.family, f"`{e.name}`", terms, f"{claim.statement} ({claim.expected}; {cite})"]
        print("| " + " | ".join(_cell(c) for c in [*cells, counter]) + " |")


def _cell(text: str) -> str:
    """A table cell: a pipe in the text (as in <|end|>) must not end the cell."""
    return text.replace("|", "\\|")


if __name__ == "__main__":
    main()
