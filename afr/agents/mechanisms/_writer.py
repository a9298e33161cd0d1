"""Writing a candidate file: the skeleton, its imports, and the libcst transformers of :func:`write_recipe`.

:func:`write_recipe` applies a genome to a parent file with three libcst transformers (imports, module
docstring, recipe class body). A shipped baseline is imported from ``afr.recipe``; a user's baseline file
cannot be, so each candidate is that file (its imports kept, missing ones added) followed by the evolve
class.
"""

from __future__ import annotations

import ast
from collections.abc import Mapping, Sequence
from functools import lru_cache

import libcst as cst

from afr._parsing import parse_python

from ... import recipe
from ...recipe import RecipeSource
from ._base import HOOK_ORDER, Genome, render_scalar
from ._docs import class_docstring, module_doc
from ._environment import Environment
from ._genome_io import MARKER, has_marker, read_genome
from ._hooks import HELPERS, render_hooks

CLASS_NAME = "Evolved"
RECIPE_NAME = "evolved"


def _recipe_class(module: cst.Module) -> cst.ClassDef | None:
    """The evolve class: the last module-level class whose docstring carries the ``Mechanisms:`` line."""
    found = [
        stmt
        for stmt in module.body
        if isinstance(stmt, cst.ClassDef) and has_marker(stmt.get_docstring(clean=False))
    ]
    return found[-1] if found else None


@lru_cache(maxsize=64)  # a pure function of the text (the baseline's, parsed once per render otherwise)
def _module_names(source: str) -> frozenset[str]:
    """Names a module binds at its top level (imports, classes, functions, assignments)."""
    names: set[str] = set()
    for node in parse_python(source).body:
        if isinstance(node, ast.Import | ast.ImportFrom):
            names.update((a.asname or a.name).partition(".")[0] for a in node.names)
        elif isinstance(node, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign | ast.AnnAssign | ast.AugAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names.update(n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name))
    return frozenset(names)


def _class_name(baseline: RecipeSource) -> str:
    """The evolve class's name: :data:`CLASS_NAME`, numbered if the user's file already binds it."""
    if baseline.shipped:
        return CLASS_NAME
    taken = _module_names(baseline.text)
    return next(n for n in (CLASS_NAME, *(f"{CLASS_NAME}{i}" for i in range(2, 100))) if n not in taken)


def skeleton(baseline: RecipeSource) -> str:
    """The file a first-generation candidate is edited from: the baseline plus an empty evolve class.

    A shipped baseline is imported from ``afr.recipe``; a user's file is copied whole (its class is not
    importable) and the evolve class derives from its class.
    """
    base = baseline.class_name
    stub = (
        f"class {_class_name(baseline)}({base}):\n"
        f'    """{base}.\n\n    {MARKER} none\n    """\n\n'
        f'    name = "{RECIPE_NAME}"\n'
    )
    if not baseline.shipped:
        return baseline.text.rstrip("\n") + "\n\n\n" + stub
    return (
        f'"""{base} baseline."""\n\nfrom __future__ import annotations\n\n'
        f"from afr.recipe import {base}, scalar\n\n\n" + stub
    )


_BLANK = (cst.EmptyLine(indent=False),)

RECIPE_EXPORTS = frozenset(recipe.__all__)
"""Names a rendered class may import from ``afr.recipe`` (imported exactly when it uses them)."""

MAX_LINE = 110
"""Longest line of a generated file (the project's line length)."""

_STDLIB = ("math", "typing")


def _from_import(module: str, names: Sequence[str]) -> str:
    """``from module import names`` on one line, or wrapped one name per line as isort does."""
    line = f"from {module} import {', '.join(names)}"
    if len(line) <= MAX_LINE:
        return line
    return f"from {module} import (\n" + "".join(f"    {n},\n" for n in names) + ")"


def _isort_key(name: str) -> tuple[bool, str]:
    """isort's order within one ``from`` import: classes (capitalised) before functions."""
    return (not name[:1].isupper(), name)


