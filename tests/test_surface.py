"""The recipe surface: tables, the static validator, the normalised hash and the generated docs."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
import torch

import afr.recipe
from afr.errors import ConfigError
from afr.profiles import load_profile_config, make_profile, profile_names
from afr.recipe import FedAvg, Recipe
from afr.surface import (
    HOOKS,
    RULES,
    ValidationReport,
    Violation,
    all_tables,
    normalized_ast_hash,
    render_surface_docs,
    surface_table,
    validate,
)
from afr.surface.__main__ import main
from afr.surface._docs import ACCEPTED_EXAMPLE, REJECTED_EXAMPLE

ROOT = Path(__file__).resolve().parents[1]
RECIPE_DIR = ROOT / "afr" / "recipe"
SHIPPED = ("fedavg", "fedprox", "fedavgm", "fedopt", "scaffold")
PROFILE_NAMES = profile_names()


def _absolute(source: str) -> str:
    """A shipped recipe with its relative imports rewritten as ``from afr.recipe import ...``."""
    return re.sub(r"^from \.\w* import ", "from afr.recipe import ", source, flags=re.MULTILINE)


# --- tables ------------------------------------------------------------------------------------------


def test_one_table_per_profile() -> None:
    tables = all_tables()
    assert list(tables) == PROFILE_NAMES
    for name, table in tables.items():
        assert table.profile == name
        assert table.baseline == "FedAvg"
        assert table.model_variants == tuple(sorted(make_profile(name).model_variants))
        assert dict(table.tunable_scalars) == make_profile(name).scalar_space(FedAvg)
        assert table.contract == make_profile(name).contract


def test_table_is_derived_from_the_recipe_api() -> None:
    table = surface_table("heart_disease")
    bases = {
        n
        for n in afr.recipe.__all__
        if isinstance(c := getattr(afr.recipe, n), type) and issubclass(c, FedAvg)
    }
    assert set(table.recipe_bases) == bases == {
        "FedAvg", "FedProx", "FedAvgM", "FedOpt", "FedAdam", "FedYogi", "FedAdagrad", "Scaffold"
    }  # fmt: skip
    assert tuple(table.mutable_hooks) == HOOKS
    assert table.mutable_hooks["aggregate"] == ("self", "global_params", "updates", "server_state")
    assert table.mutable_hooks["local_objective"] == ("self", "task_loss", "model", "ctx")
    assert all(callable(getattr(Recipe, hook)) for hook in HOOKS)
    assert table.reserved_names == {"name", "declared_scalars", "scalar_values"}
    recipe_names = table.allowed_imports["afr.recipe"]
    assert recipe_names is not None and "FedAvg" in recipe_names and "scalar" in recipe_names
    assert "recipe_class" not in recipe_names and "RECIPES" not in recipe_names


def test_every_allowed_dotted_name_exists() -> None:
    """No typo in the curated lists: each torch/F/afr.recipe name resolves to a real object."""
    table = surface_table("synthetic")
    modules = {"torch": torch, "torch.linalg": torch.linalg, "torch.nn": torch.nn}
    modules |= {"torch.nn.functional": torch.nn.functional, "afr.recipe": afr.recipe}
    for dotted in sorted(table.allowed_calls | table.allowed_values):
        module, _, attr = dotted.rpartition(".")
        if module in modules:
            assert hasattr(modules[module], attr), dotted


def test_surface_block_of_the_profile_yaml() -> None:
    cfg = load_profile_config("heart_disease")
    cfg["surface"] = {
        "mutable_hooks": ["local_objective", "aggregate"],
        "extra_calls": ["torch.special.expit"],
        "max_lines": 50,
    }
    table = surface_table("heart_disease", cfg)
    assert tuple(table.mutable_hooks) == ("local_objective", "aggregate")
    assert "client_lr" in table.frozen_hooks and table.max_lines == 50
    source = (
        "import torch\n"
        "from afr.recipe import FedAvg\n"
        "\n"
        "\n"
        "class R(FedAvg):\n"
        "    def client_lr(self, round_idx, client):\n"
        "        return torch.special.expit(torch.tensor(0.0)).item()\n"
    )
    report = validate(source, table)
    assert report.rules == ["frozen-hook"] and report.violations[0].line == 6
    assert validate(source, surface_table("heart_disease")).rules == ["call-not-allowed"]
    cfg["surface"] = {"mutable_hook": ["aggregate"]}
    with pytest.raises(ConfigError, match="unknown surface key"):
        surface_table("heart_disease", cfg)
    cfg["surface"] = {"mutable_hooks": ["aggregate", "train"]}
    with pytest.raises(ConfigError, match="unknown hook"):
        surface_table("heart_disease", cfg)


# --- shipped recipes ---------------------------------------------------------------------------------


@pytest.mark.parametrize("profile", PROFILE_NAMES)
@pytest.mark.parametrize("recipe", SHIPPED)
def test_shipped_recipes_validate_in_their_package(profile: str, recipe: str) -> None:
    source = (RECIPE_DIR / f"{recipe}.py").read_text()
    report = validate(source, surface_table(profile), filename=f"{recipe}.py", package="afr.recipe")
    assert report.ok, str(report)


@pytest.mark.parametrize("profile", PROFILE_NAMES)
@pytest.mark.parametrize("recipe", [r for r in SHIPPED if r != "fedavg"])
def test_shipped_recipes_with_absolute_imports_pass_as_candidates(profile: str, recipe: str) -> None:
    source = _absolute((RECIPE_DIR / f"{recipe}.py").read_text())
    assert "from ." not in source
    report = validate(source, surface_table(profile), filename=f"{recipe}.py")
    assert report.ok, str(report)


def test_baseline_with_absolute_imports_is_not_a_candidate() -> None:
    """Only the baseline's own file in afr.recipe derives from Recipe; a candidate derives from FedAvg."""
    source = _absolute((RECIPE_DIR / "fedavg.py").read_text())
    report = validate(source, surface_table("synthetic"))
    assert report.rules == ["class-base"]
    renamed = source.replace("class FedAvg(Recipe)", "class MyAvg(FedAvg)").replace(
        "from afr.recipe import ClientUpdate", "from afr.recipe import FedAvg, ClientUpdate"
    )
    assert validate(renamed, surface_table("synthetic")).ok


