"""One run as a standalone PyTorch script: GET /api/demo/script (no torch imported here).

The script is the server's own code for that experiment (script_bundle.bundle: the engine
and what it uses, flattened), a header that says what it shows, the parameters as an
editable dict, and a main that sets the CPU up as a worker does, runs the engine and prints
the variants as JSON: the same numbers as GET /api/demo for the same config. An experiment
on the language model trains that model first, as the server's worker does (script_lm.py).
"""

from __future__ import annotations

import array
import ast
import base64
import dataclasses
import functools
import importlib.metadata
import json
import lzma
import re
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

from app import urls
from app.demo.catalog import EXPERIMENTS
from app.demo.experiment import Experiment
from app.demo.lm.text import glossary_text
from app.demo.params import ExperimentParams, ParamValue, describe_all
from app.demo.script_bundle import BundleError, Symbol, bundle, read_module
from app.demo.script_lm import (
    TRAIN,
    ServerModel,
    describe,
    formulas_corpus,
    no_data_dir,
    spec_root,
    unreproducible,
)
from app.demo.script_parts import (
    GLOSSARY_TEXT,
    HEADER,
    LM_IMPORTS,
    LM_RUN,
    MAIN,
    MAIN_IMPORTS,
    RECORD,
    RECORD_IMPORTS,
    RUN,
)

MEDIA_TYPE = "text/x-python"
PLAIN_ORIGIN = re.compile(r"https?://[A-Za-z0-9.-]+(:[0-9]+)?/?")
THREADS = 1  # the workers' torch threads (worker_process.py, engines/common.configure_cpu)
CONFIGURE = ("app.demo.engines.common", "configure_cpu")
CONTEXT = ("app.demo.experiment", "RunContext")
TEXT = ("app.demo.lm.text", "glossary_text")
# the names the script itself defines (script_parts): no bundled name may take them
RESERVED = (
    "PARAMS",
    "THREADS",
    "SERVER_WEIGHTS",
    "Params",
    "EXPERIMENT",
    "main",
    "_Record",
    "_fields",
    "_is_float",
    "_floats",
    "_dump",
)


class NeedsModel(Exception):
    """The experiment runs on the server's language model, and a script cannot train that
    model as the server does (the message says why)."""


def filename(experiment: Experiment) -> str:
    return f"{experiment.name}.py"


def script_for(
    experiment: Experiment,
    params: ExperimentParams,
    base_url: str = "",
    model: ServerModel | None = None,
) -> str:
    """The script for one validated run (built once per config); its header links to the
    experiment's term page and its API result under base_url. `model`: the server's language
    model, for the experiments that need it (NeedsModel when a script cannot train it)."""
    if not experiment.needs_model:
        model = None
    elif (reason := unreproducible(model)) is not None:
        raise NeedsModel(f"The experiment {experiment.name} runs on the language model: {reason}.")
    if not PLAIN_ORIGIN.fullmatch(base_url):  # it comes from the Host header: code, maybe
        base_url = ""
    canonical = json.dumps(params.canonical(), sort_keys=True)
    return _script(experiment.name, canonical, base_url, model)


@functools.lru_cache(maxsize=32)  # a few recent configs (BPE's script is ~0.6 MB)
def _script(name: str, canonical: str, base_url: str, model: ServerModel | None) -> str:
    experiment = EXPERIMENTS[name]
    values = experiment.params.model_validate(json.loads(canonical)).canonical()
    imports, body = _code(name, None if model is None else model.size)
    head = [_header(experiment, values, base_url, model), "from __future__ import annotations", ""]
    params = ["", "", _params(values), f"THREADS = {THREADS}  # the server's workers use one"]
    if model is not None:
        params.append(f"SERVER_WEIGHTS = {model.weights_hash!r}  # None: not trained yet")
    return "\n".join([*head, *imports, *params, body])


@functools.cache
def _code(name: str, size: str | None) -> tuple[list[str], str]:
    """An experiment's imports, and its code below PARAMS (the same for every config);
    `size`: the language model's, for an experiment that trains it first."""
    experiment = EXPERIMENTS[name]
    module, _, function = experiment.engine.partition(":")
    variant_classes = {(type(v).__module__, type(v).__name__) for v in experiment.variants}
    roots: list[Symbol] = [(module, function), CONFIGURE, CONTEXT, *sorted(variant_classes)]
    roots.append(("app.demo.experiment", "ChartSpec"))
    methods, used = _methods(experiment.params)
    roots += used
    extra = RECORD_IMPORTS | MAIN_IMPORTS
    model = None if size is None else ServerModel(size, Path())
    if model is not None:
        roots += [TRAIN, spec_root(model), TEXT]
        extra |= LM_IMPORTS
    flat = bundle(roots, RESERVED, imports=extra, substitutes=SUBSTITUTES)
    if any(flat.names.get(symbol, symbol[1]) != symbol[1] for symbol in used):
        raise BundleError(f"{experiment.params.__name__}'s methods read a renamed name")
    parts: list[str] = []
    for source, doc, statements in flat.sections:
        path = source.replace(".", "/") + ".py"
        parts.append(f"\n\n# ---- {path}" + (f": {doc}" if doc else ""))
        if flat.uses_records and source == "app.demo.result":
            parts.append(RECORD)
        parts += [f"\n\n{text}" for text in statements]
    names = {"configure": CONFIGURE, "engine": (module, function), "context": CONTEXT}
    if model is not None:
        names |= {"train": TRAIN, "spec": spec_root(model), "text": TEXT}
    run = (RUN if model is None else LM_RUN).format(**{k: flat.names[v] for k, v in names.items()})
    parts.append(
        MAIN.format(
            run=run,
            name=experiment.name,
            title=experiment.title,
            family=experiment.family,
            variants="\n".join(f"        {_literal(v)}," for v in experiment.variants),
            charts="\n".join(f"        {_literal(c)}," for c in experiment.charts),
            params_class=experiment.params.__name__,
            class_vars="\n\n".join([_class_vars(experiment.params), *methods]),
        )
    )
    return flat.imports, "\n".join(parts)