def _needed_imports(used: set[str], recipe_names: set[str]) -> list[tuple[str, tuple[str, ...] | None]]:
    """(module, names) the evolve class needs, in isort order (names None: ``import module``)."""
    out: list[tuple[str, tuple[str, ...] | None]] = []
    if "math" in used:
        out.append(("math", None))
    if "Any" in used:
        out.append(("typing", ("Any",)))
    if "torch" in used:
        out.append(("torch", None))
    torch_names = tuple(n for n in ("Tensor", "nn") if n in used)
    if torch_names:
        out.append(("torch", torch_names))
    out.append(("afr.recipe", tuple(sorted(recipe_names, key=_isort_key))))
    return out


def _group(module: str) -> int:
    """isort's section of a module: future, standard library, third party, first party (afr)."""
    if module == "__future__":
        return 0
    return 1 if module in _STDLIB else (3 if module.partition(".")[0] == "afr" else 2)


# libcst trees are immutable (every edit makes a new node), so a parsed text can be reused: an evolve call
# renders every first-generation single and each child, and parsing the same hook bodies and files again
# was most of its time.
@lru_cache(maxsize=1024)
def _parsed_statement(text: str) -> cst.BaseStatement:
    return cst.parse_statement(text)


@lru_cache(maxsize=256)
def _parsed_module(text: str) -> cst.Module:
    return cst.parse_module(text)


def _statement(line: str, blank: bool = False) -> cst.SimpleStatementLine:
    stmt = _parsed_statement(line)
    assert isinstance(stmt, cst.SimpleStatementLine)
    return stmt.with_changes(leading_lines=_BLANK if blank else ())


def _import_line(module: str, names: tuple[str, ...] | None) -> str:
    return f"import {module}" if names is None else _from_import(module, names)


def shipped_imports(used: set[str], baseline: RecipeSource) -> list[cst.SimpleStatementLine]:
    """Exactly the imports the evolve class uses, grouped and ordered as isort does."""
    recipe_names = {n for n in RECIPE_EXPORTS if n in used} | {baseline.class_name, "scalar"}
    lines = [("__future__", "from __future__ import annotations")]
    lines += [(m, _import_line(m, names)) for m, names in _needed_imports(used, recipe_names)]
    return [
        _statement(line, blank=i == 0 or _group(module) != _group(lines[i - 1][0]))
        for i, (module, line) in enumerate(lines)
    ]


def user_imports(used: set[str], baseline: RecipeSource) -> list[cst.SimpleStatementLine]:
    """The user's file's imports, kept, plus those the evolve class needs and the file lacks.

    A missing name joins the file's ``from <module> import ...`` when it has one; otherwise its import
    goes after the file's imports of the same isort section (stdlib, third party, afr).
    """
    bound = _module_names(baseline.text)
    recipe_names = {n for n in RECIPE_EXPORTS if n in used} | {"scalar"}
    missing: dict[tuple[str, bool], list[str]] = {}  # (module, plain import) -> names
    for module, names in _needed_imports(used, recipe_names):
        for name in names or (module,):
            if name not in bound:
                missing.setdefault((module, names is None), []).append(name)
    kept: list[tuple[int, cst.SimpleStatementLine]] = []
    for stmt in _parsed_module(baseline.text).body:
        if isinstance(stmt, cst.SimpleStatementLine) and isinstance(
            stmt.body[0], cst.Import | cst.ImportFrom
        ):
            merged = _merged_from_import(stmt, missing)
            stmt = stmt if merged is None else merged.with_changes(leading_lines=stmt.leading_lines)
            kept.append((_group(_imported_module(stmt.body[0])), stmt))
    for (module, plain), names in missing.items():
        group = _group(module)
        at = sum(1 for g, _ in kept if g <= group)  # the user's imports are assumed in isort order
        stmt = _statement(
            _import_line(module, None if plain else tuple(names)), at > 0 and kept[at - 1][0] != group
        )
        if at < len(kept) and kept[at][0] != group:  # a new section starts after the added line
            following = kept[at][1]
            if not any(line.comment is None for line in following.leading_lines):
                kept[at] = (
                    kept[at][0],
                    following.with_changes(leading_lines=_BLANK + tuple(following.leading_lines)),
                )
        kept.insert(at, (group, stmt))
    return [stmt for _, stmt in kept]


