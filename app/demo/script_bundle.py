"""Our own modules flattened into one file: what a downloaded experiment script runs (no torch).

bundle() starts from a few names (the engine's function, the variant classes) and follows
every name their top-level statements use, through `from app... import` lines, into the
modules that define them: only the statements a run needs are kept, each module's in its
own order, modules in the order Python imports them. Imports of our modules disappear; a
name two modules both define is renamed in the later one (`_helper_common`), and an alias
(`from app.x import a as b`, `module.name`) becomes the defining module's name. Everything
is read as text (the modules are never imported: the web process must not import torch).

Annotations are not followed (every module has `from __future__ import annotations`, so
they stay strings that nothing evaluates). The server's pydantic result models become plain
records (script_parts.RECORD), so a script needs torch only.
"""

from __future__ import annotations

import ast
import functools
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from app.demo.script_records import as_record, is_model

PACKAGE = "app"
APP_DIR = Path(__file__).resolve().parents[1]  # read as text, never imported
RESULT_MODULE = "app.demo.result"  # its BaseModel classes become records

ALLOWED_IMPORTS = frozenset(sys.stdlib_module_names) | {"torch", "numpy"}
STDLIB = frozenset(sys.stdlib_module_names)

Symbol = tuple[str, str]  # (module, name)


class BundleError(ValueError):
    """A module cannot be flattened safely (the generator refuses rather than guess)."""


def module_path(module: str) -> Path:
    parts = module.split(".")
    if parts[0] != PACKAGE:
        raise BundleError(f"{module} is not one of ours")
    base = APP_DIR.joinpath(*parts[1:])
    return base / "__init__.py" if base.is_dir() else base.with_suffix(".py")


def is_module(module: str) -> bool:
    parts = module.split(".")
    base = APP_DIR.joinpath(*parts[1:])
    return base.is_dir() or base.with_suffix(".py").is_file()


@dataclass
class Statement:
    """One top-level statement: the names it defines and the names it reads."""

    index: int
    node: ast.stmt
    defines: set[str]
    uses: set[str]  # names read outside annotations
    attributes: set[tuple[str, str]]  # (name, attr) for every `name.attr` read
    bound: set[str]  # names bound inside it (arguments, locals): never renamed
    inner_imports: list[str]  # our modules it imports inside a function (refused if kept)


@dataclass
class Module:
    name: str
    lines: list[str]
    doc: str
    statements: list[Statement] = field(default_factory=list)
    ours: dict[str, tuple[str, str | None]] = field(default_factory=dict)  # local -> (mod, name)
    external: dict[str, str] = field(default_factory=dict)  # local -> dotted target
    order: list[str] = field(default_factory=list)  # our modules it imports, in order


class _Reads(ast.NodeVisitor):
    """Names a statement reads, outside annotations, and the names bound inside it."""

    def __init__(self) -> None:
        self.uses: set[str] = set()
        self.attributes: set[tuple[str, str]] = set()
        self.bound: set[str] = set()
        self.ours: list[str] = []  # our modules imported inside it

    def visit_Name(self, node: ast.Name) -> None:
        (self.uses if isinstance(node.ctx, ast.Load) else self.bound).add(node.id)

    def visit_Attribute(self, node: ast.Attribute) -> None:
        if isinstance(node.value, ast.Name):
            self.attributes.add((node.value.id, node.attr))
        self.generic_visit(node)

    def visit_arg(self, node: ast.arg) -> None:
        self.bound.add(node.arg)  # its annotation is not followed

    def visit_AnnAssign(self, node: ast.AnnAssign) -> None:
        self.visit(node.target)
        if node.value is not None:
            self.visit(node.value)

    def _function(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        for item in (*node.decorator_list, node.args):
            self.visit(item)
        for stmt in node.body:
            self.visit(stmt)
        self.bound.add(node.name)

    visit_FunctionDef = _function
    visit_AsyncFunctionDef = _function

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        for item in (*node.decorator_list, *node.bases, *node.keywords, *node.body):
            self.visit(item)

    def visit_Import(self, node: ast.Import) -> None:
        self.bound.update((a.asname or a.name).split(".")[0] for a in node.names)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if node.module and node.module.split(".")[0] == PACKAGE:
            self.ours.append(node.module)
        self.bound.update(a.asname or a.name for a in node.names)


def _defined(node: ast.stmt) -> set[str]:
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return {node.name}
    targets: list[ast.expr] = []
    if isinstance(node, ast.Assign):
        targets = node.targets
    elif isinstance(node, ast.AnnAssign) and node.value is not None:
        targets = [node.target]
    names = {n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)}
    return names