def test_relative_imports_need_a_package() -> None:
    source = (RECIPE_DIR / "fedprox.py").read_text()
    report = validate(source, surface_table("synthetic"))
    assert "relative-import" in report.rules
    assert [v.line for v in report.violations if v.rule == "relative-import"] == [7, 8, 9, 10]
    beyond = validate(
        source.replace("from .fedavg", "from ...fedavg"), surface_table("synthetic"), package="afr.recipe"
    )
    assert "relative-import" in beyond.rules


def test_accepted_example_and_a_typical_edit() -> None:
    for table in all_tables().values():
        assert validate(ACCEPTED_EXAMPLE, table).ok
    edit = (
        "from __future__ import annotations\n"
        "\n"
        "import math\n"
        "\n"
        "import torch\n"
        "import torch.nn.functional as F\n"
        "from torch import nn\n"
        "\n"
        "from afr.recipe import FedProx, scalar\n"
        "\n"
        "EPS = 1e-8\n"
        "\n"
        "\n"
        "def cosine(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:\n"
        "    return F.cosine_similarity(a.flatten(), b.flatten(), dim=0)\n"
        "\n"
        "\n"
        "class Sampled(FedProx):\n"
        '    name = "sampled"\n'
        "    fraction = scalar(0.5, 0.1, 1.0)\n"
        "    warmup: int = 2\n"
        "\n"
        "    def select_clients(self, round_idx, num_clients, rng):\n"
        "        k = max(1, math.ceil(self.fraction * num_clients))\n"
        "        return sorted(torch.randperm(num_clients, generator=rng)[:k].tolist())\n"
        "\n"
        "    def client_lr(self, round_idx, client):\n"
        "        scale = min(1.0, (round_idx + 1) / self.warmup)\n"
        "        return self.lr * scale\n"
        "\n"
        "    def local_objective(self, task_loss, model: nn.Module, ctx):\n"
        "        loss = super().local_objective(task_loss, model, ctx)\n"
        "        with torch.no_grad():\n"
        "            params = model.named_parameters()\n"
        "            drift = sum(float(cosine(p, ctx.global_params[n])) for n, p in params)\n"
        "        if getattr(self, 'fraction', 1.0) < 1.0 and not math.isnan(drift):\n"
        "            loss = loss + EPS * drift\n"
        "        return loss\n"
    )
    report = validate(edit, surface_table("heart_disease"))
    assert report.ok, str(report)