def _imported_module(small: cst.BaseSmallStatement) -> str:
    if isinstance(small, cst.ImportFrom):
        return "." if small.relative or small.module is None else cst.Module([]).code_for_node(small.module)
    assert isinstance(small, cst.Import)
    return cst.Module([]).code_for_node(small.names[0].name)


def _merged_from_import(
    stmt: cst.SimpleStatementLine, missing: dict[tuple[str, bool], list[str]]
) -> cst.SimpleStatementLine | None:
    """``stmt`` with the missing names of its module added (None: not a plain ``from m import a, b``)."""
    small = stmt.body[0]
    if len(stmt.body) != 1 or not isinstance(small, cst.ImportFrom) or small.relative:
        return None
    if isinstance(small.names, cst.ImportStar) or any(a.asname is not None for a in small.names):
        return None
    module = cst.Module([]).code_for_node(small.module) if small.module is not None else ""
    extra = missing.pop((module, False), None)
    if extra is None:
        return None
    names = {cst.Module([]).code_for_node(a.name) for a in small.names} | set(extra)
    return _statement(_from_import(module, sorted(names, key=_isort_key)))


def _docstring_line(text: str) -> cst.SimpleStatementLine:
    return cst.SimpleStatementLine([cst.Expr(cst.SimpleString(f'"""{text}"""'))])


class ImportWriter(cst.CSTTransformer):
    """Replace the module's imports by ``imports`` (after the module docstring)."""

    def __init__(self, imports: Sequence[cst.SimpleStatementLine]) -> None:
        super().__init__()
        self.imports = list(imports)

    def visit_ClassDef(self, node: cst.ClassDef) -> bool:
        return False  # only module-level statements change

    def visit_FunctionDef(self, node: cst.FunctionDef) -> bool:
        return False

    def leave_Module(self, original_node: cst.Module, updated_node: cst.Module) -> cst.Module:
        body = list(updated_node.body)
        docstring = body[:1] if updated_node.get_docstring() is not None else []
        rest = [
            s
            for s in body[len(docstring) :]
            if not (
                isinstance(s, cst.SimpleStatementLine) and isinstance(s.body[0], cst.Import | cst.ImportFrom)
            )
        ]
        if rest:  # two blank lines after the imports; comments above the first statement stay
            comments = tuple(line for line in rest[0].leading_lines if line.comment is not None)
            rest[0] = rest[0].with_changes(leading_lines=_BLANK * 2 + comments)
        imports = list(self.imports)
        if imports:
            imports[0] = imports[0].with_changes(leading_lines=_BLANK if docstring else ())
        return updated_node.with_changes(body=[*docstring, *imports, *rest])