@functools.cache
def read_module(name: str) -> Module:
    source = module_path(name).read_text(encoding="utf-8")
    tree = ast.parse(source)
    doc = (ast.get_docstring(tree) or "").strip().splitlines()
    module = Module(name, source.splitlines(), doc[0] if doc else "")
    for index, node in enumerate(tree.body):
        if isinstance(node, ast.ImportFrom):
            _import_from(module, node)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == PACKAGE:
                    raise BundleError(f"{name}: `import {alias.name}` (use from ... import)")
                local = alias.asname or alias.name.split(".")[0]
                module.external[local] = alias.name if alias.asname else local
        elif not (isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)):
            reads = _Reads()
            reads.visit(node)
            defines = _defined(node)
            if not defines:  # an assert, say: nothing a script could want
                continue
            module.statements.append(
                Statement(
                    index, node, defines, reads.uses, reads.attributes, reads.bound, reads.ours
                )
            )
    return module


def _import_from(module: Module, node: ast.ImportFrom) -> None:
    source = node.module or ""
    if node.level:
        raise BundleError(f"{module.name}: relative import")
    if source == "__future__":
        return
    ours = source.split(".")[0] == PACKAGE
    if ours and source not in module.order:
        module.order.append(source)
    for alias in node.names:
        local = alias.asname or alias.name
        if not ours:
            module.external[local] = f"{source}.{alias.name}"
        elif is_module(f"{source}.{alias.name}"):
            module.ours[local] = (f"{source}.{alias.name}", None)
            module.order.append(f"{source}.{alias.name}")
        else:
            module.ours[local] = (source, alias.name)


@dataclass
class Bundle:
    """The kept statements in order, rewritten; the imports they need; the final names."""

    imports: list[str]
    sections: list[tuple[str, str, list[str]]]  # (module, its docstring's line, statements)
    names: dict[Symbol, str]  # (module, name) -> its name in the script
    uses_records: bool


class _Collector:
    def __init__(self, substitutes: Mapping[Symbol, Callable[[], str]]) -> None:
        self.kept: dict[str, set[int]] = {}  # module -> statement indexes
        self.external: dict[str, str] = {}  # dotted target -> wanted local name
        self.seen: set[Symbol] = set()
        self.substitutes = substitutes
        self.replaced: dict[tuple[str, int], tuple[Statement, list[str]]] = {}

    def want(self, module: str, name: str) -> None:
        if (module, name) in self.seen:
            return
        self.seen.add((module, name))
        mod = read_module(module)
        target = self.resolve(mod, name)
        if target is None:
            return
        found = [s for s in mod.statements if target[1] in s.defines] if target[0] == module else []
        if target[0] != module:
            self.want(*target)
            return
        if not found:
            raise BundleError(f"{module} has no top-level {name}")
        if (module, name) in self.substitutes:
            found = [self.substitute(module, found[0].index, self.substitutes[(module, name)]())]
        for stmt in found:
            if stmt.index in self.kept.setdefault(module, set()):
                continue
            if stmt.inner_imports:
                raise BundleError(f"{module}.{name} imports {stmt.inner_imports[0]} inside")
            self.kept[module].add(stmt.index)
            for used in sorted(stmt.uses):
                self.want(module, used)
            for base, attr in sorted(stmt.attributes):
                ref = mod.ours.get(base)
                if ref is not None and ref[1] is None and base not in stmt.bound:
                    self.want(ref[0], attr)

    def substitute(self, module: str, index: int, source: str) -> Statement:
        """Another definition in the place of statement `index` (its imports inside it)."""
        node = ast.parse(source).body[0]
        reads = _Reads()
        reads.visit(node)
        stmt = Statement(index, node, _defined(node), reads.uses, reads.attributes, reads.bound, [])
        self.replaced[(module, index)] = (stmt, source.splitlines())
        return stmt

    def statement(self, mod: Module, stmt: Statement) -> tuple[Statement, list[str]]:
        return self.replaced.get((mod.name, stmt.index), (stmt, mod.lines))

    def resolve(self, mod: Module, name: str) -> Symbol | None:
        """Where a name read in `mod` is defined; None: a builtin, a local or a module alias."""
        if any(name in s.defines for s in mod.statements):
            return (mod.name, name)
        if name in mod.ours:
            source, attr = mod.ours[name]
            return None if attr is None else (source, attr)
        if name in mod.external:
            dotted = mod.external[name]
            if not (mod.name == RESULT_MODULE and dotted.startswith("pydantic.")):  # records
                self.external.setdefault(dotted, name)
        return None


def module_order(roots: Iterable[str]) -> list[str]:
    """Our modules in the order Python finishes importing them, importing `roots` in turn."""
    done: list[str] = []

    def visit(name: str) -> None:
        if name in done:
            return
        done.append(name)  # placeholder against cycles; moved to its place below
        for dep in read_module(name).order:
            visit(dep)
        done.remove(name)
        done.append(name)

    for root in roots:
        visit(root)
    return done


