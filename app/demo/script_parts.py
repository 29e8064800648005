"""The fixed text of a downloaded experiment script: its header, the record stand-in for the
server's pydantic models, and its main (app/demo/script.py fills them in)."""

HEADER = '''"""{title}: a standalone PyTorch script from Glossary Lab, {url}

{description}

Source: {citation}. Terms: {terms}.
What the run checks (the server reports whether each held; this script prints the numbers):
{claims}

Parameters (PARAMS below; edit them within these bounds, the server refuses other values):
{params}
Held fixed: {fixed}

Run it with `python {preset}.py` (torch {torch}; any recent torch runs it, but the numbers
match the server's exactly only on that version). It prints the run's variants as JSON, the
`variants` of GET {api}, with the same data, initialization, seed and numbers on the CPU.
Below PARAMS, the code is the server's own: the modules the experiment runs, flattened into
this file in import order (each section names the file it comes from).
{model}"""'''

RECORD = '''

class _Record:
    """Stands in for the server's pydantic result models: keyword fields with defaults, and
    model_dump() as the API gives it (a field typed float or Number holds floats)."""

    def __init__(self, **values: Any) -> None:
        for name, kind in _fields(type(self)).items():
            if name in values:
                value = values.pop(name)
                self.__dict__[name] = _floats(value) if _is_float(kind) else value
            elif name in type(self).__dict__:
                self.__dict__[name] = copy.deepcopy(type(self).__dict__[name])
            else:
                raise TypeError(f"{type(self).__name__}: {name} is required")
        if values:
            raise TypeError(f"{type(self).__name__}: unknown fields {sorted(values)}")

    def model_dump(self) -> dict[str, Any]:
        return {name: _dump(getattr(self, name)) for name in _fields(type(self))}


def _fields(cls: type) -> dict[str, str]:
    return inspect.get_annotations(cls)  # strings: this file postpones annotations


def _is_float(kind: str) -> bool:
    return "float" in kind or "Number" in kind


def _floats(value: Any) -> Any:
    if isinstance(value, (bool, int)):
        return float(value)
    if isinstance(value, (list, tuple)):
        return [_floats(v) for v in value]
    if isinstance(value, dict):
        return {k: _floats(v) for k, v in value.items()}
    return value


def _dump(value: Any) -> Any:
    if isinstance(value, _Record):
        return value.model_dump()
    if isinstance(value, (list, tuple)):
        return [_dump(v) for v in value]
    if isinstance(value, dict):
        return {k: _dump(v) for k, v in value.items()}
    return value
'''
RECORD_IMPORTS = {
    "copy": "copy",
    "inspect": "inspect",
    "typing.Any": "Any",
}  # dotted name -> its name here

MAIN = '''

# ---- the run: the server's worker set-up, the engine, the variants as JSON
class Params(SimpleNamespace):
    """The run's parameters: PARAMS, and what {params_class} sets for every run of it."""

{class_vars}


EXPERIMENT = SimpleNamespace(
    name={name!r},
    title={title!r},
    family={family!r},
    variants=(
{variants}
    ),
    charts=(
{charts}
    ),
)


{run}


if __name__ == "__main__":
    main()
'''
RUN = """def main() -> None:
    {configure}(THREADS)  # as the server's worker: one torch thread, denormals flushed
    output = {engine}(EXPERIMENT, Params(**PARAMS), {context}("cpu"))
    print(output.summary, file=sys.stderr)
    print(json.dumps([variant.model_dump() for variant in output.variants], indent=1))"""
MAIN_IMPORTS = {"json": "json", "sys": "sys", "types.SimpleNamespace": "SimpleNamespace"}

# main() of an experiment on the language model: the model first, trained as the worker
# trains it (lm/service.py: one torch thread, no denormal flush in its training thread).
LM_RUN = """def main() -> None:
    torch.set_num_threads(THREADS)  # as the server's worker, before it trains the model
    model = {train}({spec}, {text}())
    print(f"language model {{model.spec.name}}: weights {{model.weights_hash}}", file=sys.stderr)
    if SERVER_WEIGHTS is not None and model.weights_hash != SERVER_WEIGHTS:
        print(f"the server's are {{SERVER_WEIGHTS}}: its numbers will differ", file=sys.stderr)
    {configure}(THREADS)  # as the worker runs an experiment: denormals flushed
    output = {engine}(EXPERIMENT, Params(**PARAMS), {context}("cpu", lm=model))
    print(output.summary, file=sys.stderr)
    print(json.dumps([variant.model_dump() for variant in output.variants], indent=1))"""
LM_IMPORTS = {"torch": "torch"}

# The glossary's entries as the language model reads them (app/demo/lm/text.py), packed: JSON
# [train length, validation slugs, titles, categories, digest], a NUL, then every token id
# (train then validation) as 16-bit little-endian; xz, base64.
GLOSSARY_TEXT = '''@functools.cache
def glossary_text() -> LMText:
    """The glossary's text as the server reads it from its entries, carried in this file."""
    import array
    import base64
    import json
    import lzma
    import sys

    packed = (
{rows}
    )
    meta, _, raw = lzma.decompress(base64.b64decode(packed)).partition(b"\\0")
    n_train, slugs, titles, categories, digest = json.loads(meta)
    ids = array.array("H")
    ids.frombytes(raw)
    if sys.byteorder == "big":
        ids.byteswap()
    tokens = ids.tolist()
    return LMText(
        tokens[:n_train], tokens[n_train:], tuple(slugs), titles, tuple(categories), digest
    )'''
