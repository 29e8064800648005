"""Build small, valid content folders for tests; each test breaks them in its own way."""

import tomllib
from pathlib import Path
from typing import Any

CATEGORIES = """
[model-architecture]
title = "Model architecture"
description = "Building blocks of networks."

[training-optimization]
title = "Training and optimization"
description = "How networks learn."
"""

ORGANIZATIONS = """
[microsoft-research]
name = "Microsoft Research"
url = "https://www.microsoft.com/en-us/research/"
description = "Microsoft's research arm."

[anthropic]
name = "Anthropic"
url = "https://www.anthropic.com/"
description = "Builds the Claude models."
"""


def words(n: int, word: str = "word") -> str:
    return " ".join([word] * n)


def term(title: str, related: list[str], **overrides: Any) -> dict[str, Any]:
    """A valid term entry (as a dict) with section lengths inside the bounds."""
    entry: dict[str, Any] = {
        "title": title,
        "category": "model-architecture",
        "summary": f"{title} is a thing that tests use often.",
        "definition": f"{title} means " + words(70),
        "background": f"The history of {title}: " + words(90),
        "usage_note": f"People say {title} when " + words(35),
        "synonyms": [],
        "related": related,
    }
    entry.update(overrides)
    return entry


def _toml_value(value: Any) -> str:
    if isinstance(value, str):
        escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
        return f'"{escaped}"'
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f'"{k}" = {_toml_value(v)}' for k, v in value.items()) + " }"
    raise TypeError(type(value))


def to_toml(entry: dict[str, Any]) -> str:
    lines = []
    tables = entry.pop("organizations", [])
    for key, value in entry.items():
        lines.append(f"{key} = {_toml_value(value)}")
    for table in tables:
        lines.append("\n[[organizations]]")
        lines += [f"{k} = {_toml_value(v)}" for k, v in table.items()]
    text = "\n".join(lines) + "\n"
    tomllib.loads(text)  # the factory itself must write valid TOML
    return text


def default_terms() -> dict[str, dict[str, Any]]:
    return {
        "residual-connection": term(
            "Residual Connection",
            ["resnet", "vanishing-gradient", "layer-normalization"],
            synonyms=["Skip connection", "Residual block"],
            definition="A residual connection adds the input back, as in [[resnet]]. " + words(70),
            formula="y = \\mathcal{F}(x) + x",
            demo="residual-vs-plain",
            read_more=[
                {
                    "title": "Residual neural network - Wikipedia",
                    "url": "https://en.wikipedia.org/wiki/Residual_neural_network",
                }
            ],
            organizations=[{"key": "microsoft-research", "note": "Created ResNet in 2015."}],
        ),
        "resnet": term(
            "ResNet", ["residual-connection", "vanishing-gradient", "layer-normalization"]
        ),
        "vanishing-gradient": term(
            "Vanishing Gradient",
            ["residual-connection", "resnet", "layer-normalization"],
            category="training-optimization",
            demo="vanishing-gradient",
        ),
        "layer-normalization": term(
            "Layer Normalization",
            ["residual-connection", "resnet", "vanishing-gradient"],
            synonyms=["LayerNorm", "LN"],
        ),
    }


def write_corpus(
    root: Path,
    terms: dict[str, dict[str, Any]] | None = None,
    *,
    categories: str = CATEGORIES,
    organizations: str = ORGANIZATIONS,
) -> Path:
    """Write a content folder at root (data/ layout) and return it."""
    (root / "terms").mkdir(parents=True, exist_ok=True)
    (root / "illustrations").mkdir(exist_ok=True)
    (root / "categories.toml").write_text(categories)
    (root / "organizations.toml").write_text(organizations)
    for slug, entry in (default_terms() if terms is None else terms).items():
        (root / "terms" / f"{slug}.toml").write_text(to_toml(dict(entry)))
    return root