@functools.cache
def _glossary_text() -> str:
    """glossary_text() with the glossary's text inside it (only BPE's script needs it)."""
    text = glossary_text()
    meta = [len(text.train), text.val_slugs, text.titles, text.categories, text.digest]
    ids = array.array("H", text.train + text.val)  # token ids fit in 16 bits
    if sys.byteorder == "big":
        ids.byteswap()  # little-endian in the file
    data = json.dumps(meta, separators=(",", ":")).encode() + b"\0" + ids.tobytes()
    packed = base64.b64encode(lzma.compress(data, preset=3)).decode()  # fast: ~0.2 s
    rows = "\n".join(f'        "{packed[i : i + 88]}"' for i in range(0, len(packed), 88))
    return GLOSSARY_TEXT.format(rows=rows)


# What the server reads from its files rather than computes: the script carries it.
SUBSTITUTES: dict[Symbol, Callable[[], str]] = {
    TEXT: _glossary_text,
    ("app.content.read", "read_corpus"): formulas_corpus,
    ("app.demo.lm.text", "DATA_DIR"): no_data_dir,
}


# ExperimentParams' own methods: the server's budget and validation, not what an engine asks
FRAMEWORK_METHODS = frozenset({"estimate_seconds", "budget_problem"})


def _methods(params: type[ExperimentParams]) -> tuple[list[str], list[Symbol]]:
    """The parameter model's own methods an engine may call (params.sweep()), as source for
    the script's Params, and the module's names they read (bundled with the engine)."""
    module = read_module(params.__module__)
    node = next(
        s.node
        for s in module.statements
        if isinstance(s.node, ast.ClassDef) and s.node.name == params.__name__
    )
    methods: list[str] = []
    used: set[str] = set()
    for item in node.body:
        if isinstance(item, ast.FunctionDef) and item.name not in FRAMEWORK_METHODS:
            first = min([item.lineno, *(d.lineno for d in item.decorator_list)])
            methods.append("\n".join(module.lines[first - 1 : item.end_lineno]))
            used |= {n.id for n in ast.walk(item) if isinstance(n, ast.Name)}
    defined = {name for s in module.statements for name in s.defines} | set(module.ours)
    return methods, [(module.name, name) for name in sorted(used & defined)]


def _class_vars(params: type[ExperimentParams]) -> str:
    """The parameter model's class-level settings (arch = "mlp", ...) that engines read."""
    rows = [
        f"    {name} = {getattr(params, name)!r}"
        for name in sorted(params.__class_vars__)
        if isinstance(getattr(params, name), (str, int, float, bool))
    ]
    return "\n".join(rows) or "    pass"


def _literal(spec: Any) -> str:
    """A variant or chart spec as the constructor call that rebuilds it."""
    fields = ", ".join(f"{f.name}={getattr(spec, f.name)!r}" for f in dataclasses.fields(spec))
    return f"{type(spec).__name__}({fields})"


def _params(values: dict[str, ParamValue]) -> str:
    rows = "".join(f"    {name!r}: {value!r},\n" for name, value in values.items())
    return f"PARAMS = {{\n{rows}}}"


def _header(
    experiment: Experiment,
    values: dict[str, ParamValue],
    base_url: str,
    model: ServerModel | None,
) -> str:
    def wrap(text: str, indent: str = "") -> str:
        return textwrap.fill(text, 92, initial_indent=indent, subsequent_indent=indent + "  ")

    params = []
    for spec in describe_all(experiment.params):
        if spec["kind"] == "choice":
            allowed = "one of " + ", ".join(map(str, spec["choices"]))
        elif spec["kind"] == "text":
            allowed = f"text, at most {spec['max_length']} characters"
        else:
            allowed = f"{spec['kind']} from {spec['min']} to {spec['max']}"
        line = f"- {spec['name']} = {values[spec['name']]!r} ({allowed}): {spec['help']}"
        params.append(wrap(line.rstrip(": "), ""))
    query: dict[str, str | int | None] = {"preset": experiment.name}
    query |= {k: str(v) for k, v in values.items()}
    fixed = ", ".join(f"{k} = {v}" for k, v in experiment.fixed.items()) or "nothing"
    fields = {
        "title": experiment.title,
        "url": urls.absolute(base_url, urls.term(experiment.terms[0]) if experiment.terms else "/"),
        "description": wrap(experiment.description),
        "citation": experiment.citation,
        "terms": ", ".join(experiment.terms),
        "claims": "\n".join(wrap(f"- {c.statement}") for c in experiment.claims),
        "params": "\n".join(params),
        "fixed": wrap(fixed),
        "preset": experiment.name,
        "torch": _torch_version(),
        "api": urls.absolute(base_url, urls.with_query(urls.demo_result(), query)),
        "model": "" if model is None else describe(model),
    }
    # inside a docstring: a backslash or a quote (a text parameter's, say) stays text
    return HEADER.format(
        **{k: v.replace("\\", "\\\\").replace('"', '\\"') for k, v in fields.items()}
    )


@functools.cache
def _torch_version() -> str:
    """The installed torch's version, read from its metadata (torch is never imported here)."""
    try:
        return importlib.metadata.version("torch")
    except importlib.metadata.PackageNotFoundError:  # pragma: no cover - a web-only install
        return "unknown"