# --- hostile candidates ------------------------------------------------------------------------------

HEAD = """from afr.recipe import FedAvg
import torch


class R(FedAvg):
    name = "r"

    def aggregate(self, global_params, updates, server_state):
"""

OBJECTIVE = """from afr.recipe import FedAvg
import torch


class R(FedAvg):
    name = "r"

    def local_objective(self, task_loss, model, ctx):
"""

HOSTILE = {
    "tensor-alias": (
        HEAD + "        T = torch.Tensor  # <-\n        x = T(10)\n        return global_params\n",
        "constructor-alias",
    ),
    "generator-passed": (
        HEAD + "        x = list(map(torch.Generator, [0]))  # <-\n        return global_params\n",
        "constructor-alias",
    ),
    "module-insert": (
        OBJECTIVE + "        model.insert(0, model[0])  # <-\n        return task_loss\n",
        "module-mutation",
    ),
    "module-del-item": (
        OBJECTIVE + "        del model[1]  # <-\n        return task_loss\n",
        "module-mutation",
    ),
    "module-stored": (
        OBJECTIVE + "        ctx.client_state['m'] = [model]  # <-\n        return task_loss\n",
        "module-mutation",
    ),
    "import-os": ("import os  # <-\n" + HEAD + "        return global_params\n", "import-not-allowed"),
    "dunder-import": (
        HEAD + "        __import__('os')  # <-\n        return global_params\n",
        "forbidden-name",
    ),
    "subclasses": (
        HEAD + "        x = ().__class__.__bases__[0].__subclasses__()  # <-\n        return global_params\n",
        "forbidden-attribute",
    ),
    "getattr-dynamic": (
        HEAD + "        name = 'lr'\n        return getattr(self, name)  # <-\n",
        "dynamic-attribute",
    ),
    "getattr-dunder": (HEAD + "        return getattr(self, '__dict__')  # <-\n", "forbidden-attribute"),
    "open": (
        HEAD + "        text = open('/etc/passwd').read()  # <-\n        return global_params\n",
        "forbidden-name",
    ),
    "eval": (HEAD + "        eval('1')  # <-\n        return global_params\n", "forbidden-name"),
    "global": (HEAD + "        global X  # <-\n        return global_params\n", "global-statement"),
    "module-call": ("print(1)  # <-\n" + HEAD + "        return global_params\n", "module-statement"),
    "not-fedavg": (
        "from torch import nn\n\n\nclass R(nn.Module):  # <-\n    name = 'r'\n",
        "class-base",
    ),
    "hook-params": (
        HEAD
        + "        return global_params\n\n    def client_lr(self, rnd, client):  # <-\n        return 0.1\n",
        "hook-signature",
    ),
    "init": (
        HEAD + "        return global_params\n\n    def __init__(self):  # <-\n        pass\n",
        "dunder-def",
    ),
    "declared-scalars": (
        HEAD + "        return global_params\n\n    def declared_scalars(self):  # <-\n        return {}\n",
        "reserved-name",
    ),
    "torch-load": (HEAD + "        return torch.load('/tmp/w.pt')  # <-\n", "call-not-allowed"),
    "torch-save": (
        HEAD + "        torch.save(global_params, '/tmp/w.pt')  # <-\n        return global_params\n",
        "call-not-allowed",
    ),
    "alias-torch-load": (
        HEAD + "        load = torch.load  # <-\n        return load('/tmp/w.pt')\n",
        "reference-not-allowed",
    ),
    "module-as-value": (
        HEAD + "        t = torch  # <-\n        return t.load('/tmp/w.pt')\n",
        "reference-not-allowed",
    ),
    "param-data": (
        HEAD
        + "        for p in global_params.values():\n            p.data.add_(1)  # <-\n        return p\n",
        "forbidden-attribute",
    ),
    "afr-budget": (
        "import afr.budget  # <-\n" + HEAD + "        return global_params\n",
        "import-not-allowed",
    ),
    "make-profile": (
        "from afr.profiles import make_profile  # <-\n" + HEAD + "        return global_params\n",
        "import-not-allowed",
    ),
    "recipe-class": (
        "from afr.recipe import recipe_class  # <-\n" + HEAD + "        return global_params\n",
        "import-name-not-allowed",
    ),
    "private-version": (HEAD + "        return global_params['x']._version  # <-\n", "forbidden-attribute"),
    "huge-string": (
        HEAD + "        s = '" + "x" * 2_500 + "'  # <-\n        return global_params\n",
        "long-string",
    ),
    "format-walk": (
        HEAD + "        s = '{0.__class__}'.format(self)  # <-\n        return global_params\n",
        "forbidden-attribute",
    ),
    "register-hook": (
        HEAD + "        for p in global_params.values():\n            p.register_hook(abs)  # <-\n"
        "        return global_params\n",
        "forbidden-attribute",
    ),
    "print": (HEAD + "        print(updates)  # <-\n        return global_params\n", "call-not-allowed"),
    "type": (HEAD + "        return type(self)  # <-\n", "forbidden-name"),
    "builtins": (HEAD + "        return __builtins__  # <-\n", "forbidden-name"),
    "nested-import": (HEAD + "        import math  # <-\n        return global_params\n", "nested-import"),
    "with-open": (
        HEAD + "        with self.helper():  # <-\n            pass\n        return global_params\n",
        "with-not-allowed",
    ),
    "yield": (HEAD + "        yield global_params  # <-\n", "yield"),
    "await": (
        HEAD + "        return global_params\n\n    async def helper(self):  # <-\n        pass\n",
        "async",
    ),
    "del-attr": (HEAD + "        del self.lr  # <-\n        return global_params\n", "del-attribute"),
    "bare-except": (
        HEAD
        + "        try:\n            pass\n        except:  # <-\n            pass\n        return updates\n",
        "bare-except",
    ),
    "decorator": (
        HEAD + "        return global_params\n\n    @torch.no_grad()  # <-\n    def helper(self):\n"
        "        pass\n",
        "decorator",
    ),
    "class-decorator": (
        "from afr.recipe import FedAvg\n\n\n@staticmethod  # <-\nclass R(FedAvg):\n    pass\n",
        "class-decorator",
    ),
    "metaclass": (
        "from afr.recipe import FedAvg\n\n\nclass R(FedAvg, metaclass=abs):  # <-\n    pass\n",
        "class-base",
    ),
    "class-call": (
        "from afr.recipe import FedAvg\nimport torch\n\n\nclass R(FedAvg):\n    w = torch.ones(3)  # <-\n",
        "class-statement",
    ),
    "name-not-string": (
        "from afr.recipe import FedAvg\n\n\nclass R(FedAvg):\n    name = 3  # <-\n",
        "reserved-name",
    ),
    "bad-scalar": (
        "from afr.recipe import FedAvg, scalar\n\n\nclass R(FedAvg):\n    mu = scalar(5.0, 1.0, 2.0)  # <-\n",
        "scalar-declaration",
    ),
    "nested-class": (
        HEAD + "        return global_params\n\n    class Inner(FedAvg):  # <-\n        pass\n",
        "nested-class",
    ),
    "module-if": (
        "from afr.recipe import FedAvg\n\nif True:  # <-\n    X = 1\n\n\nclass R(FedAvg):\n    pass\n",
        "module-statement",
    ),
    "module-lambda": (
        "from afr.recipe import FedAvg\n\nf = lambda: 1  # <-\n\n\nclass R(FedAvg):\n    pass\n",
        "module-statement",
    ),
    "no-class": ("import torch  # <-\n\nX = 1\n", "no-recipe-class"),
    "default-capture": (
        HEAD + "        return global_params\n\n    def helper(self, f=print):  # <-\n        return f\n",
        "default-value",
    ),
    "annotation-call": (
        HEAD + "        return global_params\n\n    def helper(self) -> torch.ones(10**9):  # <-\n"
        "        pass\n",
        "annotation",
    ),
    "lookalike": (HEAD + "        return \uff45\uff56\uff41\uff4c('1')  # <-\n", "non-ascii-name"),
    "utf7": (
        "# -*- coding: utf-7 -*-  # <-\n" + HEAD + "        return global_params\n",
        "encoding-declaration",
    ),
    "star": ("from afr.recipe import *  # <-\n\n\nclass R(FedAvg):\n    pass\n", "import-star"),
    "builtin-ref": (
        HEAD + "        f = iter  # ok\n        g = repr  # <-\n        return global_params\n",
        "reference-not-allowed",
    ),
    "frame-walk": (
        HEAD + "        g = (x for x in [1])\n        return g.gi_frame.f_back  # <-\n",
        "forbidden-attribute",
    ),
    "monkeypatch": (
        "import torch.nn.functional as F\n"
        + HEAD
        + "        F.mse_loss = abs  # <-\n        return updates\n",
        "attribute-assignment",
    ),
    "monkeypatch-loop": (
        HEAD + "        for torch.sigmoid in [abs]:  # <-\n            pass\n        return updates\n",
        "attribute-assignment",
    ),
    "replace-hook": (
        HEAD + "        self.client_lr = abs  # <-\n        return global_params\n",
        "attribute-assignment",
    ),
    "shadow-scalar": (
        HEAD + "        setattr(self, 'lr', 1.0)  # <-\n        return global_params\n",
        "attribute-assignment",
    ),
    "syntax": (HEAD + "        return global_params +  # <-\n", "syntax"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_candidate_is_rejected(case: str) -> None:
    source, rule = HOSTILE[case]
    report = validate(source, surface_table("heart_disease"), filename=f"{case}.py")
    assert not report.ok
    (line,) = [i for i, text in enumerate(source.splitlines(), start=1) if "# <-" in text]
    hits = [v for v in report.violations if v.rule == rule]
    assert hits, f"expected [{rule}], got:\n{report}"
    assert line in [v.line for v in hits], f"expected [{rule}] on line {line}:\n{report}"
    assert all(v.rule in RULES for v in report.violations)


def test_every_rule_has_a_hostile_case_or_a_test() -> None:
    elsewhere = {"frozen-hook", "relative-import", "size-bytes", "size-lines", "size-nodes", "size-depth"}
    elsewhere |= {"unverifiable"}
    assert set(RULES) == {rule for _, rule in HOSTILE.values()} | elsewhere


def test_size_limits() -> None:
    table = surface_table("tcga_brca")
    ok = HEAD + "        return global_params\n"
    long_file = ok + "\n" * 500
    report = validate(long_file, table)
    assert report.rules == ["size-lines"] and report.violations[0].line == table.max_lines + 1
    padded = ok + "# " + "x" * 25_000 + "\n"
    report = validate(padded, table)
    assert report.rules == ["size-bytes"]
    many = ok + "".join(f"C{i} = ({i}, {i})\n" for i in range(1_000))
    assert "size-nodes" in validate(many, table).rules
    deep = HEAD + "        return " + "-" * 150 + "1\n"
    assert validate(deep, table).rules == ["size-depth"]


@pytest.mark.parametrize(
    "expression",
    [
        "+".join(["1"] * 3000),  # flat in the source, 3000 levels deep in the AST
        " or ".join(["a"] * 2000),  # flat in the AST, 2000 levels deep in libcst
        " ".join(['"a"'] * 3000),  # one constant in the AST, 3000 nested concatenations in libcst
        "f" + "()" * 3000,
        "not " * 1500 + "1",
    ],
)
def test_long_flat_expressions_are_rejected_not_raised(expression: str) -> None:
    """A 4-7 KB file holding one long expression is rejected before any recursive walk (and the AST hash of
    an accepted file never recurses deeper than the depth limit)."""
    source = HEAD + "        x = " + expression + "\n        return global_params\n"
    assert 4_000 < len(source) < 20_000
    report = validate(source, surface_table("synthetic"))
    assert "size-depth" in report.rules and set(report.rules) <= {"size-depth", "size-nodes"}, report


def test_validator_internal_error_rejects(monkeypatch: pytest.MonkeyPatch) -> None:
    import afr.surface._validator as validator

    def boom(*args: object) -> None:
        raise RecursionError("deep")

    monkeypatch.setattr(validator, "_rule_violations", boom)
    report = validate(HEAD + "        return global_params\n", surface_table("synthetic"))
    assert report.rules == ["unverifiable"] and not report.ok


def test_several_violations_are_reported_at_once() -> None:
    report = validate(REJECTED_EXAMPLE, surface_table("synthetic"))
    assert report.rules == [
        "import-not-allowed",
        "forbidden-name",
        "call-not-allowed",
        "forbidden-attribute",
        "forbidden-attribute",
        "forbidden-attribute",
    ]
    assert [v.line for v in report.violations] == [3, 14, 15, 16, 16, 16]


def test_syntax_error_is_one_violation() -> None:
    report = validate("class R(FedAvg:\n    pass\n", surface_table("synthetic"), filename="x.py")
    assert report.rules == ["syntax"]
    assert str(report.violations[0]).startswith("x.py:1:")


def test_violation_format() -> None:
    source = HEAD + "        return updates.__class__\n"
    report = validate(source, surface_table("synthetic"))
    (violation,) = report.violations
    assert violation == Violation("forbidden-attribute", 9, 24, violation.message, "candidate.py")
    assert str(violation).startswith(
        "candidate.py:9:24: [forbidden-attribute] attribute '__class__' is not allowed: "
    )
    assert isinstance(report, ValidationReport) and str(
        validate(ACCEPTED_EXAMPLE, surface_table("synthetic"))
    ) == ("candidate.py: accepted")


def test_no_state_on_self_or_shared_objects() -> None:
    # self is shared by the server and every client: state on it would bypass the contract
    for line in (
        "        self.rounds_seen = 1\n",
        "        setattr(self, 'last', len(updates))\n",
        "        self.t.float = None\n",
    ):
        report = validate(HEAD + line + "        return global_params\n", surface_table("synthetic"))
        assert "attribute-assignment" in report.rules, line
    ok = HEAD + "        server_state['n'] = server_state.get('n', 0) + 1\n        return global_params\n"
    assert validate(ok, surface_table("synthetic")).ok


def test_mutable_constants_and_defaults_are_rejected() -> None:
    table = surface_table("synthetic")
    shared = "CACHE = {}\n" + HEAD + "        return global_params\n"
    assert "module-statement" in validate(shared, table).rules
    default = HEAD.replace("server_state)", "server_state, memo=[])") + "        return global_params\n"
    assert not validate(default, table).ok
    assert validate("__all__ = ['R']\n" + HEAD + "        return global_params\n", table).ok
    assert validate("LIMITS = (1, 2)\n" + HEAD + "        return global_params\n", table).ok


def test_getattr_with_a_literal_is_allowed() -> None:
    source = HEAD + "        if hasattr(self, 'lr'):\n            return getattr(self, 'server_lr', 1.0)\n"
    source += "        return global_params\n"
    assert validate(source, surface_table("synthetic")).ok


def test_locals_shadowing_builtins_and_imports() -> None:
    source = HEAD + "        F = updates\n        return [F.copy() for print in [1]]\n"
    assert validate(source, surface_table("synthetic")).ok


# --- hash ----------------------------------------------------------------------------------------------


def test_hash_ignores_comments_formatting_and_docstrings() -> None:
    source = (RECIPE_DIR / "fedprox.py").read_text()
    same = source.replace(
        '"""FedProx (Li et al., 2020): FedAvg plus a proximal term in the local objective."""', ""
    )
    same = same.replace(
        "    mu = scalar(0.01, 1e-4, 10.0, log=True)", "    mu = scalar(0.01,  1e-4,\n  10.0, log=True)  # mu"
    )
    same = same.replace('"""Local loss = task loss', '"""Another docstring. Local loss = task loss')
    assert same != source
    assert normalized_ast_hash(same) == normalized_ast_hash(source)
    edited = source.replace("self.mu / 2", "self.mu / 3")
    assert normalized_ast_hash(edited) != normalized_ast_hash(source)
    assert re.fullmatch(r"v2:[0-9a-f]{64}", normalized_ast_hash(source))
    assert normalized_ast_hash("def f():\n    'doc'\n") == normalized_ast_hash("def f():\n    pass\n")


# --- docs and CLI --------------------------------------------------------------------------------------


def test_docs_are_up_to_date() -> None:
    path = ROOT / "docs" / "surface.md"
    assert path.is_file(), "docs/surface.md is missing: run `python -m afr.surface docs`"
    assert render_surface_docs() == path.read_text(encoding="utf-8"), (
        "docs/surface.md is out of date: run `python -m afr.surface docs`"
    )


def test_docs_content() -> None:
    text = render_surface_docs()
    assert all(f"`{rule}`" in text for rule in RULES)
    assert all(f"## Profile `{name}`" in text for name in PROFILE_NAMES)
    assert (RECIPE_DIR / "fedavg.py").read_text().rstrip("\n") in text
    for violation in validate(REJECTED_EXAMPLE, surface_table("heart_disease")).violations:
        assert str(violation) in text
    assert str(ROOT) not in text


def test_cli_docs_check_and_validate(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "surface.md"
    assert main(["docs", "--check", "--output", str(out)]) == 1
    assert "run `python -m afr.surface docs`" in capsys.readouterr().err
    assert main(["docs", "--output", str(out)]) == 0
    assert main(["docs", "--check", "--output", str(out)]) == 0
    out.write_text(out.read_text() + "edited\n")
    assert main(["docs", "--check", "--output", str(out)]) == 1
    assert "out of date" in capsys.readouterr().err
    good, bad = tmp_path / "good.py", tmp_path / "bad.py"
    good.write_text(ACCEPTED_EXAMPLE)
    bad.write_text(REJECTED_EXAMPLE)
    assert main(["validate", str(good), "--profile", "synthetic"]) == 0
    assert main(["validate", str(bad)]) == 1
    assert "[forbidden-name]" in capsys.readouterr().out


# --- speed ---------------------------------------------------------------------------------------------


def test_validation_speed_is_reported() -> None:
    source = (RECIPE_DIR / "fedopt.py").read_text()
    table = surface_table("heart_disease")
    validate(source, table, package="afr.recipe")
    runs = 50
    start = time.perf_counter()
    for _ in range(runs):
        validate(source, table, package="afr.recipe")
    per_run = (time.perf_counter() - start) / runs * 1e3
    print(f"validate(afr/recipe/fedopt.py): {per_run:.1f} ms per run")
