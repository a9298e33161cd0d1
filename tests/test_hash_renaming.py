"""De-duplication up to renaming: ``normalized_ast_hash`` ignores the names of a file's own classes,
parameters and locals, and nothing that can change what the code does."""

from __future__ import annotations

import re

import pytest

from afr.surface import legacy_ast_hash, normalized_ast_hash
from afr.surface._hash import is_legacy_hash

RECIPE = '''
from afr.recipe import FedAvg, scalar


class Tuned(FedAvg):
    """A recipe."""

    mu = scalar(0.01, 1e-4, 10.0, log=True)
    decay = scalar(0.5, 0.0, 1.0)

    def client_lr(self, round_idx, client):
        base = self.lr
        factor = self.decay ** (round_idx / 10)
        return base * factor

    def aggregate(self, global_params, updates, server_state):
        total = sum(u.num_samples for u in updates)
        out = {}
        for name, value in global_params.items():
            step = sum(u.delta[name] * (u.num_samples / total) for u in updates)
            out[name] = value + step
        return out
'''

RENAMED = """
from afr.recipe import FedAvg, scalar


class SomethingElse(FedAvg):
    mu = scalar(0.01, 1e-4, 10.0, log=True)
    decay = scalar(0.5, 0.0, 1.0)

    def client_lr(me, r, c):
        b = me.lr
        f = me.decay ** (r / 10)
        return b * f

    def aggregate(me, params, ups, state):
        n = sum(x.num_samples for x in ups)
        result = {}
        for key, v in params.items():
            d = sum(y.delta[key] * (y.num_samples / n) for y in ups)
            result[key] = v + d
        return result
"""


def test_renamed_copy_hashes_equal() -> None:
    assert RENAMED != RECIPE
    assert normalized_ast_hash(RENAMED) == normalized_ast_hash(RECIPE)
    assert legacy_ast_hash(RENAMED) != legacy_ast_hash(RECIPE)  # the old hash saw the names
    assert re.fullmatch(r"v2:[0-9a-f]{64}", normalized_ast_hash(RECIPE))
    assert is_legacy_hash(legacy_ast_hash(RECIPE)) and not is_legacy_hash(normalized_ast_hash(RECIPE))


@pytest.mark.parametrize(
    ("old", "new"),
    [
        # two locals swap roles
        ("        return base * factor\n", "        return factor * base\n"),
        (
            "        factor = self.decay ** (round_idx / 10)\n",
            "        factor = self.decay ** (client / 10)\n",
        ),
        # another constant
        ("(round_idx / 10)", "(round_idx / 20)"),
        # another declared scalar name (an attribute) and another baseline attribute
        ("decay = scalar(0.5, 0.0, 1.0)", "gamma = scalar(0.5, 0.0, 1.0)"),
        ("base = self.lr", "base = self.client_lr_base"),
        # another hook name, another global, another keyword argument
        ("def client_lr(", "def local_steps("),
        ("out = {}", "out = dict()"),
        ("mu = scalar(0.01, 1e-4, 10.0, log=True)", "mu = scalar(0.01, 1e-4, 10.0, log=False)"),
        # a parameter's position changes which argument it receives
        ("def client_lr(self, round_idx, client)", "def client_lr(self, client, round_idx)"),
    ],
)
def test_semantically_different_files_do_not_collide(old: str, new: str) -> None:
    changed = RECIPE.replace(old, new)
    assert changed != RECIPE
    assert normalized_ast_hash(changed) != normalized_ast_hash(RECIPE)


def test_free_variables_of_nested_scopes_keep_their_binding() -> None:
    outer = "def f(a):\n    def g(b):\n        return b + {}\n    return g\n"
    assert normalized_ast_hash(outer.format("a")) != normalized_ast_hash(outer.format("b"))
    comp = "def f(a, b):\n    return [x + {} for x in b]\n"
    assert normalized_ast_hash(comp.format("a")) != normalized_ast_hash(comp.format("x"))
    # ... while renaming both scopes consistently is a duplicate
    renamed = "def f(p):\n    def h(q):\n        return q + p\n    return h\n"
    assert normalized_ast_hash(outer.format("a")) == normalized_ast_hash(renamed)  # g/h: f's local
    # f is a module-level function (a global): its name stays
    assert normalized_ast_hash(outer.format("a")) != normalized_ast_hash(renamed.replace("def f", "def e"))


