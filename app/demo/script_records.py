"""The server's pydantic result models (app/demo/result.py) as plain records in a script.

A model's class becomes `class Chart(_Record):` with the same fields, annotations and
defaults (Field(None, ...) -> None, default_factory=list -> []); script_parts.RECORD gives
_Record its keyword constructor and model_dump(), so a script needs no pydantic.
"""

from __future__ import annotations

import ast

PYDANTIC_BASES = {"BaseModel"}


def is_model(node: ast.stmt) -> bool:
    return isinstance(node, ast.ClassDef) and any(
        isinstance(b, ast.Name) and b.id in PYDANTIC_BASES for b in node.bases
    )


def as_record(node: ast.stmt, source: str) -> str:
    """A pydantic model as a record: the same fields and defaults, no validation."""
    assert isinstance(node, ast.ClassDef)
    out = [f"class {node.name}(_Record):"]
    doc = ast.get_docstring(node)
    if doc:
        out.append('    """' + doc.replace("\n", "\n    ") + '"""\n')
    for item in node.body:
        if not isinstance(item, ast.AnnAssign) or not isinstance(item.target, ast.Name):
            continue
        annotation = ast.get_source_segment(source, item.annotation)
        default = _default(item.value)
        out.append(
            f"    {item.target.id}: {annotation}" + ("" if default is None else f" = {default}")
        )
    return "\n".join(out)


def _default(value: ast.expr | None) -> str | None:
    """A field's default as source (None: required), reading pydantic's Field(...)."""
    if value is None:
        return None
    if not (
        isinstance(value, ast.Call)
        and isinstance(value.func, ast.Name)
        and value.func.id == "Field"
    ):
        return ast.unparse(value)
    for kw in value.keywords:
        if kw.arg == "default":
            return ast.unparse(kw.value)
        if kw.arg == "default_factory" and isinstance(kw.value, ast.Name):
            return {"list": "[]", "dict": "{}"}[kw.value.id]
    return ast.unparse(value.args[0]) if value.args else None
