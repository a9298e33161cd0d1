"""The validator's vocabulary: its rules and what it reports."""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["RULES", "Violation", "ValidationReport"]

RULES: dict[str, str] = {
    "syntax": "The file must parse as Python 3.11.",
    "encoding-declaration": "No coding declaration but utf-8 (the executed text must be the checked text).",
    "non-ascii-name": "Identifiers are ASCII (Python folds look-alike letters: `ｅｖａｌ` is `eval`).",
    "size-bytes": "The file may not exceed the table's byte limit (UTF-8).",
    "size-lines": "The file may not exceed the table's line limit.",
    "size-nodes": "The file may not exceed the table's number of Python AST nodes (items of literals and "
    "arguments of calls count three times: that is what they cost the checks).",
    "size-depth": "Syntax may not nest deeper than the table's depth limit.",
    "unverifiable": "A file the validator cannot check completely (too deep for the parser, or an internal "
    "error) is rejected, never passed.",
    "long-string": "A string literal may not exceed the table's length limit.",
    "import-not-allowed": "Only modules of the allowed imports; `import M` only where M is allowed whole.",
    "import-name-not-allowed": "`from M import name` only for names the table lists for M.",
    "import-star": "`from M import *` is not allowed.",
    "relative-import": "Relative imports only when validating a file of a package (`package=`).",
    "nested-import": "Imports only at module level.",
    "module-statement": "Module level holds only docstrings, imports, literal constants, functions, classes.",
    "no-recipe-class": "The file must define at least one recipe class.",
    "class-base": "A class has exactly one base: a recipe base or an earlier class of the file; no keywords.",
    "class-decorator": "Classes take no decorators.",
    "nested-class": "Classes only at module level.",
    "class-statement": "A class body holds docstrings, `name`, scalar declarations, literal constants, "
    "methods.",
    "scalar-declaration": "`scalar(default, low, high, log=, integer=)` with literals and a valid range.",
    "reserved-name": "Recipe machinery (`declared_scalars`, `scalar_values`, dunders) may not be redefined; "
    "`name` only as a string, hooks only as methods.",
    "dunder-def": "No function or method with a dunder name (`__init__`, `__getattr__`…).",
    "hook-signature": "A hook is a plain method with exactly the hook's parameter names, in order.",
    "frozen-hook": "Hooks outside the profile's mutable hooks may not be overridden.",
    "decorator": "Functions take no decorator but `@staticmethod`.",
    "default-value": "Parameter defaults are plain literals (they are evaluated on import).",
    "annotation": "Annotations only name types: names, attributes, subscripts, `|`, literals.",
    "forbidden-name": "Forbidden builtins and dunder names may not appear at all.",
    "forbidden-attribute": "No attributes with a forbidden prefix (`_`, `register_`) or forbidden by name.",
    "dynamic-attribute": "getattr/setattr/delattr/hasattr only with a string-literal attribute.",
    "call-not-allowed": "Module functions and builtins are called only if on the allowed calls.",
    "reference-not-allowed": "Modules are used only through their attributes; module attributes and builtins "
    "used as values must be allowed.",
    "global-statement": "No `global` or `nonlocal`.",
    "async": "No `async def`, `await`, `async for` or `async with`.",
    "yield": "No generators (`yield`, `yield from`).",
    "del-attribute": "No `del obj.attr`.",
    "constructor-alias": "Classes and constructors that may not be called (`torch.Tensor`, `nn.Module`, "
    "`torch.Generator`, `torch.device`…) appear only in annotations, isinstance() and comparisons: "
    "never bound to a name, stored, passed or returned, so no alias can call them.",
    "module-mutation": "The model, its submodules and parameters are never mutated by item or sequence "
    "operations (`m[i] = …`, `del m[i]`, `m.insert/append/extend/pop/remove(…)`) nor stored in containers: "
    "like attribute assignment, this would change the architecture or keep the model past the hook.",
    "attribute-assignment": "No attribute assignment (setattr/delattr included): state lives in server_state "
    "and ctx.client_state, never on objects shared by clients, server and engine.",
    "with-not-allowed": "`with` only on the allowed context managers (`torch.no_grad()`…).",
    "bare-except": "No bare `except:` (it would swallow the sandbox's interrupts).",
}
"""Rule id -> what the rule requires (the table in ``docs/surface.md``)."""


@dataclass(frozen=True)
class Violation:
    """One broken rule: where (1-based line and column) and what to do about it."""

    rule: str
    line: int
    column: int
    message: str
    filename: str = "candidate.py"

    def __str__(self) -> str:
        return f"{self.filename}:{self.line}:{self.column}: [{self.rule}] {self.message}"


@dataclass(frozen=True)
class ValidationReport:
    """All violations of one candidate (empty: accepted)."""

    filename: str
    violations: list[Violation] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.violations

    @property
    def rules(self) -> list[str]:
        """Rule ids of the violations, in report order."""
        return [v.rule for v in self.violations]

    def in_brief(self) -> str:
        """One line for an error message: how many violations, and the first one."""
        first = self.violations[0]
        count = len(self.violations)
        return f"{count} violation(s); first: [{first.rule}] line {first.line}: {first.message}"

    def __str__(self) -> str:
        if self.ok:
            return f"{self.filename}: accepted"
        return "\n".join(map(str, self.violations))
