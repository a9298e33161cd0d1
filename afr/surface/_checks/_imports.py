"""Imports: which modules and names, only at module level, relative ones only inside a package."""

from __future__ import annotations

import libcst as cst

from ._base import CheckerBase
from ._nodes import bound_name, dotted_name

__all__ = ["ImportChecks"]


class ImportChecks(CheckerBase):
    """Imports.

    Rules import-not-allowed, import-name-not-allowed, import-star, relative-import and nested-import.
    """

    def _resolve_relative(self, node: cst.ImportFrom) -> str | None:
        level = len(node.relative)
        name = dotted_name(node.module) if node.module is not None else None
        if level == 0:
            return name
        if self.package is None:
            self.report(
                node,
                "relative-import",
                "a relative import is not allowed in a candidate file: use absolute imports, "
                "e.g. `from afr.recipe import FedAvg, scalar`",
            )
            return None
        parts = self.package.split(".")
        if level - 1 >= len(parts):
            self.report(node, "relative-import", f"relative import beyond the top-level package {parts[0]!r}")
            return None
        base = ".".join(parts[: len(parts) - (level - 1)])
        return f"{base}.{name}" if name else base

    def _modules_text(self) -> str:
        # Submodules of a listed package are implied (afr.recipe._base…); keep the hint short.
        shown = sorted(
            m for m in self.table.allowed_imports if m.rpartition(".")[0] not in self.table.allowed_imports
        )
        return ", ".join(shown)

    def _canonical(self, module: str, name: str) -> str:
        """``afr.recipe._base.Params`` -> ``afr.recipe.Params``: one spelling per re-exported name."""
        parent = module.rpartition(".")[0]
        exported = self.table.allowed_imports.get(parent)
        if parent and exported is not None and name in exported:
            return f"{parent}.{name}"
        return f"{module}.{name}"

    def _import(self, node: cst.Import | cst.ImportFrom) -> None:
        allowed = self.table.allowed_imports
        if isinstance(node, cst.Import):
            for alias in node.names:
                module = dotted_name(alias.name) or ""
                if allowed.get(module, frozenset()) is not None:
                    hint = (
                        f"use `from {module} import <name>` with a name the table lists for it"
                        if module in allowed
                        else f"a recipe may import only {self._modules_text()}"
                    )
                    self.report(alias, "import-not-allowed", f"`import {module}` is not allowed: {hint}")
                    continue
                if alias.asname is not None:
                    bound = alias.asname.name
                    assert isinstance(bound, cst.Name)
                    self.imports[bound.value] = module
                else:
                    root = module.partition(".")[0]
                    self.imports[root] = root
            return
        if not isinstance(node.names, cst.ImportStar):
            self.rejected.update(bound_name(alias) for alias in node.names)  # until accepted below
        module = self._resolve_relative(node)
        if module is None:
            return
        if module not in allowed:
            self.report(
                node.module if node.module is not None else node,
                "import-not-allowed",
                f"module {module!r} may not be imported: a recipe may import only {self._modules_text()}",
            )
            return
        names = allowed[module]
        if isinstance(node.names, cst.ImportStar):
            self.report(
                node.names, "import-star", f"`from {module} import *` is not allowed: import names one by one"
            )
            return
        for alias in node.names:
            name = dotted_name(alias.name) or ""
            if module == "__future__":
                if name not in (names or ()):
                    self.report(
                        alias, "import-name-not-allowed", f"`from __future__ import {name}` is not allowed"
                    )
                continue
            qualified = f"{module}.{name}"
            ok = (
                name in names
                if names is not None
                else qualified in self.table.modules or self.table.value_allowed(qualified)
            )
            if not ok:
                listed = ", ".join(sorted(names)) if names is not None else "the allowed calls and values"
                self.report(
                    alias,
                    "import-name-not-allowed",
                    f"{name!r} may not be imported from {module!r}: import one of {listed}",
                )
                continue
            self.rejected.discard(bound_name(alias))
            self.imports[bound_name(alias)] = self._canonical(module, name)

    def visit_Import(self, node: cst.Import) -> bool:
        if self.function_depth or self.class_depth:
            self.report(node, "nested-import", "imports are only allowed at module level: move it to the top")
        return False

    def visit_ImportFrom(self, node: cst.ImportFrom) -> bool:
        if self.function_depth or self.class_depth:
            self.report(node, "nested-import", "imports are only allowed at module level: move it to the top")
        return False
