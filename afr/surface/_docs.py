"""Render ``docs/surface.md`` from the surface tables (deterministic: sorted, no timestamps, no paths)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from ..recipe import DEFAULT_BASELINE, RecipeSource, recipe_source
from ._report import RULES
from ._table import RECIPE_PACKAGE, SurfaceTable, all_tables, surface_table
from ._validator import validate

__all__ = ["render_surface_docs", "ACCEPTED_EXAMPLE", "REJECTED_EXAMPLE"]

ACCEPTED_EXAMPLE = '''\
"""FedAvg with FedProx's proximal term on the clients and heavy-ball momentum on the server."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from afr.recipe import ClientUpdate, FedAvg, LocalContext, Params, proximal_term, scalar, weighted_mean_delta


class ProxMomentum(FedAvg):
    """Local loss + mu/2 ||θ - x||²; v <- momentum * v + Δ ; x <- x + server_lr * v."""

    name = "prox_momentum"

    mu = scalar(0.01, 1e-4, 1.0, log=True)
    momentum = scalar(0.9, 0.0, 0.99)

    def local_objective(self, task_loss: Tensor, model: nn.Module, ctx: LocalContext) -> Tensor:
        return task_loss + self.mu / 2 * proximal_term(model, ctx.global_params)

    def aggregate(
        self, global_params: Params, updates: list[ClientUpdate], server_state: dict[str, Any]
    ) -> Params:
        delta = weighted_mean_delta(updates)
        velocity = server_state.setdefault("velocity", {k: torch.zeros_like(d) for k, d in delta.items()})
        for k, d in delta.items():
            velocity[k] = self.momentum * velocity[k] + d
        return {k: global_params[k] + self.server_lr * velocity[k] for k in global_params}
'''

REJECTED_EXAMPLE = '''\
"""Reads a file, loads a pickle and climbs to object's subclasses: rejected before it runs."""

import os

import torch

from afr.recipe import FedAvg


class Sneaky(FedAvg):
    name = "sneaky"

    def aggregate(self, global_params, updates, server_state):
        secret = open("/etc/passwd").read()
        weights = torch.load("/tmp/weights.pt")
        classes = ().__class__.__bases__[0].__subclasses__()
        server_state["loot"] = (secret, weights, classes, os.environ)
        return super().aggregate(global_params, updates, server_state)