def bundle(
    roots: list[Symbol],
    reserved: Iterable[str],
    imports: dict[str, str] | None = None,
    substitutes: Mapping[Symbol, Callable[[], str]] | None = None,
) -> Bundle:
    """Flatten what `roots` need; `reserved` names (the script's own) are never given away;
    `imports` (dotted name -> local name) are what the script's own code imports;
    `substitutes` give another definition of a name, as source (data the script carries)."""
    collect = _Collector(substitutes or {})
    collect.external.update(imports or {})
    for module, name in roots:
        collect.want(module, name)
    order = module_order(module for module, _ in roots)
    taken: dict[str, object] = dict.fromkeys(reserved, "reserved")
    for dotted, local in collect.external.items():
        if dotted.split(".")[0] not in ALLOWED_IMPORTS:
            raise BundleError(f"the script would need {dotted}")
        if local in taken and taken[local] != dotted:
            raise BundleError(f"two imports named {local}")
        taken[local] = dotted
    import_lines = _import_lines(collect.external)
    names: dict[Symbol, str] = {}
    for module in order:
        mod = read_module(module)
        for stmt in mod.statements:
            if stmt.index not in collect.kept.get(module, ()):
                continue
            for name in sorted(stmt.defines):
                final = name if name not in taken else f"{name}_{module.rsplit('.', 1)[-1]}"
                if final in taken:
                    raise BundleError(f"{name} from {module}: no free name")
                taken[final] = (module, name)
                names[(module, name)] = final
    sections: list[tuple[str, str, list[str]]] = []
    uses_records = False
    for module in order:
        mod = read_module(module)
        kept = [s for s in mod.statements if s.index in collect.kept.get(module, ())]
        if not kept:
            continue
        texts = []
        for stmt in kept:
            text = _rewrite(mod, *collect.statement(mod, stmt), names, collect)
            if module == RESULT_MODULE and is_model(stmt.node):
                text, uses_records = as_record(stmt.node, "\n".join(mod.lines)), True
            texts.append(text)
        sections.append((module, mod.doc, texts))
    return Bundle(import_lines, sections, names, uses_records)


def _import_lines(external: dict[str, str]) -> list[str]:
    """`import x` lines, then `from x import a, b as c` lines, standard library first."""
    plain: list[str] = []
    froms: dict[str, list[str]] = {}
    for dotted, local in external.items():
        if "." not in dotted:
            plain.append(f"import {dotted}" + ("" if dotted == local else f" as {local}"))
            continue
        source, _, name = dotted.rpartition(".")
        froms.setdefault(source, []).append(name + ("" if name == local else f" as {local}"))
    lines = plain + [f"from {src} import {', '.join(sorted(n))}" for src, n in froms.items()]

    def key(line: str) -> tuple[bool, str, bool, str]:
        source = line.split()[1]
        return (source.split(".")[0] not in STDLIB, source, line.startswith("from"), line)

    ordered = sorted(lines, key=key)
    third_party = [i for i, line in enumerate(ordered) if key(line)[0]]
    if third_party and third_party[0] > 0:  # a blank line between the two groups
        ordered.insert(third_party[0], "")
    return ordered


def _final(collect: _Collector, names: dict[Symbol, str], mod: Module, name: str) -> str:
    target = collect.resolve(mod, name)
    if target is None:  # a builtin, a local, or an import (another module's spelling of it)
        dotted = mod.external.get(name)
        return name if dotted is None else collect.external.get(dotted, name)
    return names.get(target, name)  # not kept: an annotation


def _rewrite(
    mod: Module, stmt: Statement, source: list[str], names: dict[Symbol, str], collect: _Collector
) -> str:
    """The statement's source (with the comments just above it), our names made final."""
    node = stmt.node
    first = min([node.lineno, *(d.lineno for d in getattr(node, "decorator_list", []))]) - 1
    while first > 0 and source[first - 1].lstrip().startswith("#"):
        first -= 1
    last = node.end_lineno or node.lineno
    edits: list[tuple[int, int, int, str]] = []  # line (1-based), start, end (bytes), text

    def rename(line: int, start: int, end: int, old: str, new: str) -> None:
        if new == old:
            return
        if old in stmt.bound and old not in stmt.defines:
            raise BundleError(f"{mod.name}: {old} is also a local name; cannot rename it")
        edits.append((line, start, end, new))

    for sub in ast.walk(node):
        if isinstance(sub, ast.Name):
            rename(
                sub.lineno,
                sub.col_offset,
                sub.end_col_offset or 0,
                sub.id,
                _final(collect, names, mod, sub.id),
            )
        elif isinstance(sub, ast.Attribute) and isinstance(sub.value, ast.Name):
            ref = mod.ours.get(sub.value.id)
            if ref is not None and ref[1] is None and sub.value.id not in stmt.bound:
                new = names[collect.resolve(read_module(ref[0]), sub.attr) or (ref[0], sub.attr)]
                edits.append((sub.lineno, sub.col_offset, sub.end_col_offset or 0, new))
        elif isinstance(sub, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and sub is node:
            new = names[(mod.name, sub.name)]
            if new != sub.name:
                row = source[sub.lineno - 1].encode()
                start = row.index(f" {sub.name}".encode(), sub.col_offset) + 1
                edits.append((sub.lineno, start, start + len(sub.name.encode()), new))
    rows = [text.encode() for text in source[first:last]]
    for line, start, end, new in sorted(edits, reverse=True):
        row = rows[line - 1 - first]
        rows[line - 1 - first] = row[:start] + new.encode() + row[end:]
    return "\n".join(row.decode() for row in rows)
