"""Module and class structure: what may stand at module level and in a class body, bases, scalars."""

from __future__ import annotations

import libcst as cst

from .._table import RECIPE_PACKAGE
from ._base import USE_ALL, USE_DEF, USE_STORE, CheckerBase
from ._nodes import dotted_name, is_docstring, is_literal, number_literal, suite_statements

__all__ = ["StructureChecks"]


_KINDS = {
    "If": "an `if` statement",
    "For": "a `for` loop",
    "While": "a `while` loop",
    "Try": "a `try` statement",
    "TryStar": "a `try` statement",
    "With": "a `with` statement",
    "Match": "a `match` statement",
    "AugAssign": "an augmented assignment",
    "Assert": "an `assert`",
    "Raise": "a `raise`",
    "Del": "a `del`",
    "Global": "a `global` statement",
    "Nonlocal": "a `nonlocal` statement",
    "Return": "a `return`",
    "TypeAlias": "a type alias",
}


class StructureChecks(CheckerBase):
    """Module and class structure.

    Rules module-statement, no-recipe-class, class-*, nested-class, scalar-declaration and
    reserved-name (class attributes). :meth:`check_module` is a first pass over the top-level
    statements (it also reads the imports); the walk then visits every class.
    """

    def check_module(self, module: cst.Module) -> None:
        classes: set[str] = set()
        for stmt in module.body:
            if isinstance(stmt, cst.SimpleStatementLine):
                for small in stmt.body:
                    self._module_small(small)
            elif isinstance(stmt, cst.FunctionDef):
                self.module_names.add(stmt.name.value)
            elif isinstance(stmt, cst.ClassDef):
                self._class_header(stmt, classes)
                classes.add(stmt.name.value)
                self.module_names.add(stmt.name.value)
            else:
                self.report(
                    stmt,
                    "module-statement",
                    f"{_KINDS.get(type(stmt).__name__, 'this statement')} is not allowed at module level: "
                    "keep only imports, literal constants, functions and classes; move logic into methods",
                )
        if not classes:
            self.report(
                module,
                "no-recipe-class",
                f"the file defines no recipe class: define one deriving from {self.table.baseline} "
                f"(`class MyRecipe({self.table.baseline}):`)",
            )

    def _module_small(self, small: cst.BaseSmallStatement) -> None:
        if is_docstring(small) or isinstance(small, cst.Pass):
            return
        if isinstance(small, cst.Import | cst.ImportFrom):
            self._import(small)
            return
        if isinstance(small, cst.Assign | cst.AnnAssign):
            targets = [t.target for t in small.targets] if isinstance(small, cst.Assign) else [small.target]
            is_all = [t.value for t in targets if isinstance(t, cst.Name)] == ["__all__"]
            if all(isinstance(t, cst.Name) for t in targets) and (
                small.value is None or is_literal(small.value, mutable=is_all)
            ):
                for target in targets:
                    assert isinstance(target, cst.Name)
                    self.module_names.add(target.value)
                    if target.value == "__all__":
                        self.marks[id(target)] = USE_ALL
                return
            self.report(
                small,
                "module-statement",
                "a module-level assignment must bind a name to a plain literal (number, string, bool, None, "
                "or a tuple/list/dict of them): compute values inside methods",
            )
            return
        what = _KINDS.get(type(small).__name__, "this statement")
        if isinstance(small, cst.Expr):
            what = "a call" if isinstance(small.value, cst.Call) else "an expression statement"
        self.report(
            small,
            "module-statement",
            f"{what} is not allowed at module level: module code runs on import; move it into a method",
        )

    def _class_header(self, node: cst.ClassDef, earlier: set[str]) -> None:
        bases = self.table.recipe_bases
        fix = f"derive from one of {', '.join(bases)} (imported from afr.recipe) or from an earlier class"
        for decorator in node.decorators:
            self.report(decorator, "class-decorator", "a recipe class takes no decorators: remove it")
        if node.keywords:
            self.report(
                node.keywords[0], "class-base", f"class keywords (metaclass=…) are not allowed: {fix}"
            )
        if len(node.bases) != 1 or node.bases[0].star:
            where = node.bases[1] if len(node.bases) > 1 else node.name
            self.report(where, "class-base", f"class {node.name.value!r} must have exactly one base: {fix}")
            return
        base = node.bases[0].value
        if isinstance(base, cst.Name):
            if base.value in earlier or base.value in self.rejected:
                return
            qualified = self.imports.get(base.value, "")
            if qualified.startswith(f"{RECIPE_PACKAGE}.") and qualified.rpartition(".")[2] in bases:
                return
            # The baseline itself derives from Recipe; only its own file in afr.recipe may do so.
            if (
                qualified == f"{RECIPE_PACKAGE}.Recipe"
                and self.package == RECIPE_PACKAGE
                and node.name.value == self.table.baseline
            ):
                return
        shown = dotted_name(base) or "an expression"
        if isinstance(base, cst.Name) and base.value not in self.imports:
            shown += ", which is neither imported from afr.recipe nor a class defined above"
        self.report(base, "class-base", f"class {node.name.value!r} may not derive from {shown}: {fix}")

    def visit_ClassDef(self, node: cst.ClassDef) -> bool:
        if self.class_depth or self.function_depth:
            self.report(node.name, "nested-class", "classes may only be defined at module level: move it out")
        self.marks[id(node.name)] = USE_STORE
        self.class_depth += 1
        for stmt in suite_statements(node.body):
            if isinstance(stmt, cst.FunctionDef):
                self.methods[id(stmt)] = node.name.value
            elif isinstance(stmt, cst.SimpleStatementLine | cst.BaseSmallStatement):
                for small in stmt.body if isinstance(stmt, cst.SimpleStatementLine) else [stmt]:
                    self._class_small(small)
            elif not isinstance(stmt, cst.ClassDef):
                self.report(
                    stmt,
                    "class-statement",
                    f"{_KINDS.get(type(stmt).__name__, 'this statement')} is not allowed in a class body: "
                    "keep logic inside methods",
                )
        return True

    def leave_ClassDef(self, original_node: cst.ClassDef) -> None:
        self.class_depth -= 1

    def _class_small(self, small: cst.BaseSmallStatement) -> None:
        if is_docstring(small) or isinstance(small, cst.Pass | cst.Import | cst.ImportFrom):
            return  # imports are reported by visit_Import*
        if isinstance(small, cst.Expr) and isinstance(small.value, cst.Ellipsis):
            return
        if isinstance(small, cst.Assign | cst.AnnAssign):
            targets = [t.target for t in small.targets] if isinstance(small, cst.Assign) else [small.target]
            if len(targets) == 1 and isinstance(targets[0], cst.Name):
                self._class_assign(targets[0], small.value)
                return
        self.report(
            small,
            "class-statement",
            'a class body may only hold `name = "..."`, scalar declarations (`x = scalar(...)`), '
            "literal constants and methods",
        )

    def _class_assign(self, target: cst.Name, value: cst.BaseExpression | None) -> None:
        name = target.value
        table = self.table
        if name == "name":
            if not isinstance(value, cst.SimpleString):
                self.report(
                    target, "reserved-name", '`name` must be a plain string literal, e.g. name = "my_recipe"'
                )
            return
        if name.startswith("__") and name.endswith("__"):
            self.marks[id(target)] = USE_DEF
            self.report(
                target,
                "reserved-name",
                f"class attribute {name!r} is not allowed: dunder attributes "
                "change how the class works; use a plain name",
            )
            return
        if name in table.reserved_names:
            self.report(
                target,
                "reserved-name",
                f"{name!r} is Recipe machinery and may not be redefined: choose another name",
            )
            return
        if name in table.hooks:
            self.report(
                target,
                "reserved-name",
                f"hook {name!r} may only be defined as a method `def {name}({', '.join(table.hooks[name])})`",
            )
            return
        if value is None or is_literal(value):
            return
        if isinstance(value, cst.Call) and isinstance(value.func, cst.Name):
            kind, qualified = self._resolve(value.func.value)
            if kind == "import" and qualified == "afr.recipe.scalar":
                self._scalar(target, value)
                return
        self.report(
            value,
            "class-statement",
            f"class attribute {name!r} must be a plain literal or a scalar declaration "
            f"(`{name} = scalar(default, low, high)`): compute values inside methods",
        )

    def _scalar(self, target: cst.Name, call: cst.Call) -> None:
        usage = "scalar(default, low, high, log=False, integer=False) with number and bool literals"
        order = ("default", "low", "high")
        values: dict[str, float | bool] = {}
        for i, arg in enumerate(call.args):
            if arg.star:
                self.report(arg, "scalar-declaration", f"no *args/**kwargs in a scalar declaration: {usage}")
                return
            key = arg.keyword.value if arg.keyword is not None else (order[i] if i < len(order) else "?")
            if key in ("log", "integer"):
                if not (isinstance(arg.value, cst.Name) and arg.value.value in ("True", "False")):
                    self.report(arg.value, "scalar-declaration", f"{key}= must be True or False: {usage}")
                    return
                values[key] = arg.value.value == "True"
            elif key in order:
                number = number_literal(arg.value)
                if number is None:
                    self.report(arg.value, "scalar-declaration", f"{key} must be a number literal: {usage}")
                    return
                values[key] = number
            else:
                self.report(
                    arg, "scalar-declaration", f"unexpected argument in a scalar declaration: {usage}"
                )
                return
        missing = [k for k in order if k not in values]
        if missing:
            self.report(call, "scalar-declaration", f"missing {', '.join(missing)}: {usage}")
            return
        default, low, high = (float(values[k]) for k in order)
        if not low <= default <= high:
            self.report(
                call,
                "scalar-declaration",
                f"scalar {target.value!r} needs low <= default <= high, "
                f"got {low:g} <= {default:g} <= {high:g}",
            )
        elif values.get("log") and low <= 0:
            self.report(
                call, "scalar-declaration", f"scalar {target.value!r} is log-scaled and needs low > 0"
            )