'''


def _code(names: Iterable[str]) -> str:
    return ", ".join(f"`{n}`" for n in sorted(names)) or "none"


def _number(value: float) -> str:
    return f"{value:g}"


def _grouped(names: Iterable[str]) -> dict[str, list[str]]:
    groups: dict[str, list[str]] = defaultdict(list)
    for name in names:
        module, _, attr = name.rpartition(".")
        groups[module or "builtins"].append(attr)
    return {k: sorted(v) for k, v in sorted(groups.items(), key=lambda kv: (kv[0] != "builtins", kv[0]))}


def _profile_section(table: SurfaceTable) -> list[str]:
    return [
        *_hooks_and_scalars(table),
        *_allowed_section(table),
        *_forbidden_and_limits(table),
        *_contract_section(table),
        "",
    ]


def _hooks_and_scalars(table: SurfaceTable) -> list[str]:
    out = [f"## Profile `{table.profile}`", ""]
    out += [
        f"- Baseline: `{table.baseline}` from `{table.baseline_label}` "
        "(the control arm tunes only its scalars).",
        f"- Budget of one FL run: {table.budget.rounds} rounds × {table.budget.local_steps} local steps × "
        f"batch {table.budget.batch_size} (a run may not take more steps).",
        f"- Recipe bases (import from `{RECIPE_PACKAGE}`): {_code(table.recipe_bases)}.",
        f"- Model variants (`model_variant()` returns one): {_code(table.model_variants)}.",
        "",
        "### Mutable hooks",
        "",
    ]
    out += [f"- `{hook}({', '.join(params)})`" for hook, params in table.mutable_hooks.items()]
    if table.frozen_hooks:
        out += ["", f"Frozen on this profile (rule `frozen-hook`): {_code(table.frozen_hooks)}."]
    out += [
        "",
        f"Recipe machinery that may not be redefined (rule `reserved-name`): {_code(table.reserved_names)}"
        " (`name` only as a string literal).",
        "",
        "### Tunable scalar space (baseline scalars, this profile's ranges)",
        "",
        "| scalar | default | low | high | log | integer |",
        "|---|---|---|---|---|---|",
    ]
    for name, s in sorted(table.tunable_scalars.items()):
        row = [f"`{name}`", _number(s.default), _number(s.low), _number(s.high), str(s.log), str(s.integer)]
        out.append("| " + " | ".join(row) + " |")
    return out


def _allowed_section(table: SurfaceTable) -> list[str]:
    out = ["", "### Allowed imports", "", "| module | importable |", "|---|---|"]
    for module, names in sorted(table.allowed_imports.items()):
        what = (
            "`import " + module + "`; `from " + module + " import` any allowed call, value or submodule"
            if names is None
            else _code(names)
        )
        out.append(f"| `{module}` | {what} |")
    out += ["", "### Allowed calls", ""]
    for module, attrs in _grouped(table.allowed_calls).items():
        shown = "every public attribute" if attrs == ["*"] else ", ".join(attrs)
        out.append(f"- `{module}`: {shown}")
    out += [
        "",
        f"`with` only on: {_code(f'{m}()' for m in table.allowed_context_managers)}.",
        "",
        "### Allowed values (usable without calling, besides every allowed call)",
        "",
    ]
    for module, attrs in _grouped(table.allowed_values).items():
        out.append(f"- `{module}`: {', '.join(attrs)}")
    return out


def _forbidden_and_limits(table: SurfaceTable) -> list[str]:
    return [
        "",
        "### Forbidden",
        "",
        f"- Names (also dunder names `__x__`): {_code(table.forbidden_names)}. "
        "`getattr`/`setattr`/`delattr`/`hasattr` are allowed only as a call with a string-literal "
        "attribute that passes the attribute rules.",
        f"- Attribute prefixes: {_code(table.forbidden_attribute_prefixes)}.",
        f"- Attributes: {_code(table.forbidden_attributes)}.",
        "",
        "### Size limits",
        "",
        "| limit | value |",
        "|---|---|",
        f"| bytes (UTF-8) | {table.max_bytes} |",
        f"| lines | {table.max_lines} |",
        f"| Python AST nodes | {table.max_nodes} |",
        f"| nesting depth | {table.max_depth} |",
        f"| string literal characters | {table.max_string} |",
    ]


def _contract_section(table: SurfaceTable) -> list[str]:
    out = [
        "",
        "### Communication contract",
        "",
        "Extras are keyed `<kind>.<parameter name>`, shaped like that parameter, float dtype; "
        "the cap is per payload, in multiples of the model's parameter bytes.",
        "",
        "| direction | kind | byte cap (× parameter bytes) |",
        "|---|---|---|",
    ]
    for direction, extras in (
        ("upload", table.contract.upload_extras),
        ("download", table.contract.download_extras),
    ):
        for kind, cap in sorted(extras.items()):
            out.append(f"| {direction} | `{kind}` | {_number(cap)} |")
        if not extras:
            out.append(f"| {direction} | none | - |")
    return out


def _example_section(tables: dict[str, SurfaceTable], baseline: RecipeSource | None = None) -> list[str]:
    baseline = baseline if baseline is not None else recipe_source(DEFAULT_BASELINE)
    profiles = ", ".join(f"`{p}`" for p in tables)

    def verdict(source: str, package: str | None) -> list[str]:
        reports = {name: validate(source, t, package=package) for name, t in tables.items()}
        texts = {str(r) for r in reports.values()}
        if len(texts) == 1:
            return [f"Result on every profile ({profiles}):", "", "```text", texts.pop(), "```"]
        out = []
        for name, report in reports.items():
            out += [f"Result on `{name}`:", "", "```text", str(report), "```", ""]
        return out

    out = [
        "## Worked example",
        "",
        f"### The baseline: `{baseline.label}`",
        "",
        *(
            [
                "Shipped recipe files use relative imports; they are validated with "
                '`package="afr.recipe"`. FedAvg is the only class that derives from `Recipe` directly.',
            ]
            if baseline.shipped
            else [
                "A user's recipe file: its class is not importable from `afr.recipe`, so a candidate "
                "contains this file's code (edited, or with a subclass of its class appended)."
            ]
        ),
        "",
        "```python",
        baseline.text.rstrip("\n"),
        "```",
        "",
        *verdict(baseline.text, baseline.package),
        "",
        "### An accepted candidate",
        "",
        "A new file derives from the baseline, imports absolutely from `afr.recipe`, declares two new "
        "scalars and overrides two hooks.",
        "",
        "```python",
        ACCEPTED_EXAMPLE.rstrip("\n"),
        "```",
        "",
        *verdict(ACCEPTED_EXAMPLE, None),
        "",
        "### A rejected candidate",
        "",
        "The validator reports every violation at once (positions are 1-based line:column):",
        "",
        "```python",
        REJECTED_EXAMPLE.rstrip("\n"),
        "```",
        "",
        *verdict(REJECTED_EXAMPLE, None),
        "",
    ]
    return out


def _header() -> list[str]:
    out = [
        "# Recipe surface",
        "",
        "<!-- Generated by `python -m afr.surface docs` from afr/surface and the profile YAMLs. "
        "Do not edit by hand. -->",
        "",
        "A candidate recipe is a Python file that an agent writes. Before it ever runs, "
        "`afr.surface.validate(source, surface_table(profile))` checks it statically (libcst) against the "
        "profile's surface table: an allow-list of imports, calls, values, hooks and sizes. A rejected file "
        "never runs; the report lists every violation as "
        "`<file>:<line>:<column>: [<rule>] <what is wrong>: <how to fix it>`.",
        "",
        "Each profile's table is the common default plus the optional `surface:` block of its YAML "
        "(`mutable_hooks`, `extra_calls`, `extra_values`, `extra_imports`, size limits). "
        "`afr.surface.normalized_ast_hash` identifies candidates modulo comments, formatting, docstrings "
        "and the names of the file's own classes, parameters and local variables.",
        "",
        "What an AST cannot see is enforced at run time by the engine: only its own SGD step may change the "
        "parameters (they are compared bit for bit with its snapshot after every hook call; a large model's, "
        "in the sandbox, are read-only memory outside the engine's own writes); "
        "`local_objective` receives the model as a read-only view (`parameters`, `named_parameters`, "
        "`buffers`, `named_buffers`, `state_dict`, submodules; no `half`/`float`/`to`/`apply`/"
        "`load_state_dict` or assignment); every tensor a hook receives is a private copy. A hook that "
        "breaks this fails its run with a message naming the hook and what changed.",
        "",
        "## Rules",
        "",
        "| rule | meaning |",
        "|---|---|",
    ]
    out += [f"| `{rule}` | {text.replace('|', chr(92) + '|')} |" for rule, text in RULES.items()]
    out.append("")
    return out


def render_surface_docs() -> str:
    """The content of ``docs/surface.md``, generated from the tables and the validator."""
    tables = all_tables()
    out = _header()
    for table in tables.values():
        out += _profile_section(table)
    out += _example_section(tables)
    return "\n".join(out).rstrip("\n") + "\n"


def render_profile_surface(table: SurfaceTable | str, baseline: RecipeSource | None = None) -> str:
    """The part of ``docs/surface.md`` that concerns one profile (what an agent is given).

    ``table`` is the campaign's own table (built from its profile, every override applied) or a shipped
    profile's name; ``baseline`` is the recipe the table was built for (default: FedAvg).
    """
    if isinstance(table, str):
        table = surface_table(table)
    out = _header() + _profile_section(table) + _example_section({table.profile: table}, baseline)
    return "\n".join(out).rstrip("\n") + "\n"