def test_parameters_named_by_keyword_keep_their_names() -> None:
    # h(a=1, b=2) with a - b, versus the same with the parameters listed the other way round: not a copy
    first = "def h(a, b):\n    return a - b\n\nx = h(a=1, b=2)\n"
    second = "def h(b, a):\n    return b - a\n\nx = h(a=1, b=2)\n"
    assert normalized_ast_hash(first) != normalized_ast_hash(second)
    # with **mapping no parameter is renamed
    spread = "def h(a, b):\n    return a - b\n\nx = h(**{'a': 1, 'b': 2})\n"
    assert normalized_ast_hash(spread) != normalized_ast_hash(spread.replace("(a, b)", "(b, a)"))
    # keyword-only parameters are always called by name
    kw = "def h(*, a):\n    return a\n"
    assert normalized_ast_hash(kw) != normalized_ast_hash(kw.replace("a", "z"))


def test_reflective_files_and_globals_are_not_renamed() -> None:
    reflective = "def f(a):\n    return locals()['a']\n"
    assert normalized_ast_hash(reflective) != normalized_ast_hash(reflective.replace("a", "b"))
    # module-level functions, variables and imports are globals: their names stay
    assert normalized_ast_hash("def f():\n    return 1\n") != normalized_ast_hash("def g():\n    return 1\n")
    assert normalized_ast_hash("import math\ny = math.pi\n") != normalized_ast_hash(
        "import math as m\ny = m.pi\n"
    )
    # a class named by a string (__all__, getattr) keeps its name
    named = "__all__ = ['A']\n\nclass A:\n    pass\n"
    assert normalized_ast_hash(named) != normalized_ast_hash(named.replace("class A", "class B"))
    # a class's name is free when nothing names it
    assert normalized_ast_hash("class A:\n    x = 1\n") == normalized_ast_hash("class B:\n    x = 1\n")
    # classes keep their order: two classes swapped in roles differ
    two = "class A:\n    x = 1\n\nclass B(A):\n    y = 2\n"
    assert normalized_ast_hash(two) != normalized_ast_hash("class A:\n    x = 1\n\nclass B:\n    y = 2\n")


def test_local_imports_and_globals_declared_in_functions_stay() -> None:
    local_import = "def f():\n    import math\n    return math.pi\n"
    assert normalized_ast_hash(local_import) != normalized_ast_hash(local_import.replace("math", "cmath"))
    declared = "counter = 0\n\ndef f():\n    global counter\n    counter = 1\n"
    other = "counter = 0\n\ndef f():\n    total = 1\n"
    assert normalized_ast_hash(declared) != normalized_ast_hash(other)


def test_legacy_hash_is_the_hash_ledgers_stored() -> None:
    # the legacy algorithm, restated: sha256 of ast.dump without docstrings
    import ast
    import hashlib

    tree = ast.parse("x = 1\n")
    expected = hashlib.sha256(
        ast.dump(tree, annotate_fields=True, include_attributes=False).encode()
    ).hexdigest()
    assert legacy_ast_hash("'''doc'''\nx = 1  # c\n") == expected


def test_class_body_names_are_attributes_even_inside_functions() -> None:
    # b = a + 1 reads the class attribute a in the first file, the function's local in the second
    first = "def f(a):\n    class K:\n        a = 1\n        b = a + 1\n    return K\n"
    second = "def f(z):\n    class K:\n        a = 1\n        b = z + 1\n    return K\n"
    assert normalized_ast_hash(first) != normalized_ast_hash(second)
    # renaming the function's local (and the nested class, a local too) consistently is a copy
    third = "def f(y):\n    class Q:\n        a = 1\n        b = y + 1\n    return Q\n"
    assert normalized_ast_hash(second) == normalized_ast_hash(third)