class ModuleDocWriter(cst.CSTTransformer):
    """Set the module docstring."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.text = text

    def visit_ClassDef(self, node: cst.ClassDef) -> bool:
        return False

    def visit_FunctionDef(self, node: cst.FunctionDef) -> bool:
        return False

    def leave_Module(self, original_node: cst.Module, updated_node: cst.Module) -> cst.Module:
        body = list(updated_node.body)
        line = _docstring_line(self.text)
        if updated_node.get_docstring() is not None:
            body[0] = line.with_changes(leading_lines=body[0].leading_lines)
        else:
            body.insert(0, line)
        return updated_node.with_changes(body=body)


class RecipeClassWriter(cst.CSTTransformer):
    """Rewrite the evolve class ``target``: docstring, scalar declarations, constants, the genome's methods.

    Existing scalar lines are updated in place, missing ones inserted, stale ones removed; methods
    owned by the library (hooks and helpers) are replaced by their rendering or removed; anything else
    in the class body is kept after them.
    """

    def __init__(
        self,
        target: str,
        docstring: str,
        scalars: Mapping[str, str],
        constants: Mapping[str, str],
        methods: Mapping[str, str],
    ) -> None:
        super().__init__()
        self.target = target
        self.docstring, self.scalars, self.constants, self.methods = docstring, scalars, constants, methods
        self.done = False

    def visit_FunctionDef(self, node: cst.FunctionDef) -> bool:
        return False  # methods are replaced whole, never edited inside

    def leave_ClassDef(self, original_node: cst.ClassDef, updated_node: cst.ClassDef) -> cst.ClassDef:
        if self.done or updated_node.name.value != self.target:
            return updated_node
        self.done = True
        owned_methods = set(HOOK_ORDER) | set(HELPERS)
        owned_names = set(self.scalars) | set(self.constants) | {"name"}
        existing: dict[str, cst.SimpleStatementLine] = {}
        kept: list[cst.BaseStatement] = []
        for i, stmt in enumerate(updated_node.body.body):
            if i == 0 and updated_node.get_docstring(clean=False) is not None:
                continue
            if isinstance(stmt, cst.FunctionDef):
                if stmt.name.value not in owned_methods:
                    kept.append(stmt)
                continue
            target = _assigned_name(stmt)
            if target is not None and isinstance(stmt, cst.SimpleStatementLine):
                if target in owned_names:
                    existing[target] = stmt
                continue  # stale scalars/constants disappear with their mechanism
            kept.append(stmt)
        body: list[cst.BaseStatement] = [_docstring_line(self.docstring)]
        body.append(_parsed_statement(f'name = "{RECIPE_NAME}"').with_changes(leading_lines=_BLANK))
        for group in (self.scalars, self.constants):
            for j, (key, expr) in enumerate(group.items()):
                line = _parsed_statement(f"{key} = {expr}")
                if key in existing:  # edit the existing declaration's value, keep its comments
                    old = existing[key]
                    assign = old.body[0]
                    assert isinstance(assign, cst.Assign)
                    new_value = line.body[0].value  # type: ignore[attr-defined]
                    line = old.with_changes(body=[assign.with_changes(value=new_value)])
                body.append(line.with_changes(leading_lines=_BLANK if j == 0 else ()))
        for name in (*HOOK_ORDER, *HELPERS):
            if name in self.methods:
                method = _parsed_statement(self.methods[name])
                body.append(method.with_changes(leading_lines=_BLANK))
        body.extend(kept)
        return updated_node.with_changes(body=updated_node.body.with_changes(body=body))


def _assigned_name(stmt: cst.BaseStatement) -> str | None:
    if isinstance(stmt, cst.SimpleStatementLine) and len(stmt.body) == 1:
        small = stmt.body[0]
        if isinstance(small, cst.Assign) and len(small.targets) == 1:
            target = small.targets[0].target
            if isinstance(target, cst.Name):
                return target.value
    return None


def write_recipe(parent_source: str | None, genome: Genome, env: Environment) -> str:
    """Apply ``genome`` to ``parent_source`` (an evolve file; else the baseline's skeleton) with libcst."""
    module = None
    if parent_source is not None and read_genome(parent_source) is not None:
        try:
            module = _parsed_module(parent_source)
        except Exception:
            module = None
    if module is None:
        module = _parsed_module(skeleton(env.baseline))
    target = _recipe_class(module)
    assert target is not None
    specs = env.specs(genome)
    scalars = {key: render_scalar(spec, genome.values.get(key)) for key, spec in specs.items()}
    methods = render_hooks(genome, env)
    constants = {"horizon": str(env.horizon)} if "round_progress" in methods or "client_lr" in methods else {}
    docstring = class_docstring(genome, env)
    module = module.visit(RecipeClassWriter(target.name.value, docstring, scalars, constants, methods))
    cls = _recipe_class(module)
    assert cls is not None
    used = {
        node.id for node in ast.walk(parse_python(module.code_for_node(cls))) if isinstance(node, ast.Name)
    }
    module = module.visit(ModuleDocWriter(module_doc(env.baseline).rstrip("\n") + "\n"))
    imports = (shipped_imports if env.baseline.shipped else user_imports)(used, env.baseline)
    module = module.visit(ImportWriter(imports))
    code = module.code
    return code if code.endswith("\n") else code + "\n"
